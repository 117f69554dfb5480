//! The actor tree:
//!
//! ```text
//! RootSupervisor
//! ├─ StatusActor          single writer of job/item state
//! ├─ StageSupervisor      serializer.N, renderer.N, matcher.N (N = cores)
//! ├─ ConnectorSupervisor  connector.<id>, one per ERP connection
//! └─ QueuePoller          receives only what connectors have room for
//! ```
//!
//! A work item's trip, a file for each step:
//!
//! ```text
//! poller/         receive (receive.rs), route to a connector (route.rs)
//! delivery.rs     the received message with its lease on the queue, until it is done
//! connector.rs    one task per item, or per ordered run
//! attempt/        begin.rs (claim, count the attempt), export.rs (the ERP work),
//!                 finish.rs (record the outcome, then delete or return the message)
//! connection/     per connection: gate.rs around each ERP call, claims.rs on documents,
//!                 pacer.rs for returned messages, turnstile.rs for ordered runs
//! status/         the StatusActor (mod.rs) and what is asked of it (client.rs)
//! visibility.rs   heartbeats and every return of a message to the queue
//! outbox.rs       the sweep that sends items recorded but never sent
//! ```
//!
//! Actors find each other by registered name (`<daemon prefix>.<name>`), so a restarted
//! actor is found again without anyone holding a stale reference. Everything that must
//! survive a restart — a connection's concurrency gate above all — lives in [`Ctx`] and
//! [`connection::Connection`], never in actor state.

pub mod attempt;
pub mod connection;
pub mod connector;
pub mod delivery;
#[cfg(any(test, feature = "testing"))]
pub mod faults;
pub mod outbox;
pub mod parking;
pub mod poller;
pub mod stages;
pub mod status;
pub mod supervisor;
pub mod visibility;

use crate::config::Config;
use crate::domain::ConnectionId;
use crate::queue::{Queue, ReceiptHandle};
use ractor::ActorRef;
use sea_orm::DatabaseConnection;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the actors of one daemon share.
pub struct Ctx {
    /// Prefix of registered actor names; unique per daemon so several can share a process.
    pub prefix: String,
    pub config: Arc<Config>,
    pub db: DatabaseConnection,
    /// Wakes the SQLite checkpointer after a commit that should not wait for its period.
    pub wal: crate::store::WalNudge,
    /// The connection new jobs are recorded on (SQLite).
    pub job_writer: crate::store::JobWriter,
    pub queue: Arc<dyn Queue>,
    /// `[secrets] key`, when configured: connection clients are rebuilt with it when an
    /// operator stores new credentials.
    pub secrets: Option<crate::secrets::SecretKey>,
    pub connectors: HashMap<ConnectionId, Arc<connection::Connection>>,
    /// Fired whenever an item finishes, i.e. a connector may have room again.
    pub capacity: Notify,
    /// Receipts of messages being worked on, with when they were received (heartbeats).
    pub in_flight: Mutex<HashMap<ReceiptHandle, Instant>>,
    /// Item tasks, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// The poller's receive loops (SQS), so shutdown can let a long poll in progress
    /// finish and hand its messages back rather than leave them invisible.
    pub receivers: TaskTracker,
    /// Messages the receive loops have asked for and not yet routed. Shared by every
    /// poller incarnation: after a restart, the old loops finishing their long polls
    /// still count, so the loops together never ask for more than the connectors' room.
    pub receive_reserved: Mutex<usize>,
    /// Cancelled at shutdown: stop receiving, stop restarting actors.
    pub shutdown: CancellationToken,
    /// Cancelled when in-flight work must be abandoned (drain timeout, kill).
    pub abandon: CancellationToken,
    #[cfg(any(test, feature = "testing"))]
    pub faults: faults::StageFaults,
    /// While set, nothing is received (benchmarks fill the queue first, then release it).
    pub paused: Arc<std::sync::atomic::AtomicBool>,
    /// Milliseconds (since `started`) of the last poller and status-writer progress, for
    /// the readiness probe and watchdog.
    pub started: Instant,
    pub poller_progress: AtomicU64,
    pub status_progress: AtomicU64,
}

impl Ctx {
    /// Whether a test asked `stage` to panic on document `source_id` (never outside tests).
    pub fn injected_panic(&self, stage: &str, source_id: &str) -> bool {
        #[cfg(any(test, feature = "testing"))]
        return self.faults.should_panic(stage, source_id);
        #[cfg(not(any(test, feature = "testing")))]
        {
            let _ = (stage, source_id);
            false
        }
    }

    pub fn name(&self, what: &str) -> String {
        format!("{}.{}", self.prefix, what)
    }

    /// The current actor registered under `what`, if it is running.
    pub fn lookup<M: Send + 'static>(&self, what: &str) -> Option<ActorRef<M>> {
        ractor::registry::where_is(self.name(what)).map(ActorRef::from)
    }

    pub fn mark_progress(&self, which: &AtomicU64) {
        which.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long ago `which` last made progress.
    pub fn since_progress(&self, which: &AtomicU64) -> std::time::Duration {
        let now = self.started.elapsed().as_millis() as u64;
        std::time::Duration::from_millis(now.saturating_sub(which.load(Ordering::Relaxed)))
    }
}
