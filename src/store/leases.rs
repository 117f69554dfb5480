//! The statements on `erp_leases`: a connection's concurrency slots, shared by every
//! daemon on the database. Which slots a daemon keeps, hands over or gives back is
//! `limits::lease`'s business; this file only reads and writes the rows.

use crate::util::now_ms;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, Value};
use std::collections::HashSet;
use std::time::Duration;

/// The PostgreSQL channel a released slot is announced on, its payload the connection.
pub const NOTIFY_CHANNEL: &str = "erpsync_leases";

/// A slot as granted: every grant bumps the slot's `token`, so a lease is named by slot
/// and token together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    pub slot: i32,
    pub token: i64,
}

fn stmt(db: &DatabaseConnection, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(db.get_database_backend(), sql, values)
}

/// Creates `connection`'s slot rows, `0..limit` (idempotent).
pub async fn ensure_slots(db: &DatabaseConnection, connection: &str, limit: u32) -> Result<(), DbErr> {
    for slot in 0..limit as i32 {
        db.execute_raw(stmt(
            db,
            "INSERT INTO erp_leases (connection_id, slot, holder, token, expires_at_ms) VALUES ($1, $2, NULL, 0, 0) \
             ON CONFLICT (connection_id, slot) DO NOTHING",
            vec![connection.to_owned().into(), slot.into()],
        ))
        .await?;
    }
    Ok(())
}

/// Takes a free or expired slot below `limit` for `holder` until `ttl` from now, with one
/// `UPDATE … RETURNING` (row-locked with `SKIP LOCKED` on PostgreSQL); None if every slot
/// is held.
pub async fn take(
    db: &DatabaseConnection,
    connection: &str,
    holder: &str,
    limit: u32,
    ttl: Duration,
) -> Result<Option<Lease>, DbErr> {
    let now = now_ms();
    let lock = if db.get_database_backend() == DbBackend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!(
        "UPDATE erp_leases SET holder = $1, token = token + 1, expires_at_ms = $2 \
         WHERE connection_id = $3 AND slot = (SELECT slot FROM erp_leases \
             WHERE connection_id = $3 AND slot < $4 AND (holder IS NULL OR expires_at_ms < $5) \
             ORDER BY slot LIMIT 1{lock}) \
         RETURNING slot, token"
    );
    let row = db
        .query_one_raw(stmt(
            db,
            &sql,
            vec![
                holder.to_owned().into(),
                (now + ttl.as_millis() as i64).into(),
                connection.to_owned().into(),
                (limit as i32).into(),
                now.into(),
            ],
        ))
        .await?;
    Ok(match row {
        Some(r) => Some(Lease { slot: r.try_get_by_index(0)?, token: r.try_get_by_index(1)? }),
        None => None,
    })
}

/// Gives `lease` back if `holder` still holds it, and on PostgreSQL announces the release
/// on [`NOTIFY_CHANNEL`] so waiting daemons retry at once instead of on their next poll.
pub async fn release(db: &DatabaseConnection, connection: &str, holder: &str, lease: Lease) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        db,
        "UPDATE erp_leases SET holder = NULL, expires_at_ms = 0 \
         WHERE connection_id = $1 AND slot = $2 AND token = $3 AND holder = $4",
        vec![connection.to_owned().into(), lease.slot.into(), lease.token.into(), holder.to_owned().into()],
    ))
    .await?;
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_raw(stmt(db, "SELECT pg_notify($1, $2)", vec![NOTIFY_CHANNEL.into(), connection.to_owned().into()]))
            .await?;
    }
    Ok(())
}

/// Extends `held` to `ttl` from now, in one statement, where `holder` still holds them;
/// returns those it extended (the others lapsed and may be someone else's).
pub async fn renew(
    db: &DatabaseConnection,
    connection: &str,
    holder: &str,
    ttl: Duration,
    held: &[Lease],
) -> Result<HashSet<Lease>, DbErr> {
    if held.is_empty() {
        return Ok(HashSet::new());
    }
    let pairs: Vec<String> =
        (0..held.len()).map(|i| format!("(slot = ${} AND token = ${})", 4 + 2 * i, 5 + 2 * i)).collect();
    let sql = format!(
        "UPDATE erp_leases SET expires_at_ms = $1 WHERE connection_id = $2 AND holder = $3 AND ({}) \
         RETURNING slot, token",
        pairs.join(" OR ")
    );
    let mut values: Vec<Value> =
        vec![(now_ms() + ttl.as_millis() as i64).into(), connection.to_owned().into(), holder.to_owned().into()];
    for l in held {
        values.push(l.slot.into());
        values.push(l.token.into());
    }
    let rows = db.query_all_raw(stmt(db, &sql, values)).await?;
    Ok(rows
        .iter()
        .filter_map(|r| Some(Lease { slot: r.try_get_by_index(0).ok()?, token: r.try_get_by_index(1).ok()? }))
        .collect())
}
