//! QueuePoller: receives only as much work as the connectors have room for, routes each
//! message to its connection's actor, extends the visibility of in-flight messages, keeps
//! the queue-depth gauges fresh and re-sends items the outbox never sent.
//!
//! It never blocks for long inside `handle` (at most one poll interval), so heartbeats
//! are not delayed behind a long poll. Backends that receive by group (embedded) are
//! polled from `handle`, connection by connection. Backends that cannot (SQS) are
//! long-polled by receive loops running beside the actor — several at once while the
//! connectors have room for more than one batch — and a message whose connection is
//! saturated goes back to the queue with a delay paced to when that connection will
//! have room (see `ConnectorShared::return_delay`).

use super::Ctx;
use super::connector::{ConnectorMsg, Delivery};
use super::item;
use crate::domain::{ConnectionId, ItemId};
use crate::queue::{Envelope, GroupFilter, ReceiptHandle, ReceiveBatch, ReceiveRequest, Received};
use crate::store;
use crate::telemetry;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::{CancellationToken, DropGuard};

pub enum PollerMsg {
    Poll,
    Heartbeat,
    Sample,
    Outbox,
}

pub struct QueuePoller;

pub struct PollerState {
    ctx: Arc<Ctx>,
    /// Connections in a fixed order; `next` rotates who is asked first, for fairness.
    order: Vec<ConnectionId>,
    /// The same ids as strings, for the "messages nobody asks for" receive.
    known: Vec<String>,
    next: usize,
    rounds: u64,
    timers: Tasks,
    /// Stops this incarnation's receive loops when it ends, however it ends. They are
    /// asked to stop, not aborted: a receive in progress completes and its messages are
    /// routed or returned, never dropped with SQS believing them handed out.
    _receiving: DropGuard,
}

/// Background tasks of one poller incarnation, stopped however the incarnation ends.
pub struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl Actor for QueuePoller {
    type Msg = PollerMsg;
    type State = PollerState;
    type Arguments = Arc<Ctx>;

    async fn pre_start(&self, myself: ActorRef<Self::Msg>, ctx: Arc<Ctx>) -> Result<Self::State, ActorProcessingErr> {
        let mut order: Vec<_> = ctx.connectors.keys().cloned().collect();
        order.sort();
        let vt = Duration::from_secs(ctx.config.queue.visibility_timeout_secs.get().into());
        let receiving = ctx.shutdown.child_token();
        let timers = vec![
            myself.send_interval(vt / 3, || PollerMsg::Heartbeat),
            myself.send_interval(Duration::from_secs(5), || PollerMsg::Sample),
            myself.send_interval(Duration::from_secs(10), || PollerMsg::Outbox),
        ];
        if ctx.queue.can_receive_by_group() {
            myself.send_message(PollerMsg::Poll)?;
        } else {
            for index in 0..ctx.config.queue.receive_loops.get() as usize {
                ctx.receivers.spawn(receive_loop(ctx.clone(), index, receiving.clone()));
            }
        }
        myself.send_message(PollerMsg::Sample)?;
        ctx.mark_progress(&ctx.poller_progress);
        let known = order.iter().map(|c| c.to_string()).collect();
        Ok(PollerState {
            ctx,
            order,
            known,
            next: 0,
            rounds: 0,
            timers: Tasks(timers),
            _receiving: receiving.drop_guard(),
        })
    }

    async fn post_stop(&self, _: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        state.timers.0.drain(..).for_each(|t| t.abort());
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PollerMsg::Poll => {
                if state.ctx.shutdown.is_cancelled() {
                    return Ok(());
                }
                let received = if state.ctx.paused.load(Ordering::Acquire) { 0 } else { poll_once(state).await };
                state.ctx.mark_progress(&state.ctx.poller_progress);
                if received == 0 {
                    idle_wait(&state.ctx).await;
                }
                myself.send_message(PollerMsg::Poll)?;
            }
            PollerMsg::Heartbeat => heartbeat(&state.ctx).await,
            PollerMsg::Sample => sample(&state.ctx).await,
            PollerMsg::Outbox => resend_unsent(&state.ctx).await,
        }
        Ok(())
    }
}

/// Waits until a connector frees room, a message is sent in this process, or a poll
/// interval passes (messages from other processes, delays running out).
async fn idle_wait(ctx: &Ctx) {
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

/// One round of receives; returns how many messages arrived.
async fn poll_once(state: &mut PollerState) -> usize {
    let ctx = state.ctx.clone();
    let vt = Duration::from_secs(ctx.config.queue.visibility_timeout_secs.get().into());
    let mut total = 0;
    if ctx.queue.can_receive_by_group() {
        let n = state.order.len();
        state.next = (state.next + 1) % n.max(1);
        for k in 0..n {
            let id = &state.order[(state.next + k) % n];
            let room = ctx.connectors[id].room();
            if room == 0 {
                continue;
            }
            let req = ReceiveRequest {
                max_messages: room.min(ctx.queue.max_receive_batch()),
                wait: Duration::ZERO,
                visibility: vt,
                groups: GroupFilter::Only(id.as_str()),
            };
            total += receive_and_route(&ctx, req).await;
        }
        // Messages no connector asks for (no group, unknown connections, foreign
        // producers) are picked up when idle and every tenth round, to be dead-lettered.
        state.rounds += 1;
        if total == 0 || state.rounds.is_multiple_of(10) {
            let req = ReceiveRequest {
                max_messages: 10,
                wait: Duration::ZERO,
                visibility: vt,
                groups: GroupFilter::NoneOf(&state.known),
            };
            total += receive_and_route(&ctx, req).await;
        }
    }
    total
}

fn total_room(ctx: &Ctx) -> usize {
    ctx.connectors.values().map(|c| c.room()).sum()
}

/// One long-polling receive loop (backends without receive-by-group). Loop 0 receives
/// whenever any connector has room; the others only while there is room for a whole
/// batch beyond what the loops already asked for, so parallel receives never fetch more
/// than the connectors can take. Errors back off exponentially (SQS throttling or an
/// outage); in-flight items are unaffected and are deleted once SQS answers again.
async fn receive_loop(ctx: Arc<Ctx>, index: usize, stop: CancellationToken) {
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
                metrics::counter!(telemetry::QUEUE_ERRORS, "op" => "receive", "error_kind" => e.kind()).increment(1);
                tracing::warn!(error = %e, failures, "receive failed; backing off");
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

async fn receive_and_route(ctx: &Arc<Ctx>, req: ReceiveRequest<'_>) -> usize {
    match ctx.queue.receive(req).await {
        Ok(b) => route_batch(ctx, b).await.0,
        Err(e) => {
            metrics::counter!(telemetry::QUEUE_ERRORS, "op" => "receive", "error_kind" => e.kind()).increment(1);
            tracing::warn!(error = %e, "receive failed; backing off");
            tokio::time::sleep(Duration::from_millis(500)).await;
            0
        }
    }
}

/// Routes a received batch; returns (messages placed or dead-lettered, messages returned
/// to the queue because their connection was saturated).
async fn route_batch(ctx: &Arc<Ctx>, batch: ReceiveBatch) -> (usize, usize) {
    for dead in &batch.dead_lettered {
        metrics::counter!(telemetry::QUEUE_DEAD_LETTERED, "reason" => "max_receives").increment(1);
        tracing::warn!(message_id = %dead.message_id, reason = %dead.reason, "message dead-lettered by the queue");
        if let Ok(env) = Envelope::decode(&dead.body) {
            item::record_dead_letter(ctx, env.item_id, env.connection_id, &dead.reason).await;
        }
    }
    let n = batch.messages.len();
    metrics::counter!(telemetry::QUEUE_RECEIVED).increment(n as u64);
    let mut returned: Vec<(ReceiptHandle, Duration)> = Vec::new();
    // On a queue that keeps group order, each connection's messages go over as one run,
    // in the order received (`ConnectorMsg::ProcessInOrder`).
    let mut runs: Vec<(ConnectionId, Vec<Delivery>)> = Vec::new();
    let ordered = ctx.queue.keeps_group_order();
    // Connections one of whose messages went back: on an ordered queue, the messages
    // behind it go back too, no sooner.
    let mut held: Vec<(ConnectionId, Duration)> = Vec::new();
    for m in batch.messages {
        match route(ctx, m).await {
            Routed::Done => {}
            Routed::Back(receipt, delay, connection) => {
                if ordered && !held.iter().any(|(c, _)| *c == connection) {
                    held.push((connection, delay));
                }
                returned.push((receipt, delay));
            }
            Routed::Ready(delivery) if ordered => {
                let connection = &delivery.envelope.connection_id;
                if let Some((_, delay)) = held.iter().find(|(c, _)| c == connection) {
                    returned.push((delivery.receipt.clone(), *delay));
                } else if let Some((_, run)) = runs.iter_mut().find(|(c, _)| c == connection) {
                    run.push(*delivery);
                } else {
                    runs.push((connection.clone(), vec![*delivery]));
                }
            }
            Routed::Ready(delivery) => {
                let receipt = delivery.receipt.clone();
                if !hand_over(ctx, &delivery.envelope.connection_id.clone(), ConnectorMsg::Process(delivery)) {
                    returned.push((receipt, Duration::from_secs(1)));
                }
            }
        }
    }
    for (connection, run) in runs {
        let receipts: Vec<_> = run.iter().map(|d| d.receipt.clone()).collect();
        if !hand_over(ctx, &connection, ConnectorMsg::ProcessInOrder(run)) {
            returned.extend(receipts.into_iter().map(|r| (r, Duration::from_secs(1))));
        }
    }
    if !returned.is_empty() {
        metrics::counter!(telemetry::QUEUE_RETURNED, "reason" => "saturated").increment(returned.len() as u64);
        if let Err(e) = ctx.queue.change_visibility(&returned).await {
            metrics::counter!(telemetry::QUEUE_ERRORS, "op" => "return", "error_kind" => e.kind()).increment(1);
            tracing::debug!(error = %e, "could not return messages early; they reappear after the visibility timeout");
        }
    }
    (n - returned.len(), returned.len())
}

/// Where a received message goes.
enum Routed {
    /// Dead-lettered (unreadable, unknown connection).
    Done,
    /// Back to the queue after a delay (the message is for this connection).
    Back(ReceiptHandle, Duration, ConnectionId),
    /// For its connector.
    Ready(Box<Delivery>),
}

/// Decides where a message goes: dead-lettered, back to the queue (with a delay), or to
/// its connector.
async fn route(ctx: &Arc<Ctx>, m: Received) -> Routed {
    let env = match Envelope::decode(&m.body) {
        Ok(env) => env,
        Err(e) => {
            reject(ctx, &m, e.kind(), &format!("unreadable message: {e}"), None).await;
            return Routed::Done;
        }
    };
    let Some(conn) = ctx.connectors.get(&env.connection_id) else {
        let reason = format!("unknown connection {:?}", env.connection_id.as_str());
        reject(ctx, &m, "unknown_connection", &reason, Some((env.item_id, env.connection_id.clone()))).await;
        return Routed::Done;
    };
    // Received as the daemon began to stop: straight back, for whoever runs next.
    if ctx.shutdown.is_cancelled() {
        return Routed::Back(m.receipt, Duration::ZERO, env.connection_id);
    }
    if !conn.can_take() {
        let delay = conn.return_delay(m.receive_count);
        return Routed::Back(m.receipt, delay, env.connection_id);
    }
    Routed::Ready(Box::new(Delivery::new(ctx.clone(), conn.clone(), m, env)))
}

/// Sends `msg` to the connector of `connection`; false when it is restarting (the
/// messages then come back shortly).
fn hand_over(ctx: &Ctx, connection: &ConnectionId, msg: ConnectorMsg) -> bool {
    let name = format!("connector.{connection}");
    match ctx.lookup::<ConnectorMsg>(&name) {
        Some(actor) if actor.send_message(msg).is_ok() => true,
        _ => {
            metrics::counter!(telemetry::QUEUE_RETURNED, "reason" => "connector_restarting").increment(1);
            false
        }
    }
}

async fn reject(ctx: &Ctx, m: &Received, kind: &'static str, reason: &str, item: Option<(ItemId, ConnectionId)>) {
    tracing::warn!(message_id = %m.message_id, %reason, "dead-lettering message");
    metrics::counter!(telemetry::QUEUE_DEAD_LETTERED, "reason" => kind).increment(1);
    if let Some((item_id, conn)) = item {
        item::record_dead_letter(ctx, item_id, conn, reason).await;
    }
    if let Err(e) = ctx.queue.dead_letter(m, reason).await {
        tracing::warn!(error = %e, "could not dead-letter; it will be seen again");
    }
}

/// Extends every message that has been in flight for a third of the visibility timeout.
async fn heartbeat(ctx: &Ctx) {
    let vt = Duration::from_secs(ctx.config.queue.visibility_timeout_secs.get().into());
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

async fn sample(ctx: &Ctx) {
    match ctx.queue.depth().await {
        Ok(d) => {
            for (state, v) in [
                ("visible", d.visible),
                ("in_flight", d.in_flight),
                ("delayed", d.delayed),
                ("dead_lettered", d.dead_lettered),
            ] {
                metrics::gauge!(telemetry::QUEUE_DEPTH, "state" => state).set(v as f64);
            }
            if let Some(age) = d.oldest_age_secs {
                metrics::gauge!(telemetry::QUEUE_OLDEST_AGE).set(age as f64);
            }
        }
        Err(e) => {
            metrics::counter!(telemetry::QUEUE_ERRORS, "op" => "depth", "error_kind" => e.kind()).increment(1);
            tracing::warn!(error = %e, "queue depth sample failed")
        }
    }
}

/// How old an unsent item (or an unreported job) is before the outbox sweep sends it: far
/// longer than a send may take (`queue.send_timeout_ms`).
const OUTBOX_AGE: Duration = Duration::from_secs(10);

/// Items recorded but never sent (the API crashed, or the queue failed or timed out
/// between the two) are sent now, 500 at a time until none is left (at most 10,000 per
/// sweep, so heartbeats are not held up). A duplicate message is harmless: the item is
/// done once.
async fn resend_unsent(ctx: &Ctx) {
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
        let (Ok(job_id), Ok(item_id), Some(op)) = (it.job_id.parse(), it.id.parse(), crate::domain::Op::parse(&it.op))
        else {
            continue;
        };
        ids.push(item_id);
        out.push(Envelope::by_ref(job_id, item_id, ConnectionId::new(it.connection_id), op, &it.source_id).outgoing());
    }
    tracing::info!(items = out.len(), "re-sending items the outbox never sent");
    let sent = match ctx.queue.send(out).await {
        Ok(()) => ids,
        Err(e) => {
            metrics::counter!(telemetry::QUEUE_ERRORS, "op" => "send", "error_kind" => e.kind()).increment(1);
            tracing::warn!(error = %e, "outbox re-send incomplete; the rest is tried again later");
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
