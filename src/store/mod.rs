//! Storage over sea-orm: SQLite (embedded default, one file) or PostgreSQL, chosen by URL.
//! The StatusActor is the only writer of item state changes; the API inserts new jobs (whose
//! rows nothing else can refer to yet); everything else here reads.
//!
//! This file opens and migrates the database; the rest is split by what it does:
//! `sqlite` (connection tuning, the checkpointer, the job writer's connection), `sql` (the
//! hand-built statement helpers), `jobs` (new jobs and the outbox), `status` (item state
//! changes and attempt starts), `queries` (reads), `leases` (cluster concurrency slots),
//! `job_list` (the job listing), `idempotency` (job submission keys), `tokens` (API tokens), `parks` (parked connections), `exported_bills` (the bills payments are matched with) and
//! `connection_credentials`.

pub mod connection_credentials;
pub mod entities;
pub mod erp_tokens;
pub mod exported_bills;
pub mod idempotency;
mod job_list;
mod jobs;
pub mod leases;
pub mod migration;
pub mod parks;
mod queries;
pub mod retention;
mod sql;
mod sqlite;
mod status;
pub mod tokens;

pub use job_list::{JobCursor, JobFilter, JobListEntry, JobPage, list_jobs};
pub(crate) use jobs::push_job_insert;
pub use jobs::{
    Enqueuing, NewItem, NewJob, cancel_job, expire_outbox_markers, insert_job, insert_job_on, job_sent, mark_enqueued,
    requeue_dead_lettered, unsent_items,
};
pub use queries::{
    Found, ItemError, ItemEventRow, ItemRead, ItemSummary, ItemWithLedger, JobSummary, item, item_connection,
    item_events, items_with_ledger, job_connection, job_payloads, job_summary, last_update_ms, ledger_lookup,
    state_counts,
};
pub(crate) use sql::{Marks, Script};
pub use sqlite::{JobWriter, WalNudge, spawn_checkpointer, spawn_checkpointer_with};
pub use status::{
    BillApplication, ItemStart, ItemUpdate, PARKED_CODE, Started, apply_batch, apply_updates, uncounted_attempts,
};

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, TransactionTrait};
use sea_orm_migration::MigratorTrait;
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
        .map_sqlx_sqlite_opts(sqlite::tuned)
        .map_sqlx_sqlite_pool_opts(|o| o.after_connect(|conn, _meta| Box::pin(sqlite::after_connect(conn))))
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
