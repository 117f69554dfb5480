//! Reads: an item and what an attempt starts with, the ledger, and the job summaries and
//! timelines the API and CLI show.

use super::StoreError;
use super::entities::{erp_ref, item_event, job, job_item};
use super::sql::{Marks, ROWS_PER_STATEMENT, padded};
use crate::domain::{ConnectionId, ErrorKind, ItemId, ItemState, JobId, JobState};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;

/// What went wrong with an item's latest attempt, as recorded with its state.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ItemError {
    pub kind: ErrorKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub message: String,
}

impl ItemError {
    pub fn new(kind: ErrorKind, code: Option<String>, message: impl Into<String>) -> ItemError {
        ItemError { kind, code, message: message.into() }
    }
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ItemSummary {
    pub item_id: String,
    pub source_id: String,
    pub state: ItemState,
    pub attempts: i32,
    /// How many of the attempts the ERP throttled (they do not count against
    /// `retry.max_attempts`).
    #[serde(skip_serializing_if = "is_zero")]
    #[schema(required = false)]
    pub throttled: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erp_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobSummary {
    pub job_id: String,
    pub connection_id: String,
    #[schema(value_type = crate::domain::Op)]
    pub op: String,
    pub state: JobState,
    pub total_items: i32,
    pub created_at_ms: i64,
    pub counts: std::collections::BTreeMap<String, u64>,
    /// While the job's connection is parked and the job has items left: why, since when.
    /// Its items wait, unattempted, until the connection is resumed.
    pub parked: Option<super::parks::Park>,
    pub items: Vec<ItemSummary>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ItemEventRow {
    pub at_ms: i64,
    pub state: String,
    pub attempt: i32,
    pub detail: Option<String>,
}

fn parse_state(s: &str) -> Result<ItemState, StoreError> {
    ItemState::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown item state {s:?}")))
}

/// An item's row.
pub async fn item(db: &DatabaseConnection, id: &ItemId) -> Result<Option<job_item::Model>, StoreError> {
    Ok(job_item::Entity::find_by_id(id.to_string()).one(db).await?)
}

/// `job_items.id, job_items.job_id, …`: the item's columns as this build knows them, never
/// `job_items.*`. SQLite re-prepares a cached statement whose tables changed (a column
/// added by a newer release's `erpsync migrate`, or a pool connection that prepared it
/// with the schema it held before the last migration), and a `*` then yields a row wider
/// than the columns sqlx cached at the first prepare: its worker thread panics reading
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

/// The connection of job `id`; None if the job is unknown.
pub async fn job_connection(db: &DatabaseConnection, id: &JobId) -> Result<Option<String>, StoreError> {
    Ok(job::Entity::find_by_id(id.to_string()).one(db).await?.map(|j| j.connection_id))
}

/// The connection of item `id`; None if the item is unknown.
pub async fn item_connection(db: &DatabaseConnection, id: &ItemId) -> Result<Option<String>, StoreError> {
    Ok(item(db, id).await?.map(|i| i.connection_id))
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
            error: match it.error_kind {
                Some(kind) => Some(ItemError {
                    kind: ErrorKind::parse(&kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("unknown error kind {kind:?}")))?,
                    code: it.error_code,
                    message: it.error_message.unwrap_or_default(),
                }),
                None => None,
            },
        });
    }
    let unfinished = pairs.iter().any(|(state, _)| !state.is_terminal());
    let parked = if unfinished { super::parks::of(db, &job.connection_id).await? } else { None };
    Ok(Some(JobSummary {
        job_id: job.id,
        parked,
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
/// as a row (it would be one more row per item on every `POST /v1/jobs`): it is the item's
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
