//! Telemetry as events: one struct per thing that happens, whose `emit()` writes the log
//! line and the metric together, so the two never tell different stories.
//!
//! Events take plain values (label strings, an [`ErrorKind`], something displayable), not
//! the types of the modules that emit them, so this module depends on nothing it reports on.

use super::{CONNECTION_ITEMS, CONNECTION_RETRIES, ITEMS, QUEUE_DEAD_LETTERED, QUEUE_ERRORS, QUEUE_RETURNED, RETRIES};
use crate::domain::{ErrorKind, ItemState};
use std::fmt::Display;
use std::time::Duration;

/// A queue service call the daemon makes while running (the `op` label of
/// `erpsync_queue_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueOp {
    Send,
    Receive,
    Delete,
    Heartbeat,
    Return,
    Depth,
}

impl QueueOp {
    pub const ALL: [QueueOp; 6] =
        [QueueOp::Send, QueueOp::Receive, QueueOp::Delete, QueueOp::Heartbeat, QueueOp::Return, QueueOp::Depth];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueOp::Send => "send",
            QueueOp::Receive => "receive",
            QueueOp::Delete => "delete",
            QueueOp::Heartbeat => "heartbeat",
            QueueOp::Return => "return",
            QueueOp::Depth => "depth",
        }
    }
}

/// A queue call failed. `consequence` tells the operator what becomes of the messages
/// (`"it will be redelivered and skipped"`); nothing is lost either way.
pub struct QueueCallFailed<'a> {
    pub op: QueueOp,
    /// The failure's stable kind (`QueueError::kind`): the `error_kind` label.
    pub error_kind: &'static str,
    pub error: &'a dyn Display,
    pub consequence: &'static str,
}

impl QueueCallFailed<'_> {
    pub fn emit(self) {
        metrics::counter!(QUEUE_ERRORS, "op" => self.op.as_str(), "error_kind" => self.error_kind).increment(1);
        tracing::warn!(op = self.op.as_str(), error = %self.error, "queue {} failed; {}", self.op.as_str(), self.consequence);
    }
}

/// Why a received message went back to the queue instead of being deleted (the `reason`
/// label of `erpsync_queue_messages_returned_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnReason {
    /// A transient failure, rescheduled with backoff.
    Retry,
    /// Another task of this daemon is exporting the same document.
    Busy,
    /// The outcome could not be recorded; it is tried again.
    Unrecorded,
    /// The connection's actor was restarting.
    ConnectorRestarting,
    /// The connection had no room (or every cluster slot stayed taken).
    Saturated,
    /// Behind a message of the same ordered group that went back.
    BehindReturned,
    /// Its connection is parked: shelved for the outbox, which sends it again once the
    /// connection is resumed.
    Parked,
}

impl ReturnReason {
    pub const ALL: [ReturnReason; 7] = [
        ReturnReason::Retry,
        ReturnReason::Busy,
        ReturnReason::Unrecorded,
        ReturnReason::ConnectorRestarting,
        ReturnReason::Saturated,
        ReturnReason::BehindReturned,
        ReturnReason::Parked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReturnReason::Retry => "retry",
            ReturnReason::Busy => "busy",
            ReturnReason::Unrecorded => "unrecorded",
            ReturnReason::ConnectorRestarting => "connector_restarting",
            ReturnReason::Saturated => "saturated",
            ReturnReason::BehindReturned => "behind_returned",
            ReturnReason::Parked => "parked",
        }
    }
}

/// Messages went back to the queue, to be received again after a delay.
pub struct MessagesReturned {
    pub reason: ReturnReason,
    pub count: usize,
}

impl MessagesReturned {
    pub fn emit(self) {
        metrics::counter!(QUEUE_RETURNED, "reason" => self.reason.as_str()).increment(self.count as u64);
        tracing::debug!(reason = self.reason.as_str(), count = self.count, "messages returned to the queue");
    }
}

/// A message moved to the dead-letter store. `reason_kind` is the bounded label
/// (`item`, `max_receives`, an envelope error kind); `reason` the text kept with it.
pub struct MessageDeadLettered<'a> {
    pub reason_kind: &'static str,
    pub message_id: Option<&'a str>,
    pub reason: &'a str,
}

impl MessageDeadLettered<'_> {
    pub fn emit(self) {
        metrics::counter!(QUEUE_DEAD_LETTERED, "reason" => self.reason_kind).increment(1);
        match self.message_id {
            Some(id) => {
                tracing::warn!(message_id = %id, reason = %self.reason, kind = self.reason_kind, "message dead-lettered")
            }
            None => tracing::warn!(reason = %self.reason, kind = self.reason_kind, "item dead-lettered"),
        }
    }
}

/// An item reached a terminal state, recorded.
pub struct ItemFinished<'a> {
    pub erp: &'static str,
    pub op: &'static str,
    /// The connection's bounded label (`telemetry::connection_label`).
    pub connection: &'a str,
    pub state: ItemState,
    /// Why it did not succeed.
    pub error: Option<(ErrorKind, &'a str)>,
}

impl ItemFinished<'_> {
    pub fn emit(self) {
        let outcome = self.state.as_str();
        metrics::counter!(ITEMS, "erp" => self.erp, "op" => self.op, "outcome" => outcome).increment(1);
        metrics::counter!(CONNECTION_ITEMS, "connection" => self.connection.to_owned(), "outcome" => outcome)
            .increment(1);
        match self.error {
            Some((kind, message)) if self.state == ItemState::Failed => {
                tracing::warn!(kind = kind.as_str(), error = %message, "item failed")
            }
            Some((kind, message)) => tracing::warn!(kind = kind.as_str(), reason = %message, "item {outcome}"),
            None => tracing::debug!("item {outcome}"),
        }
    }
}

/// An attempt failed transiently; the item is tried again after `delay`.
pub struct ItemRetried<'a> {
    pub erp: &'static str,
    pub connection: &'a str,
    pub kind: ErrorKind,
    pub message: &'a str,
    pub delay: Duration,
}

impl ItemRetried<'_> {
    pub fn emit(self) {
        metrics::counter!(RETRIES, "erp" => self.erp, "error_kind" => self.kind.as_str()).increment(1);
        metrics::counter!(CONNECTION_RETRIES, "connection" => self.connection.to_owned(), "error_kind" => self.kind.as_str())
            .increment(1);
        tracing::info!(
            kind = self.kind.as_str(),
            error = %self.message,
            delay_ms = self.delay.as_millis() as u64,
            "attempt failed; retrying"
        );
    }
}

/// A webhook delivery attempt was answered, or went unanswered. `outcome` is one of
/// [`super::WEBHOOK_OUTCOMES`].
pub struct WebhookAttempted<'a> {
    pub delivery: &'a str,
    pub subscription: &'a str,
    pub attempt: i32,
    pub outcome: &'static str,
    pub status: Option<i32>,
    pub error: Option<&'a str>,
    pub latency: Duration,
}

impl WebhookAttempted<'_> {
    pub fn emit(self) {
        metrics::counter!(super::WEBHOOK_ATTEMPTS, "outcome" => self.outcome).increment(1);
        metrics::histogram!(super::WEBHOOK_REQUEST_SECONDS).record(self.latency.as_secs_f64());
        let (delivery, subscription, attempt) = (self.delivery, self.subscription, self.attempt);
        let latency_ms = self.latency.as_millis() as u64;
        match self.error {
            Some(error) => tracing::info!(
                delivery,
                subscription,
                attempt,
                status = self.status,
                error,
                latency_ms,
                "webhook attempt failed; {}",
                self.outcome
            ),
            None => {
                tracing::debug!(delivery, subscription, attempt, status = self.status, latency_ms, "webhook delivered")
            }
        }
    }
}
