//! Every change to a received message's visibility on the queue. While an item is worked
//! on, heartbeats extend its message so the queue does not hand it to someone else; a
//! message that is not finished here goes back with a delay, to be received again then:
//! a retry, a busy connection, the rest of an ordered run behind a returned message, the
//! messages of a saturated connection.

use super::Ctx;
use super::delivery::{Delivery, Disposition};
use crate::queue::ReceiptHandle;
use crate::telemetry;
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
        Err(e) => {
            metrics::counter!(telemetry::QUEUE_ERRORS, "op" => "heartbeat", "error_kind" => e.kind()).increment(1);
            tracing::warn!(error = %e, "heartbeat failed")
        }
    }
}

/// Puts the message back on the queue, visible again after `delay`.
pub async fn returned(ctx: &Ctx, d: &Delivery, delay: Duration, reason: &'static str) -> Disposition {
    metrics::counter!(telemetry::QUEUE_RETURNED, "reason" => reason).increment(1);
    match ctx.queue.change_visibility(&[(d.receipt.clone(), delay)]).await {
        Ok(_) => Disposition::Returned(delay),
        Err(e) => {
            tracing::warn!(error = %e, "could not reschedule the message; it reappears after its visibility timeout");
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
    metrics::counter!(telemetry::QUEUE_RETURNED, "reason" => "behind_returned").increment(rest.len() as u64);
    if let Err(e) = ctx.queue.change_visibility(&rest).await {
        metrics::counter!(telemetry::QUEUE_ERRORS, "op" => "return", "error_kind" => e.kind()).increment(1);
        tracing::warn!(error = %e, "could not return the rest of an ordered run; it reappears after its visibility timeout");
    }
}

/// Returns received messages the poller did not place (their connection saturated or
/// restarting, or the daemon stopping), each visible again after its delay.
pub async fn return_unplaced(ctx: &Ctx, returned: &[(ReceiptHandle, Duration)]) {
    if !returned.is_empty() {
        metrics::counter!(telemetry::QUEUE_RETURNED, "reason" => "saturated").increment(returned.len() as u64);
        if let Err(e) = ctx.queue.change_visibility(returned).await {
            metrics::counter!(telemetry::QUEUE_ERRORS, "op" => "return", "error_kind" => e.kind()).increment(1);
            tracing::debug!(error = %e, "could not return messages early; they reappear after the visibility timeout");
        }
    }
}
