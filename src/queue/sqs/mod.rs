//! The SQS backend: the queue a fleet of daemons shares, with the trait's semantics mapped
//! onto SQS calls.
//!
//! - `send` is SendMessageBatch: ten entries (and at most 256 KiB) per call, several calls
//!   in parallel; entries that fail for the server's reasons are retried, and what still
//!   fails is reported entry by entry ([`QueueError::PartialSend`]).
//! - Every message carries `MessageGroupId` = its group (the connection): on a FIFO queue
//!   that orders each connection's items (deduplication id = item id); on a standard
//!   queue it is SQS's fair-queue tenant, so one connection's backlog does not hold back
//!   the others.
//! - `delete` and `change_visibility` go through batchers (DeleteMessageBatch,
//!   ChangeMessageVisibilityBatch). SQS accepts a delete with a stale receipt handle
//!   without deleting anything, so a stale delete reports success here
//!   ([`Queue::detects_stale_deletes`] is false); the message is still not lost.
//! - Dead-lettering after `max_receives` is done by this client on receive, so the dead
//!   letter carries a reason (message attribute `erpsync_reason`) and the caller learns
//!   about it; the queue's own redrive policy sits a few receives above as a safety net.
//! - SQS durations are whole seconds: visibility and delays are rounded up.

pub mod admin;
pub mod batch;
pub mod wire;

use super::batcher::Batcher;
use super::{
    DeadLetter, Envelope, Outgoing, Queue, QueueDepth, QueueError, ReceiptHandle, ReceiveBatch, ReceiveRequest,
    Received,
};
use crate::config::QueueConfig;
use crate::util::now_ms;
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use futures::StreamExt;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use wire::{ReceiveMessage, SendEntry, Wire};

/// SendMessageBatch payload budget (SQS's historical limit; newer queues allow 1 MiB).
const BATCH_BYTES: usize = 256 * 1024;
/// Longest per-message delay SQS accepts.
const MAX_DELAY_SECS: i32 = 900;
/// Longest visibility timeout SQS accepts.
const MAX_VISIBILITY_SECS: i32 = 43_200;
/// Rounds of a SendMessageBatch for entries that failed on the server's side.
const SEND_ROUNDS: u32 = 3;
/// How long dead letters stay hidden from others while being listed or redriven.
const SCAN_VISIBILITY_SECS: i32 = 30;

const ATTR_REASON: &str = "erpsync_reason";
const ATTR_RECEIVES: &str = "erpsync_receive_count";
const ATTR_DEAD_AT: &str = "erpsync_dead_at_ms";
const ATTR_GROUP: &str = "erpsync_group";

pub(crate) fn service_err<E: std::error::Error>(what: &str, e: E) -> QueueError {
    QueueError::Service(format!("{what}: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)))
}

fn secs_ceil(d: Duration) -> i32 {
    let s = d.as_millis().div_ceil(1000);
    i32::try_from(s).unwrap_or(i32::MAX)
}

fn string_attr(v: impl Into<String>) -> MessageAttributeValue {
    MessageAttributeValue::builder().data_type("String").string_value(v).build().expect("data type is set")
}

fn number_attr(v: i64) -> MessageAttributeValue {
    MessageAttributeValue::builder().data_type("Number").string_value(v.to_string()).build().expect("data type is set")
}

pub struct SqsQueue {
    client: Client,
    wire: Wire,
    url: String,
    dlq_url: String,
    fifo: bool,
    max_receives: u32,
    send_concurrency: usize,
    deletes: Batcher<String>,
    visibility: Batcher<(String, i32)>,
}

impl SqsQueue {
    /// Connects as configured: builds the client and finds both queues.
    pub async fn connect(cfg: &QueueConfig) -> Result<SqsQueue, QueueError> {
        let clients = admin::clients(cfg).await?;
        let (url, dlq_url) = admin::resolve(&clients.sdk, cfg).await?;
        Ok(Self::new(clients, url, dlq_url, cfg.max_receives(), cfg.send_concurrency.get() as usize))
    }

    pub fn new(
        clients: admin::Clients,
        url: String,
        dlq_url: String,
        max_receives: u32,
        send_concurrency: usize,
    ) -> Self {
        let admin::Clients { sdk: client, wire } = clients;
        let fifo = url.ends_with(".fifo");
        let (c, u) = (wire.clone(), url.clone());
        let deletes =
            Batcher::spawn_lingering(batch::MAX_BATCH, batch::IN_FLIGHT_CALLS, batch::LINGER, move |receipts| {
                let (c, u) = (c.clone(), u.clone());
                async move { batch::delete_batch(&c, &u, receipts).await }
            });
        let (c, u) = (wire.clone(), url.clone());
        let visibility =
            Batcher::spawn_lingering(batch::MAX_BATCH, batch::IN_FLIGHT_CALLS, batch::LINGER, move |entries| {
                let (c, u) = (c.clone(), u.clone());
                async move { batch::visibility_batch(&c, &u, entries).await }
            });
        SqsQueue {
            client,
            wire,
            url,
            dlq_url,
            fifo,
            max_receives,
            send_concurrency: send_concurrency.max(1),
            deletes,
            visibility,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn dlq_url(&self) -> &str {
        &self.dlq_url
    }

    fn entry<'m>(&self, i: usize, m: &'m Outgoing) -> SendEntry<'m> {
        let mut e = SendEntry { id: i.to_string(), message_body: &m.body, ..SendEntry::default() };
        if self.fifo {
            // FIFO queues refuse per-message delays and need a group and a deduplication id.
            e.message_group_id = Some(m.group.as_deref().unwrap_or("default").into());
            e.message_deduplication_id =
                Some(m.dedup_id.as_deref().map_or_else(|| uuid::Uuid::new_v4().to_string().into(), Into::into));
        } else {
            // No message attribute repeats the group (older versions sent one): the
            // envelope names the connection, and an attribute cost fauxqs a third more
            // CPU per enqueued message.
            e.message_group_id = m.group.as_deref().map(Into::into);
            if !m.delay.is_zero() {
                e.delay_seconds = Some(secs_ceil(m.delay).min(MAX_DELAY_SECS));
            }
        }
        e
    }

    /// Sends the messages at `indices` in one call, retrying entries that failed on the
    /// server's side; returns the indices that could not be sent, with the last reason.
    async fn send_batch(&self, messages: &[Outgoing], mut pending: Vec<usize>) -> Vec<(usize, String)> {
        let mut failed = Vec::new();
        for round in 0..SEND_ROUNDS {
            if pending.is_empty() {
                break;
            }
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(100 << round)).await;
            }
            let entries: Vec<_> = pending.iter().map(|&i| self.entry(i, &messages[i])).collect();
            let out = match self.wire.send_message_batch(&self.url, &entries).await {
                Ok(out) => out,
                Err(e) => {
                    let reason = e.to_string();
                    if round + 1 == SEND_ROUNDS {
                        failed.extend(pending.drain(..).map(|i| (i, reason.clone())));
                    }
                    continue;
                }
            };
            let mut retry = Vec::new();
            for f in &out.failed {
                let Ok(i) = f.id.parse::<usize>() else { continue };
                let reason = format!("{}: {}", f.code, f.message.as_deref().unwrap_or(""));
                if f.sender_fault || round + 1 == SEND_ROUNDS {
                    failed.push((i, reason));
                } else {
                    retry.push(i);
                }
            }
            // Entries the answer does not mention count as failed too, never as sent.
            let answered: HashSet<usize> = out
                .successful
                .iter()
                .map(|s| s.id.as_str())
                .chain(out.failed.iter().map(|f| f.id.as_str()))
                .filter_map(|id| id.parse().ok())
                .collect();
            for &i in &pending {
                if !answered.contains(&i) {
                    failed.push((i, "SendMessageBatch did not answer for this entry".into()));
                }
            }
            pending = retry;
        }
        failed
    }

    /// Moves one message to the dead-letter queue: send there with the reason, then
    /// delete here. A crash in between leaves a duplicate dead letter, never a loss.
    async fn move_to_dlq(&self, m: &Received, reason: &str, receives: u32) -> Result<bool, QueueError> {
        let reason = if reason.is_empty() { "(no reason given)" } else { reason };
        let mut reason_text = reason.to_owned();
        reason_text.truncate(4096);
        let mut req = self
            .client
            .send_message()
            .queue_url(&self.dlq_url)
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
        self.deletes.submit(m.receipt.0.clone()).await
    }

    async fn queue_counts(&self, url: &str) -> Result<[u64; 3], QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| service_err("GetQueueAttributes", e))?;
        let get = |k: QueueAttributeName| {
            out.attributes().and_then(|a| a.get(&k)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        };
        Ok([
            get(QueueAttributeName::ApproximateNumberOfMessages),
            get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            get(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        ])
    }

    /// Receives up to `max` distinct dead letters, hiding them for a while; the caller
    /// releases or deletes each one.
    async fn scan_dlq(&self, max: usize) -> Result<Vec<(DeadLetter, String, Option<String>)>, QueueError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut waited = false;
        while out.len() < max {
            let resp = self
                .client
                .receive_message()
                .queue_url(&self.dlq_url)
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
        let results =
            futures::future::join_all(receipts.into_iter().map(|r| self.dlq_visibility(r, 0))).await.into_iter();
        let failed = results.filter(|r| r.is_err()).count();
        if failed > 0 {
            tracing::warn!(failed, "some dead letters stay hidden until their visibility timeout");
        }
    }

    async fn dlq_visibility(&self, receipt: String, secs: i32) -> Result<bool, QueueError> {
        batch::visibility_batch(&self.wire, &self.dlq_url, vec![(receipt, secs)]).await.remove(0)
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

/// Splits messages into batches of at most ten entries and `BATCH_BYTES` of bodies.
fn plan_batches(messages: &[Outgoing]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for (i, m) in messages.iter().enumerate() {
        let size = m.body.len();
        match out.last_mut() {
            Some(b) if b.len() < batch::MAX_BATCH && bytes + size <= BATCH_BYTES => {
                b.push(i);
                bytes += size;
            }
            _ => {
                out.push(vec![i]);
                bytes = size;
            }
        }
    }
    out
}

#[async_trait]
impl Queue for SqsQueue {
    fn backend(&self) -> &'static str {
        "sqs"
    }

    fn can_receive_by_group(&self) -> bool {
        false
    }

    fn keeps_group_order(&self) -> bool {
        self.fifo
    }

    fn detects_stale_deletes(&self) -> bool {
        false
    }

    fn activity(&self) -> Option<Arc<Notify>> {
        None
    }

    async fn send(&self, messages: Vec<Outgoing>) -> Result<(), QueueError> {
        let batches = plan_batches(&messages);
        let msgs = &messages;
        // A FIFO queue orders what it is sent: its batches go one after the other.
        let parallel = if self.fifo { 1 } else { self.send_concurrency };
        let mut failed: Vec<(usize, String)> = futures::stream::iter(batches)
            .map(|b| self.send_batch(msgs, b))
            .buffered(parallel)
            .flat_map(futures::stream::iter)
            .collect()
            .await;
        if failed.is_empty() {
            return Ok(());
        }
        failed.sort_by_key(|(i, _)| *i);
        let message = failed[0].1.clone();
        Err(QueueError::PartialSend { failed: failed.into_iter().map(|(i, _)| i).collect(), message })
    }

    async fn receive(&self, req: ReceiveRequest<'_>) -> Result<ReceiveBatch, QueueError> {
        let messages = self
            .wire
            .receive_message(&ReceiveMessage {
                queue_url: &self.url,
                max_number_of_messages: req.max_messages.clamp(1, 10) as i32,
                wait_time_seconds: secs_ceil(req.wait).min(20),
                visibility_timeout: secs_ceil(req.visibility).min(MAX_VISIBILITY_SECS),
                message_system_attribute_names: &["ApproximateReceiveCount", "MessageGroupId"],
                message_attribute_names: &[ATTR_GROUP],
            })
            .await?;
        let mut batch = ReceiveBatch::default();
        for mut m in messages {
            let received = Received {
                // As sent; not every SQS-compatible server returns a standard queue's
                // group (fauxqs does not), and then the envelope's connection is the group.
                group: m
                    .attributes
                    .remove("MessageGroupId")
                    .or_else(|| m.message_attributes.remove(ATTR_GROUP).and_then(|v| v.string_value))
                    .or_else(|| Envelope::decode(&m.body).ok().map(|e| e.connection_id.to_string())),
                receive_count: m.attributes.get("ApproximateReceiveCount").and_then(|v| v.parse().ok()).unwrap_or(1),
                message_id: m.message_id,
                receipt: ReceiptHandle(m.receipt_handle),
                body: m.body,
            };
            if received.receive_count <= self.max_receives {
                batch.messages.push(received);
                continue;
            }
            let receives = received.receive_count - 1;
            let reason = format!("received {receives} times without being deleted (max_receives)");
            match self.move_to_dlq(&received, &reason, receives).await {
                Ok(_) => batch.dead_lettered.push(DeadLetter {
                    message_id: received.message_id,
                    body: received.body,
                    reason,
                    dead_at_ms: now_ms(),
                    receive_count: receives,
                }),
                // It comes back after its visibility timeout and is tried again.
                Err(e) => tracing::warn!(error = %e, "could not move an exhausted message to the dead-letter queue"),
            }
        }
        Ok(batch)
    }

    async fn delete(&self, receipt: &ReceiptHandle) -> Result<bool, QueueError> {
        self.deletes.submit(receipt.0.clone()).await
    }

    async fn change_visibility(&self, entries: &[(ReceiptHandle, Duration)]) -> Result<Vec<bool>, QueueError> {
        let results = futures::future::join_all(
            entries.iter().map(|(r, d)| self.visibility.submit((r.0.clone(), secs_ceil(*d).min(MAX_VISIBILITY_SECS)))),
        )
        .await;
        results.into_iter().collect()
    }

    async fn settle(&self) {
        tokio::join!(self.deletes.settle(), self.visibility.settle());
    }

    async fn dead_letter(&self, message: &Received, reason: &str) -> Result<bool, QueueError> {
        self.move_to_dlq(message, reason, message.receive_count).await
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let (main, dlq) = tokio::try_join!(self.queue_counts(&self.url), self.queue_counts(&self.dlq_url))?;
        Ok(QueueDepth {
            visible: main[0],
            in_flight: main[1],
            delayed: main[2],
            dead_lettered: dlq.iter().sum(),
            // SQS reports the oldest message's age only through CloudWatch: no gauge
            // rather than a gauge stuck at 0.
            oldest_age_secs: None,
        })
    }

    async fn dead_letters(&self, limit: u64) -> Result<Vec<DeadLetter>, QueueError> {
        let scanned = self.scan_dlq(limit.min(100_000) as usize).await?;
        let receipts = scanned.iter().map(|(_, r, _)| r.clone()).collect();
        self.release(receipts).await;
        let mut list: Vec<DeadLetter> = scanned.into_iter().map(|(d, _, _)| d).collect();
        list.sort_by(|a, b| b.dead_at_ms.cmp(&a.dead_at_ms).then_with(|| b.message_id.cmp(&a.message_id)));
        Ok(list)
    }

    async fn redrive(&self, message_ids: &[String]) -> Result<usize, QueueError> {
        let wanted: HashSet<&str> = message_ids.iter().map(String::as_str).collect();
        if wanted.is_empty() {
            return Ok(0);
        }
        let scanned = self.scan_dlq(100_000).await?;
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
        let unsent: HashSet<usize> = match self.send(out).await {
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
            for r in batch::delete_batch(&self.wire, &self.dlq_url, chunk.to_vec()).await {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "a redriven message stays in the dead-letter queue too");
                }
            }
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_count_and_size() {
        let small = |n: usize| (0..n).map(|i| Outgoing::new(format!("m{i}"), None)).collect::<Vec<_>>();
        assert_eq!(plan_batches(&small(25)).iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
        let big: Vec<_> = (0..5).map(|_| Outgoing::new("x".repeat(100 * 1024), None)).collect();
        assert_eq!(plan_batches(&big).iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        let huge = vec![Outgoing::new("x".repeat(300 * 1024), None), Outgoing::new("y", None)];
        assert_eq!(plan_batches(&huge), [vec![0], vec![1]], "an oversized body goes alone; the server decides");
    }

    #[test]
    fn durations_round_up_to_seconds() {
        assert_eq!(secs_ceil(Duration::ZERO), 0);
        assert_eq!(secs_ceil(Duration::from_millis(1)), 1);
        assert_eq!(secs_ceil(Duration::from_millis(1000)), 1);
        assert_eq!(secs_ceil(Duration::from_millis(1001)), 2);
    }
}
