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
mod convert;
mod dlq;
mod send;
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
use aws_sdk_sqs::types::QueueAttributeName;
use convert::{ATTR_GROUP, secs_ceil, service_err};
use dlq::DeadLetterQueue;
use send::Sender;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use wire::{ReceiveMessage, Wire};

/// Longest visibility timeout SQS accepts.
const MAX_VISIBILITY_SECS: i32 = 43_200;

pub struct SqsQueue {
    client: Client,
    wire: Wire,
    url: String,
    fifo: bool,
    max_receives: u32,
    sender: Sender,
    dlq: DeadLetterQueue,
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
            sender: Sender::new(wire.clone(), url.clone(), fifo, send_concurrency),
            dlq: DeadLetterQueue::new(client.clone(), wire.clone(), dlq_url, fifo),
            client,
            wire,
            url,
            fifo,
            max_receives,
            deletes,
            visibility,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn dlq_url(&self) -> &str {
        self.dlq.url()
    }

    /// Moves one message to the dead-letter queue: send there with the reason, then
    /// delete here. A crash in between leaves a duplicate dead letter, never a loss.
    async fn move_to_dlq(&self, m: &Received, reason: &str, receives: u32) -> Result<bool, QueueError> {
        self.dlq.put(m, reason, receives).await?;
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
        self.sender.send(messages).await
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
        let (main, dlq) = tokio::try_join!(self.queue_counts(&self.url), self.queue_counts(self.dlq.url()))?;
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
        self.dlq.list(limit).await
    }

    async fn redrive(&self, message_ids: &[String]) -> Result<usize, QueueError> {
        self.dlq.redrive(message_ids, &self.sender).await
    }
}
