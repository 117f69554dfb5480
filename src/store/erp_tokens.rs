//! The statements on `erp_tokens`: each OAuth connection's newest refresh token, sealed.
//! Refreshing is serialised per connection across the fleet: on PostgreSQL a transaction
//! holds an advisory lock on the connection from the read to the write, so two daemons
//! never spend the same refresh token (the second would be refused and lock the customer
//! out). SQLite serves one daemon, whose client serialises its own refreshes.

use crate::util::now_ms;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement, TransactionTrait, Value,
};

/// A connection's stored refresh token and the credentials' token it began from, both sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub sealed: String,
    pub seed: String,
}

/// Held while one refresh of a connection is under way; dropping it without
/// [`RefreshLock::store`] gives the lock back and stores nothing.
pub struct RefreshLock {
    connection: String,
    held: Held,
}

enum Held {
    /// PostgreSQL: the transaction holding the advisory lock.
    Transaction(DatabaseTransaction),
    Sqlite(DatabaseConnection),
}

fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(backend, sql, values)
}

const READ: &str = "SELECT refresh_token, seed FROM erp_tokens WHERE connection_id = $1";

fn stored(row: Option<sea_orm::QueryResult>) -> Result<Option<StoredToken>, DbErr> {
    row.map(|r| Ok(StoredToken { sealed: r.try_get_by_index(0)?, seed: r.try_get_by_index(1)? })).transpose()
}

/// Takes `connection`'s refresh lock and reads its stored token.
pub async fn lock(db: &DatabaseConnection, connection: &str) -> Result<(RefreshLock, Option<StoredToken>), DbErr> {
    let backend = db.get_database_backend();
    let id: Value = connection.to_owned().into();
    let (held, row) = if backend == DbBackend::Postgres {
        let txn = db.begin().await?;
        txn.execute_raw(stmt(backend, "SELECT pg_advisory_xact_lock(hashtext('erp_tokens:' || $1))", vec![id.clone()]))
            .await?;
        let row = txn.query_one_raw(stmt(backend, READ, vec![id])).await?;
        (Held::Transaction(txn), row)
    } else {
        let row = db.query_one_raw(stmt(backend, READ, vec![id])).await?;
        (Held::Sqlite(db.clone()), row)
    };
    Ok((RefreshLock { connection: connection.to_owned(), held }, stored(row)?))
}

impl RefreshLock {
    /// Stores the newest refresh token and gives the lock back.
    pub async fn store(self, token: &StoredToken) -> Result<(), DbErr> {
        let sql = "INSERT INTO erp_tokens (connection_id, refresh_token, seed, updated_at_ms) \
                   VALUES ($1, $2, $3, $4) ON CONFLICT (connection_id) DO UPDATE SET \
                   refresh_token = excluded.refresh_token, seed = excluded.seed, \
                   updated_at_ms = excluded.updated_at_ms";
        let values: Vec<Value> = vec![
            self.connection.clone().into(),
            token.sealed.clone().into(),
            token.seed.clone().into(),
            now_ms().into(),
        ];
        match self.held {
            Held::Transaction(txn) => {
                txn.execute_raw(stmt(DbBackend::Postgres, sql, values)).await?;
                txn.commit().await
            }
            Held::Sqlite(db) => db.execute_raw(stmt(db.get_database_backend(), sql, values)).await.map(|_| ()),
        }
    }
}

/// The stored token of `connection`, without taking its lock.
pub async fn read(db: &DatabaseConnection, connection: &str) -> Result<Option<StoredToken>, DbErr> {
    stored(db.query_one_raw(stmt(db.get_database_backend(), READ, vec![connection.to_owned().into()])).await?)
}

/// When `connection`'s refresh token was last stored.
pub async fn updated_at(db: &DatabaseConnection, connection: &str) -> Result<Option<i64>, DbErr> {
    let sql = "SELECT updated_at_ms FROM erp_tokens WHERE connection_id = $1";
    let row = db.query_one_raw(stmt(db.get_database_backend(), sql, vec![connection.to_owned().into()])).await?;
    row.map(|r| r.try_get_by_index(0)).transpose()
}
