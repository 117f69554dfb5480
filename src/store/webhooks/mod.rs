//! The statements on the webhook tables (migration m0014): subscriptions here, the
//! delivery queue and its log in `deliveries`, the fan-out's cursor in `fanout`. Every
//! read and change of a subscription is scoped to its tenant, so another tenant's id is
//! simply not found.

pub mod deliveries;
pub mod fanout;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement, TransactionTrait, Value};
use serde::Serialize;

/// A subscription as the API shows it: never its secret, only when it was set.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Subscription {
    pub id: String,
    #[serde(skip)]
    pub tenant: String,
    pub url: String,
    pub events: Vec<String>,
    pub created_at_ms: i64,
    pub secret_set_at_ms: i64,
    /// Until when the secret a rotation replaced still signs deliveries.
    pub previous_secret_valid_until_ms: Option<i64>,
}

/// A subscription's signing secrets, sealed: the current one, and the one a rotation
/// replaced with when it stops signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecrets {
    pub current: String,
    pub previous: Option<(String, i64)>,
}

pub(crate) fn stmt(backend: sea_orm::DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(backend, sql, values)
}

const COLUMNS: &str = "id, tenant, url, events, created_at_ms, secret_set_at_ms, previous_until_ms";

fn subscription(r: &sea_orm::QueryResult) -> Result<Subscription, DbErr> {
    let events: String = r.try_get_by_index(3)?;
    Ok(Subscription {
        id: r.try_get_by_index(0)?,
        tenant: r.try_get_by_index(1)?,
        url: r.try_get_by_index(2)?,
        events: serde_json::from_str(&events).map_err(|e| DbErr::Custom(format!("webhook events: {e}")))?,
        created_at_ms: r.try_get_by_index(4)?,
        secret_set_at_ms: r.try_get_by_index(5)?,
        previous_secret_valid_until_ms: r.try_get_by_index(6)?,
    })
}

/// Records `sub` with its sealed secret.
pub async fn insert(db: &DatabaseConnection, sub: &Subscription, sealed: &str) -> Result<(), DbErr> {
    let sql = "INSERT INTO webhook_subscriptions (id, tenant, url, events, secret, created_at_ms, secret_set_at_ms) \
               VALUES ($1, $2, $3, $4, $5, $6, $7)";
    let values: Vec<Value> = vec![
        sub.id.clone().into(),
        sub.tenant.clone().into(),
        sub.url.clone().into(),
        serde_json::to_string(&sub.events).expect("strings serialize").into(),
        sealed.to_owned().into(),
        sub.created_at_ms.into(),
        sub.secret_set_at_ms.into(),
    ];
    db.execute_raw(stmt(db.get_database_backend(), sql, values)).await.map(|_| ())
}

/// `tenant`'s subscriptions, oldest first.
pub async fn list(db: &DatabaseConnection, tenant: &str) -> Result<Vec<Subscription>, DbErr> {
    let sql = format!("SELECT {COLUMNS} FROM webhook_subscriptions WHERE tenant = $1 ORDER BY created_at_ms, id");
    let rows = db.query_all_raw(stmt(db.get_database_backend(), &sql, vec![tenant.to_owned().into()])).await?;
    rows.iter().map(subscription).collect()
}

/// Subscription `id` if it is `tenant`'s.
pub async fn get(db: &impl ConnectionTrait, tenant: &str, id: &str) -> Result<Option<Subscription>, DbErr> {
    let sql = format!("SELECT {COLUMNS} FROM webhook_subscriptions WHERE id = $1 AND tenant = $2");
    let values: Vec<Value> = vec![id.to_owned().into(), tenant.to_owned().into()];
    db.query_one_raw(stmt(db.get_database_backend(), &sql, values)).await?.as_ref().map(subscription).transpose()
}

/// Every subscription of every tenant, for the fan-out (a few per tenant).
pub async fn all(db: &impl ConnectionTrait) -> Result<Vec<Subscription>, DbErr> {
    let sql = format!("SELECT {COLUMNS} FROM webhook_subscriptions");
    db.query_all_raw(stmt(db.get_database_backend(), &sql, vec![])).await?.iter().map(subscription).collect()
}

/// The URL and sealed secrets of subscription `id`, whoever's it is (the delivery worker).
pub async fn target(db: &DatabaseConnection, id: &str) -> Result<Option<(String, SealedSecrets)>, DbErr> {
    let sql = "SELECT url, secret, previous_secret, previous_until_ms FROM webhook_subscriptions WHERE id = $1";
    let row = db.query_one_raw(stmt(db.get_database_backend(), sql, vec![id.to_owned().into()])).await?;
    row.map(|r| {
        let previous: Option<String> = r.try_get_by_index(2)?;
        let until: Option<i64> = r.try_get_by_index(3)?;
        Ok((r.try_get_by_index(0)?, SealedSecrets { current: r.try_get_by_index(1)?, previous: previous.zip(until) }))
    })
    .transpose()
}

/// Deletes `tenant`'s subscription `id` with its deliveries and their log; false if it
/// has no such subscription.
pub async fn delete(db: &DatabaseConnection, tenant: &str, id: &str) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    let backend = txn.get_database_backend();
    let values = || -> Vec<Value> { vec![id.to_owned().into(), tenant.to_owned().into()] };
    let gone = txn
        .execute_raw(stmt(backend, "DELETE FROM webhook_subscriptions WHERE id = $1 AND tenant = $2", values()))
        .await?
        .rows_affected();
    if gone == 0 {
        return Ok(false);
    }
    let attempts = "DELETE FROM webhook_attempts WHERE delivery_id IN \
                    (SELECT id FROM webhook_deliveries WHERE subscription_id = $1 AND tenant = $2)";
    txn.execute_raw(stmt(backend, attempts, values())).await?;
    txn.execute_raw(stmt(
        backend,
        "DELETE FROM webhook_deliveries WHERE subscription_id = $1 AND tenant = $2",
        values(),
    ))
    .await?;
    txn.commit().await?;
    Ok(true)
}

/// Replaces the secret of `tenant`'s subscription `id` with `sealed`; the one it replaces
/// keeps signing until `previous_until_ms`. None if it has no such subscription.
pub async fn rotate(
    db: &DatabaseConnection,
    tenant: &str,
    id: &str,
    sealed: &str,
    now_ms: i64,
    previous_until_ms: i64,
) -> Result<Option<Subscription>, DbErr> {
    let sql = "UPDATE webhook_subscriptions SET previous_secret = secret, previous_until_ms = $1, secret = $2, \
               secret_set_at_ms = $3 WHERE id = $4 AND tenant = $5";
    let values: Vec<Value> = vec![
        previous_until_ms.into(),
        sealed.to_owned().into(),
        now_ms.into(),
        id.to_owned().into(),
        tenant.to_owned().into(),
    ];
    if db.execute_raw(stmt(db.get_database_backend(), sql, values)).await?.rows_affected() == 0 {
        return Ok(None);
    }
    get(db, tenant, id).await
}
