//! SQLite's tuning: the pragmas and per-connection settings every pooled connection is
//! opened with, its busy handler, the WAL checkpointer, and the connection new jobs are
//! written on. None of it applies to PostgreSQL.

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use std::sync::Arc;
use std::time::Duration;

/// The options every SQLite connection is opened with.
pub(super) fn tuned(o: SqliteConnectOptions) -> SqliteConnectOptions {
    use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
    // WAL lets readers run beside the single writer; NORMAL sync is durable across
    // process crashes (the failure we design for) at a fraction of FULL's cost.
    // The checkpointer task copies the WAL into the database in the background;
    // the automatic checkpoint, which would stall whichever commit crosses it, is
    // left only as a backstop should that task fall behind.
    o.journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .pragma("wal_autocheckpoint", CHECKPOINT_BACKSTOP_PAGES.to_string())
        // Pages read through a memory map rather than a pread() each.
        .pragma("mmap_size", (256u64 << 20).to_string())
        // Statement journals (each multi-row statement inside a transaction keeps
        // one, to undo just that statement) in memory, not in a temporary file:
        // a status batch then pays no pwrite() calls for them.
        .pragma("temp_store", "MEMORY")
        // Rows cross from the connection's worker thread to the caller through a
        // bounded channel (50 by default): a status batch's statements return a
        // few hundred rows, and past 50 the worker blocks on every row until the
        // caller takes one, waking it again (a futex round trip per row).
        .row_buffer_size(ROW_BUFFER)
}

/// Run on every new pooled SQLite connection.
pub(super) async fn after_connect(conn: &mut SqliteConnection) -> Result<(), sea_orm::sqlx::Error> {
    stable_plans(conn).await?;
    short_busy_waits(conn).await
}

/// Rows a SQLite statement may run ahead of its caller: more than the largest result a
/// status batch reads back (256 rows per statement).
const ROW_BUFFER: usize = 1024;

/// Turns on SQLite's query planner stability guarantee (`SQLITE_DBCONFIG_ENABLE_QPSG`).
///
/// Without it, a statement whose plan could depend on a bound value — sea-orm binds the
/// `LIMIT` of every `.one()` as a parameter — is marked expired whenever that parameter is
/// bound again, even to the same value, and SQLite parses and plans it anew on its next
/// step. Every item read and ledger lookup would be re-prepared that way, a large share of
/// the daemon's CPU while draining. Our plans never depend on the values (no ANALYZE statistics are
/// kept), so the guarantee costs nothing.
async fn stable_plans(conn: &mut SqliteConnection) -> Result<(), sea_orm::sqlx::Error> {
    if plan_stability(conn, 1).await? {
        Ok(())
    } else {
        Err(sea_orm::sqlx::Error::Configuration("SQLite refused ENABLE_QPSG".into()))
    }
}

/// How long a statement waits for a lock another connection holds before it fails with
/// SQLITE_BUSY (the `busy_timeout` the connection is opened with, kept by [`busy_wait`]).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Replaces SQLite's own busy handler on `conn` with [`busy_wait`].
///
/// The handler `busy_timeout` installs sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 and
/// then 100 ms between retries. The locks our connections meet are held for microseconds
/// (the checkpointer takes the WAL's locks briefly while it copies pages), so one
/// collision would cost a `POST /v1/jobs` a millisecond or more, and several in a row
/// would dominate the embedded enqueue's tail latency. `busy_wait` retries every 20 µs for the first 2 ms,
/// then every millisecond, up to the same 10 s.
async fn short_busy_waits(conn: &mut SqliteConnection) -> Result<(), sea_orm::sqlx::Error> {
    use libsqlite3_sys::{SQLITE_OK, sqlite3_busy_handler};
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle();
    // SAFETY: the handle is locked out of sqlx's worker thread for this call; `busy_wait`
    // matches the callback's signature and uses no user data.
    let rc = unsafe { sqlite3_busy_handler(db.as_ptr(), Some(busy_wait), std::ptr::null_mut()) };
    if rc != SQLITE_OK {
        return Err(sea_orm::sqlx::Error::Configuration(format!("sqlite3_busy_handler returned {rc}").into()));
    }
    Ok(())
}

/// Retries of a statement that found a lock taken, before the wait goes from 20 µs to 1 ms.
const BUSY_SHORT_RETRIES: u32 = 100;
const BUSY_SHORT_WAIT: Duration = Duration::from_micros(20);
const BUSY_LONG_WAIT: Duration = Duration::from_millis(1);

/// The wait before retry `count` (0 for the first), or None once [`BUSY_TIMEOUT`] has been
/// waited in all.
fn busy_wait_before(count: u32) -> Option<Duration> {
    let short = BUSY_SHORT_RETRIES.min(count);
    let waited = BUSY_SHORT_WAIT * short + BUSY_LONG_WAIT * (count - short);
    (waited < BUSY_TIMEOUT).then_some(if count < BUSY_SHORT_RETRIES { BUSY_SHORT_WAIT } else { BUSY_LONG_WAIT })
}

/// SQLite's busy callback (see [`short_busy_waits`]): runs on the connection's worker
/// thread; non-zero asks SQLite to try again.
extern "C" fn busy_wait(_: *mut std::os::raw::c_void, count: std::os::raw::c_int) -> std::os::raw::c_int {
    match busy_wait_before(count.max(0) as u32) {
        Some(wait) => {
            metrics::counter!(crate::telemetry::SQLITE_BUSY_WAITS).increment(1);
            std::thread::sleep(wait);
            1
        }
        None => 0,
    }
}

/// Sets SQLite's query planner stability guarantee on `conn` (`set` 1) or only reads it
/// (`set` -1); returns whether it is on.
async fn plan_stability(conn: &mut SqliteConnection, set: i32) -> Result<bool, sea_orm::sqlx::Error> {
    use libsqlite3_sys::{SQLITE_DBCONFIG_ENABLE_QPSG, SQLITE_OK, sqlite3_db_config};
    use std::os::raw::c_int;
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle();
    let mut on: c_int = 0;
    // SAFETY: the handle is locked out of sqlx's worker thread for this call, and the
    // arguments match SQLITE_DBCONFIG_ENABLE_QPSG's documented signature (int, int*).
    let rc =
        unsafe { sqlite3_db_config(db.as_ptr(), SQLITE_DBCONFIG_ENABLE_QPSG, set as c_int, &mut on as *mut c_int) };
    if rc != SQLITE_OK {
        return Err(sea_orm::sqlx::Error::Configuration(
            format!("sqlite3_db_config(ENABLE_QPSG) returned {rc}").into(),
        ));
    }
    Ok(on != 0)
}

/// WAL pages after which a committing SQLite writer checkpoints by itself: a backstop
/// only, should the checkpointer task stop (256 MiB).
const CHECKPOINT_BACKSTOP_PAGES: u32 = 65_536;

/// How often the SQLite checkpointer runs when nothing nudges it.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// WAL pages beyond which the checkpointer also restarts the WAL (64 MiB).
const CHECKPOINT_RESTART_PAGES: i64 = 16_384;

/// Tells the SQLite checkpointer that a transaction has just committed, so it copies the
/// WAL into the database now, in the gap before the next writer. Cheap to call and
/// coalescing: nudges while a checkpoint runs make one more checkpoint, not many. On
/// PostgreSQL nothing listens and a nudge does nothing.
#[derive(Clone, Default)]
pub struct WalNudge(Arc<tokio::sync::Notify>);

impl WalNudge {
    pub fn committed(&self) {
        self.0.notify_one();
    }
}

/// On SQLite, a task that checkpoints the WAL, so that no request pays for a checkpoint
/// (with SQLite's default automatic checkpoint every 1,000 pages, one `POST /v1/jobs` in a
/// few would copy megabytes and sync the file before answering). It runs when nudged right
/// after a commit ([`WalNudge`]), and every 250 ms for the writers that do not nudge.
///
/// The checkpoint is PASSIVE: it neither waits for nor blocks readers and writers. SQLite
/// starts the WAL afresh only when a writer finds it entirely copied. A checkpoint right
/// after a job's commit copies that one transaction (a few dozen pages) and is usually
/// done before the next job commits, so the next writer starts the WAL over and it stays
/// a few hundred kilobytes; a periodic checkpoint alone would copy thousands of pages at
/// once under load, slowing the requests beside it, and never catch up. Where it still
/// cannot catch up (sustained writes from writers that do not nudge), once the WAL is over
/// 64 MiB a RESTART checkpoint follows the PASSIVE one: writers wait while it copies what
/// the PASSIVE one left (little) and syncs, after which the next writer starts the WAL
/// from the beginning. `None` on PostgreSQL.
pub fn spawn_checkpointer(db: &DatabaseConnection, nudge: WalNudge) -> Option<tokio::task::JoinHandle<()>> {
    spawn_checkpointer_with(db, nudge, CHECKPOINT_EVERY, CHECKPOINT_RESTART_PAGES)
}

/// [`spawn_checkpointer`] with its period and RESTART threshold (WAL pages) chosen.
pub fn spawn_checkpointer_with(
    db: &DatabaseConnection,
    nudge: WalNudge,
    every: Duration,
    restart_pages: i64,
) -> Option<tokio::task::JoinHandle<()>> {
    if db.get_database_backend() != sea_orm::DbBackend::Sqlite {
        return None;
    }
    let db = db.clone();
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let checkpoint = async |mode: &str| -> Result<i64, DbErr> {
            let sql = format!("PRAGMA wal_checkpoint({mode})");
            let row = db.query_one_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Sqlite, sql)).await?;
            // (busy, frames in the WAL, frames copied)
            Ok(row.map(|r| r.try_get_by_index::<i64>(1)).transpose()?.unwrap_or(0))
        };
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                // A nudged checkpoint counts as the period's.
                _ = nudge.0.notified() => {
                    tick.reset();
                    // Let the committing request's answer go first: on a machine with
                    // few cores, a checkpoint started at once shares the CPU with it.
                    // A yield, not a timed wait: a wait of the timer's tick (1–2 ms)
                    // puts the checkpoint right beside the next job's insert.
                    tokio::task::yield_now().await;
                }
            }
            let result = match checkpoint("PASSIVE").await {
                Ok(frames) if frames > restart_pages => checkpoint("RESTART").await,
                other => other,
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "WAL checkpoint failed; the next one will retry");
            }
        }
    }))
}

/// On SQLite, the connection new jobs are recorded on, kept between jobs (taken from the
/// pool once and detached from it, so the pool keeps its full size). SQLite empties a
/// connection's page cache whenever another connection has committed since it last read,
/// and the pool hands its idle connections out in turn: each job would be written on
/// another connection than the one before, which first re-reads the b-tree pages its
/// insert touches. SQLite admits one writer at a time
/// anyway, so jobs waiting their turn here lose nothing.
#[derive(Default)]
pub struct JobWriter(pub(super) tokio::sync::Mutex<Option<SqliteConnection>>);

#[cfg(test)]
mod tests {
    #[test]
    fn busy_waits_are_short_at_first_and_end_at_the_timeout() {
        use super::{BUSY_TIMEOUT, busy_wait_before};
        use std::time::Duration;
        assert_eq!(busy_wait_before(0), Some(Duration::from_micros(20)));
        let first_ms: Duration = (0..100).map(|n| busy_wait_before(n).unwrap()).sum();
        assert_eq!(first_ms, Duration::from_millis(2), "a hundred retries within the first 2 ms");
        let total: Duration = (0..).map_while(busy_wait_before).sum();
        assert!(total >= BUSY_TIMEOUT && total < BUSY_TIMEOUT + Duration::from_millis(2), "{total:?}");
    }

    #[tokio::test]
    async fn every_pooled_sqlite_connection_keeps_its_query_plans() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("plans.db").display());
        let db = super::super::connect(&url, 3).await.unwrap();
        let pool = db.get_sqlite_connection_pool();
        // Three at once, so the pool has to open three connections.
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(pool.acquire().await.unwrap());
        }
        for conn in &mut held {
            assert!(super::plan_stability(conn, -1).await.unwrap(), "a connection without ENABLE_QPSG");
        }
    }
}
