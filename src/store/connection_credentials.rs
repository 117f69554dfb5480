//! Credentials operators give a connection at runtime (`erpsync connections
//! set-credentials`), one sealed document per connection. They take precedence over the
//! configuration's `credentials` reference; `updated_at_ms` is the version running
//! daemons compare to rebuild the connection's client.

use crate::util::now_ms;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement, Value};

fn stmt(db: &DatabaseConnection, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(db.get_database_backend(), sql, values)
}

/// Stores `sealed` as `connection`'s credentials; returns their version.
pub async fn set(db: &DatabaseConnection, connection: &str, sealed: &str) -> Result<i64, DbErr> {
    let version = now_ms();
    let sql = "INSERT INTO connection_credentials (connection_id, sealed, updated_at_ms) VALUES ($1, $2, $3) \
               ON CONFLICT (connection_id) DO UPDATE SET sealed = excluded.sealed, \
               updated_at_ms = CASE WHEN excluded.updated_at_ms > connection_credentials.updated_at_ms \
               THEN excluded.updated_at_ms ELSE connection_credentials.updated_at_ms + 1 END";
    db.execute_raw(stmt(db, sql, vec![connection.into(), sealed.into(), version.into()])).await?;
    let row = db
        .query_one_raw(stmt(
            db,
            "SELECT updated_at_ms FROM connection_credentials WHERE connection_id = $1",
            vec![connection.into()],
        ))
        .await?;
    row.map(|r| r.try_get_by_index(0)).transpose().map(|v| v.unwrap_or(version))
}

/// `connection`'s stored credentials (sealed) and their version.
pub async fn get(db: &DatabaseConnection, connection: &str) -> Result<Option<(String, i64)>, DbErr> {
    let sql = "SELECT sealed, updated_at_ms FROM connection_credentials WHERE connection_id = $1";
    let row = db.query_one_raw(stmt(db, sql, vec![connection.into()])).await?;
    row.map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?))).transpose()
}

/// The version of every connection's stored credentials.
pub async fn versions(db: &DatabaseConnection) -> Result<Vec<(String, i64)>, DbErr> {
    let rows =
        db.query_all_raw(stmt(db, "SELECT connection_id, updated_at_ms FROM connection_credentials", vec![])).await?;
    rows.iter().map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?))).collect()
}
