//! Every change to a received message's visibility on the queue. While an item is worked
//! on, heartbeats extend its message so the queue does not hand it to someone else; a
//! message that is not finished here goes back with a delay, to be received again then:
//! a retry, a busy connection, the rest of an ordered run behind a returned message, the
//! messages of a saturated connection.

use super::Ctx;
use super::delivery::{Delivery, Disposition};
use crate::queue::ReceiptHandle;
use crate::telemetry::events::{MessagesReturned, QueueCallFailed, QueueOp, ReturnReason};
use std::time::{Duration, Instant};

pub fn visibility_timeout(ctx: &Ctx) -> Duration {
    Duration::from_secs(ctx.config.queue.visibility_timeout_secs.get().into())
}

/// Extends every message that has been in flight for a third of the visibility timeout.
pub async fn heartbeat(ctx: &Ctx) {
    let vt = visibility_timeout(ctx);
    let due: Vec<_> = {
        let map = ctx.in_flight.lock().unwrap();
        let now = Instant::now();
        map.iter().filter(|(_, at)| now.duration_since(**at) >= vt / 3).map(|(r, _)| (r.clone(), vt)).collect()
    };
    if due.is_empty() {
        return;
    }
    match ctx.queue.change_visibility(&due).await {
        Ok(results) => {
            let lost = results.iter().filter(|ok| !**ok).count();
            if lost > 0 {
                tracing::warn!(lost, "heartbeat found messages no longer ours");
            }
        }
        Err(e) => QueueCallFailed {
            op: QueueOp::Heartbeat,
            error_kind: e.kind(),
            error: &e,
            consequence: "the messages are extended at the next heartbeat, or reappear after their visibility timeout",
        }
        .emit(),
    }
}

/// Puts the message back on the queue, visible again after `delay`.
pub async fn returned(ctx: &Ctx, d: &Delivery, delay: Duration, reason: ReturnReason) -> Disposition {
    MessagesReturned { reason, count: 1 }.emit();
    match ctx.queue.change_visibility(&[(d.receipt.clone(), delay)]).await {
        Ok(_) => Disposition::Returned(delay),
        Err(e) => {
            QueueCallFailed {
                op: QueueOp::Return,
                error_kind: e.kind(),
                error: &e,
                consequence: "the message reappears after its visibility timeout",
            }
            .emit();
            Disposition::Returned(visibility_timeout(ctx))
        }
    }
}

/// Returns deliveries behind one that went back to the queue, unattempted.
pub async fn return_behind(ctx: &Ctx, rest: impl Iterator<Item = Delivery>, delay: Duration) {
    let rest: Vec<_> = rest.map(|d| (d.receipt.clone(), delay)).collect();
    if rest.is_empty() {
        return;
    }
    MessagesReturned { reason: ReturnReason::BehindReturned, count: rest.len() }.emit();
    if let Err(e) = ctx.queue.change_visibility(&rest).await {
        QueueCallFailed {
            op: QueueOp::Return,
            error_kind: e.kind(),
            error: &e,
            consequence: "the rest of the ordered run reappears after its visibility timeout",
        }
        .emit();
    }
}

/// Returns received messages the poller did not place (their connection saturated or
/// restarting, or the daemon stopping), each visible again after its delay.
pub async fn return_unplaced(ctx: &Ctx, returned: &[(ReceiptHandle, Duration)]) {
    if !returned.is_empty() {
        MessagesReturned { reason: ReturnReason::Saturated, count: returned.len() }.emit();
        if let Err(e) = ctx.queue.change_visibility(returned).await {
            QueueCallFailed {
                op: QueueOp::Return,
                error_kind: e.kind(),
                error: &e,
                consequence: "they reappear after their visibility timeout",
            }
            .emit();
        }
    }
}
