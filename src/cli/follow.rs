//! Following a job's event stream (`GET /v1/jobs/{id}/events`) for `erpsync enqueue
//! --wait` and `erpsync status --follow`: a progress bar on a terminal, a line per event
//! otherwise, until the job's completion event. A dropped stream is resumed with
//! `Last-Event-ID`, so no event is shown twice or missed.

use super::{Api, error_text};
use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

/// Without a byte for this long (heartbeats come every 15 s by default), the stream is
/// taken for dead and resumed.
const SILENCE: Duration = Duration::from_secs(60);

/// One event of the stream, as sent.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// Splits Server-Sent Events off the front of `buffer`: every complete frame (comments,
/// the heartbeats, are dropped), leaving an incomplete one for more bytes.
pub fn frames(buffer: &mut String) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(end) = buffer.find("\n\n") {
        let block: String = buffer.drain(..end + 2).collect();
        let mut frame = Frame::default();
        let mut has_data = false;
        for line in block.lines() {
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "id" => frame.id = Some(value.to_owned()),
                "event" => frame.event = Some(value.to_owned()),
                "data" => {
                    if has_data {
                        frame.data.push('\n');
                    }
                    frame.data.push_str(value);
                    has_data = true;
                }
                _ => {}
            }
        }
        if has_data || frame.event.is_some() {
            out.push(frame);
        }
    }
    out
}

/// What the follower shows as the job's items move.
struct Progress {
    bar: Option<ProgressBar>,
    states: HashMap<String, String>,
    total: u64,
}

impl Progress {
    fn new(total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} [{elapsed_precise}]")
                    .expect("template is valid"),
            );
            bar
        });
        Progress { bar, states: HashMap::new(), total }
    }

    fn show(&mut self, kind: &str, event: &serde_json::Value) {
        let data = &event["data"];
        if let (Some(item), Some(state)) = (event["item_id"].as_str(), data["state"].as_str()) {
            self.states.insert(item.to_owned(), state.to_owned());
        }
        let Some(bar) = &self.bar else {
            let mut line = kind.to_owned();
            if let Some(item) = event["item_id"].as_str() {
                line.push_str(&format!(" item {item}"));
            }
            if let Some(a) = data["attempt"].as_u64() {
                line.push_str(&format!(" attempt {a}"));
            }
            if let Some(erp_id) = data["erp_id"].as_str() {
                line.push_str(&format!(" erp_id {erp_id}"));
            }
            if data["error"].is_object() {
                let e = &data["error"];
                line.push_str(&format!(
                    " {}: {}",
                    e["kind"].as_str().unwrap_or(""),
                    e["message"].as_str().unwrap_or("")
                ));
            }
            println!("{line}");
            return;
        };
        let count = |wanted: &[&str]| self.states.values().filter(|s| wanted.contains(&s.as_str())).count() as u64;
        bar.set_length(self.total.max(self.states.len() as u64));
        bar.set_position(count(&["succeeded", "failed", "dead_lettered", "cancelled"]));
        bar.set_message(format!("retrying {}", count(&["retrying"])));
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Shows job `job_id`'s events (it has `total` items) until its completion event,
/// resuming the stream when it drops.
pub async fn follow_job(api: &Api, job_id: &str, total: u64) -> Result<()> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(SILENCE)
        .build()
        .expect("client builds");
    let mut progress = Progress::new(total);
    let mut last: Option<String> = None;
    let mut backoff = Duration::from_millis(200);
    let result = loop {
        let mut req = client.get(format!("{}/v1/jobs/{job_id}/events", api.url)).header("accept", "text/event-stream");
        if let Some(id) = &last {
            req = req.header("last-event-id", id);
        }
        let mut resp = match api.send(req).await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) if r.status().is_client_error() => break Err(anyhow::anyhow!("{}", error_text(r).await)),
            Ok(r) => {
                tracing::debug!(status = %r.status(), "event stream refused; resuming");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "event stream unavailable; resuming");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let mut buffer = String::new();
        let mut completed = false;
        loop {
            match resp.chunk().await {
                Ok(Some(bytes)) => {
                    backoff = Duration::from_millis(200);
                    buffer.push_str(&String::from_utf8_lossy(&bytes));
                    for frame in frames(&mut buffer) {
                        if frame.id.is_some() {
                            last = frame.id.clone();
                        }
                        let kind = frame.event.clone().unwrap_or_default();
                        let event: serde_json::Value = serde_json::from_str(&frame.data).unwrap_or_default();
                        progress.show(&kind, &event);
                        completed |= crate::store::events::completes_job(&kind);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "event stream dropped; resuming");
                    break;
                }
            }
            if completed {
                break;
            }
        }
        if completed {
            break Ok(());
        }
        tokio::time::sleep(backoff).await;
    };
    progress.finish();
    if let Err(e) = result {
        bail!("cannot follow job {job_id}: {e}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Frame, frames};

    #[test]
    fn frames_are_split_whole_and_heartbeats_dropped() {
        let mut buffer =
            ": heartbeat\n\nid: 0-1\nevent: item.succeeded\ndata: {\"a\":1}\n\nid: 0-2\nevent: job.".to_owned();
        let got = frames(&mut buffer);
        assert_eq!(
            got,
            [Frame { id: Some("0-1".into()), event: Some("item.succeeded".into()), data: "{\"a\":1}".into() }]
        );
        assert_eq!(buffer, "id: 0-2\nevent: job.");
        buffer.push_str("completed\ndata: x\ndata: y\n\n");
        assert_eq!(frames(&mut buffer)[0].data, "x\ny");
        assert!(buffer.is_empty());
    }
}
