//! The receives: the long-polling loops of backends without receive-by-group, the single
//! receives of the group-by-group poll, and the wait between them while there is nothing
//! to receive or no room for it.

use super::route::route_batch;
use crate::actors::Ctx;
use crate::queue::{GroupFilter, ReceiveRequest};

use crate::telemetry::events::{QueueCallFailed, QueueOp};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Waits until a connector frees room, a message is sent in this process, or a poll
/// interval passes (messages from other processes, delays running out).
pub async fn idle_wait(ctx: &Ctx) {
    let interval = Duration::from_millis(ctx.config.queue.poll_interval_ms.get().into());
    let activity = ctx.queue.activity();
    let sent = async {
        match &activity {
            Some(n) => n.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = ctx.capacity.notified() => {}
        _ = sent => {}
        _ = tokio::time::sleep(interval) => {}
        _ = ctx.shutdown.cancelled() => {}
    }
}

fn total_room(ctx: &Ctx) -> usize {
    ctx.connectors.values().map(|c| c.room()).sum()
}

/// One long-polling receive loop (backends without receive-by-group). Loop 0 receives
/// whenever any connector has room; the others only while there is room for a whole
/// batch beyond what the loops already asked for, so parallel receives never fetch more
/// than the connectors can take. Errors back off exponentially (SQS throttling or an
/// outage); in-flight items are unaffected and are deleted once SQS answers again.
pub async fn receive_loop(ctx: Arc<Ctx>, index: usize, stop: CancellationToken) {
    let vt = Duration::from_secs(ctx.config.queue.visibility_timeout_secs.get().into());
    let wait = Duration::from_secs(ctx.config.queue.wait_time_secs.into());
    let batch = ctx.queue.max_receive_batch();
    let need = if index == 0 { 1 } else { batch };
    let mut failures = 0u32;
    let idle = async || {
        tokio::select! {
            _ = idle_wait(&ctx) => {}
            _ = stop.cancelled() => {}
        }
    };
    while !stop.is_cancelled() {
        ctx.mark_progress(&ctx.poller_progress);
        if ctx.paused.load(Ordering::Acquire) {
            idle().await;
            continue;
        }
        let take = {
            let mut r = ctx.receive_reserved.lock().unwrap();
            let free = total_room(&ctx).saturating_sub(*r);
            let take = if free >= need { free.min(batch) } else { 0 };
            *r += take;
            take
        };
        if take == 0 {
            idle().await;
            continue;
        }
        let req = ReceiveRequest { max_messages: take, wait, visibility: vt, groups: GroupFilter::Any };
        // Not abandoned at shutdown: SQS may already have handed messages out, which would
        // then stay invisible for the visibility timeout. `route` returns them instead.
        let outcome = match ctx.queue.receive(req).await {
            Ok(batch) => {
                failures = 0;
                Some(route_batch(&ctx, batch).await)
            }
            Err(e) => {
                failures += 1;
                QueueCallFailed { op: QueueOp::Receive, error_kind: e.kind(), error: &e, consequence: "backing off" }
                    .emit();
                None
            }
        };
        *ctx.receive_reserved.lock().unwrap() -= take;
        match outcome {
            // Everything went back (all for saturated connections): wait for room.
            Some((0, returned)) if returned > 0 => idle().await,
            Some(_) => {}
            None if failures > 0 => {
                let backoff = Duration::from_millis(200u64 << failures.min(8)).min(Duration::from_secs(30));
                let backoff = backoff.mul_f64(0.5 + rand::random::<f64>() * 0.5);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => {}
                }
            }
            None => {}
        }
    }
}

pub async fn receive_and_route(ctx: &Arc<Ctx>, req: ReceiveRequest<'_>) -> usize {
    match ctx.queue.receive(req).await {
        Ok(b) => route_batch(ctx, b).await.0,
        Err(e) => {
            QueueCallFailed { op: QueueOp::Receive, error_kind: e.kind(), error: &e, consequence: "backing off" }
                .emit();
            tokio::time::sleep(Duration::from_millis(500)).await;
            0
        }
    }
}
