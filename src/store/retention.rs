//! What `retention.days` no longer keeps: jobs that ended before the cutoff (every item
//! terminal and none updated since), with their items, documents, timelines, outbox
//! markers and cancel marks, and the `Idempotency-Key`s older than the cutoff.
//!
//! Kept for good, because they guard against exporting twice or paying twice: the ledger
//! (`erp_refs`), the exported bills payments are matched with, and what each payment
//! applied to each bill. Each call deletes one small batch in one short transaction, so
//! the status writer (the only other writer on SQLite) waits for a few milliseconds at
//! most.
//!
//! A redrive may bring an ended item back while a batch is deleted: on SQLite the batch's
//! transaction takes the write lock before it reads (`BEGIN IMMEDIATE`), and on PostgreSQL
//! it locks the batch's items and leaves out any job one of whose items changed meanwhile,
//! so an item is deleted only with everything it has, and only ended.

use super::StoreError;
use super::sql::{Marks, NOT_TERMINAL};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait,
};
use std::collections::HashSet;

/// What one batch deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub jobs: u64,
    pub items: u64,
    pub idempotency_keys: u64,
}

/// Deletes, in one transaction, up to `batch_items` items of the oldest jobs that ended
/// before `cutoff_ms` (with their documents and timelines), the jobs left without items
/// (with their outbox and cancel marks), and up to `batch_items` idempotency keys
/// created before the cutoff. A job of more items than that goes over several batches.
pub async fn sweep(db: &DatabaseConnection, cutoff_ms: i64, batch_items: u32) -> Result<Swept, StoreError> {
    let backend = db.get_database_backend();
    let options =
        TransactionOptions { sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate), ..Default::default() };
    let txn = db.begin_with_options(options).await?;
    let jobs = ended_jobs(&txn, cutoff_ms, batch_items).await?;
    let mut swept = Swept::default();
    if !jobs.is_empty() {
        let mut items = items_of(&txn, &jobs, cutoff_ms, batch_items).await?;
        let mut jobs = jobs;
        if backend == DbBackend::Postgres {
            // Locked now: a job one of whose items changed since it was chosen is kept.
            let changed: HashSet<String> = items.iter().filter(|i| i.changed).map(|i| i.job.clone()).collect();
            jobs.retain(|j| !changed.contains(j));
            items.retain(|i| !changed.contains(&i.job));
        }
        let ids: Vec<String> = items.into_iter().map(|i| i.id).collect();
        if !ids.is_empty() {
            for table in ["item_events", "item_documents"] {
                delete_in(&txn, &format!("DELETE FROM {table} WHERE item_id IN"), "", &ids).await?;
            }
            swept.items = delete_in(&txn, "DELETE FROM job_items WHERE id IN", "", &ids).await?;
        }
        if !jobs.is_empty() {
            let emptied = "AND NOT EXISTS (SELECT 1 FROM job_items WHERE job_items.job_id = jobs.id)";
            swept.jobs = delete_in(&txn, "DELETE FROM jobs WHERE id IN", emptied, &jobs).await?;
            for table in ["job_outbox", "job_cancels"] {
                let gone = format!("AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = {table}.job_id)");
                delete_in(&txn, &format!("DELETE FROM {table} WHERE job_id IN"), &gone, &jobs).await?;
            }
        }
    }
    let mut marks = Marks::new(backend);
    let sql = format!(
        "DELETE FROM job_idempotency WHERE (tenant, idempotency_key) IN \
           (SELECT tenant, idempotency_key FROM job_idempotency WHERE created_at_ms < {} LIMIT {batch_items})",
        marks.next()
    );
    swept.idempotency_keys =
        txn.execute_raw(Statement::from_sql_and_values(backend, &sql, [cutoff_ms.into()])).await?.rows_affected();
    txn.commit().await?;
    Ok(swept)
}

/// The oldest jobs that ended before the cutoff — every item terminal and none updated
/// since — as many as hold about `batch_items` items, and at least one.
async fn ended_jobs(txn: &DatabaseTransaction, cutoff_ms: i64, batch_items: u32) -> Result<Vec<String>, StoreError> {
    let backend = txn.get_database_backend();
    let mut marks = Marks::new(backend);
    let sql = format!(
        "SELECT jobs.id, jobs.total_items FROM jobs WHERE jobs.created_at_ms < {cutoff} \
           AND NOT EXISTS (SELECT 1 FROM job_items WHERE job_items.job_id = jobs.id \
             AND ({NOT_TERMINAL} OR job_items.updated_at_ms >= {cutoff_again})) \
         ORDER BY jobs.created_at_ms LIMIT {batch_items}",
        cutoff = marks.next(),
        cutoff_again = marks.next(),
    );
    let rows =
        txn.query_all_raw(Statement::from_sql_and_values(backend, &sql, [cutoff_ms.into(), cutoff_ms.into()])).await?;
    let mut jobs = Vec::new();
    let mut items: i64 = 0;
    for row in rows {
        let total: i64 = row.try_get_by_index::<i32>(1)?.into();
        if !jobs.is_empty() && items + total > i64::from(batch_items) {
            break;
        }
        items += total;
        jobs.push(row.try_get_by_index::<String>(0)?);
    }
    Ok(jobs)
}

/// An item of a job chosen for deletion; `changed` when it is no longer ended before the
/// cutoff (read under the row lock on PostgreSQL).
struct Doomed {
    id: String,
    job: String,
    changed: bool,
}

/// Up to `limit` items of `jobs`, locked on PostgreSQL.
async fn items_of(
    txn: &DatabaseTransaction,
    jobs: &[String],
    cutoff_ms: i64,
    limit: u32,
) -> Result<Vec<Doomed>, StoreError> {
    let backend = txn.get_database_backend();
    // Markers in the order they appear in the text: SQLite's are anonymous.
    let mut marks = Marks::new(backend);
    let cutoff = marks.next();
    let list: Vec<String> = jobs.iter().map(|_| marks.next()).collect();
    let lock = if backend == DbBackend::Postgres { " FOR UPDATE" } else { "" };
    let sql = format!(
        "SELECT id, job_id, CASE WHEN ({NOT_TERMINAL} OR updated_at_ms >= {cutoff}) THEN 1 ELSE 0 END \
         FROM job_items WHERE job_id IN ({}) LIMIT {limit}{lock}",
        list.join(", ")
    );
    let mut values: Vec<sea_orm::Value> = vec![cutoff_ms.into()];
    values.extend(jobs.iter().map(|j| sea_orm::Value::from(j.clone())));
    let rows = txn.query_all_raw(Statement::from_sql_and_values(backend, &sql, values)).await?;
    rows.into_iter()
        .map(|row| {
            Ok(Doomed {
                id: row.try_get_by_index(0)?,
                job: row.try_get_by_index(1)?,
                changed: row.try_get_by_index::<i32>(2)? != 0,
            })
        })
        .collect()
}

/// Runs `{head} ({ids…}) {tail}`; the rows it deleted.
async fn delete_in(txn: &DatabaseTransaction, head: &str, tail: &str, ids: &[String]) -> Result<u64, StoreError> {
    let backend = txn.get_database_backend();
    let mut marks = Marks::new(backend);
    let list: Vec<String> = ids.iter().map(|_| marks.next()).collect();
    let sql = format!("{head} ({}) {tail}", list.join(", "));
    let values: Vec<sea_orm::Value> = ids.iter().map(|j| j.clone().into()).collect();
    Ok(txn.execute_raw(Statement::from_sql_and_values(backend, &sql, values)).await?.rows_affected())
}
