//! The dead-letter queue: what this client puts there (with the reason, as message
//! attributes), and listing and redriving what is there. Listing receives the dead
//! letters and releases them again; SQS has no way to look without receiving.

use super::batch;
use super::convert::{ATTR_DEAD_AT, ATTR_GROUP, ATTR_REASON, ATTR_RECEIVES, number_attr, service_err, string_attr};
use super::send::Sender;
use super::wire::Wire;
use crate::queue::{DeadLetter, Outgoing, QueueError, Received};
use crate::util::now_ms;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use std::collections::HashSet;
use std::time::Duration;

/// How long dead letters stay hidden from others while being listed or redriven.
const SCAN_VISIBILITY_SECS: i32 = 30;

pub(super) struct DeadLetterQueue {
    client: Client,
    wire: Wire,
    url: String,
    fifo: bool,
}

impl DeadLetterQueue {
    pub(super) fn new(client: Client, wire: Wire, url: String, fifo: bool) -> Self {
        DeadLetterQueue { client, wire, url, fifo }
    }

    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// Sends a copy of one message here, with the reason and how often it was received.
    pub(super) async fn put(&self, m: &Received, reason: &str, receives: u32) -> Result<(), QueueError> {
        let reason = if reason.is_empty() { "(no reason given)" } else { reason };
        let mut reason_text = reason.to_owned();
        reason_text.truncate(4096);
        let mut req = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(&m.body)
            .message_attributes(ATTR_REASON, string_attr(reason_text))
            .message_attributes(ATTR_RECEIVES, number_attr(receives.into()))
            .message_attributes(ATTR_DEAD_AT, number_attr(now_ms()));
        // The group goes with it, for a redrive to restore.
        if let Some(g) = &m.group {
            req = req.message_attributes(ATTR_GROUP, string_attr(g));
        }
        if self.fifo {
            // One group per dead letter, so none blocks another while being looked at.
            req = req
                .message_group_id(&m.message_id)
                .message_deduplication_id(format!("{}-{}", m.message_id, m.receive_count));
        }
        req.send().await.map_err(|e| service_err("SendMessage (dead-letter queue)", e))?;
        Ok(())
    }

    /// The dead letters, newest first.
    pub(super) async fn list(&self, limit: u64) -> Result<Vec<DeadLetter>, QueueError> {
        let scanned = self.scan(limit.min(100_000) as usize).await?;
        let receipts = scanned.iter().map(|(_, r, _)| r.clone()).collect();
        self.release(receipts).await;
        let mut list: Vec<DeadLetter> = scanned.into_iter().map(|(d, _, _)| d).collect();
        list.sort_by(|a, b| b.dead_at_ms.cmp(&a.dead_at_ms).then_with(|| b.message_id.cmp(&a.message_id)));
        Ok(list)
    }

    /// Sends the dead letters with these message ids back through `to`, then deletes
    /// them here; returns how many moved.
    pub(super) async fn redrive(&self, message_ids: &[String], to: &Sender) -> Result<usize, QueueError> {
        let wanted: HashSet<&str> = message_ids.iter().map(String::as_str).collect();
        if wanted.is_empty() {
            return Ok(0);
        }
        let scanned = self.scan(100_000).await?;
        let (chosen, others): (Vec<_>, Vec<_>) =
            scanned.into_iter().partition(|(d, _, _)| wanted.contains(d.message_id.as_str()));
        self.release(others.into_iter().map(|(_, r, _)| r).collect()).await;
        let out: Vec<Outgoing> = chosen
            .iter()
            .map(|(d, _, group)| Outgoing {
                body: d.body.clone(),
                group: group.clone(),
                dedup_id: Some(format!("redrive-{}", d.message_id)),
                delay: Duration::ZERO,
            })
            .collect();
        let unsent: HashSet<usize> = match to.send(out).await {
            Ok(()) => HashSet::new(),
            Err(e) => e.unsent(chosen.len()).into_iter().collect(),
        };
        let mut moved = 0;
        let mut keep = Vec::new();
        let mut remove = Vec::new();
        for (i, (_, receipt, _)) in chosen.into_iter().enumerate() {
            if unsent.contains(&i) {
                keep.push(receipt);
            } else {
                remove.push(receipt);
                moved += 1;
            }
        }
        self.release(keep).await;
        for chunk in remove.chunks(batch::MAX_BATCH) {
            for r in batch::delete_batch(&self.wire, &self.url, chunk.to_vec()).await {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "a redriven message stays in the dead-letter queue too");
                }
            }
        }
        Ok(moved)
    }

    /// Receives up to `max` distinct dead letters, hiding them for a while; the caller
    /// releases or deletes each one.
    async fn scan(&self, max: usize) -> Result<Vec<(DeadLetter, String, Option<String>)>, QueueError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut waited = false;
        while out.len() < max {
            let resp = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages((max - out.len()).min(10) as i32)
                .visibility_timeout(SCAN_VISIBILITY_SECS)
                // Short polls sample only some SQS servers: end on an empty long poll.
                .wait_time_seconds(if waited { 1 } else { 0 })
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|e| service_err("ReceiveMessage (dead-letter queue)", e))?;
            let fresh: Vec<&Message> =
                resp.messages().iter().filter(|m| seen.insert(m.message_id().unwrap_or_default().to_owned())).collect();
            if fresh.is_empty() {
                if waited {
                    break;
                }
                waited = true;
                continue;
            }
            for m in fresh {
                out.push(dead_letter_of(m));
            }
        }
        Ok(out)
    }

    async fn release(&self, receipts: Vec<String>) {
        let results = futures::future::join_all(receipts.into_iter().map(|r| self.visibility(r, 0))).await.into_iter();
        let failed = results.filter(|r| r.is_err()).count();
        if failed > 0 {
            tracing::warn!(failed, "some dead letters stay hidden until their visibility timeout");
        }
    }

    async fn visibility(&self, receipt: String, secs: i32) -> Result<bool, QueueError> {
        batch::visibility_batch(&self.wire, &self.url, vec![(receipt, secs)]).await.remove(0)
    }
}

/// A dead letter as listed, with its receipt handle and original group.
fn dead_letter_of(m: &Message) -> (DeadLetter, String, Option<String>) {
    let attr = |k: &str| m.message_attributes().and_then(|a| a.get(k)).and_then(|v| v.string_value());
    let sys = |k: MessageSystemAttributeName| m.attributes().and_then(|a| a.get(&k)).cloned();
    let sent = sys(MessageSystemAttributeName::SentTimestamp).and_then(|v| v.parse().ok()).unwrap_or(0);
    let dead = DeadLetter {
        message_id: m.message_id().unwrap_or_default().to_owned(),
        body: m.body().unwrap_or_default().to_owned(),
        // Without our attribute, SQS's redrive policy moved it: the daemon never saw it fail.
        reason: attr(ATTR_REASON)
            .unwrap_or("moved by the queue's redrive policy (maxReceiveCount) without a reason")
            .to_owned(),
        dead_at_ms: attr(ATTR_DEAD_AT).and_then(|v| v.parse().ok()).unwrap_or(sent),
        receive_count: attr(ATTR_RECEIVES).and_then(|v| v.parse().ok()).unwrap_or(0),
    };
    (dead, m.receipt_handle().unwrap_or_default().to_owned(), attr(ATTR_GROUP).map(str::to_owned))
}
