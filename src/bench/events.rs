//! `erpsync bench events`: how soon an event reaches an SSE client after its status
//! transaction, with a steady flow of events (a zero-latency sandbox ERP and jobs enqueued
//! at a fixed rate). The latency of an event is the client's receive time minus the event's
//! `at_ms`, which the status writer takes as its transaction begins: an upper bound of the
//! time from commit to delivery.

use crate::cli::follow::frames;
use crate::erp::sandbox::SandboxOptions;
use crate::rig::{Rig, RigSpec};
use crate::util::now_ms;
use anyhow::{Result, bail};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct EventsArgs {
    /// Events per second to keep flowing (two per item, in progress and succeeded, and one
    /// per job).
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// How long to measure.
    #[arg(long, default_value_t = 20)]
    pub secs: u64,
    /// Items per job.
    #[arg(long, default_value_t = 10)]
    pub job_size: usize,
    /// Database URL (default: a scratch SQLite file).
    #[arg(long)]
    pub database_url: Option<String>,
    #[arg(long)]
    pub json: bool,
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub async fn events(args: EventsArgs) -> Result<()> {
    let rig = Rig::start(RigSpec {
        limits: vec![64],
        sandbox: SandboxOptions { latency_ms: 0, ..SandboxOptions::default() },
        database_url: args.database_url.clone(),
        tune: Box::new(|c| c.log.level = "warn".into()),
        ..Default::default()
    })
    .await?;
    let token = rig.token().await;
    let url = format!("http://{}/v1/events", rig.daemon().http_addr());
    let mut resp = reqwest::Client::new().get(&url).bearer_auth(&token).send().await?;
    if !resp.status().is_success() {
        bail!("{url}: {}", resp.status());
    }
    // Each job brings 2 events per item and its completion.
    let per_job = 2 * args.job_size + 1;
    let every = Duration::from_secs_f64(per_job as f64 / f64::from(args.rate.max(1)));
    let until = Instant::now() + Duration::from_secs(args.secs);
    let submitting = {
        let rig_ctx = rig.daemon().ctx().clone();
        let connection = rig.erps[0].connection.clone();
        let job_size = args.job_size;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut n = 0usize;
            while Instant::now() < until {
                tick.tick().await;
                let docs = crate::samples::invoices(&format!("be{n}"), job_size);
                let req = crate::jobs::JobRequest {
                    connection_id: connection.clone(),
                    op: crate::domain::Op::ExportInvoice,
                    documents: docs.iter().map(|d| serde_json::value::to_raw_value(d).expect("serializes")).collect(),
                };
                if let Err(e) = crate::jobs::submit(&rig_ctx, req).await {
                    tracing::warn!(error = %e, "bench job refused");
                }
                n += 1;
            }
            n
        })
    };
    let mut latencies: Vec<i64> = Vec::new();
    let mut buffer = String::new();
    let started = Instant::now();
    // A little past the last submission, for its events to arrive.
    let stop = until + Duration::from_secs(2);
    while let Ok(chunk) = tokio::time::timeout_at(stop.into(), resp.chunk()).await {
        let Some(bytes) = chunk? else { break };
        let received = now_ms();
        buffer.push_str(&String::from_utf8_lossy(&bytes));
        for f in frames(&mut buffer) {
            let event: serde_json::Value = serde_json::from_str(&f.data).unwrap_or_default();
            if let Some(at) = event["at_ms"].as_i64() {
                latencies.push(received - at);
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let jobs = submitting.await?;
    rig.shutdown().await;
    latencies.sort_unstable();
    let (p50, p99, max) =
        (percentile(&latencies, 50.0), percentile(&latencies, 99.0), latencies.last().copied().unwrap_or(0));
    let database = if args.database_url.is_some() { "postgres" } else { "sqlite" };
    let rate = latencies.len() as f64 / wall;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"database": database, "jobs": jobs, "events": latencies.len(), "events_per_sec": rate,
                "p50_ms": p50, "p99_ms": p99, "max_ms": max})
        );
    } else {
        println!("{database}: {} events from {jobs} jobs in {wall:.1} s = {rate:.0} events/s", latencies.len());
        println!("  delivery latency (receive − at_ms)  p50 {p50} ms  p99 {p99} ms  max {max} ms");
    }
    Ok(())
}
