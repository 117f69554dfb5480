//! Writing the event log (read through `store::events`): the rows a transaction adds
//! beside the change they describe, and the job completions a change of items brings
//! about. Every writer calls [`insert`] in its own transaction and [`super::events::poke`]
//! after its commit, so an event exists if and only if its change committed.

use super::events::Tenants;
use super::sql::{Marks, ROWS_PER_STATEMENT, padded};
use crate::domain::ItemState;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};
use serde_json::json;
use std::collections::BTreeMap;

/// The channel of PostgreSQL's LISTEN/NOTIFY on which writers announce new events.
pub(crate) const CHANNEL: &str = "erpsync_events";

pub const JOB_COMPLETED: &str = "job.completed";
pub const JOB_COMPLETED_WITH_ERRORS: &str = "job.completed_with_errors";
pub const CONNECTION_PARKED: &str = "connection.parked";
pub const CONNECTION_RESUMED: &str = "connection.resumed";

/// The condition that an item is not terminal, as the partial index `job_items_open`
/// (migration m0013) is declared with it.
pub(crate) const OPEN: &str = "state IN ('queued', 'in_progress', 'retrying')";

/// An event to record: the columns of one `events` row but its order and time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewEvent {
    pub tenant: String,
    pub connection: Option<String>,
    pub job_id: Option<String>,
    pub item_id: Option<String>,
    pub kind: String,
    pub data: serde_json::Value,
}

/// The type of the event of an item entering `state`: `item.<state>`.
pub fn item_kind(state: ItemState) -> String {
    format!("item.{}", state.as_str())
}

/// The transaction-id expression a row is ordered by: the writing transaction's id on
/// PostgreSQL, 0 on SQLite (one writer at a time: the row id is commit order there).
fn xid(backend: DbBackend) -> &'static str {
    if backend == DbBackend::Postgres { "pg_current_xact_id()::text::bigint" } else { "0" }
}

/// Adds `events` to the log in `txn`, one statement per 256 (padded like the other
/// multi-row statements, with rows of NULLs the statement skips), and on PostgreSQL
/// notifies the fleet's listeners, which PostgreSQL delivers when `txn` commits.
pub(crate) async fn insert(txn: &impl ConnectionTrait, events: &[NewEvent], now: i64) -> Result<(), DbErr> {
    if events.is_empty() {
        return Ok(());
    }
    let backend = txn.get_database_backend();
    let rows: Vec<Option<&NewEvent>> = events.iter().map(Some).collect();
    for chunk in padded(&rows, ROWS_PER_STATEMENT, Some(&None)) {
        let mut marks = Marks::new(backend);
        let now_mark = marks.next();
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 6 + 1);
        values.push(now.into());
        let marked: Vec<String> = chunk.iter().map(|_| format!("({})", marks.row(6))).collect();
        for e in &chunk {
            values.extend([
                e.map(|e| e.tenant.clone()).into(),
                e.and_then(|e| e.connection.clone()).into(),
                e.and_then(|e| e.job_id.clone()).into(),
                e.and_then(|e| e.item_id.clone()).into(),
                e.map(|e| e.kind.clone()).into(),
                e.map(|e| e.data.to_string()).into(),
            ]);
        }
        let sql = format!(
            "INSERT INTO events (xid, tenant, connection_id, job_id, item_id, kind, data, at_ms) \
             SELECT {xid}, v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, {now_mark} \
             FROM (VALUES {}) AS v WHERE v.column1 IS NOT NULL",
            marked.join(", "),
            xid = xid(backend),
        );
        txn.execute_raw(Statement::from_sql_and_values(backend, &sql, values)).await?;
    }
    if backend == DbBackend::Postgres {
        txn.execute_unprepared(&format!("SELECT pg_notify('{CHANNEL}', '')")).await?;
    }
    Ok(())
}

/// The completion events of those of `jobs` whose every item is now terminal, to be
/// called in the transaction that made some of their items terminal, after it did:
/// `job.completed` when every item succeeded, `job.completed_with_errors` otherwise.
///
/// On PostgreSQL two transactions may finish the last two items of one job at once, and
/// neither would see the other's item terminal: each first locks the job's row, so the
/// later one reads (READ COMMITTED takes a fresh snapshot per statement) after the
/// earlier one committed, and exactly one of them finds the job complete.
pub(crate) async fn completions(
    txn: &impl ConnectionTrait,
    jobs: &[String],
    tenants: &Tenants,
) -> Result<Vec<NewEvent>, DbErr> {
    let mut jobs = jobs.to_vec();
    jobs.sort_unstable();
    jobs.dedup();
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let backend = txn.get_database_backend();
    let mut done: Vec<(String, String)> = Vec::new();
    for chunk in jobs.chunks(ROWS_PER_STATEMENT) {
        let values: Vec<Value> = chunk.iter().map(|j| j.clone().into()).collect();
        if backend == DbBackend::Postgres {
            let mut marks = Marks::new(backend);
            let sql =
                format!("SELECT id FROM jobs WHERE id IN ({}) ORDER BY id FOR NO KEY UPDATE", marks.row(chunk.len()));
            txn.query_all_raw(Statement::from_sql_and_values(backend, &sql, values.clone())).await?;
        }
        let mut marks = Marks::new(backend);
        let sql = format!(
            "SELECT j.id, j.connection_id FROM jobs j WHERE j.id IN ({}) AND NOT EXISTS \
             (SELECT 1 FROM job_items WHERE job_items.job_id = j.id AND {OPEN})",
            marks.row(chunk.len()),
        );
        for row in txn.query_all_raw(Statement::from_sql_and_values(backend, &sql, values)).await? {
            done.push((row.try_get_by_index(0)?, row.try_get_by_index(1)?));
        }
    }
    if done.is_empty() {
        return Ok(Vec::new());
    }
    let mut counts: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for chunk in done.chunks(ROWS_PER_STATEMENT) {
        let mut marks = Marks::new(backend);
        let sql = format!(
            "SELECT job_id, state, COUNT(*) FROM job_items WHERE job_id IN ({}) GROUP BY job_id, state",
            marks.row(chunk.len())
        );
        let values: Vec<Value> = chunk.iter().map(|(j, _)| j.clone().into()).collect();
        for row in txn.query_all_raw(Statement::from_sql_and_values(backend, &sql, values)).await? {
            let (job, state, n): (String, String, i64) =
                (row.try_get_by_index(0)?, row.try_get_by_index(1)?, row.try_get_by_index(2)?);
            counts.entry(job).or_default().insert(state, n);
        }
    }
    Ok(done
        .into_iter()
        .map(|(job, connection)| {
            let counts = counts.remove(&job).unwrap_or_default();
            let total: i64 = counts.values().sum();
            let ok = counts.get(ItemState::Succeeded.as_str()).copied().unwrap_or(0) == total;
            NewEvent {
                tenant: tenants.of(&connection).to_owned(),
                kind: if ok { JOB_COMPLETED } else { JOB_COMPLETED_WITH_ERRORS }.to_owned(),
                data: json!({"total_items": total, "counts": counts}),
                connection: Some(connection),
                job_id: Some(job),
                item_id: None,
            }
        })
        .collect())
}
