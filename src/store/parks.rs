//! Parked connections: a connection that cannot work until an operator acts (its
//! credentials were revoked, or an operator parked it) has a row in `connection_parks`,
//! which every daemon of the fleet follows. Its items wait without being attempted: a
//! message received for it is *shelved* — the item flagged for the outbox
//! (`enqueued = false`) and the message deleted — and the outbox sweep, which skips
//! parked connections, sends it again once the connection is resumed. So waiting costs
//! no queue receives (on SQS every receive counts towards the dead-letter redrive) and
//! no attempts, however long the connection stays parked.

use super::event_log::NewEvent;
use super::sql::{Marks, NOT_TERMINAL};
use crate::domain::ItemId;
use crate::util::now_ms;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement, TransactionTrait, Value};

/// Why a connection is parked: a closed set, shown in the job status and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParkReason {
    /// The ERP refused the connection's credentials for good.
    AuthRevoked,
    /// An operator parked it (`erpsync connections park`).
    Operator,
}

impl ParkReason {
    pub const ALL: [ParkReason; 2] = [ParkReason::AuthRevoked, ParkReason::Operator];

    pub fn as_str(self) -> &'static str {
        match self {
            ParkReason::AuthRevoked => "auth_revoked",
            ParkReason::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<ParkReason> {
        ParkReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A parked connection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Park {
    pub connection_id: String,
    pub reason: ParkReason,
    /// What happened, in words (never a secret).
    pub detail: String,
    pub parked_at_ms: i64,
}

fn stmt(db: &DatabaseConnection, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(db.get_database_backend(), sql, values)
}

/// Parks `connection` (of `tenant`), with its `connection.parked` event; returns false if
/// it was parked already (its first reason stays).
pub async fn park(
    db: &DatabaseConnection,
    tenant: &str,
    connection: &str,
    reason: ParkReason,
    detail: &str,
) -> Result<bool, DbErr> {
    let sql = "INSERT INTO connection_parks (connection_id, reason, detail, parked_at_ms) VALUES ($1, $2, $3, $4) \
               ON CONFLICT (connection_id) DO NOTHING";
    let values = vec![connection.into(), reason.as_str().into(), detail.into(), now_ms().into()];
    let data = serde_json::json!({"reason": reason.as_str(), "detail": detail});
    with_event(db, stmt(db, sql, values), tenant, connection, super::event_log::CONNECTION_PARKED, data).await
}

/// Resumes `connection` (of `tenant`), with its `connection.resumed` event; returns false
/// if it was not parked.
pub async fn resume(db: &DatabaseConnection, tenant: &str, connection: &str) -> Result<bool, DbErr> {
    let sql = "DELETE FROM connection_parks WHERE connection_id = $1";
    let data = serde_json::json!({});
    with_event(
        db,
        stmt(db, sql, vec![connection.into()]),
        tenant,
        connection,
        super::event_log::CONNECTION_RESUMED,
        data,
    )
    .await
}

/// Runs `change`, and if it changed a row records event `kind`, in one transaction.
async fn with_event(
    db: &DatabaseConnection,
    change: Statement,
    tenant: &str,
    connection: &str,
    kind: &str,
    data: serde_json::Value,
) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    if txn.execute_raw(change).await?.rows_affected() != 1 {
        return Ok(false);
    }
    let event = NewEvent {
        tenant: tenant.to_owned(),
        connection: Some(connection.to_owned()),
        job_id: None,
        item_id: None,
        kind: kind.to_owned(),
        data,
    };
    super::event_log::insert(&txn, &[event], now_ms()).await?;
    txn.commit().await?;
    super::events::poke();
    Ok(true)
}

/// Every parked connection, by id.
pub async fn all(db: &DatabaseConnection) -> Result<Vec<Park>, DbErr> {
    let sql = "SELECT connection_id, reason, detail, parked_at_ms FROM connection_parks ORDER BY connection_id";
    let rows = db.query_all_raw(stmt(db, sql, vec![])).await?;
    rows.iter()
        .map(|r| {
            let reason: String = r.try_get_by_index(1)?;
            Ok(Park {
                connection_id: r.try_get_by_index(0)?,
                // A reason this build does not know is still a park: an operator's.
                reason: ParkReason::parse(&reason).unwrap_or(ParkReason::Operator),
                detail: r.try_get_by_index(2)?,
                parked_at_ms: r.try_get_by_index(3)?,
            })
        })
        .collect()
}

/// The park of `connection`, if it is parked.
pub async fn of(db: &DatabaseConnection, connection: &str) -> Result<Option<Park>, DbErr> {
    Ok(all(db).await?.into_iter().find(|p| p.connection_id == connection))
}

/// Shelves an item of a parked connection: flagged for the outbox sweep, which sends it
/// again once the connection is resumed. Returns false if the item is terminal (or
/// unknown): its message is then simply deleted.
pub async fn shelve(db: &DatabaseConnection, item: ItemId) -> Result<bool, DbErr> {
    let mut marks = Marks::new(db.get_database_backend());
    let sql = format!("UPDATE job_items SET enqueued = false WHERE id = {} AND {NOT_TERMINAL}", marks.next());
    Ok(db.execute_raw(stmt(db, &sql, vec![item.to_string().into()])).await?.rows_affected() == 1)
}

/// The outbox's condition that an item's connection is not parked.
pub(super) const NOT_PARKED: &str = "connection_id NOT IN (SELECT connection_id FROM connection_parks)";
