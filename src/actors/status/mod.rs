//! StatusActor: the only writer of item state changes (new jobs are inserted by the API,
//! see `jobs::submit`).
//!
//! Updates are batched without a timer: the first update into an empty buffer sends
//! `Flush` to ourselves, which lands behind everything already in the mailbox, so under
//! load one transaction carries every update that arrived meanwhile, and when idle an
//! update is written at once. Replies go out only after the transaction commits, which
//! is what lets the item task delete its message.
//!
//! An attempt begins here too (`Start`): counted, marked `in_progress` and read back with
//! its document's ledger entry in the transaction of the updates beside it, so the write
//! that must be durable before the ERP sees the attempt and the reads it starts with cost
//! the item task one wait for one commit.
//!
//! On PostgreSQL two transactions may be in flight at once (the next batch gathers and is
//! written while the last commits); SQLite admits one writer, so there it is one. Every
//! caller waits for its answer before it sends the next request about the same item (and
//! a document's requests come from the task holding its claim), so no item is in two
//! transactions at once: their order is the order of the requests, and their rows never
//! lock each other.
//!
//! [`client`] is the other half: what item tasks and the poller ask of the actor.

pub mod client;

use super::Ctx;
use crate::store::{self, ItemStart, ItemUpdate, Started};
use crate::telemetry;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::Arc;
use std::time::Instant;

/// Largest batch per transaction; a longer mailbox is written in several.
const MAX_BATCH: usize = 1000;

const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// Why the StatusActor could not do what it was asked: the caller keeps its message (or
/// does not call the ERP), and the item is tried again.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StatusError {
    #[error("no status writer is running")]
    NoWriter,
    #[error("the status writer did not answer in time")]
    NoAnswer,
    #[error("cannot reach the status writer: {0}")]
    Unreachable(String),
    #[error("the status transaction failed ({kind}): {message}")]
    Write { kind: &'static str, message: String },
}

pub enum StatusMsg {
    /// Apply an update; the reply (if any) says whether it took effect once committed.
    Update(ItemUpdate, Option<RpcReplyPort<Result<bool, StatusError>>>),
    /// Begin an attempt (see [`store::ItemStart`]); the reply comes once it is committed,
    /// with what was found (None: the item is unknown).
    Start(ItemStart, RpcReplyPort<Result<Option<Started>, StatusError>>),
    /// What was sent of a job recorded `Enqueuing::AfterCommit` (see `store::job_sent`).
    JobSent {
        job: crate::domain::JobId,
        unsent: Vec<crate::domain::ItemId>,
    },
    Flush,
    /// A transaction has ended (its task's last act): another may start.
    Written,
    /// Flushes, then answers: everything sent before is durable.
    Sync(RpcReplyPort<()>),
}

pub struct StatusActor;

/// An update waiting for the next transaction, with whoever waits for it.
type Pending = (ItemUpdate, Option<RpcReplyPort<Result<bool, StatusError>>>);
/// An attempt waiting for the next transaction to begin it.
type PendingStart = (ItemStart, RpcReplyPort<Result<Option<Started>, StatusError>>);

pub struct StatusState {
    ctx: Arc<Ctx>,
    buffer: Vec<Pending>,
    starts: Vec<PendingStart>,
    /// Size of the last batch written: above one, we are under load.
    last_batch: usize,
    /// One permit per transaction that may be written at once: 2 on PostgreSQL, 1 on
    /// SQLite. A writing task holds one and gives it back before it sends `Written`.
    slots: Arc<tokio::sync::Semaphore>,
    max_in_flight: u32,
}

impl StatusState {
    /// Hands what is buffered to new transactions while a slot is free. Never waits: a
    /// transaction that ends sends `Written`, and whatever gathered meanwhile goes into the
    /// next (group commit).
    fn write_what_fits(&mut self, myself: &ActorRef<StatusMsg>) {
        while !self.is_empty() {
            let Ok(slot) = self.slots.clone().try_acquire_owned() else { return };
            let take = self.buffer.len().min(MAX_BATCH);
            let take_starts = self.starts.len().min(MAX_BATCH - take);
            self.last_batch = take + take_starts;
            let buffer = self.buffer.drain(..take).collect();
            let starts = self.starts.drain(..take_starts).collect();
            let done = Done { slot: Some(slot), myself: myself.clone(), finished: false };
            tokio::spawn(write(self.ctx.clone(), buffer, starts, done));
        }
    }

    /// Writes everything buffered and waits until every transaction has ended.
    async fn settle(&mut self, myself: &ActorRef<StatusMsg>) {
        loop {
            self.write_what_fits(myself);
            // Every slot free: nothing is being written.
            drop(self.slots.acquire_many(self.max_in_flight).await.expect("the slots are never closed"));
            if self.is_empty() {
                return;
            }
        }
    }

    fn flush_if_full(&mut self, myself: &ActorRef<StatusMsg>) {
        if self.buffer.len() + self.starts.len() >= MAX_BATCH {
            self.write_what_fits(myself);
        }
    }

    fn is_empty(&self) -> bool {
        self.buffer.is_empty() && self.starts.is_empty()
    }

    /// Schedules the flush that will write what is about to be buffered, if none is.
    fn schedule_flush(&self, myself: &ActorRef<StatusMsg>) -> Result<(), ActorProcessingErr> {
        if self.is_empty() {
            if self.last_batch > 1 {
                // Under load, linger a millisecond so the writers answered by the last
                // commit join this one (group commit); idle, write at once.
                myself.send_after(LINGER, || StatusMsg::Flush);
            } else {
                myself.send_message(StatusMsg::Flush)?;
            }
        }
        Ok(())
    }
}

impl Actor for StatusActor {
    type Msg = StatusMsg;
    type State = StatusState;
    type Arguments = Arc<Ctx>;

    async fn pre_start(&self, _myself: ActorRef<Self::Msg>, ctx: Arc<Ctx>) -> Result<Self::State, ActorProcessingErr> {
        ctx.mark_progress(&ctx.status_progress);
        let max_in_flight: u32 = if ctx.db.get_database_backend() == sea_orm::DbBackend::Postgres { 2 } else { 1 };
        Ok(StatusState {
            ctx,
            buffer: Vec::new(),
            starts: Vec::new(),
            last_batch: 0,
            slots: Arc::new(tokio::sync::Semaphore::new(max_in_flight as usize)),
            max_in_flight,
        })
    }

    async fn post_stop(&self, myself: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        state.settle(&myself).await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            StatusMsg::Update(update, reply) => {
                state.schedule_flush(&myself)?;
                state.buffer.push((update, reply));
                state.flush_if_full(&myself);
            }
            StatusMsg::Start(start, reply) => {
                state.schedule_flush(&myself)?;
                state.starts.push((start, reply));
                state.flush_if_full(&myself);
            }
            StatusMsg::JobSent { job, unsent } => {
                if let Err(e) = store::job_sent(&state.ctx.db, &job, &unsent).await {
                    // The job's outbox marker stays: the sweep sends its items again
                    // (duplicates are harmless).
                    tracing::warn!(error = %e, %job, "could not record what was sent of a job");
                }
            }
            StatusMsg::Flush => state.write_what_fits(&myself),
            StatusMsg::Written => {
                if state.last_batch > 1 && !state.is_empty() {
                    // Under load, the callers the commit just answered join the next one.
                    myself.send_after(LINGER, || StatusMsg::Flush);
                } else {
                    state.write_what_fits(&myself);
                }
            }
            StatusMsg::Sync(reply) => {
                state.settle(&myself).await;
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

/// A writing task's slot, given back when the task ends however it ends, and then the
/// `Written` that has the actor write what gathered meanwhile. A transaction that
/// panicked has dropped its callers' reply ports, so they see the write fail (and keep or
/// retry their messages).
struct Done {
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
    myself: ActorRef<StatusMsg>,
    finished: bool,
}

impl Drop for Done {
    fn drop(&mut self) {
        if !self.finished {
            tracing::error!("a status transaction ended without finishing (it panicked)");
        }
        // The slot first: the actor may act on `Written` at once.
        drop(self.slot.take());
        let _ = self.myself.send_message(StatusMsg::Written);
    }
}

/// Writes one batch in one transaction, answers its callers once it has committed, and
/// has the actor write what gathered meanwhile.
async fn write(ctx: Arc<Ctx>, buffer: Vec<Pending>, starts: Vec<PendingStart>, mut done: Done) {
    let size = buffer.len() + starts.len();
    let (updates, replies): (Vec<ItemUpdate>, Vec<_>) = buffer.into_iter().unzip();
    let (starts, start_replies): (Vec<ItemStart>, Vec<_>) = starts.into_iter().unzip();
    let started = Instant::now();
    let result =
        store::apply_batch_for(&ctx.db, &store::events::Tenants::from_config(&ctx.config), &updates, &starts).await;
    metrics::histogram!(telemetry::STATUS_WRITE_SECONDS).record(started.elapsed().as_secs_f64());
    metrics::histogram!(telemetry::STATUS_BATCH_SIZE).record(size as f64);
    match result {
        Ok((applied, found)) => {
            ctx.mark_progress(&ctx.status_progress);
            for (reply, ok) in replies.into_iter().zip(applied) {
                if let Some(r) = reply {
                    let _ = r.send(Ok(ok));
                }
            }
            for (reply, found) in start_replies.into_iter().zip(found) {
                let _ = reply.send(Ok(found));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, batch = size, "status write failed");
            let failed = StatusError::Write { kind: e.kind(), message: e.to_string() };
            for r in replies.into_iter().flatten() {
                let _ = r.send(Err(failed.clone()));
            }
            for r in start_replies {
                let _ = r.send(Err(failed.clone()));
            }
        }
    }
    done.finished = true;
}
