//! A restarting supervisor. ractor's default `handle_supervisor_evt` stops the parent when
//! a child dies; this one restarts the child after an exponential backoff instead, and
//! escalates (fails itself, so its own supervisor sees it) when a child restarts more than
//! `max_restarts` times within `window`.
//!
//! The same actor is used at every level of the tree: the root, the stage pool and the
//! connectors. A panic inside a child's `handle` reaches us as `ActorFailed`.

use crate::telemetry;
use futures::future::BoxFuture;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Starts (or restarts) one child, linked to the given supervisor.
pub type StartFn = Arc<dyn Fn(ActorCell) -> BoxFuture<'static, Result<ActorCell, SpawnErr>> + Send + Sync>;

/// Spawns one actor: (context, registered name, supervisor) → its cell.
pub type SpawnFn = fn(Arc<crate::actors::Ctx>, String, ActorCell) -> BoxFuture<'static, Result<ActorCell, SpawnErr>>;

#[derive(Clone)]
pub struct ChildSpec {
    /// For logs.
    pub name: String,
    /// Bounded metric label (`serializer`, `connector`, …).
    pub kind: &'static str,
    pub start: StartFn,
}

#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    pub max_restarts: usize,
    pub window: Duration,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 10,
            window: Duration::from_secs(60),
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
        }
    }
}

pub struct SupervisorArgs {
    pub children: Vec<ChildSpec>,
    pub policy: RestartPolicy,
    /// Once cancelled (shutdown), children that stop are not restarted.
    pub shutdown: CancellationToken,
}

pub struct SupervisorState {
    args: SupervisorArgs,
    running: HashMap<ActorId, usize>,
    history: Vec<VecDeque<Instant>>,
}

pub enum SupervisorMsg {
    Restart(usize),
}

pub struct Supervisor;

impl Supervisor {
    /// A `ChildSpec` that starts a supervisor of `children` under `name`.
    pub fn spec(
        name: String,
        children: Vec<ChildSpec>,
        policy: RestartPolicy,
        shutdown: CancellationToken,
    ) -> ChildSpec {
        let n = name.clone();
        ChildSpec {
            name,
            kind: "supervisor",
            start: Arc::new(move |parent| {
                let args = SupervisorArgs { children: children.clone(), policy, shutdown: shutdown.clone() };
                let n = n.clone();
                Box::pin(async move {
                    let (r, _) = Actor::spawn_linked(Some(n), Supervisor, args, parent).await?;
                    Ok(r.get_cell())
                })
            }),
        }
    }
}

impl SupervisorState {
    /// Records a restart of child `idx`; returns the backoff, or None when the restart
    /// intensity is exceeded.
    fn note_restart(&mut self, idx: usize) -> Option<Duration> {
        let p = self.args.policy;
        let now = Instant::now();
        let h = &mut self.history[idx];
        h.push_back(now);
        while h.front().is_some_and(|t| now.duration_since(*t) > p.window) {
            h.pop_front();
        }
        if h.len() > p.max_restarts {
            return None;
        }
        let exp = (h.len() as u32).saturating_sub(1).min(16);
        Some(p.base_backoff.saturating_mul(1 << exp).min(p.max_backoff))
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut running = HashMap::new();
        for (idx, spec) in args.children.iter().enumerate() {
            let cell = (spec.start)(myself.get_cell()).await.map_err(|e| format!("cannot start {}: {e}", spec.name))?;
            running.insert(cell.get_id(), idx);
        }
        let history = vec![VecDeque::new(); args.children.len()];
        Ok(SupervisorState { args, running, history })
    }

    async fn post_stop(&self, myself: ActorRef<Self::Msg>, _state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        // A failed supervisor's children go with it; its replacement starts fresh ones.
        for child in myself.get_children() {
            child.kill();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisorMsg::Restart(idx) = msg;
        if state.args.shutdown.is_cancelled() {
            return Ok(());
        }
        let spec = state.args.children[idx].clone();
        match (spec.start)(myself.get_cell()).await {
            Ok(cell) => {
                tracing::info!(child = %spec.name, "restarted child");
                state.running.insert(cell.get_id(), idx);
            }
            Err(e) => {
                let Some(backoff) = state.note_restart(idx) else {
                    return Err(format!("{} cannot be restarted: {e}", spec.name).into());
                };
                tracing::warn!(child = %spec.name, error = %e, "restart failed; trying again");
                myself.send_after(backoff, move || SupervisorMsg::Restart(idx));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => (cell, format!("failed: {err}")),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, format!("stopped: {}", reason.unwrap_or_else(|| "no reason".into())))
            }
            _ => return Ok(()),
        };
        let Some(idx) = state.running.remove(&cell.get_id()) else { return Ok(()) };
        if state.args.shutdown.is_cancelled() {
            return Ok(());
        }
        let spec = state.args.children[idx].clone();
        metrics::counter!(telemetry::ACTOR_RESTARTS, "actor" => spec.kind).increment(1);
        let Some(backoff) = state.note_restart(idx) else {
            tracing::error!(child = %spec.name, "{why}; restart intensity exceeded, escalating");
            return Err(format!("{} restarted too often ({why})", spec.name).into());
        };
        tracing::warn!(child = %spec.name, backoff_ms = backoff.as_millis() as u64, "{why}; restarting");
        myself.send_after(backoff, move || SupervisorMsg::Restart(idx));
        Ok(())
    }
}
