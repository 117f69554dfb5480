//! The end of an attempt: its outcome recorded by the StatusActor, then — only once that
//! has committed — the message deleted, dead-lettered or returned for a retry.

use super::outcome::{Effects, Outcome, err, uncounted_note};
use crate::actors::Ctx;
use crate::actors::connection::Connection;
use crate::actors::delivery::{Delivery, Disposition};
use crate::actors::parking;
use crate::actors::status::client;
use crate::actors::visibility::{returned, visibility_timeout};
use crate::domain::{ErrorKind, ItemState};
use crate::store::parks::ParkReason;
use crate::store::{ItemError, ItemUpdate};
use crate::telemetry;
use crate::telemetry::events::{
    ItemFinished, ItemRetried, MessageDeadLettered, QueueCallFailed, QueueOp, ReturnReason,
};
use std::time::Duration;

/// Sends an update to the StatusActor and returns whether it committed.
#[allow(clippy::too_many_arguments)]
async fn record(
    ctx: &Ctx,
    conn: &Connection,
    d: &Delivery,
    state: ItemState,
    erp_id: Option<String>,
    error: Option<ItemError>,
    effects: Effects,
    detail: Option<String>,
) -> bool {
    let attempt = d.attempt();
    let update = ItemUpdate {
        item_id: d.envelope.item_id,
        state,
        attempt: (attempt > 0).then_some(attempt),
        erp_id,
        error,
        ledger: effects.ledger,
        applications: effects.applications,
        bills: effects.bills,
        connection_id: conn.config.id.clone(),
        detail,
    };
    client::update(ctx, update).await
}

/// Exponential backoff with jitter (half fixed, half random), at least `at_least`.
pub fn backoff(attempt: u32, base: Duration, max: Duration, at_least: Option<Duration>) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(max);
    let jittered = exp.mul_f64(0.5 + rand::random::<f64>() * 0.5);
    jittered.max(at_least.unwrap_or_default()).min(Duration::from_secs(12 * 3600))
}

/// Records the outcome, then deletes, dead-letters or returns the message.
pub async fn finish(ctx: &Ctx, conn: &Connection, d: &Delivery, outcome: Outcome, effects: Effects) -> Disposition {
    d.release_capacity();
    let q = &ctx.queue;
    let erp = conn.config.erp.as_str();
    let op = d.envelope.op.as_str();
    let retry_cfg = &ctx.config.retry;
    let (state, erp_id, error, detail) = match outcome {
        Outcome::AlreadyDone => {
            delete(ctx, d).await;
            return Disposition::Finished;
        }
        Outcome::NotNow(reason) => return returned(ctx, d, Duration::from_secs(2), reason).await,
        Outcome::Park { error } => return park(ctx, conn, d, error, effects).await,
        Outcome::Succeeded { erp_id } => (ItemState::Succeeded, Some(erp_id), None, None),
        Outcome::Failed(e) => (ItemState::Failed, None, Some(e), None),
        Outcome::DeadLetter(reason) => {
            (ItemState::DeadLettered, None, Some(err(ErrorKind::Unprocessable, None, reason)), None)
        }
        Outcome::Retry { error, .. }
            if error.kind != ErrorKind::Throttled && d.counted_attempts() >= retry_cfg.max_attempts.get() =>
        {
            let reason = format!(
                "gave up after {} attempts{}; last error: {}",
                d.counted_attempts(),
                uncounted_note(d.attempt() - d.counted_attempts()),
                error.message
            );
            (ItemState::DeadLettered, None, Some(err(error.kind, error.code, reason)), None)
        }
        Outcome::Retry { error, at_least } => {
            let delay = backoff(
                d.attempt(),
                Duration::from_millis(retry_cfg.base_delay_ms.get().into()),
                Duration::from_secs(retry_cfg.max_delay_secs.get().into()),
                at_least,
            );
            ItemRetried { erp, connection: conn.label(), kind: error.kind, message: &error.message, delay }.emit();
            let detail = format!("retry in {:.1} s", delay.as_secs_f64());
            // The ledger must be durable before the message comes back.
            if record(ctx, conn, d, ItemState::Retrying, None, Some(error), effects, Some(detail)).await {
                return returned(ctx, d, delay, ReturnReason::Retry).await;
            }
            // Not recorded: the message stays invisible until its visibility timeout.
            return Disposition::Returned(visibility_timeout(ctx));
        }
    };
    if !record(ctx, conn, d, state, erp_id, error.clone(), effects, detail).await {
        // Not recorded: keep the message; it comes back after a short pause.
        tracing::warn!("outcome not recorded; the message will be redelivered");
        return returned(ctx, d, Duration::from_secs(5), ReturnReason::Unrecorded).await;
    }
    let why = error.as_ref().map(|e| (e.kind, e.message.as_str()));
    ItemFinished { erp, op, connection: conn.label(), state, error: why }.emit();
    if state == ItemState::DeadLettered {
        let reason = error.map(|e| e.message).unwrap_or_default();
        MessageDeadLettered { reason_kind: "item", message_id: Some(&d.message.message_id), reason: &reason }.emit();
        if let Err(e) = q.dead_letter(&d.message, &reason).await {
            tracing::warn!(error = %e, "could not dead-letter the message; it will be redelivered");
        }
    } else {
        delete(ctx, d).await;
    }
    Disposition::Finished
}

/// Parks the connection if the attempt found its credentials revoked (recording the
/// attempt as not counting, with what it did in the ERP), then shelves the item.
async fn park(ctx: &Ctx, conn: &Connection, d: &Delivery, error: Option<ItemError>, effects: Effects) -> Disposition {
    if let Some(error) = error {
        parking::park(ctx, conn, ParkReason::AuthRevoked, &error.message).await;
        let detail = format!("parked: {}", ParkReason::AuthRevoked.as_str());
        // The ledger must be durable before the message goes.
        if !record(ctx, conn, d, ItemState::Retrying, None, Some(error), effects, Some(detail)).await {
            return Disposition::Returned(visibility_timeout(ctx));
        }
    }
    if parking::shelve(ctx, d.envelope.item_id, &d.receipt).await {
        return Disposition::Finished;
    }
    returned(ctx, d, Duration::from_secs(60), ReturnReason::Parked).await
}

/// Deletes the message of an item that is finished.
async fn delete(ctx: &Ctx, d: &Delivery) {
    match ctx.queue.delete(&d.receipt).await {
        Ok(true) => metrics::counter!(telemetry::QUEUE_DELETED).increment(1),
        Ok(false) => tracing::debug!("receipt handle was stale; the message was redelivered meanwhile"),
        Err(e) => QueueCallFailed {
            op: QueueOp::Delete,
            error_kind: e.kind(),
            error: &e,
            consequence: "it will be redelivered and skipped",
        }
        .emit(),
    }
}
