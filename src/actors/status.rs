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

use super::Ctx;
use crate::store::{self, ItemStart, ItemUpdate, Started};
use crate::telemetry;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::Arc;
use std::time::Instant;

/// Largest batch per transaction; a longer mailbox is written in several.
const MAX_BATCH: usize = 1000;

const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

pub enum StatusMsg {
    /// Apply an update; the reply (if any) says whether it took effect once committed.
    Update(ItemUpdate, Option<RpcReplyPort<Result<bool, String>>>),
    /// Begin an attempt (see [`store::ItemStart`]); the reply comes once it is committed,
    /// with what was found (None: the item is unknown).
    Start(ItemStart, RpcReplyPort<Result<Option<Started>, String>>),
    /// What was sent of a job recorded `Enqueuing::AfterCommit` (see `store::job_sent`).
    JobSent {
        job: crate::domain::JobId,
        unsent: Vec<crate::domain::ItemId>,
    },
    Flush,
    /// Flushes, then answers: everything sent before is durable.
    Sync(RpcReplyPort<()>),
}

pub struct StatusActor;

/// An update waiting for the next transaction, with whoever waits for it.
type Pending = (ItemUpdate, Option<RpcReplyPort<Result<bool, String>>>);
/// An attempt waiting for the next transaction to begin it.
type PendingStart = (ItemStart, RpcReplyPort<Result<Option<Started>, String>>);

pub struct StatusState {
    ctx: Arc<Ctx>,
    buffer: Vec<Pending>,
    starts: Vec<PendingStart>,
    /// Size of the last batch written: above one, we are under load.
    last_batch: usize,
}

impl StatusState {
    async fn flush(&mut self) {
        while !self.is_empty() {
            let take = self.buffer.len().min(MAX_BATCH);
            let take_starts = self.starts.len().min(MAX_BATCH - take);
            self.last_batch = take + take_starts;
            let (updates, replies): (Vec<ItemUpdate>, Vec<_>) = self.buffer.drain(..take).unzip();
            let (starts, start_replies): (Vec<ItemStart>, Vec<_>) = self.starts.drain(..take_starts).unzip();
            let started = Instant::now();
            let result = store::apply_batch(&self.ctx.db, &updates, &starts).await;
            metrics::histogram!(telemetry::STATUS_WRITE_SECONDS).record(started.elapsed().as_secs_f64());
            metrics::histogram!(telemetry::STATUS_BATCH_SIZE).record(self.last_batch as f64);
            match result {
                Ok((applied, found)) => {
                    self.ctx.mark_progress(&self.ctx.status_progress);
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
                    tracing::error!(error = %e, batch = self.last_batch, "status write failed");
                    let msg = e.to_string();
                    for r in replies.into_iter().flatten() {
                        let _ = r.send(Err(msg.clone()));
                    }
                    for r in start_replies {
                        let _ = r.send(Err(msg.clone()));
                    }
                }
            }
        }
    }

    async fn flush_if_full(&mut self) {
        if self.buffer.len() + self.starts.len() >= MAX_BATCH {
            self.flush().await;
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
        Ok(StatusState { ctx, buffer: Vec::new(), starts: Vec::new(), last_batch: 0 })
    }

    async fn post_stop(&self, _myself: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        state.flush().await;
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
                state.flush_if_full().await;
            }
            StatusMsg::Start(start, reply) => {
                state.schedule_flush(&myself)?;
                state.starts.push((start, reply));
                state.flush_if_full().await;
            }
            StatusMsg::JobSent { job, unsent } => {
                if let Err(e) = store::job_sent(&state.ctx.db, &job, &unsent).await {
                    // The job's outbox marker stays: the sweep sends its items again
                    // (duplicates are harmless).
                    tracing::warn!(error = %e, %job, "could not record what was sent of a job");
                }
            }
            StatusMsg::Flush => state.flush().await,
            StatusMsg::Sync(reply) => {
                state.flush().await;
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}
