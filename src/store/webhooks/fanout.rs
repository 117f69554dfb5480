//! The fan-out's cursor: how far the event log has been turned into deliveries. It is
//! read, and the deliveries of the events after it inserted, in the one transaction that
//! moves it on, so an event is fanned out once however the daemon stops. Only one daemon
//! of a fleet fans out at a time: on PostgreSQL the cursor's row is taken `FOR UPDATE
//! SKIP LOCKED` (another daemon holding it is skipped, not waited for); on SQLite the
//! transaction begins with a write to the row, which takes the database's write lock at
//! once rather than upgrading a read lock later.

use super::stmt;
use crate::util::now_ms;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, TransactionTrait, Value};

/// The fan-out of the event log (the row's name, should another source ever come).
const NAME: &str = "events";

/// The fan-out's transaction, holding its cursor.
pub struct Turn {
    pub txn: DatabaseTransaction,
    /// Where the previous turn stopped; None before the first event.
    pub cursor: Option<String>,
}

/// Where the last turn stopped, read without taking a turn: an idle fan-out looks here
/// and at the log, and writes nothing.
pub async fn peek(db: &DatabaseConnection) -> Result<Option<String>, DbErr> {
    let sql = "SELECT cursor FROM webhook_fanout WHERE name = $1";
    let row = db.query_one_raw(stmt(db.get_database_backend(), sql, vec![NAME.into()])).await?;
    Ok(row.map(|r| r.try_get_by_index::<Option<String>>(0)).transpose()?.flatten())
}

/// Begins a turn; None when another daemon is taking one.
pub async fn begin(db: &DatabaseConnection) -> Result<Option<Turn>, DbErr> {
    let backend = db.get_database_backend();
    let seed = "INSERT INTO webhook_fanout (name, cursor, updated_at_ms) VALUES ($1, NULL, $2) \
                ON CONFLICT DO NOTHING";
    db.execute_raw(stmt(backend, seed, vec![NAME.into(), now_ms().into()])).await?;
    let txn = db.begin().await?;
    let row = if backend == DbBackend::Postgres {
        let sql = "SELECT cursor FROM webhook_fanout WHERE name = $1 FOR UPDATE SKIP LOCKED";
        txn.query_one_raw(stmt(backend, sql, vec![NAME.into()])).await?
    } else {
        let sql = "UPDATE webhook_fanout SET updated_at_ms = $1 WHERE name = $2 RETURNING cursor";
        txn.query_one_raw(stmt(backend, sql, vec![now_ms().into(), NAME.into()])).await?
    };
    match row {
        Some(r) => Ok(Some(Turn { cursor: r.try_get_by_index(0)?, txn })),
        None => Ok(None),
    }
}

impl Turn {
    /// Moves the cursor to `cursor` and commits everything the turn wrote.
    pub async fn commit(self, cursor: &str) -> Result<(), DbErr> {
        let sql = "UPDATE webhook_fanout SET cursor = $1, updated_at_ms = $2 WHERE name = $3";
        let values: Vec<Value> = vec![cursor.to_owned().into(), now_ms().into(), NAME.into()];
        self.txn.execute_raw(stmt(self.txn.get_database_backend(), sql, values)).await?;
        self.txn.commit().await
    }
}
