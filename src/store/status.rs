//! Item state changes, written by the StatusActor alone: a batch of updates, their ledger
//! entries and bill applications, and the attempts that begin, in one transaction.

use super::StoreError;
use super::entities::{bill_application, erp_ref, job_item};
use super::exported_bills::ExportedBill;
use super::queries::{Found, ItemError, ItemRead, items_with_ledger};
use super::sql::{Marks, NOT_TERMINAL, ROWS_PER_STATEMENT, padded, returning_item_id};
use crate::domain::{ConnectionId, ErrorKind, ItemId, ItemState};
use crate::util::now_ms;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait, TransactionTrait};

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
    /// The bill an invoice update created (or found) in the ERP, for matching payments.
    pub bills: Vec<ExportedBill>,
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

/// The error code of an attempt that found its connection's credentials revoked (the
/// connection is then parked).
pub const PARKED_CODE: &str = "auth_revoked";

impl ItemUpdate {
    /// A retry because the ERP throttled the attempt (429, nothing done), or because it
    /// refused the connection's credentials for good (the connection is parked, nothing
    /// done): the status writer counts it in `job_items.throttles`, and it does not count
    /// against `retry.max_attempts`.
    pub fn is_throttle(&self) -> bool {
        self.state == ItemState::Retrying
            && self.error.as_ref().is_some_and(|e| {
                e.kind == ErrorKind::Throttled || (e.kind == ErrorKind::Auth && e.code.as_deref() == Some(PARKED_CODE))
            })
    }
}

/// A timeline row of [`apply_updates`] (item, state, attempt, detail); None pads.
type Event = Option<(String, &'static str, i32, Option<String>)>;

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
                Some(e) => (Some(e.kind.as_str()), e.code.clone(), Some(e.message.clone())),
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
        // never overwrites a newer one's state: the attempt number is the fencing token. A
        // retry of a cancelled job's item (its attempt was in flight at the cancel) is
        // `cancelled` instead.
        let sql = format!(
            "UPDATE job_items SET state = CASE WHEN v.column2 = '{retrying}' AND EXISTS \
                 (SELECT 1 FROM job_cancels c WHERE c.job_id = job_items.job_id) THEN '{cancelled}' ELSE v.column2 END, \
               attempts = COALESCE(v.column3, job_items.attempts), erp_id = v.column4, \
               error_kind = v.column5, error_code = v.column6, error_message = v.column7, \
               throttles = job_items.throttles + v.column8, updated_at_ms = {now_mark} \
             FROM (VALUES {}) AS v \
             WHERE job_items.id = v.column1 \
               AND {NOT_TERMINAL} \
               AND (v.column3 IS NULL OR job_items.attempts <= v.column3) \
             RETURNING {returning}",
            rows.join(", "),
            retrying = ItemState::Retrying.as_str(),
            cancelled = ItemState::Cancelled.as_str(),
        );
        for row in txn.query_all_raw(sea_orm::Statement::from_sql_and_values(backend, &sql, values)).await? {
            applied_items.insert(row.try_get_by_index::<String>(0)?);
        }
    }
    let mut refs = Vec::new();
    let mut applications = Vec::new();
    let mut bills = Vec::new();
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
        for b in &u.bills {
            bills.push((u.connection_id.to_string(), u.item_id.to_string(), b.clone()));
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
    super::exported_bills::record(&txn, bills, now).await?;
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
