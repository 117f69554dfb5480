//! The outbox sweep: items recorded but never sent (the API crashed, or the queue failed
//! or timed out between the two) are sent again. A duplicate message is harmless: the
//! item is done once.

use super::Ctx;
use crate::domain::{ConnectionId, Op};
use crate::queue::Envelope;
use crate::store;

use crate::telemetry::events::{QueueCallFailed, QueueOp};
use std::time::Duration;

/// How old an unsent item (or an unreported job) is before the outbox sweep sends it: far
/// longer than a send may take (`queue.send_timeout_ms`).
const OUTBOX_AGE: Duration = Duration::from_secs(10);

/// Items recorded but never sent are sent now, 500 at a time until none is left (at most
/// 10,000 per sweep, so heartbeats are not held up).
pub async fn resend_unsent(ctx: &Ctx) {
    for _ in 0..20 {
        if ctx.shutdown.is_cancelled() || resend_unsent_batch(ctx).await < 500 {
            return;
        }
    }
}

/// One round of the outbox sweep; returns how many items it found.
async fn resend_unsent_batch(ctx: &Ctx) -> usize {
    // Jobs whose sender never reported hand their items to the sweep first.
    match store::expire_outbox_markers(&ctx.db, OUTBOX_AGE, 100).await {
        Ok(0) => {}
        Ok(jobs) => tracing::info!(jobs, "jobs whose sending was never reported go to the outbox"),
        Err(e) => tracing::warn!(error = %e, "outbox marker scan failed"),
    }
    let items = match store::unsent_items(&ctx.db, OUTBOX_AGE, 500).await {
        Ok(items) if !items.is_empty() => items,
        Ok(_) => return 0,
        Err(e) => {
            tracing::warn!(error = %e, "outbox scan failed");
            return 0;
        }
    };
    let found = items.len();
    let mut ids = Vec::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        let (Ok(job_id), Ok(item_id), Some(op)) = (it.job_id.parse(), it.id.parse(), Op::parse(&it.op)) else {
            continue;
        };
        ids.push(item_id);
        out.push(Envelope::by_ref(job_id, item_id, ConnectionId::new(it.connection_id), op, &it.source_id).outgoing());
    }
    tracing::info!(items = out.len(), "re-sending items the outbox never sent");
    let sent = match ctx.queue.send(out).await {
        Ok(()) => ids,
        Err(e) => {
            QueueCallFailed {
                op: QueueOp::Send,
                error_kind: e.kind(),
                error: &e,
                consequence: "the outbox sends the rest at its next sweep",
            }
            .emit();
            e.split_sent(ids).0
        }
    };
    // Marked before the next round looks, so nothing is sent twice by one sweep. The flag
    // is the outbox's bookkeeping, not item state, so it need not wait for the StatusActor.
    if let Err(e) = store::mark_enqueued(&ctx.db, &sent).await {
        tracing::warn!(error = %e, "could not mark re-sent items enqueued; they will be sent again");
        return 0;
    }
    // A failed send leaves the rest for the next sweep rather than retrying at once.
    if sent.len() < found { 0 } else { found }
}
