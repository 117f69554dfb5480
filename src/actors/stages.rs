//! Pipeline-stage actors: thin shells around `pipeline::*`. Each stage runs as a pool of
//! workers (one per core); rendering and matching run on tokio's blocking pool so their
//! CPU-heavy work never stalls the async runtime, serializing in the actor itself (see
//! [`Runs`]). A panic in the work re-panics in the actor,
//! which fails it: the caller's attempt fails (and is retried) and the StageSupervisor
//! restarts the worker.

use super::Ctx;
use super::supervisor::{ChildSpec, SpawnFn};
use crate::domain::{ErpKind, Invoice, Payment};
use crate::erp::registry;
use crate::pipeline::Document;
use crate::pipeline::matching::{self, MatchError, MatchOutcome, OpenBill};
use crate::pipeline::render::{RenderError, pdf};
use crate::pipeline::serialize::{Payload, SerializeError};
use crate::telemetry;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const SERIALIZER: &str = "serializer";
pub const RENDERER: &str = "renderer";
pub const MATCHER: &str = "matcher";

pub enum SerializerMsg {
    Serialize(ErpKind, Box<Document>, RpcReplyPort<Result<Payload, SerializeError>>),
}
pub enum RendererMsg {
    InvoicePdf(Box<Invoice>, RpcReplyPort<Result<Vec<u8>, RenderError>>),
}
pub enum MatcherMsg {
    Match(Box<Payment>, Vec<OpenBill>, RpcReplyPort<Result<MatchOutcome, MatchError>>),
}

/// Where a stage's work runs.
#[derive(Clone, Copy)]
enum Runs {
    /// On tokio's blocking pool: a PDF takes milliseconds of CPU.
    Blocking,
    /// In the actor's task: serializing a document takes tens of microseconds, less than
    /// the two thread hand-offs a trip through the blocking pool costs.
    Inline,
}

/// Runs `work` where `runs` says, timing it; a panic in it is re-raised here.
async fn run_stage<T: Send + 'static>(
    ctx: &Ctx,
    stage: &'static str,
    source_id: &str,
    runs: Runs,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let inject = ctx.injected_panic(stage, source_id);
    let source = source_id.to_owned();
    let started = Instant::now();
    let job = move || {
        if inject {
            panic!("injected panic in {stage} for {source}");
        }
        work()
    };
    let result = match runs {
        Runs::Blocking => tokio::task::spawn_blocking(job).await,
        // A panic unwinds through the actor just as a re-raised one does.
        Runs::Inline => Ok(job()),
    };
    metrics::histogram!(telemetry::STAGE_SECONDS, "stage" => stage).record(started.elapsed().as_secs_f64());
    match result {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("{stage} work was cancelled: {e}"),
    }
}

macro_rules! stage_actor {
    ($actor:ident, $msg:ty, |$ctx:ident, $m:ident| $body:expr) => {
        pub struct $actor;
        impl Actor for $actor {
            type Msg = $msg;
            type State = Arc<Ctx>;
            type Arguments = Arc<Ctx>;
            async fn pre_start(&self, _: ActorRef<Self::Msg>, ctx: Arc<Ctx>) -> Result<Arc<Ctx>, ActorProcessingErr> {
                Ok(ctx)
            }
            async fn handle(
                &self,
                _: ActorRef<Self::Msg>,
                $m: Self::Msg,
                $ctx: &mut Arc<Ctx>,
            ) -> Result<(), ActorProcessingErr> {
                $body;
                Ok(())
            }
        }
    };
}

stage_actor!(SerializerActor, SerializerMsg, |ctx, m| {
    let SerializerMsg::Serialize(erp, doc, reply) = m;
    let source = doc.source_id().to_owned();
    let out = run_stage(ctx, SERIALIZER, &source, Runs::Inline, move || registry::serialize(erp, &doc)).await;
    let _ = reply.send(out);
});

stage_actor!(RendererActor, RendererMsg, |ctx, m| {
    let RendererMsg::InvoicePdf(inv, reply) = m;
    let source = inv.source_id.clone();
    let out = run_stage(ctx, RENDERER, &source, Runs::Blocking, move || pdf::invoice_pdf(&inv)).await;
    let _ = reply.send(out);
});

stage_actor!(PaymentMatcherActor, MatcherMsg, |ctx, m| {
    let MatcherMsg::Match(payment, open, reply) = m;
    let source = payment.source_id.clone();
    let out = run_stage(ctx, MATCHER, &source, Runs::Blocking, move || matching::match_payment(&payment, &open)).await;
    let _ = reply.send(out);
});

/// Worker count per stage: the cores this process may use, read once (on Linux the answer
/// comes from cgroup files, three file opens a call: too dear to ask per item).
pub fn workers() -> usize {
    static WORKERS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *WORKERS.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2))
}

/// The children of the StageSupervisor.
pub fn specs(ctx: &Arc<Ctx>) -> Vec<ChildSpec> {
    let mut specs = Vec::new();
    for i in 0..workers() {
        specs.push(spec(ctx, SERIALIZER, i, |c, n, p| {
            Box::pin(async move { Ok(Actor::spawn_linked(Some(n), SerializerActor, c, p).await?.0.get_cell()) })
        }));
        specs.push(spec(ctx, RENDERER, i, |c, n, p| {
            Box::pin(async move { Ok(Actor::spawn_linked(Some(n), RendererActor, c, p).await?.0.get_cell()) })
        }));
        specs.push(spec(ctx, MATCHER, i, |c, n, p| {
            Box::pin(async move { Ok(Actor::spawn_linked(Some(n), PaymentMatcherActor, c, p).await?.0.get_cell()) })
        }));
    }
    specs
}

fn spec(ctx: &Arc<Ctx>, stage: &'static str, i: usize, spawn: SpawnFn) -> ChildSpec {
    let ctx = ctx.clone();
    let name = ctx.name(&format!("{stage}.{i}"));
    let n = name.clone();
    ChildSpec { name, kind: stage, start: Arc::new(move |parent| spawn(ctx.clone(), n.clone(), parent)) }
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("{0} stage is restarting")]
    Unavailable(&'static str),
    #[error("{0} stage failed while working on this document")]
    Crashed(&'static str),
    #[error("{0} stage did not answer in time")]
    Timeout(&'static str),
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Calls a worker of `stage` (round robin).
pub async fn call<M: Send + 'static, T: Send + 'static>(
    ctx: &Ctx,
    stage: &'static str,
    build: impl FnOnce(RpcReplyPort<T>) -> M,
) -> Result<T, StageError> {
    let i = NEXT.fetch_add(1, Ordering::Relaxed) % workers();
    let actor: ActorRef<M> = ctx.lookup(&format!("{stage}.{i}")).ok_or(StageError::Unavailable(stage))?;
    match actor.call(build, Some(Duration::from_secs(60))).await {
        Ok(ractor::rpc::CallResult::Success(v)) => Ok(v),
        Ok(ractor::rpc::CallResult::Timeout) => Err(StageError::Timeout(stage)),
        Ok(ractor::rpc::CallResult::SenderError) => Err(StageError::Crashed(stage)),
        Err(_) => Err(StageError::Unavailable(stage)),
    }
}
