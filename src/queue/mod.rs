//! The work queue: one trait with SQS semantics (visibility timeout, receipt handles,
//! receive counts, delays, dead-letter after `max_receives`) and its backends.
//!
//! The embedded backend can also receive *for one group* (connection): the poller then asks
//! each connection's share of the queue for exactly as many messages as that connection has
//! room for, so a connection with a huge backlog cannot starve another one. Backends that
//! cannot filter (SQS) receive everything and the poller returns what it cannot place.

pub mod batcher;
pub mod embedded;
pub mod envelope;
pub mod sqs;

use crate::config::{Config, QueueBackend};
use async_trait::async_trait;
use sea_orm::DatabaseConnection;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

pub use envelope::{Envelope, EnvelopeError};

/// Opens the configured queue (`db` is the embedded queue's home).
pub async fn open(config: &Config, db: DatabaseConnection) -> Result<Arc<dyn Queue>, QueueError> {
    Ok(match config.queue.backend {
        QueueBackend::Embedded => Arc::new(
            embedded::EmbeddedQueue::new(
                db,
                "main",
                config.queue.max_receives(),
                Duration::from_millis(config.queue.poll_interval_ms.get().into()),
            )
            .keeping_group_order(config.queue.fifo),
        ),
        QueueBackend::Sqs => Arc::new(sqs::SqsQueue::connect(&config.queue).await?),
    })
}

/// Identifies one *receive* of a message. A newer receive of the same message makes older
/// handles stale: they can no longer delete or extend it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReceiptHandle(pub String);

/// A message to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub body: String,
    /// Routing group (the connection id); FIFO queues order within it.
    pub group: Option<String>,
    /// Deduplication id on FIFO queues (the item id); ignored elsewhere.
    pub dedup_id: Option<String>,
    pub delay: Duration,
}

impl Outgoing {
    /// A message in `group`, visible at once.
    pub fn new(body: impl Into<String>, group: Option<String>) -> Self {
        Outgoing { body: body.into(), group, dedup_id: None, delay: Duration::ZERO }
    }
}

/// A received message.
#[derive(Debug, Clone)]
pub struct Received {
    pub message_id: String,
    pub receipt: ReceiptHandle,
    pub body: String,
    pub group: Option<String>,
    /// How many times this message has been received, this time included.
    pub receive_count: u32,
}

/// A message in the dead-letter store.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    pub reason: String,
    pub dead_at_ms: i64,
    pub receive_count: u32,
}

#[derive(Debug, Clone)]
pub struct ReceiveRequest<'a> {
    pub max_messages: usize,
    /// Long-poll: wait up to this long for a first message.
    pub wait: Duration,
    pub visibility: Duration,
    /// Which groups to receive from (backends with `can_receive_by_group`; others
    /// receive from all).
    pub groups: GroupFilter<'a>,
}

#[derive(Debug, Clone, Copy)]
pub enum GroupFilter<'a> {
    Any,
    Only(&'a str),
    /// Messages with no group or a group not listed: work no connector will ask for.
    NoneOf(&'a [String]),
}

/// What a receive call returned, including messages it moved to the dead-letter store
/// because they had been received `max_receives` times already.
#[derive(Debug, Default)]
pub struct ReceiveBatch {
    pub messages: Vec<Received>,
    pub dead_lettered: Vec<DeadLetter>,
}

/// Approximate counts, as SQS reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueDepth {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
    pub dead_lettered: u64,
    /// Age of the oldest live message, in seconds; `None` where the backend cannot tell
    /// (SQS publishes it only to CloudWatch, as `ApproximateAgeOfOldestMessage`).
    pub oldest_age_secs: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue storage error: {0}")]
    Storage(String),
    #[error("invalid receipt handle {0:?}")]
    BadReceipt(String),
    /// The queue service failed or could not be reached (throttling, outage, timeout).
    #[error("queue service error: {0}")]
    Service(String),
    /// The queue is not there or not usable as configured.
    #[error("queue setup: {0}")]
    Setup(String),
    /// Some messages of a send were not accepted: their indices in the input, in order.
    #[error("{} message(s) not sent: {message}", failed.len())]
    PartialSend { failed: Vec<usize>, message: String },
}

impl QueueError {
    pub fn kind(&self) -> &'static str {
        match self {
            QueueError::Storage(_) => "storage",
            QueueError::BadReceipt(_) => "bad_receipt",
            QueueError::Service(_) => "service",
            QueueError::Setup(_) => "setup",
            QueueError::PartialSend { .. } => "partial_send",
        }
    }

    /// Indices (into the sent list) of the messages that were not sent by a failed send.
    pub fn unsent(&self, sent: usize) -> Vec<usize> {
        match self {
            QueueError::PartialSend { failed, .. } => failed.clone(),
            _ => (0..sent).collect(),
        }
    }

    /// `items` (one per message of a failed send, in order) split into those that were
    /// sent and those that were not.
    pub fn split_sent<T>(&self, items: Vec<T>) -> (Vec<T>, Vec<T>) {
        let unsent: std::collections::HashSet<usize> = self.unsent(items.len()).into_iter().collect();
        let (sent, not): (Vec<_>, Vec<_>) = items.into_iter().enumerate().partition(|(i, _)| !unsent.contains(i));
        (sent.into_iter().map(|(_, x)| x).collect(), not.into_iter().map(|(_, x)| x).collect())
    }
}

#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// `embedded` or `sqs`: a metric label.
    fn backend(&self) -> &'static str;

    /// Whether `ReceiveRequest::group` is honoured.
    fn can_receive_by_group(&self) -> bool;

    /// Whether the queue hands out each group's messages in the order they were sent, one
    /// receive's worth at a time (SQS FIFO): the daemon then keeps that order at the ERP.
    fn keeps_group_order(&self) -> bool {
        false
    }

    /// Most messages one receive may return (SQS: 10).
    fn max_receive_batch(&self) -> usize {
        10
    }

    /// Whether `delete` reports a stale receipt handle by returning false. SQS cannot:
    /// its DeleteMessage succeeds on a stale handle without deleting the message.
    fn detects_stale_deletes(&self) -> bool {
        true
    }

    /// Fired when a message is sent from this process, so long-polls wake at once.
    /// The embedded queue, whose messages can be written in the store's own transactions.
    fn as_embedded(&self) -> Option<&embedded::EmbeddedQueue> {
        None
    }

    fn activity(&self) -> Option<Arc<Notify>>;

    /// Sends every message, or fails with [`QueueError::PartialSend`] naming those that
    /// were not sent (the others were).
    async fn send(&self, messages: Vec<Outgoing>) -> Result<(), QueueError>;

    async fn receive(&self, req: ReceiveRequest<'_>) -> Result<ReceiveBatch, QueueError>;

    /// Deletes a message; false when the handle is stale (the message was received again).
    async fn delete(&self, receipt: &ReceiptHandle) -> Result<bool, QueueError>;

    /// Makes each message visible again after its duration (zero: now). Returns, per entry,
    /// whether the handle was still current.
    async fn change_visibility(&self, entries: &[(ReceiptHandle, Duration)]) -> Result<Vec<bool>, QueueError>;

    /// Returns once every delete and visibility change asked for before has reached the
    /// queue, including those whose callers stopped waiting; so a change asked for after
    /// it lands after them (a release at shutdown is not undone by an earlier return).
    async fn settle(&self) {}

    /// Moves a received message to the dead-letter store with a reason.
    async fn dead_letter(&self, message: &Received, reason: &str) -> Result<bool, QueueError>;

    async fn depth(&self) -> Result<QueueDepth, QueueError>;

    /// The newest dead letters first.
    async fn dead_letters(&self, limit: u64) -> Result<Vec<DeadLetter>, QueueError>;

    /// Moves the dead letters with these `message_id`s (as `dead_letters` lists them) back
    /// to the queue, visible at once with a fresh receive count. Returns how many moved.
    async fn redrive(&self, message_ids: &[String]) -> Result<usize, QueueError>;
}
