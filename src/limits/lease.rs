//! Cluster-wide concurrency slots for one connection, shared by every daemon on the same
//! database: a counting semaphore of `limit` rows in `erp_leases`.
//!
//! A daemon takes a free or expired slot with one `UPDATE … RETURNING` (row-locked with
//! `SKIP LOCKED` on PostgreSQL; the statements are in `store::leases`), renews what it
//! holds every third of the TTL, and gives a slot back when its local work runs dry. A
//! slot that frees while another local call waits is handed over in memory, so a busy
//! daemon keeps its slots hot instead of paying two round trips per call. A daemon that
//! dies simply stops renewing: its slots expire and are taken by others, no clean-up
//! needed. Every grant bumps the slot's `token`; a renewal that no longer finds our token
//! means the slot lapsed and may now be someone else's, so the call that held it is
//! treated as ambiguous (see `actors::connection::gate`).
//!
//! On PostgreSQL, releases are announced with `pg_notify('erpsync_leases', connection)` so
//! waiting daemons retry at once instead of on their next poll.

use crate::store::leases;
use crate::telemetry;
use sea_orm::{DatabaseConnection, DbErr};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

pub use crate::store::leases::{Lease, NOTIFY_CHANNEL};

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("no concurrency slot of this connection came free within {0:?}")]
    Timeout(Duration),
    #[error("lease storage error: {0}")]
    Db(#[from] DbErr),
}

/// An unused slot is kept this long for the next local call before it is given back: a
/// busy daemon then pays no round trips per call. Between one call on a connection and
/// the next lie two status-writer commits (the outcome, and the next attempt's start),
/// each of which can take on the order of 100 ms on a loaded PostgreSQL: a grace much
/// shorter than that gives the slot back and takes it again for nearly every call, two
/// round trips and a `pg_notify` per item.
const IDLE_GRACE: Duration = Duration::from_millis(250);
/// A slot held this long (through back-to-back local calls) is given back once, so other
/// daemons get their turn.
const MAX_HOLD: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    /// Leases we hold and nobody here is using, with when they went idle.
    idle: Vec<(Lease, Instant)>,
    /// When each lease we hold was granted.
    granted: std::collections::HashMap<Lease, Instant>,
    /// Every lease we hold (idle or in use). Tokens count grants per slot, so a lease is
    /// named by slot and token together.
    held: HashSet<Lease>,
    /// Leases a renewal found gone: their calls must not be trusted.
    lost: HashSet<Lease>,
    waiters: usize,
}

pub struct LeasePool {
    db: DatabaseConnection,
    connection: String,
    label: String,
    limit: u32,
    holder: String,
    ttl: Duration,
    state: Mutex<State>,
    /// Local releases and remote notifications wake waiters.
    pub wake: Notify,
}

impl LeasePool {
    pub fn new(
        db: DatabaseConnection,
        connection: &str,
        label: String,
        limit: u32,
        holder: &str,
        ttl: Duration,
    ) -> Self {
        LeasePool {
            db,
            connection: connection.to_owned(),
            label,
            limit,
            holder: holder.to_owned(),
            ttl,
            state: Mutex::default(),
            wake: Notify::new(),
        }
    }

    /// Creates the connection's slot rows (idempotent).
    pub async fn ensure_slots(&self) -> Result<(), DbErr> {
        leases::ensure_slots(&self.db, &self.connection, self.limit).await
    }

    /// Waits up to `max_wait` for a slot.
    pub async fn acquire(self: &Arc<Self>, max_wait: Duration) -> Result<LeaseGuard, LeaseError> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let notified = self.wake.notified();
            if let Some((lease, _)) = self.state.lock().unwrap().idle.pop() {
                return Ok(self.guard(lease, started));
            }
            if let Some(lease) = leases::take(&self.db, &self.connection, &self.holder, self.limit, self.ttl).await? {
                let mut st = self.state.lock().unwrap();
                st.held.insert(lease);
                st.granted.insert(lease, Instant::now());
                drop(st);
                self.held_gauge();
                return Ok(self.guard(lease, started));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LeaseError::Timeout(max_wait));
            }
            self.state.lock().unwrap().waiters += 1;
            // Expired slots of dead daemons are only found by looking again.
            let poll = tokio::time::sleep(Duration::from_millis(100));
            tokio::select! {
                _ = notified => {}
                _ = poll => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
            self.state.lock().unwrap().waiters -= 1;
        }
    }

    fn guard(self: &Arc<Self>, lease: Lease, started: Instant) -> LeaseGuard {
        metrics::histogram!(telemetry::LEASE_WAIT_SECONDS, "connection" => self.label.clone())
            .record(started.elapsed().as_secs_f64());
        LeaseGuard { pool: self.clone(), lease }
    }

    fn held_gauge(&self) {
        let n = self.state.lock().unwrap().held.len();
        metrics::gauge!(telemetry::LEASES_HELD, "connection" => self.label.clone()).set(n as f64);
    }

    /// Whether `lease` lapsed while we held it.
    pub fn is_lost(&self, lease: Lease) -> bool {
        self.state.lock().unwrap().lost.contains(&lease)
    }

    fn release(self: &Arc<Self>, lease: Lease) {
        {
            let mut st = self.state.lock().unwrap();
            if st.lost.remove(&lease) {
                st.granted.remove(&lease);
                return;
            }
            let fresh = st.granted.get(&lease).is_some_and(|at| at.elapsed() < MAX_HOLD);
            if fresh {
                // Keep it warm for a waiting or an upcoming local call; unused, it goes
                // back after IDLE_GRACE.
                st.idle.push((lease, Instant::now()));
                let waiting = st.waiters > 0;
                drop(st);
                if waiting {
                    self.wake.notify_one();
                } else {
                    let pool = self.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(IDLE_GRACE).await;
                        pool.give_back_idle();
                    });
                }
                return;
            }
            st.held.remove(&lease);
            st.granted.remove(&lease);
        }
        self.spawn_give_back(lease);
    }

    /// Gives back the slots that stayed idle for IDLE_GRACE.
    fn give_back_idle(self: &Arc<Self>) {
        let stale: Vec<Lease> = {
            let mut st = self.state.lock().unwrap();
            let (stale, keep): (Vec<_>, Vec<_>) =
                st.idle.drain(..).partition(|(_, since)| since.elapsed() >= IDLE_GRACE);
            st.idle = keep;
            for (l, _) in &stale {
                st.held.remove(l);
                st.granted.remove(l);
            }
            stale.into_iter().map(|(l, _)| l).collect()
        };
        for lease in stale {
            self.spawn_give_back(lease);
        }
    }

    fn spawn_give_back(self: &Arc<Self>, lease: Lease) {
        self.held_gauge();
        let pool = self.clone();
        tokio::spawn(async move {
            if let Err(e) = pool.give_back(lease).await {
                tracing::warn!(error = %e, connection = %pool.connection, "lease release failed; it expires on its own");
            }
        });
    }

    async fn give_back(&self, lease: Lease) -> Result<(), DbErr> {
        leases::release(&self.db, &self.connection, &self.holder, lease).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Extends every slot we hold; slots no longer ours are marked lost.
    pub async fn renew(&self) -> Result<(), DbErr> {
        // Only what we hold: a slot whose release failed (database away) must expire, not
        // be kept alive by us forever.
        let held: Vec<Lease> = self.state.lock().unwrap().held.iter().copied().collect();
        if held.is_empty() {
            return Ok(());
        }
        let ours = leases::renew(&self.db, &self.connection, &self.holder, self.ttl, &held).await?;
        let mut st = self.state.lock().unwrap();
        // Among the leases we asked about and still hold (not released meanwhile).
        let gone: Vec<Lease> = held.iter().filter(|l| !ours.contains(l) && st.held.contains(l)).copied().collect();
        for l in gone {
            tracing::error!(connection = %self.connection, slot = l.slot, token = l.token, "a concurrency slot lapsed while held");
            st.held.remove(&l);
            st.idle.retain(|(i, _)| *i != l);
            st.granted.remove(&l);
            st.lost.insert(l);
        }
        Ok(())
    }

    pub fn connection(&self) -> &str {
        &self.connection
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// A held slot; dropping it hands the slot to a local waiter or gives it back.
pub struct LeaseGuard {
    pool: Arc<LeasePool>,
    pub lease: Lease,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.pool.release(self.lease);
    }
}
