//! The webhook delivery queue and its log. A delivery is `pending` until an attempt is
//! answered with a 2xx (`delivered`) or its retry window closes (`failed`).
//!
//! Workers of every daemon claim due deliveries with one statement that marks them with
//! a claim token and a lease and counts the attempt; on PostgreSQL the rows are chosen
//! `FOR UPDATE SKIP LOCKED`, so two daemons claiming at once get different ones, and
//! SQLite runs one writer at a time anyway. A claim whose daemon died lapses at its lease
//! and the delivery is claimed again. The outcome is written only while the claim is
//! still the delivery's own (`WHERE claim = …`): a redelivery asked for meanwhile, or a
//! lapsed claim taken over, wins over the late answer.

use super::stmt;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, TransactionTrait, Value};
use serde::Serialize;

/// `webhook_deliveries.state`.
pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const FAILED: &str = "failed";

/// A delivery to queue: one event for one subscription.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub subscription_id: String,
    pub tenant: String,
    /// What identifies the event the delivery carries (its event-log cursor): a
    /// subscription gets each event once.
    pub event_key: String,
    pub event_type: String,
    /// The request body, exactly as it is signed and sent on every attempt.
    pub body: String,
}

/// The `webhook-id` of a new delivery: `msg_` and a time-ordered UUID's hex. Retries and
/// redeliveries keep it, so a receiver can use it as its idempotency key.
pub fn new_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

/// Queues `list`, skipping any event a subscription already has; each is due at
/// `now_ms` and retried until `now_ms + window_ms`. Answers how many were queued.
pub async fn insert(c: &impl ConnectionTrait, list: &[NewDelivery], now_ms: i64, window_ms: i64) -> Result<u64, DbErr> {
    let mut queued = 0;
    // A bounded number of rows per statement keeps it under every backend's parameter limit.
    for chunk in list.chunks(500) {
        let mut sql = String::from(
            "INSERT INTO webhook_deliveries (id, subscription_id, tenant, event_key, event_type, body, state, \
             attempts, next_attempt_at_ms, retry_until_ms, created_at_ms) VALUES ",
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 9);
        for (i, d) in chunk.iter().enumerate() {
            let n = i * 9;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, '{PENDING}', 0, ${}, ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5,
                n + 6,
                n + 7,
                n + 8,
                n + 9
            ));
            values.extend::<[Value; 9]>([
                new_id().into(),
                d.subscription_id.clone().into(),
                d.tenant.clone().into(),
                d.event_key.clone().into(),
                d.event_type.clone().into(),
                d.body.clone().into(),
                now_ms.into(),
                (now_ms + window_ms).into(),
                now_ms.into(),
            ]);
        }
        // No conflict target: SQLite checks a named one against the schema a pooled
        // connection cached, and one that cached it before this table's migration refuses
        // the statement; the only unique keys are the id (random) and the event's.
        sql.push_str(" ON CONFLICT DO NOTHING");
        queued += c.execute_raw(stmt(c.get_database_backend(), &sql, values)).await?.rows_affected();
    }
    Ok(queued)
}

/// A delivery a worker has claimed for one attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub subscription_id: String,
    pub event_type: String,
    pub body: String,
    /// This attempt's number (1 for the first).
    pub attempt: i32,
    pub retry_until_ms: i64,
    /// The claim token: the outcome is recorded only while it is still the delivery's.
    pub claim: String,
}

/// Claims up to `limit` due deliveries for `lease_ms`, counting an attempt on each.
pub async fn claim(db: &DatabaseConnection, limit: u32, now_ms: i64, lease_ms: i64) -> Result<Vec<Claimed>, DbErr> {
    let backend = db.get_database_backend();
    let lock = if backend == DbBackend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!(
        "UPDATE webhook_deliveries SET claim = $1, claim_until_ms = $2, attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM webhook_deliveries WHERE state = '{PENDING}' AND next_attempt_at_ms <= $3 \
         AND (claim_until_ms IS NULL OR claim_until_ms < $3) ORDER BY next_attempt_at_ms LIMIT $4{lock}) \
         RETURNING id, subscription_id, event_type, body, attempts, retry_until_ms"
    );
    let claim = uuid::Uuid::new_v4().simple().to_string();
    let values: Vec<Value> =
        vec![claim.clone().into(), (now_ms + lease_ms).into(), now_ms.into(), i64::from(limit).into()];
    let rows = db.query_all_raw(stmt(backend, &sql, values)).await?;
    rows.iter()
        .map(|r| {
            Ok(Claimed {
                id: r.try_get_by_index(0)?,
                subscription_id: r.try_get_by_index(1)?,
                event_type: r.try_get_by_index(2)?,
                body: r.try_get_by_index(3)?,
                attempt: r.try_get_by_index(4)?,
                retry_until_ms: r.try_get_by_index(5)?,
                claim: claim.clone(),
            })
        })
        .collect()
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub at_ms: i64,
    /// The receiver's status code; None when there was no answer (refused, timed out).
    pub status: Option<i32>,
    /// Why the attempt failed, when it did.
    pub error: Option<String>,
    pub latency_ms: i64,
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    RetryAt(i64),
    Failed,
}

/// Records the attempt of `claimed` and what follows it; false (nothing written) when the
/// claim is no longer the delivery's.
pub async fn record(db: &DatabaseConnection, claimed: &Claimed, a: &AttemptRecord, next: Next) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    let backend = txn.get_database_backend();
    let (state, next_at, delivered_at) = match next {
        Next::Delivered => (DELIVERED, a.at_ms, Some(a.at_ms)),
        Next::RetryAt(at) => (PENDING, at, None),
        Next::Failed => (FAILED, a.at_ms, None),
    };
    let sql = "UPDATE webhook_deliveries SET state = $1, next_attempt_at_ms = $2, last_status = $3, \
               last_error = $4, last_attempt_at_ms = $5, delivered_at_ms = $6, claim = NULL, \
               claim_until_ms = NULL WHERE id = $7 AND claim = $8";
    let values: Vec<Value> = vec![
        state.into(),
        next_at.into(),
        a.status.into(),
        a.error.clone().into(),
        a.at_ms.into(),
        delivered_at.into(),
        claimed.id.clone().into(),
        claimed.claim.clone().into(),
    ];
    if txn.execute_raw(stmt(backend, sql, values)).await?.rows_affected() == 0 {
        return Ok(false);
    }
    let sql = "INSERT INTO webhook_attempts (delivery_id, attempt, at_ms, status, error, latency_ms) \
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";
    let values: Vec<Value> = vec![
        claimed.id.clone().into(),
        claimed.attempt.into(),
        a.at_ms.into(),
        a.status.into(),
        a.error.clone().into(),
        a.latency_ms.into(),
    ];
    txn.execute_raw(stmt(backend, sql, values)).await?;
    txn.commit().await?;
    Ok(true)
}

/// One attempt, as the delivery log shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AttemptView {
    pub attempt: i32,
    pub at_ms: i64,
    pub status: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i64,
}

/// One delivery, as the delivery log shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct DeliveryView {
    /// Also the `webhook-id` header of every attempt.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at_ms: Option<i64>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
    pub attempt_log: Vec<AttemptView>,
}

const VIEW: &str = "id, event_type, state, attempts, next_attempt_at_ms, last_status, last_error, created_at_ms, \
                    delivered_at_ms";

fn view(r: &sea_orm::QueryResult) -> Result<DeliveryView, DbErr> {
    let state: String = r.try_get_by_index(2)?;
    let next: i64 = r.try_get_by_index(4)?;
    Ok(DeliveryView {
        id: r.try_get_by_index(0)?,
        event_type: r.try_get_by_index(1)?,
        next_attempt_at_ms: (state == PENDING).then_some(next),
        state,
        attempts: r.try_get_by_index(3)?,
        last_status: r.try_get_by_index(5)?,
        last_error: r.try_get_by_index(6)?,
        created_at_ms: r.try_get_by_index(7)?,
        delivered_at_ms: r.try_get_by_index(8)?,
        attempt_log: Vec::new(),
    })
}

/// Subscription `subscription`'s deliveries, newest first, after the delivery `before`
/// (a cursor: the last id of the previous page), each with its attempts.
pub async fn page(
    db: &DatabaseConnection,
    subscription: &str,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<DeliveryView>, DbErr> {
    let backend = db.get_database_backend();
    let mut values: Vec<Value> = vec![subscription.to_owned().into()];
    let mut sql = format!("SELECT {VIEW} FROM webhook_deliveries WHERE subscription_id = $1");
    if let Some(b) = before {
        values.push(b.to_owned().into());
        sql.push_str(" AND id < $2");
    }
    values.push(i64::from(limit).into());
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", values.len()));
    let mut list: Vec<DeliveryView> =
        db.query_all_raw(stmt(backend, &sql, values)).await?.iter().map(view).collect::<Result<_, _>>()?;
    with_attempts(db, &mut list).await?;
    Ok(list)
}

/// Fills in the attempts of each of `list`.
async fn with_attempts(db: &DatabaseConnection, list: &mut [DeliveryView]) -> Result<(), DbErr> {
    if list.is_empty() {
        return Ok(());
    }
    let marks: Vec<String> = (1..=list.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT delivery_id, attempt, at_ms, status, error, latency_ms FROM webhook_attempts \
         WHERE delivery_id IN ({}) ORDER BY delivery_id, attempt",
        marks.join(", ")
    );
    let ids: Vec<Value> = list.iter().map(|d| d.id.clone().into()).collect();
    for r in db.query_all_raw(stmt(db.get_database_backend(), &sql, ids)).await? {
        let id: String = r.try_get_by_index(0)?;
        let a = AttemptView {
            attempt: r.try_get_by_index(1)?,
            at_ms: r.try_get_by_index(2)?,
            status: r.try_get_by_index(3)?,
            error: r.try_get_by_index(4)?,
            latency_ms: r.try_get_by_index(5)?,
        };
        if let Some(d) = list.iter_mut().find(|d| d.id == id) {
            d.attempt_log.push(a);
        }
    }
    Ok(())
}

/// Delivery `id` of subscription `subscription`, with its attempts.
pub async fn get(db: &DatabaseConnection, subscription: &str, id: &str) -> Result<Option<DeliveryView>, DbErr> {
    let sql = format!("SELECT {VIEW} FROM webhook_deliveries WHERE subscription_id = $1 AND id = $2");
    let values: Vec<Value> = vec![subscription.to_owned().into(), id.to_owned().into()];
    let row = db.query_one_raw(stmt(db.get_database_backend(), &sql, values)).await?;
    let mut found: Vec<DeliveryView> = row.as_ref().map(view).transpose()?.into_iter().collect();
    with_attempts(db, &mut found).await?;
    Ok(found.pop())
}

/// Queues delivery `id` of `subscription` again at once, with a fresh retry window and
/// the same `webhook-id`, whatever state it was in; an attempt in flight is disowned.
/// False if there is no such delivery.
pub async fn redeliver(
    db: &DatabaseConnection,
    subscription: &str,
    id: &str,
    now_ms: i64,
    window_ms: i64,
) -> Result<bool, DbErr> {
    let sql = format!(
        "UPDATE webhook_deliveries SET state = '{PENDING}', next_attempt_at_ms = $1, retry_until_ms = $2, \
         claim = NULL, claim_until_ms = NULL WHERE subscription_id = $3 AND id = $4"
    );
    let values: Vec<Value> =
        vec![now_ms.into(), (now_ms + window_ms).into(), subscription.to_owned().into(), id.to_owned().into()];
    Ok(db.execute_raw(stmt(db.get_database_backend(), &sql, values)).await?.rows_affected() > 0)
}

/// Pending deliveries (due or not) over every subscription: the queue's depth.
pub async fn pending(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let sql = format!("SELECT COUNT(*) FROM webhook_deliveries WHERE state = '{PENDING}'");
    let row = db.query_one_raw(stmt(db.get_database_backend(), &sql, vec![])).await?;
    let n: i64 = row.map(|r| r.try_get_by_index(0)).transpose()?.unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}
