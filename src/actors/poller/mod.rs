//! QueuePoller: receives only as much work as the connectors have room for, routes each
//! message to its connection's actor, and on its timers extends the visibility of
//! in-flight messages (see [`super::visibility`]), keeps the queue-depth gauges fresh and
//! runs the outbox sweep (see [`super::outbox`]).
//!
//! It never blocks for long inside `handle` (at most one poll interval), so heartbeats
//! are not delayed behind a long poll. Backends that receive by group (embedded) are
//! polled from `handle`, connection by connection. Backends that cannot (SQS) are
//! long-polled by receive loops running beside the actor (see `receive`) — several at
//! once while the connectors have room for more than one batch — and a message whose
//! connection is saturated goes back to the queue with a delay paced to when that
//! connection will have room (see `Connection::return_delay`).

mod receive;
mod route;

use super::Ctx;
use super::outbox::resend_unsent;
use super::visibility::heartbeat;
use crate::domain::ConnectionId;
use crate::queue::{GroupFilter, ReceiveRequest};
use crate::telemetry;
use crate::telemetry::events::{QueueCallFailed, QueueOp};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use receive::{idle_wait, receive_and_route, receive_loop};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::DropGuard;

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
        Err(e) => QueueCallFailed {
            op: QueueOp::Depth,
            error_kind: e.kind(),
            error: &e,
            consequence: "the depth gauges keep their last values",
        }
        .emit(),
    }
}
