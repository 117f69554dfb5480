//! Storage over sea-orm: SQLite (embedded default, one file) or PostgreSQL, chosen by URL.
//! The StatusActor is the only writer of item state changes; the API inserts new jobs (whose
//! rows nothing else can refer to yet); everything else here reads.

pub mod entities;
pub mod migration;

use crate::domain::{ConnectionId, ItemId, ItemState, JobId, JobState, Op};
use crate::util::now_ms;
use entities::{bill_application, erp_ref, item_event, job, job_item};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {url}: {source}")]
    Connect { url: String, source: DbErr },
    #[error("migration failed: {0}")]
    Migrate(DbErr),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Connect { .. } => "connect",
            StoreError::Migrate(_) => "migrate",
            StoreError::Db(_) => "db",
            StoreError::Corrupt(_) => "corrupt",
        }
    }
}

/// Hides the password of a database URL for messages and logs.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Opens the database (creating the SQLite file's directory if needed).
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or("");
        if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Connect {
                url: url.to_owned(),
                source: DbErr::Custom(format!("cannot create {}: {e}", dir.display())),
            })?;
        }
    }
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(max_connections)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
            // WAL lets readers run beside the single writer; NORMAL sync is durable across
            // process crashes (the failure we design for) at a fraction of FULL's cost.
            // The checkpointer task copies the WAL into the database in the background;
            // the automatic checkpoint, which would stall whichever commit crosses it, is
            // left only as a backstop (32 MiB) should that task fall behind.
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(BUSY_TIMEOUT)
                .pragma("wal_autocheckpoint", CHECKPOINT_BACKSTOP_PAGES.to_string())
                // Pages read through a memory map rather than a pread() each.
                .pragma("mmap_size", (256u64 << 20).to_string())
                // Statement journals (each multi-row statement inside a transaction keeps
                // one, to undo just that statement) in memory, not in a temporary file:
                // their pwrite() calls were a sixth of a status batch's time.
                .pragma("temp_store", "MEMORY")
                // Rows cross from the connection's worker thread to the caller through a
                // bounded channel (50 by default): a status batch's statements return a
                // few hundred rows, and past 50 the worker blocked on every row until the
                // caller took one, waking it again (a futex round trip per row).
                .row_buffer_size(ROW_BUFFER)
        })
        .map_sqlx_sqlite_pool_opts(|o| {
            o.after_connect(|conn, _meta| {
                Box::pin(async move {
                    stable_plans(conn).await?;
                    short_busy_waits(conn).await
                })
            })
        })
        .map_sqlx_postgres_pool_opts(|o| {
            o.after_connect(|_conn, _meta| {
                Box::pin(async {
                    crate::util::set_tcp_nodelay_on_all_sockets();
                    Ok(())
                })
            })
        });
    Database::connect(opts).await.map_err(|source| StoreError::Connect { url: redact_url(url), source })
}

/// Rows a SQLite statement may run ahead of its caller: more than the largest result a
/// status batch reads back (256 rows per statement).
const ROW_BUFFER: usize = 1024;

/// Turns on SQLite's query planner stability guarantee (`SQLITE_DBCONFIG_ENABLE_QPSG`).
///
/// Without it, a statement whose plan could depend on a bound value — sea-orm binds the
/// `LIMIT` of every `.one()` as a parameter — is marked expired whenever that parameter is
/// bound again, even to the same value, and SQLite parses and plans it anew on its next
/// step. Every item read and ledger lookup was re-prepared that way: 8 % of the daemon's
/// CPU while draining. Our plans never depend on the values (no ANALYZE statistics are
/// kept), so the guarantee costs nothing.
async fn stable_plans(conn: &mut sea_orm::sqlx::SqliteConnection) -> Result<(), sea_orm::sqlx::Error> {
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
/// collision cost a `POST /v1/jobs` a millisecond or more — and several in a row made up
/// most of the embedded enqueue's p99. `busy_wait` retries every 20 µs for the first 2 ms,
/// then every millisecond, up to the same 10 s.
async fn short_busy_waits(conn: &mut sea_orm::sqlx::SqliteConnection) -> Result<(), sea_orm::sqlx::Error> {
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
async fn plan_stability(conn: &mut sea_orm::sqlx::SqliteConnection, set: i32) -> Result<bool, sea_orm::sqlx::Error> {
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
/// (with the default automatic checkpoint every 1,000 pages, one `POST /v1/jobs` in a few
/// copied megabytes and synced the file before answering). It runs when nudged right
/// after a commit ([`WalNudge`]), and every 250 ms for the writers that do not nudge.
///
/// The checkpoint is PASSIVE: it neither waits for nor blocks readers and writers. SQLite
/// starts the WAL afresh only when a writer finds it entirely copied. A checkpoint right
/// after a job's commit copies that one transaction (≈ 70 pages for 200 invoices) and is
/// usually done before the next job commits, so the next writer starts the WAL over and
/// it stays a few hundred kilobytes; the periodic checkpoint, by contrast, copied
/// thousands of pages at once under load, slowing the requests beside it, and never caught
/// up. Where it still cannot catch up (sustained writes from writers that do not nudge),
/// once the WAL is over 64 MiB a RESTART checkpoint follows the PASSIVE one: writers wait
/// while it copies what the PASSIVE one left (little) and syncs, after which the next
/// writer starts the WAL from the beginning. `None` on PostgreSQL.
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
                    // Let the committing request's answer go first: on two cores, a
                    // checkpoint started at once shared the CPU with it (paced at 20
                    // jobs/s, p99 5.5–7.5 ms against 5.7–6.0 after a yield). It used to
                    // wait 1 ms (the timer's tick, so 1–2 ms), which back to back put
                    // the checkpoint right beside the next job's insert: p99 5.2–5.8 ms
                    // against 4.1–5.3 after a yield.
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

pub async fn migrate(db: &DatabaseConnection) -> Result<(), StoreError> {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return migration::Migrator::up(db, None).await.map_err(StoreError::Migrate);
    }
    // Several daemons start at once against one PostgreSQL: one migrates, the others wait
    // on the advisory lock and then find nothing left to do.
    let txn = db.begin().await.map_err(StoreError::Migrate)?;
    txn.execute_unprepared("SELECT pg_advisory_xact_lock(7215560012)").await.map_err(StoreError::Migrate)?;
    migration::Migrator::up(&txn, None).await.map_err(StoreError::Migrate)?;
    txn.commit().await.map_err(StoreError::Migrate)
}

/// A job to record, with its items.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: JobId,
    pub connection_id: ConnectionId,
    pub op: Op,
    pub items: Vec<NewItem>,
}

#[derive(Debug, Clone)]
pub struct NewItem {
    pub id: ItemId,
    pub source_id: String,
    /// The document as JSON text (serialized once, stored and sent as is).
    pub payload: String,
}

/// A change of one item's state, applied by the StatusActor.
#[derive(Debug, Clone)]
pub struct ItemUpdate {
    pub item_id: ItemId,
    pub state: ItemState,
    /// The attempt this update belongs to (counted in `job_items.attempts`); None leaves
    /// the count as it is (dead-lettering an item nobody attempted).
    pub attempt: Option<u32>,
    pub erp_id: Option<String>,
    pub error: Option<ItemError>,
    /// Ledger entries to record with this update: (doc kind, source id, ERP id).
    pub ledger: Vec<(String, String, String)>,
    /// What a payment this update records applied to bills in the ERP.
    pub applications: Vec<BillApplication>,
    pub connection_id: ConnectionId,
    /// A line for the item's timeline.
    pub detail: Option<String>,
}

/// An amount a payment applied to a bill, as the ERP was sent it. Like ledger entries a
/// fact about the ERP, recorded even when the item was already terminal, once per
/// (connection, payment, bill).
#[derive(Debug, Clone, PartialEq)]
pub struct BillApplication {
    pub payment_source_id: String,
    pub bill_erp_id: String,
    pub amount: rust_decimal::Decimal,
}

impl ItemUpdate {
    /// A retry because the ERP throttled the attempt (429, nothing done): the status
    /// writer counts it in `job_items.throttles`, and it does not count against
    /// `retry.max_attempts`. Such an item is still bounded by `queue.max_receives`.
    pub fn is_throttle(&self) -> bool {
        self.state == ItemState::Retrying && self.error.as_ref().is_some_and(|e| e.kind == ItemError::THROTTLED)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemError {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub message: String,
}

impl ItemError {
    /// The kind of an attempt the ERP throttled.
    pub const THROTTLED: &'static str = "throttled";
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemSummary {
    pub item_id: String,
    pub source_id: String,
    pub state: ItemState,
    pub attempts: i32,
    /// How many of the attempts the ERP throttled (they do not count against
    /// `retry.max_attempts`).
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erp_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    pub job_id: String,
    pub connection_id: String,
    pub op: String,
    pub state: JobState,
    pub total_items: i32,
    pub created_at_ms: i64,
    pub counts: std::collections::BTreeMap<String, u64>,
    pub items: Vec<ItemSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemEventRow {
    pub at_ms: i64,
    pub state: String,
    pub attempt: i32,
    pub detail: Option<String>,
}

fn parse_state(s: &str) -> Result<ItemState, StoreError> {
    ItemState::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown item state {s:?}")))
}

/// Bind-parameter markers for statements built by hand: `$1, $2, …` on PostgreSQL, and
/// anonymous `?` on SQLite. sqlx looks the name of every named SQLite parameter up in a
/// list that SQLite scans linearly, which is quadratic in the parameter count: a
/// 1,000-parameter insert spent more time binding than writing. Values must be pushed in
/// the order their markers appear in the text.
pub(crate) struct Marks {
    pg: bool,
    n: usize,
}

impl Marks {
    pub(crate) fn new(backend: sea_orm::DbBackend) -> Marks {
        Marks { pg: backend == sea_orm::DbBackend::Postgres, n: 0 }
    }

    pub(crate) fn next(&mut self) -> String {
        self.n += 1;
        if self.pg { format!("${}", self.n) } else { "?".to_owned() }
    }

    /// `m, m, …` with `k` markers, for one row of a multi-row VALUES list.
    pub(crate) fn row(&mut self, k: usize) -> String {
        let marks: Vec<String> = (0..k).map(|_| self.next()).collect();
        marks.join(", ")
    }
}

/// Statements sent to the database as one: on SQLite, a single call whose text holds them
/// all (sqlx runs each in turn, binding the anonymous markers in order), so the worker
/// thread that runs SQLite is woken once rather than once per statement; on PostgreSQL,
/// one call each (its extended protocol takes one statement per call). Build each
/// statement's markers with its own [`Marks`].
pub(crate) struct Script {
    backend: sea_orm::DbBackend,
    sql: String,
    values: Vec<sea_orm::Value>,
    statements: Vec<sea_orm::Statement>,
}

impl Script {
    pub(crate) fn new(backend: sea_orm::DbBackend) -> Script {
        Script { backend, sql: String::new(), values: Vec::new(), statements: Vec::new() }
    }

    pub(crate) fn backend(&self) -> sea_orm::DbBackend {
        self.backend
    }

    pub(crate) fn push(&mut self, sql: &str, values: Vec<sea_orm::Value>) {
        if self.backend == sea_orm::DbBackend::Sqlite {
            if !self.sql.is_empty() {
                self.sql.push_str(";\n");
            }
            self.sql.push_str(sql);
            self.values.extend(values);
        } else {
            self.statements.push(sea_orm::Statement::from_sql_and_values(self.backend, sql, values));
        }
    }

    /// Runs the script as one transaction: on SQLite one call (see `run_sqlite`), on
    /// PostgreSQL a call per statement.
    pub(crate) async fn run_in_transaction(self, db: &DatabaseConnection) -> Result<(), DbErr> {
        if self.backend != sea_orm::DbBackend::Sqlite {
            let txn = db.begin().await?;
            self.run(&txn).await?;
            return txn.commit().await;
        }
        if self.sql.is_empty() {
            return Ok(());
        }
        let mut conn = db.get_sqlite_connection_pool().acquire().await.map_err(sqlx_failure)?;
        let result = self.run_sqlite(&mut conn).await;
        if result.is_err() {
            // Rather than back to the pool with a transaction perhaps still open.
            conn.close_on_drop();
        }
        result
    }

    /// [`run_in_transaction`](Self::run_in_transaction) on `writer`'s connection on SQLite
    /// (see [`JobWriter`]), on a pooled one otherwise.
    pub(crate) async fn run_in_transaction_on(self, writer: &JobWriter, db: &DatabaseConnection) -> Result<(), DbErr> {
        if self.backend != sea_orm::DbBackend::Sqlite || self.sql.is_empty() {
            return self.run_in_transaction(db).await;
        }
        let mut kept = writer.0.lock().await;
        let conn = match kept.as_mut() {
            Some(conn) => conn,
            None => {
                let pooled = db.get_sqlite_connection_pool().acquire().await.map_err(sqlx_failure)?;
                kept.insert(pooled.detach())
            }
        };
        let result = self.run_sqlite(conn).await;
        if result.is_err() {
            // Closed on drop; the next job takes a fresh connection.
            *kept = None;
        }
        result
    }

    /// The SQLite script as one call: `BEGIN IMMEDIATE`, the statements and `COMMIT` in one
    /// text, instead of three trips to the worker thread. Should a statement fail, the
    /// transaction is rolled back, and the caller must close the connection.
    async fn run_sqlite(self, conn: &mut sea_orm::sqlx::SqliteConnection) -> Result<(), DbErr> {
        let sql = format!("BEGIN IMMEDIATE;\n{};\nCOMMIT", self.sql);
        let query = sea_orm::sqlx::query_with(
            sea_orm::sqlx::AssertSqlSafe(sql),
            sea_query_sqlx::SqlxValues(sea_orm::Values(self.values)),
        );
        match query.execute(&mut *conn).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let _ = sea_orm::sqlx::query("ROLLBACK").execute(&mut *conn).await;
                Err(sqlx_failure(e))
            }
        }
    }

    pub(crate) async fn run(self, conn: &impl ConnectionTrait) -> Result<(), DbErr> {
        if !self.sql.is_empty() {
            conn.execute_raw(sea_orm::Statement::from_sql_and_values(self.backend, self.sql, self.values)).await?;
        }
        for statement in self.statements {
            conn.execute_raw(statement).await?;
        }
        Ok(())
    }
}

fn sqlx_failure(e: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e.into()))
}

/// On SQLite, the connection new jobs are recorded on, kept between jobs (taken from the
/// pool once and detached from it, so the pool keeps its full size). SQLite empties a
/// connection's page cache whenever another connection has committed since it last read,
/// and the pool hands its idle connections out in turn: each job was written on another
/// connection than the one before, which first re-read the b-tree pages its insert
/// touches (≈ 5 % of the CPU of a `POST /v1/jobs`). SQLite admits one writer at a time
/// anyway, so jobs waiting their turn here lose nothing.
#[derive(Default)]
pub struct JobWriter(tokio::sync::Mutex<Option<sea_orm::sqlx::SqliteConnection>>);

/// How a new job's items reach the queue, as recorded with them. Whatever the way, an
/// item that might not be on the queue is found by the outbox sweep ([`unsent_items`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueuing {
    /// Their messages commit in the job's transaction (the embedded queue).
    WithTheJob,
    /// They are sent once the job has committed (SQS). One marker row in `job_outbox`
    /// stands for all of them until the sender reports what it sent ([`job_sent`]); a
    /// marker its sender never cleared (a crash) hands the job's items to the outbox
    /// sweep ([`expire_outbox_markers`]). So the happy path deletes one small row rather
    /// than rewriting every item row, payload and all, to flip a flag.
    AfterCommit,
    /// Not sent: each item is flagged for the outbox sweep to send.
    ByTheOutbox,
}

/// Records a new job with its items (state `queued`), in one transaction.
pub async fn insert_job(db: &DatabaseConnection, job: &NewJob, how: Enqueuing) -> Result<(), StoreError> {
    let mut script = Script::new(db.get_database_backend());
    push_job_insert(&mut script, job, how);
    Ok(script.run_in_transaction(db).await?)
}

/// [`insert_job`] on `writer`'s connection (SQLite).
pub async fn insert_job_on(
    writer: &JobWriter,
    db: &DatabaseConnection,
    job: &NewJob,
    how: Enqueuing,
) -> Result<(), StoreError> {
    let mut script = Script::new(db.get_database_backend());
    push_job_insert(&mut script, job, how);
    Ok(script.run_in_transaction_on(writer, db).await?)
}

/// Adds the statements recording a new job to `script`, which the caller runs in its
/// transaction, so that the embedded queue's messages can commit with it. New rows only:
/// no item state changes here, which stay the StatusActor's.
pub(crate) fn push_job_insert(script: &mut Script, job: &NewJob, how: Enqueuing) {
    use sea_orm::Value;
    let now = now_ms();
    let backend = script.backend();
    let (job_id, connection, op) = (job.id.to_string(), job.connection_id.to_string(), job.op.as_str());
    let mut marks = Marks::new(backend);
    script.push(
        &format!("INSERT INTO jobs (id, connection_id, op, total_items, created_at_ms) VALUES ({})", marks.row(5)),
        vec![job_id.clone().into(), connection.clone().into(), op.into(), (job.items.len() as i32).into(), now.into()],
    );
    if how == Enqueuing::AfterCommit {
        let mut marks = Marks::new(backend);
        script.push(
            &format!("INSERT INTO job_outbox (job_id, created_at_ms) VALUES ({})", marks.row(2)),
            vec![job_id.clone().into(), now.into()],
        );
    }
    let enqueued = how != Enqueuing::ByTheOutbox;
    // Written by hand rather than through the entity: two statements per 200 items, with
    // anonymous markers on SQLite (see `Marks`). What every item of the job shares is bound
    // once per statement, as a one-row table whose markers come first in the text, and
    // each row binds only its own values: a 200-invoice job bound 2,000 values here, each
    // text copied by SQLite. The `queued` event is not stored: it is the item's creation
    // (see `item_events`). The documents go to `item_documents` (see
    // `migration::m0006_item_documents`); on PostgreSQL the item row keeps a copy for
    // daemons of earlier releases in the fleet.
    let legacy_copy = backend == sea_orm::DbBackend::Postgres;
    let per_row = if legacy_copy { 3 } else { 2 };
    for chunk in job.items.chunks(200) {
        let mut marks = Marks::new(backend);
        let rows: Vec<String> = chunk.iter().map(|_| format!("({})", marks.row(2))).collect();
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 2);
        for it in chunk {
            values.extend([it.id.to_string().into(), it.payload.clone().into()]);
        }
        script.push(&format!("INSERT INTO item_documents (item_id, payload) VALUES {}", rows.join(", ")), values);
        let mut marks = Marks::new(backend);
        let shared = marks.row(4);
        let rows: Vec<String> = chunk.iter().map(|_| format!("({})", marks.row(per_row))).collect();
        let mut values: Vec<Value> = Vec::with_capacity(4 + chunk.len() * per_row);
        values.extend([job_id.clone().into(), connection.clone().into(), enqueued.into(), now.into()]);
        for it in chunk {
            values.extend([it.id.to_string().into(), it.source_id.clone().into()]);
            if legacy_copy {
                values.push(it.payload.clone().into());
            }
        }
        // `op` and `state` are this program's own constants, written into the text. (An
        // anonymous SQLite marker binds once per appearance, and `now` is needed twice.)
        let sql = format!(
            "INSERT INTO job_items (id, job_id, connection_id, op, source_id, payload, state, enqueued, \
             created_at_ms, updated_at_ms, attempts) \
             SELECT v.column1, s.column1, s.column2, '{op}', v.column2, {payload}, '{queued}', s.column3, \
               s.column4, s.column4, 0 \
             FROM (VALUES ({shared})) AS s CROSS JOIN (VALUES {}) AS v",
            rows.join(", "),
            payload = if legacy_copy { "v.column3" } else { "''" },
            queued = ItemState::Queued.as_str(),
        );
        script.push(&sql, values);
    }
}

/// The sender of a job recorded [`Enqueuing::AfterCommit`] reports: the items in `unsent`
/// are flagged for the outbox sweep and the job's marker goes, in one transaction.
pub async fn job_sent(db: &DatabaseConnection, job: &JobId, unsent: &[ItemId]) -> Result<(), StoreError> {
    let mut script = Script::new(db.get_database_backend());
    for chunk in unsent.chunks(500) {
        let mut marks = Marks::new(script.backend());
        let sql = format!("UPDATE job_items SET enqueued = false WHERE id IN ({})", marks.row(chunk.len()));
        script.push(&sql, chunk.iter().map(|i| i.to_string().into()).collect());
    }
    let mut marks = Marks::new(script.backend());
    script.push(&format!("DELETE FROM job_outbox WHERE job_id = {}", marks.next()), vec![job.to_string().into()]);
    Ok(script.run_in_transaction(db).await?)
}

/// Markers older than `age` whose sender never reported (it crashed, or its report was
/// lost): the items of those jobs that are still `queued` are flagged for the outbox
/// sweep, which sends them again (a duplicate is harmless), and the markers go. Returns
/// how many markers were expired, at most `limit`.
pub async fn expire_outbox_markers(db: &DatabaseConnection, age: Duration, limit: u64) -> Result<usize, StoreError> {
    let backend = db.get_database_backend();
    let mut marks = Marks::new(backend);
    let sql = format!(
        "SELECT job_id FROM job_outbox WHERE created_at_ms <= {} ORDER BY created_at_ms LIMIT {}",
        marks.next(),
        marks.next()
    );
    let cutoff = now_ms() - age.as_millis() as i64;
    let rows = db
        .query_all_raw(sea_orm::Statement::from_sql_and_values(backend, sql, [cutoff.into(), (limit as i64).into()]))
        .await?;
    let jobs: Vec<String> = rows.iter().filter_map(|r| r.try_get_by_index::<String>(0).ok()).collect();
    for job in &jobs {
        let mut script = Script::new(backend);
        let mut marks = Marks::new(backend);
        let sql = format!(
            "UPDATE job_items SET enqueued = false WHERE job_id = {} AND state = {}",
            marks.next(),
            marks.next()
        );
        script.push(&sql, vec![job.clone().into(), ItemState::Queued.as_str().into()]);
        let mut marks = Marks::new(backend);
        script.push(&format!("DELETE FROM job_outbox WHERE job_id = {}", marks.next()), vec![job.clone().into()]);
        script.run_in_transaction(db).await?;
    }
    Ok(jobs.len())
}

pub async fn mark_enqueued(db: &DatabaseConnection, items: &[ItemId]) -> Result<(), StoreError> {
    for chunk in items.chunks(500) {
        job_item::Entity::update_many()
            .col_expr(job_item::Column::Enqueued, Expr::value(true))
            .filter(job_item::Column::Id.is_in(chunk.iter().map(|i| i.to_string())))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Makes dead-lettered items workable again before their messages are redriven: state
/// `queued`, error cleared, a fresh `retry.max_attempts` budget; an event records the
/// redrive. `attempts` keeps counting (it used to go back to 0): the next attempt is then
/// still one after an earlier one, so it looks the document up in the ERP before creating
/// it (an attempt that timed out may have created it), and the attempt number stays a
/// fencing token against a stale attempt from before the redrive.
/// Returns how many items changed (items in any other state are left alone).
pub async fn requeue_dead_lettered(db: &DatabaseConnection, items: &[ItemId]) -> Result<u64, StoreError> {
    let now = now_ms();
    let txn = db.begin().await?;
    let mut changed = 0;
    for chunk in items.chunks(500) {
        let ids: Vec<String> = chunk.iter().map(|i| i.to_string()).collect();
        let dead: Vec<String> = job_item::Entity::find()
            .filter(job_item::Column::Id.is_in(ids))
            .filter(job_item::Column::State.eq(ItemState::DeadLettered.as_str()))
            .all(&txn)
            .await?
            .into_iter()
            .map(|m| m.id)
            .collect();
        if dead.is_empty() {
            continue;
        }
        let res = job_item::Entity::update_many()
            .col_expr(job_item::Column::State, Expr::value(ItemState::Queued.as_str()))
            .col_expr(
                job_item::Column::RedrivenAttempts,
                sea_orm::sea_query::ExprTrait::sub(
                    Expr::col(job_item::Column::Attempts),
                    Expr::col(job_item::Column::Throttles),
                ),
            )
            .col_expr(job_item::Column::ErrorKind, Expr::value(Option::<String>::None))
            .col_expr(job_item::Column::ErrorCode, Expr::value(Option::<String>::None))
            .col_expr(job_item::Column::ErrorMessage, Expr::value(Option::<String>::None))
            .col_expr(job_item::Column::UpdatedAtMs, Expr::value(now))
            .filter(job_item::Column::Id.is_in(dead.clone()))
            .exec(&txn)
            .await?;
        changed += res.rows_affected;
        item_event::Entity::insert_many(dead.into_iter().map(|id| item_event::ActiveModel {
            item_id: Set(id),
            at_ms: Set(now),
            state: Set(ItemState::Queued.as_str().to_owned()),
            attempt: Set(0),
            detail: Set(Some("redriven from the dead-letter queue".into())),
            ..Default::default()
        }))
        .exec(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(changed)
}

/// Most rows in one multi-row statement.
const ROWS_PER_STATEMENT: usize = 256;

/// A timeline row of [`apply_updates`] (item, state, attempt, detail); None pads.
type Event = Option<(String, &'static str, i32, Option<String>)>;

/// The condition that an item row is not in a terminal state: terminal states are final.
const NOT_TERMINAL: &str = "job_items.state NOT IN ('succeeded', 'failed', 'dead_lettered')";

/// The updated item's id in the `RETURNING` of an `UPDATE job_items … FROM (VALUES …)`:
/// qualified on PostgreSQL, bare on SQLite, as each accepts it.
fn returning_item_id(backend: sea_orm::DbBackend) -> &'static str {
    if backend == sea_orm::DbBackend::Postgres { "job_items.id" } else { "id" }
}

/// `rows` in statements of at most `max` rows (a power of two), each padded to a power of
/// two with `blank` rows, or without one by repeating its last row. So a handful of
/// statement texts serve every batch size, and each is prepared once per connection and
/// then reused: a new text is parsed anew, and parsing a VALUES list of hundreds of rows
/// costs more than running it.
fn padded<'a, T: Clone>(rows: &'a [T], max: usize, blank: Option<&'a T>) -> impl Iterator<Item = Vec<T>> + 'a {
    rows.chunks(max).map(move |chunk| {
        let fill = blank.unwrap_or(&chunk[chunk.len() - 1]).clone();
        let mut chunk = chunk.to_vec();
        chunk.resize(chunk.len().next_power_of_two(), fill);
        chunk
    })
}

/// Applies a batch of updates in one transaction. Returns, per update, whether it took
/// effect (false when the item was already terminal, a newer attempt owns it, or it is
/// unknown).
///
/// The item rows change with one `UPDATE … FROM (VALUES …)` per 256 items rather than one
/// statement per item: the round trips, not the rows, are what a status writer pays for.
/// Every multi-row statement is padded to a power of two of rows (see [`padded`]).
pub async fn apply_updates(db: &DatabaseConnection, updates: &[ItemUpdate]) -> Result<Vec<bool>, StoreError> {
    Ok(apply_batch(db, updates, &[]).await?.0)
}

/// [`apply_updates`], and in the same transaction, after them, begins the attempts of
/// `starts` (see [`ItemStart`]). Answers per update whether it took effect, and per start
/// what it found (None: the item is unknown).
pub async fn apply_batch(
    db: &DatabaseConnection,
    updates: &[ItemUpdate],
    starts: &[ItemStart],
) -> Result<(Vec<bool>, Vec<Option<Started>>), StoreError> {
    use std::collections::{HashMap, HashSet};
    let now = now_ms();
    // The last update of each item in the batch is the one its row ends with; earlier ones
    // (in_progress before succeeded) still go to the timeline.
    let mut last: HashMap<ItemId, usize> = HashMap::new();
    for (i, u) in updates.iter().enumerate() {
        last.insert(u.item_id, i);
    }
    let mut finals: Vec<usize> = last.values().copied().collect();
    finals.sort_unstable();
    let txn = db.begin().await?;
    let backend = db.get_database_backend();
    let mut applied_items: HashSet<String> = HashSet::new();
    for chunk in padded(&finals, ROWS_PER_STATEMENT, None) {
        let chunk = &chunk[..];
        let mut marks = Marks::new(backend);
        let now_mark = marks.next();
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 8 + 1);
        values.push(now.into());
        let mut rows = Vec::with_capacity(chunk.len());
        for &i in chunk {
            let u = &updates[i];
            rows.push(format!("({})", marks.row(8)));
            let (kind, code, message) = match &u.error {
                Some(e) => (Some(e.kind.clone()), e.code.clone(), Some(e.message.clone())),
                None => (None, None, None),
            };
            values.extend([
                u.item_id.to_string().into(),
                u.state.as_str().into(),
                u.attempt.map(|a| a as i32).into(),
                u.erp_id.clone().into(),
                kind.into(),
                code.into(),
                message.into(),
                i32::from(u.is_throttle()).into(),
            ]);
        }
        let returning = returning_item_id(backend);
        // Terminal states are final, and an older attempt (a stale receive of the message)
        // never overwrites a newer one's state: the attempt number is the fencing token.
        let sql = format!(
            "UPDATE job_items SET state = v.column2, attempts = COALESCE(v.column3, job_items.attempts), erp_id = v.column4, \
               error_kind = v.column5, error_code = v.column6, error_message = v.column7, \
               throttles = job_items.throttles + v.column8, updated_at_ms = {now_mark} \
             FROM (VALUES {}) AS v \
             WHERE job_items.id = v.column1 \
               AND {NOT_TERMINAL} \
               AND (v.column3 IS NULL OR job_items.attempts <= v.column3) \
             RETURNING {returning}",
            rows.join(", ")
        );
        for row in txn.query_all_raw(sea_orm::Statement::from_sql_and_values(backend, &sql, values)).await? {
            applied_items.insert(row.try_get_by_index::<String>(0)?);
        }
    }
    let mut refs = Vec::new();
    let mut applications = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut applied = Vec::with_capacity(updates.len());
    for u in updates {
        let ok = applied_items.contains(&u.item_id.to_string());
        applied.push(ok);
        // Ledger entries are facts about the ERP: record them even when the item itself
        // was already terminal, so a later duplicate never creates again.
        for (kind, source, erp_id) in &u.ledger {
            refs.push(erp_ref::ActiveModel {
                connection_id: Set(u.connection_id.to_string()),
                doc_kind: Set(kind.clone()),
                source_id: Set(source.clone()),
                erp_id: Set(erp_id.clone()),
                item_id: Set(u.item_id.to_string()),
                created_at_ms: Set(now),
            });
        }
        for a in &u.applications {
            applications.push(bill_application::ActiveModel {
                connection_id: Set(u.connection_id.to_string()),
                payment_source_id: Set(a.payment_source_id.clone()),
                bill_erp_id: Set(a.bill_erp_id.clone()),
                amount: Set(a.amount.to_string()),
                item_id: Set(u.item_id.to_string()),
                created_at_ms: Set(now),
            });
        }
        if ok {
            events.push(Some((
                u.item_id.to_string(),
                u.state.as_str(),
                u.attempt.unwrap_or(0) as i32,
                u.detail.clone(),
            )));
        }
    }
    refs.dedup_by(|a, b| a.connection_id == b.connection_id && a.doc_kind == b.doc_kind && a.source_id == b.source_id);
    // Padding repeats an entry: the copy conflicts with the original and does nothing.
    for chunk in padded(&refs, ROWS_PER_STATEMENT, None) {
        erp_ref::Entity::insert_many(chunk)
            .on_conflict_do_nothing_on([
                erp_ref::Column::ConnectionId,
                erp_ref::Column::DocKind,
                erp_ref::Column::SourceId,
            ])
            .exec(&txn)
            .await?;
    }
    if !applications.is_empty() {
        bill_application::Entity::insert_many(applications)
            .on_conflict_do_nothing_on([
                bill_application::Column::ConnectionId,
                bill_application::Column::PaymentSourceId,
                bill_application::Column::BillErpId,
            ])
            .exec(&txn)
            .await?;
    }
    // After the updates and their ledger entries, so that a start sees both.
    let started = begin_attempts(&txn, starts, now).await?;
    for s in started.iter().flatten().filter(|s| s.begun) {
        events.push(Some((s.item.id.clone(), ItemState::InProgress.as_str(), s.item.attempts, None)));
    }
    // Padding here is rows of NULLs, which the statement skips.
    for chunk in padded(&events, ROWS_PER_STATEMENT, Some(&None)) {
        let mut marks = Marks::new(backend);
        let now_mark = marks.next();
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 4 + 1);
        values.push(now.into());
        let rows: Vec<String> = chunk.iter().map(|_| format!("({})", marks.row(4))).collect();
        for event in chunk {
            let (item, state, attempt, detail) = match event {
                Some((item, state, attempt, detail)) => (Some(item), Some(state), Some(attempt), detail),
                None => (None, None, None, None),
            };
            values.extend([item.into(), state.into(), attempt.into(), detail.into()]);
        }
        let sql = format!(
            "INSERT INTO item_events (item_id, at_ms, state, attempt, detail) \
             SELECT v.column1, {now_mark}, v.column2, v.column3, v.column4 FROM (VALUES {}) AS v \
             WHERE v.column1 IS NOT NULL",
            rows.join(", ")
        );
        txn.execute_raw(sea_orm::Statement::from_sql_and_values(backend, &sql, values)).await?;
    }
    txn.commit().await?;
    Ok((applied, started))
}

/// An attempt about to begin. The StatusActor counts it in the transaction of the updates
/// beside it ([`apply_batch`]) and reads, in the same transaction, the item's row and the
/// ledger's entry for its document: the two reads every attempt starts with, and the
/// write that must be durable before the ERP sees the attempt, for one commit.
#[derive(Debug, Clone)]
pub struct ItemStart {
    pub item_id: ItemId,
    pub connection_id: ConnectionId,
    /// The kind of document whose ledger entry the attempt needs.
    pub doc_kind: &'static str,
    /// The document the caller has claimed: the attempt begins only if it is the item's.
    pub source_id: String,
    /// `retry.max_attempts`: an item that has used it up does not begin (attempts the ERP
    /// throttled and those made before a redrive do not count, see [`uncounted_attempts`]).
    pub max_attempts: u32,
}

/// What [`apply_batch`] found of an [`ItemStart`]: the item's row as the transaction left
/// it, the ledger's entry (the ERP id) for its document on the connection, and whether
/// the attempt began (the row is then `in_progress` and `attempts` counts it). It does not
/// begin if the item is terminal, its document is not the one claimed, or it has used up
/// `max_attempts` — nor a second time if one batch asks twice.
#[derive(Debug, Clone)]
pub struct Started {
    pub item: job_item::Model,
    pub document: String,
    pub erp_id: Option<String>,
    pub begun: bool,
}

/// Of an item's first `earlier` attempts, those that do not count against
/// `retry.max_attempts`: those the ERP throttled (it did nothing), and those made before a
/// redrive from the dead-letter queue. [`begin_attempts`] checks the same in SQL.
pub fn uncounted_attempts(item: &job_item::Model, earlier: u32) -> u32 {
    ((item.throttles.max(0) + item.redriven_attempts.max(0)) as u32).min(earlier)
}

/// Begins the attempts of `starts` in `txn` (see [`Started`]), one statement per 256.
async fn begin_attempts(
    txn: &impl ConnectionTrait,
    starts: &[ItemStart],
    now: i64,
) -> Result<Vec<Option<Started>>, StoreError> {
    use std::collections::HashSet;
    if starts.is_empty() {
        return Ok(Vec::new());
    }
    let backend = txn.get_database_backend();
    let rows: Vec<Option<&ItemStart>> = starts.iter().map(Some).collect();
    let mut begun: HashSet<String> = HashSet::new();
    // Padding is rows of NULLs, which match no item (a repeated row would count twice).
    for chunk in padded(&rows, ROWS_PER_STATEMENT, Some(&None)) {
        let mut marks = Marks::new(backend);
        let now_mark = marks.next();
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 3 + 1);
        values.push(now.into());
        let marked: Vec<String> = chunk.iter().map(|_| format!("({})", marks.row(3))).collect();
        for start in &chunk {
            values.extend([
                start.map(|s| s.item_id.to_string()).into(),
                start.map(|s| s.source_id.clone()).into(),
                start.map(|s| s.max_attempts.min(i32::MAX as u32) as i32).into(),
            ]);
        }
        let returning = returning_item_id(backend);
        let sql = format!(
            "UPDATE job_items SET state = 'in_progress', attempts = job_items.attempts + 1, erp_id = NULL, \
               error_kind = NULL, error_code = NULL, error_message = NULL, updated_at_ms = {now_mark} \
             FROM (VALUES {}) AS v \
             WHERE job_items.id = v.column1 AND job_items.source_id = v.column2 \
               AND {NOT_TERMINAL} \
               AND CASE WHEN job_items.throttles + job_items.redriven_attempts < job_items.attempts \
                   THEN job_items.attempts - job_items.throttles - job_items.redriven_attempts ELSE 0 END < v.column3 \
             RETURNING {returning}",
            marked.join(", ")
        );
        for row in txn.query_all_raw(sea_orm::Statement::from_sql_and_values(backend, &sql, values)).await? {
            begun.insert(row.try_get_by_index::<String>(0)?);
        }
    }
    let reads: Vec<ItemRead> = starts.iter().map(|s| (s.item_id, s.connection_id.clone(), s.doc_kind)).collect();
    let found = items_with_ledger(txn, &reads).await?;
    Ok(found
        .into_iter()
        .map(|f| {
            f.map(|Found { item, document, erp_id }| Started { begun: begun.remove(&item.id), item, document, erp_id })
        })
        .collect())
}

/// Reads.
pub async fn item(db: &DatabaseConnection, id: &ItemId) -> Result<Option<job_item::Model>, StoreError> {
    Ok(job_item::Entity::find_by_id(id.to_string()).one(db).await?)
}

/// `job_items.id, job_items.job_id, …`: the item's columns as this build knows them, never
/// `job_items.*`. SQLite re-prepares a cached statement whose tables changed (a column
/// added by a newer release's `erpsync migrate`, or a pool connection that prepared it
/// with the schema it held before the last migration), and a `*` then yields a row wider
/// than the columns sqlx cached at the first prepare: its worker thread panicked reading
/// the row.
fn item_columns() -> &'static str {
    use sea_orm::{IdenStatic, Iterable};
    static COLUMNS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    COLUMNS.get_or_init(|| {
        job_item::Column::iter().map(|c| format!("job_items.{}", c.as_str())).collect::<Vec<_>>().join(", ")
    })
}

/// What an attempt reads first: an item, and the connection and document kind whose
/// ledger entry it needs.
pub type ItemRead = (ItemId, ConnectionId, &'static str);

/// An item's row, its document, and the ledger's entry (the ERP id) for the document.
#[derive(Debug, Clone)]
pub struct Found {
    pub item: job_item::Model,
    /// The document as JSON text.
    pub document: String,
    pub erp_id: Option<String>,
}

/// An item as [`items_with_ledger`] found it; None if the item is unknown.
pub type ItemWithLedger = Option<Found>;

/// The document of the `job_items` row in a statement that joins [`DOCUMENTS`]: its own
/// row, or the copy in the item row of an earlier release (see
/// `migration::m0006_item_documents`).
const DOCUMENT: &str = "COALESCE(item_documents.payload, job_items.payload)";

/// The join that [`DOCUMENT`] reads.
const DOCUMENTS: &str = "LEFT JOIN item_documents ON item_documents.item_id = job_items.id";

/// Items' rows with the ledger's entries for their documents, in one statement (per 256):
/// the two reads every attempt starts with, for many attempts at once. Answers in
/// `reads`' order.
pub async fn items_with_ledger(
    db: &impl ConnectionTrait,
    reads: &[ItemRead],
) -> Result<Vec<ItemWithLedger>, StoreError> {
    use sea_orm::FromQueryResult;
    use std::collections::HashMap;
    let backend = db.get_database_backend();
    let mut found: HashMap<(String, String, String), Found> = HashMap::new();
    // Padded like the status writer's statements (a repeated read is answered twice).
    for chunk in padded(reads, ROWS_PER_STATEMENT, None) {
        let mut marks = Marks::new(backend);
        let rows: Vec<String> = chunk.iter().map(|_| format!("({})", marks.row(3))).collect();
        let sql = format!(
            "SELECT v.column1 AS read_item, v.column2 AS read_connection, v.column3 AS read_kind, {}, \
               {DOCUMENT} AS document, erp_refs.erp_id AS ledger_erp_id \
             FROM (VALUES {}) AS v \
             JOIN job_items ON job_items.id = v.column1 {DOCUMENTS} \
             LEFT JOIN erp_refs ON erp_refs.connection_id = v.column2 AND erp_refs.doc_kind = v.column3 \
               AND erp_refs.source_id = job_items.source_id",
            item_columns(),
            rows.join(", ")
        );
        let values: Vec<sea_orm::Value> = chunk
            .iter()
            .flat_map(|(item, connection, kind)| {
                [item.to_string().into(), connection.to_string().into(), (*kind).into()]
            })
            .collect();
        for row in db.query_all_raw(sea_orm::Statement::from_sql_and_values(backend, &sql, values)).await? {
            let key =
                (row.try_get("", "read_item")?, row.try_get("", "read_connection")?, row.try_get("", "read_kind")?);
            let item = job_item::Model::from_query_result(&row, "")?;
            let (document, erp_id) = (row.try_get("", "document")?, row.try_get("", "ledger_erp_id")?);
            found.insert(key, Found { item, document, erp_id });
        }
    }
    Ok(reads
        .iter()
        .map(|(item, connection, kind)| {
            found.get(&(item.to_string(), connection.to_string(), (*kind).to_owned())).cloned()
        })
        .collect())
}

pub async fn ledger_lookup(
    db: &DatabaseConnection,
    connection: &ConnectionId,
    doc_kind: &str,
    source_id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(erp_ref::Entity::find_by_id((connection.to_string(), doc_kind.to_owned(), source_id.to_owned()))
        .one(db)
        .await?
        .map(|r| r.erp_id))
}

/// An invoice exported through a connection: a bill a payment can pay.
#[derive(Debug, Clone)]
pub struct ExportedInvoice {
    pub erp_id: Option<String>,
    /// The invoice as JSON text.
    pub document: String,
    /// What recorded payments have applied to the bill so far.
    pub paid: rust_decimal::Decimal,
}

/// The invoices exported through one connection: the bills a payment can pay, with what
/// recorded payments other than `except_payment` (a payment's source id) applied to each.
pub async fn exported_invoices(
    db: &DatabaseConnection,
    connection: &ConnectionId,
    except_payment: &str,
) -> Result<Vec<ExportedInvoice>, StoreError> {
    let backend = db.get_database_backend();
    let mut marks = Marks::new(backend);
    let sql = format!(
        "SELECT job_items.erp_id, {DOCUMENT} AS document FROM job_items {DOCUMENTS} \
         WHERE job_items.connection_id = {} AND job_items.op = '{}' AND job_items.state = '{}'",
        marks.next(),
        Op::ExportInvoice.as_str(),
        ItemState::Succeeded.as_str(),
    );
    let rows = db
        .query_all_raw(sea_orm::Statement::from_sql_and_values(backend, &sql, [connection.to_string().into()]))
        .await?;
    let mut paid: std::collections::HashMap<String, rust_decimal::Decimal> = Default::default();
    let applied = bill_application::Entity::find()
        .filter(bill_application::Column::ConnectionId.eq(connection.to_string()))
        .filter(bill_application::Column::PaymentSourceId.ne(except_payment))
        .all(db)
        .await?;
    for a in applied {
        let amount = a.amount.parse::<rust_decimal::Decimal>().map_err(|e| {
            StoreError::Corrupt(format!(
                "payment {} applied {:?} to bill {}: {e}",
                a.payment_source_id, a.amount, a.bill_erp_id
            ))
        })?;
        *paid.entry(a.bill_erp_id).or_default() += amount;
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let erp_id: Option<String> = row.try_get("", "erp_id")?;
        let paid = erp_id.as_ref().and_then(|id| paid.get(id)).copied().unwrap_or_default();
        out.push(ExportedInvoice { erp_id, document: row.try_get("", "document")?, paid });
    }
    Ok(out)
}

/// Items recorded but never sent to the queue, older than `age` (the outbox).
/// When an item was last updated (ms since the epoch), over every item.
pub async fn last_update_ms(db: &DatabaseConnection) -> Result<Option<i64>, StoreError> {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT MAX(updated_at_ms) FROM job_items",
        ))
        .await?;
    Ok(row.and_then(|r| r.try_get_by_index::<Option<i64>>(0).ok().flatten()))
}

pub async fn unsent_items(
    db: &DatabaseConnection,
    age: Duration,
    limit: u64,
) -> Result<Vec<job_item::Model>, StoreError> {
    Ok(job_item::Entity::find()
        // Written out, not bound: only then can the partial index (`WHERE enqueued = false`)
        // serve the query.
        .filter(Expr::cust("enqueued = false"))
        .filter(job_item::Column::CreatedAtMs.lte(now_ms() - age.as_millis() as i64))
        .order_by_asc(job_item::Column::CreatedAtMs)
        .limit(limit)
        .all(db)
        .await?)
}

pub async fn job_summary(db: &DatabaseConnection, id: &JobId) -> Result<Option<JobSummary>, StoreError> {
    let Some(job) = job::Entity::find_by_id(id.to_string()).one(db).await? else { return Ok(None) };
    let items = job_item::Entity::find()
        .filter(job_item::Column::JobId.eq(id.to_string()))
        .order_by_asc(job_item::Column::Id)
        .all(db)
        .await?;
    let mut counts: std::collections::BTreeMap<String, u64> =
        ItemState::ALL.iter().map(|s| (s.as_str().to_owned(), 0)).collect();
    let mut summaries = Vec::with_capacity(items.len());
    let mut pairs = Vec::new();
    for it in items {
        let state = parse_state(&it.state)?;
        *counts.entry(state.as_str().to_owned()).or_default() += 1;
        pairs.push((state, 1));
        summaries.push(ItemSummary {
            item_id: it.id,
            source_id: it.source_id,
            state,
            attempts: it.attempts,
            throttled: it.throttles,
            erp_id: it.erp_id,
            error: it.error_kind.map(|kind| ItemError {
                kind,
                code: it.error_code,
                message: it.error_message.unwrap_or_default(),
            }),
        });
    }
    Ok(Some(JobSummary {
        job_id: job.id,
        connection_id: job.connection_id,
        op: job.op,
        state: JobState::derive(&pairs),
        total_items: job.total_items,
        created_at_ms: job.created_at_ms,
        counts,
        items: summaries,
    }))
}

/// An item's timeline. Its first entry, `queued` when the job was recorded, is not stored
/// as a row (that was one more row per item on every `POST /v1/jobs`): it is the item's
/// creation time.
pub async fn item_events(db: &DatabaseConnection, id: &ItemId) -> Result<Vec<ItemEventRow>, StoreError> {
    let Some(item) = job_item::Entity::find_by_id(id.to_string()).one(db).await? else { return Ok(Vec::new()) };
    let created = ItemEventRow {
        at_ms: item.created_at_ms,
        state: ItemState::Queued.as_str().to_owned(),
        attempt: 0,
        detail: None,
    };
    let stored = item_event::Entity::find()
        .filter(item_event::Column::ItemId.eq(id.to_string()))
        .order_by_asc(item_event::Column::Id)
        .all(db)
        .await?;
    Ok(std::iter::once(created)
        .chain(stored.into_iter().map(|e| ItemEventRow {
            at_ms: e.at_ms,
            state: e.state,
            attempt: e.attempt,
            detail: e.detail,
        }))
        .collect())
}

/// Item counts per state over the whole database (tests, demo summaries).
pub async fn state_counts(db: &DatabaseConnection) -> Result<Vec<(ItemState, u64)>, StoreError> {
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT state, COUNT(*) FROM job_items GROUP BY state",
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let s: String = r.try_get_by_index(0)?;
            let n: i64 = r.try_get_by_index(1)?;
            Ok((parse_state(&s)?, n as u64))
        })
        .collect()
}

/// The stored documents of a job, in item order.
pub async fn job_payloads(db: &DatabaseConnection, id: &JobId) -> Result<Vec<String>, StoreError> {
    let backend = db.get_database_backend();
    let mut marks = Marks::new(backend);
    let sql = format!(
        "SELECT {DOCUMENT} AS document FROM job_items {DOCUMENTS} \
         WHERE job_items.job_id = {} ORDER BY job_items.id",
        marks.next()
    );
    let rows =
        db.query_all_raw(sea_orm::Statement::from_sql_and_values(backend, &sql, [id.to_string().into()])).await?;
    Ok(rows.iter().map(|r| r.try_get("", "document")).collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn statements_are_padded_to_a_few_sizes_and_keep_every_row() {
        let rows: Vec<u32> = (0..300).collect();
        let chunks: Vec<Vec<u32>> = super::padded(&rows, 256, None).collect();
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [256, 64]);
        assert_eq!(chunks[1][43..], [299; 21], "padding repeats the last row");
        let kept: Vec<u32> =
            chunks.concat().into_iter().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        assert_eq!(kept, rows);
        let blanks: Vec<Vec<Option<u32>>> = super::padded(&[Some(1), Some(2), Some(3)], 256, Some(&None)).collect();
        assert_eq!(blanks, [vec![Some(1), Some(2), Some(3), None]]);
        let sizes: std::collections::BTreeSet<usize> = (1..=1000)
            .flat_map(|n| super::padded(&rows.repeat(4)[..n], 256, None).map(|c| c.len()).collect::<Vec<_>>())
            .collect();
        assert_eq!(sizes.into_iter().collect::<Vec<_>>(), [1, 2, 4, 8, 16, 32, 64, 128, 256]);
    }

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
        let db = super::connect(&url, 3).await.unwrap();
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
