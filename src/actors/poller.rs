//! QueuePoller: receives only as much work as the connectors have room for, routes each
//! message to its connection's actor, extends the visibility of in-flight messages, keeps
//! the queue-depth gauges fresh and re-sends items the outbox never sent.
//!
//! It never blocks for long inside `handle` (at most one poll interval), so heartbeats
//! are not delayed behind a long poll.

use super::Ctx;
use super::connector::{ConnectorMsg, Delivery};
use super::item;
use super::status::StatusMsg;
use crate::domain::{ConnectionId, ItemId};
use crate::queue::{Envelope, GroupFilter, Outgoing, ReceiveRequest, Received};
use crate::store;
use crate::telemetry;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    timers: Vec<tokio::task::JoinHandle<()>>,
}

impl Actor for QueuePoller {
    type Msg = PollerMsg;
    type State = PollerState;
    type Arguments = Arc<Ctx>;

    async fn pre_start(&self, myself: ActorRef<Self::Msg>, ctx: Arc<Ctx>) -> Result<Self::State, ActorProcessingErr> {
        let mut order: Vec<_> = ctx.connectors.keys().cloned().collect();
        order.sort();
        let vt = Duration::from_secs(ctx.config.queue.visibility_timeout_secs.get().into());
        let timers = vec![
            myself.send_interval(vt / 3, || PollerMsg::Heartbeat),
            myself.send_interval(Duration::from_secs(5), || PollerMsg::Sample),
            myself.send_interval(Duration::from_secs(10), || PollerMsg::Outbox),
        ];
        myself.send_message(PollerMsg::Poll)?;
        myself.send_message(PollerMsg::Sample)?;
        ctx.mark_progress(&ctx.poller_progress);
        let known = order.iter().map(|c| c.to_string()).collect();
        Ok(PollerState { ctx, order, known, next: 0, rounds: 0, timers })
    }

    async fn post_stop(&self, _: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        for t in &state.timers {
            t.abort();
        }
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
                let received = poll_once(state).await;
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
                max_messages: room.min(10),
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
    } else {
        let room: usize = ctx.connectors.values().map(|c| c.room()).sum();
        if room > 0 {
            let wait = Duration::from_secs(ctx.config.queue.wait_time_secs.into()).min(Duration::from_secs(1));
            let req = ReceiveRequest { max_messages: room.min(10), wait, visibility: vt, groups: GroupFilter::Any };
            total += receive_and_route(&ctx, req).await;
        }
    }
    total
}

async fn receive_and_route(ctx: &Arc<Ctx>, req: ReceiveRequest<'_>) -> usize {
    let batch = match ctx.queue.receive(req).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "receive failed; backing off");
            tokio::time::sleep(Duration::from_millis(500)).await;
            return 0;
        }
    };
    for dead in &batch.dead_lettered {
        metrics::counter!(telemetry::QUEUE_DEAD_LETTERED, "reason" => "max_receives").increment(1);
        tracing::warn!(message_id = %dead.message_id, reason = %dead.reason, "message dead-lettered by the queue");
        if let Ok(env) = Envelope::decode(&dead.body) {
            item::record_dead_letter(ctx, env.item_id, env.connection_id, dead.receive_count, &dead.reason).await;
        }
    }
    let n = batch.messages.len();
    metrics::counter!(telemetry::QUEUE_RECEIVED).increment(n as u64);
    for m in batch.messages {
        route(ctx, m).await;
    }
    n
}

async fn route(ctx: &Arc<Ctx>, m: Received) {
    let env = match Envelope::decode(&m.body) {
        Ok(env) => env,
        Err(e) => return reject(ctx, &m, e.kind(), &format!("unreadable message: {e}"), None).await,
    };
    let Some(conn) = ctx.connectors.get(&env.connection_id) else {
        let reason = format!("unknown connection {:?}", env.connection_id.as_str());
        return reject(ctx, &m, "unknown_connection", &reason, Some((env.item_id, env.connection_id.clone()))).await;
    };
    let name = format!("connector.{}", env.connection_id);
    let delivery = Delivery::new(ctx.clone(), conn.clone(), m.receipt.clone(), m.receive_count, env);
    match ctx.lookup::<ConnectorMsg>(&name) {
        Some(actor) if actor.send_message(ConnectorMsg::Process(delivery)).is_ok() => {}
        // The connector is restarting: the message comes back shortly.
        _ => {
            metrics::counter!(telemetry::QUEUE_RETURNED, "reason" => "connector_restarting").increment(1);
            let _ = ctx.queue.change_visibility(&[(m.receipt, Duration::from_secs(1))]).await;
        }
    }
}

async fn reject(ctx: &Ctx, m: &Received, kind: &'static str, reason: &str, item: Option<(ItemId, ConnectionId)>) {
    tracing::warn!(message_id = %m.message_id, %reason, "dead-lettering message");
    metrics::counter!(telemetry::QUEUE_DEAD_LETTERED, "reason" => kind).increment(1);
    if let Some((item_id, conn)) = item {
        item::record_dead_letter(ctx, item_id, conn, m.receive_count, reason).await;
    }
    if let Err(e) = ctx.queue.dead_letter(&m.receipt, reason).await {
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
        Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
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
            metrics::gauge!(telemetry::QUEUE_OLDEST_AGE).set(d.oldest_age_secs as f64);
        }
        Err(e) => tracing::warn!(error = %e, "queue depth sample failed"),
    }
}

/// Items recorded but never sent (the API crashed or the queue failed between the two)
/// are sent now. A duplicate message is harmless: the item is done once.
async fn resend_unsent(ctx: &Ctx) {
    let items = match store::unsent_items(&ctx.db, Duration::from_secs(10), 500).await {
        Ok(items) if !items.is_empty() => items,
        Ok(_) => return,
        Err(e) => return tracing::warn!(error = %e, "outbox scan failed"),
    };
    let mut ids = Vec::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        let (Ok(job_id), Ok(item_id), Some(op)) = (it.job_id.parse(), it.id.parse(), crate::domain::Op::parse(&it.op))
        else {
            continue;
        };
        let env = Envelope {
            v: crate::queue::envelope::ENVELOPE_VERSION,
            job_id,
            item_id,
            connection_id: ConnectionId::new(it.connection_id.clone()),
            op,
            payload: None,
            payload_ref: Some(it.id.clone()),
        };
        ids.push(item_id);
        out.push(Outgoing { body: env.encode(), group: Some(it.connection_id), delay: Duration::ZERO });
    }
    tracing::info!(items = out.len(), "re-sending items the outbox never sent");
    if ctx.queue.send(out).await.is_ok()
        && let Some(status) = ctx.lookup::<StatusMsg>("status")
    {
        let _ = status.send_message(StatusMsg::MarkEnqueued(ids));
    }
}
