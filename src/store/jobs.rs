//! New jobs and the outbox: recording a job with its items, the markers and flags that
//! tell the outbox sweep which items might not be on the queue, and the redrive of
//! dead-lettered items.

use super::StoreError;
use super::entities::{item_event, job_item};
use super::event_log::{self, NewEvent, item_kind};
use super::events::Tenants;
use super::sql::{Marks, Script};
use super::sqlite::JobWriter;
use crate::domain::{ConnectionId, ItemId, ItemState, JobId, Op};
use crate::util::now_ms;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use std::time::Duration;

/// A job to record, with its items.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: JobId,
    pub connection_id: ConnectionId,
    pub op: Op,
    pub items: Vec<NewItem>,
}

#[derive(Debug, Clone)]
pub struct NewItem {
    pub id: ItemId,
    pub source_id: String,
    /// The document as JSON text (serialized once, stored and sent as is).
    pub payload: String,
}

/// How a new job's items reach the queue, as recorded with them. Whatever the way, an
/// item that might not be on the queue is found by the outbox sweep ([`unsent_items`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueuing {
    /// Their messages commit in the job's transaction (the embedded queue).
    WithTheJob,
    /// They are sent once the job has committed (SQS). One marker row in `job_outbox`
    /// stands for all of them until the sender reports what it sent ([`job_sent`]); a
    /// marker its sender never cleared (a crash) hands the job's items to the outbox
    /// sweep ([`expire_outbox_markers`]). So the happy path deletes one small row rather
    /// than rewriting every item row, payload and all, to flip a flag.
    AfterCommit,
    /// Not sent: each item is flagged for the outbox sweep to send.
    ByTheOutbox,
}

/// Records a new job with its items (state `queued`), in one transaction.
pub async fn insert_job(db: &DatabaseConnection, job: &NewJob, how: Enqueuing) -> Result<(), StoreError> {
    let mut script = Script::new(db.get_database_backend());
    push_job_insert(&mut script, job, how);
    Ok(script.run_in_transaction(db).await?)
}

/// [`insert_job`] on `writer`'s connection (SQLite).
pub async fn insert_job_on(
    writer: &JobWriter,
    db: &DatabaseConnection,
    job: &NewJob,
    how: Enqueuing,
) -> Result<(), StoreError> {
    let mut script = Script::new(db.get_database_backend());
    push_job_insert(&mut script, job, how);
    Ok(script.run_in_transaction_on(writer, db).await?)
}

/// Adds the statements recording a new job to `script`, which the caller runs in its
/// transaction, so that the embedded queue's messages can commit with it. New rows only:
/// no item state changes here, which stay the StatusActor's.
pub(crate) fn push_job_insert(script: &mut Script, job: &NewJob, how: Enqueuing) {
    use sea_orm::Value;
    let now = now_ms();
    let backend = script.backend();
    let (job_id, connection, op) = (job.id.to_string(), job.connection_id.to_string(), job.op.as_str());
    let mut marks = Marks::new(backend);
    script.push(
        &format!("INSERT INTO jobs (id, connection_id, op, total_items, created_at_ms) VALUES ({})", marks.row(5)),
        vec![job_id.clone().into(), connection.clone().into(), op.into(), (job.items.len() as i32).into(), now.into()],
    );
    if how == Enqueuing::AfterCommit {
        let mut marks = Marks::new(backend);
        script.push(
            &format!("INSERT INTO job_outbox (job_id, created_at_ms) VALUES ({})", marks.row(2)),
            vec![job_id.clone().into(), now.into()],
        );
    }
    let enqueued = how != Enqueuing::ByTheOutbox;
    // Written by hand rather than through the entity: two statements per 200 items, with
    // anonymous markers on SQLite (see `Marks`). What every item of the job shares is bound
    // once per statement, as a one-row table whose markers come first in the text, and
    // each row binds only its own values, not the shared ones again: every bound text is
    // copied by SQLite. The `queued` event is not stored: it is the item's creation
    // (see `item_events`). The documents go to `item_documents` (see
    // `migration::m0006_item_documents`); on PostgreSQL the item row keeps a copy for
    // daemons of earlier releases in the fleet.
    let legacy_copy = backend == sea_orm::DbBackend::Postgres;
    let per_row = if legacy_copy { 3 } else { 2 };
    for chunk in job.items.chunks(200) {
        let mut marks = Marks::new(backend);
        let rows: Vec<String> = chunk.iter().map(|_| format!("({})", marks.row(2))).collect();
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 2);
        for it in chunk {
            values.extend([it.id.to_string().into(), it.payload.clone().into()]);
        }
        script.push(&format!("INSERT INTO item_documents (item_id, payload) VALUES {}", rows.join(", ")), values);
        let mut marks = Marks::new(backend);
        let shared = marks.row(4);
        let rows: Vec<String> = chunk.iter().map(|_| format!("({})", marks.row(per_row))).collect();
        let mut values: Vec<Value> = Vec::with_capacity(4 + chunk.len() * per_row);
        values.extend([job_id.clone().into(), connection.clone().into(), enqueued.into(), now.into()]);
        for it in chunk {
            values.extend([it.id.to_string().into(), it.source_id.clone().into()]);
            if legacy_copy {
                values.push(it.payload.clone().into());
            }
        }
        // `op` and `state` are this program's own constants, written into the text. (An
        // anonymous SQLite marker binds once per appearance, and `now` is needed twice.)
        let sql = format!(
            "INSERT INTO job_items (id, job_id, connection_id, op, source_id, payload, state, enqueued, \
             created_at_ms, updated_at_ms, attempts) \
             SELECT v.column1, s.column1, s.column2, '{op}', v.column2, {payload}, '{queued}', s.column3, \
               s.column4, s.column4, 0 \
             FROM (VALUES ({shared})) AS s CROSS JOIN (VALUES {}) AS v",
            rows.join(", "),
            payload = if legacy_copy { "v.column3" } else { "''" },
            queued = ItemState::Queued.as_str(),
        );
        script.push(&sql, values);
    }
}

/// The sender of a job recorded [`Enqueuing::AfterCommit`] reports: the items in `unsent`
/// are flagged for the outbox sweep and the job's marker goes, in one transaction.
pub async fn job_sent(db: &DatabaseConnection, job: &JobId, unsent: &[ItemId]) -> Result<(), StoreError> {
    let mut script = Script::new(db.get_database_backend());
    for chunk in unsent.chunks(500) {
        let mut marks = Marks::new(script.backend());
        let sql = format!("UPDATE job_items SET enqueued = false WHERE id IN ({})", marks.row(chunk.len()));
        script.push(&sql, chunk.iter().map(|i| i.to_string().into()).collect());
    }
    let mut marks = Marks::new(script.backend());
    script.push(&format!("DELETE FROM job_outbox WHERE job_id = {}", marks.next()), vec![job.to_string().into()]);
    Ok(script.run_in_transaction(db).await?)
}

/// Markers older than `age` whose sender never reported (it crashed, or its report was
/// lost): the items of those jobs that are still `queued` are flagged for the outbox
/// sweep, which sends them again (a duplicate is harmless), and the markers go. Returns
/// how many markers were expired, at most `limit`.
pub async fn expire_outbox_markers(db: &DatabaseConnection, age: Duration, limit: u64) -> Result<usize, StoreError> {
    let backend = db.get_database_backend();
    let mut marks = Marks::new(backend);
    let sql = format!(
        "SELECT job_id FROM job_outbox WHERE created_at_ms <= {} ORDER BY created_at_ms LIMIT {}",
        marks.next(),
        marks.next()
    );
    let cutoff = now_ms() - age.as_millis() as i64;
    let rows = db
        .query_all_raw(sea_orm::Statement::from_sql_and_values(backend, sql, [cutoff.into(), (limit as i64).into()]))
        .await?;
    let jobs: Vec<String> = rows.iter().filter_map(|r| r.try_get_by_index::<String>(0).ok()).collect();
    for job in &jobs {
        let mut script = Script::new(backend);
        let mut marks = Marks::new(backend);
        let sql = format!(
            "UPDATE job_items SET enqueued = false WHERE job_id = {} AND state = {}",
            marks.next(),
            marks.next()
        );
        script.push(&sql, vec![job.clone().into(), ItemState::Queued.as_str().into()]);
        let mut marks = Marks::new(backend);
        script.push(&format!("DELETE FROM job_outbox WHERE job_id = {}", marks.next()), vec![job.clone().into()]);
        script.run_in_transaction(db).await?;
    }
    Ok(jobs.len())
}

pub async fn mark_enqueued(db: &DatabaseConnection, items: &[ItemId]) -> Result<(), StoreError> {
    for chunk in items.chunks(500) {
        job_item::Entity::update_many()
            .col_expr(job_item::Column::Enqueued, Expr::value(true))
            .filter(job_item::Column::Id.is_in(chunk.iter().map(|i| i.to_string())))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Makes dead-lettered items workable again before their messages are redriven: state
/// `queued`, error cleared, a fresh `retry.max_attempts` budget; an event records the
/// redrive. `attempts` keeps counting (it is not reset to 0): the next attempt is then
/// still one after an earlier one, so it looks the document up in the ERP before creating
/// it (an attempt that timed out may have created it), and the attempt number stays a
/// fencing token against a stale attempt from before the redrive.
/// Returns how many items changed (items in any other state are left alone).
pub async fn requeue_dead_lettered(db: &DatabaseConnection, items: &[ItemId]) -> Result<u64, StoreError> {
    let now = now_ms();
    let txn = db.begin().await?;
    let mut changed = 0;
    for chunk in items.chunks(500) {
        let ids: Vec<String> = chunk.iter().map(|i| i.to_string()).collect();
        let dead: Vec<String> = job_item::Entity::find()
            .filter(job_item::Column::Id.is_in(ids))
            .filter(job_item::Column::State.eq(ItemState::DeadLettered.as_str()))
            .all(&txn)
            .await?
            .into_iter()
            .map(|m| m.id)
            .collect();
        if dead.is_empty() {
            continue;
        }
        let res = job_item::Entity::update_many()
            .col_expr(job_item::Column::State, Expr::value(ItemState::Queued.as_str()))
            .col_expr(
                job_item::Column::RedrivenAttempts,
                sea_orm::sea_query::ExprTrait::sub(
                    Expr::col(job_item::Column::Attempts),
                    Expr::col(job_item::Column::Throttles),
                ),
            )
            .col_expr(job_item::Column::ErrorKind, Expr::value(Option::<String>::None))
            .col_expr(job_item::Column::ErrorCode, Expr::value(Option::<String>::None))
            .col_expr(job_item::Column::ErrorMessage, Expr::value(Option::<String>::None))
            .col_expr(job_item::Column::UpdatedAtMs, Expr::value(now))
            .filter(job_item::Column::Id.is_in(dead.clone()))
            .exec(&txn)
            .await?;
        changed += res.rows_affected;
        item_event::Entity::insert_many(dead.into_iter().map(|id| item_event::ActiveModel {
            item_id: Set(id),
            at_ms: Set(now),
            state: Set(ItemState::Queued.as_str().to_owned()),
            attempt: Set(0),
            detail: Set(Some("redriven from the dead-letter queue".into())),
            ..Default::default()
        }))
        .exec(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(changed)
}

/// Items recorded but never sent to the queue (or shelved while their connection was
/// parked), older than `age` (the outbox).
pub async fn unsent_items(
    db: &DatabaseConnection,
    age: Duration,
    limit: u64,
) -> Result<Vec<job_item::Model>, StoreError> {
    Ok(job_item::Entity::find()
        // Written out, not bound: only then can the partial index (`WHERE enqueued = false`)
        // serve the query.
        .filter(Expr::cust("enqueued = false"))
        // A parked connection's items wait on the shelf until it is resumed.
        .filter(Expr::cust(super::parks::NOT_PARKED))
        .filter(job_item::Column::CreatedAtMs.lte(now_ms() - age.as_millis() as i64))
        .order_by_asc(job_item::Column::CreatedAtMs)
        .limit(limit)
        .all(db)
        .await?)
}

/// Cancels what is left of job `id`: its items still `queued` or `retrying` become
/// `cancelled`, with an event each. An item `in_progress` is left to finish, and its
/// outcome stands — unless it is a retry, which the status writer turns into `cancelled`
/// (the job is recorded in `job_cancels`). Written here, not through the StatusActor, as one conditional
/// statement: whatever the StatusActor writes later to a cancelled item does not take,
/// since terminal states are final, and an attempt cannot begin on one (`begin_attempts`
/// begins only non-terminal items), so its message is acknowledged and dropped.
/// Each cancelled item has its `item.cancelled` event, and the job its completion when
/// nothing of it is left in flight, recorded with `tenant`. Returns the ids of the items
/// cancelled.
pub async fn cancel_job(db: &DatabaseConnection, id: &JobId, tenant: &str) -> Result<Vec<String>, StoreError> {
    let backend = db.get_database_backend();
    let now = now_ms();
    let txn = db.begin().await?;
    let mut marks = Marks::new(backend);
    let sql = format!(
        "UPDATE job_items SET state = '{cancelled}', updated_at_ms = {} \
         WHERE job_id = {} AND state IN ('{queued}', '{retrying}') RETURNING id, connection_id, attempts",
        marks.next(),
        marks.next(),
        cancelled = ItemState::Cancelled.as_str(),
        queued = ItemState::Queued.as_str(),
        retrying = ItemState::Retrying.as_str(),
    );
    let rows = txn
        .query_all_raw(sea_orm::Statement::from_sql_and_values(backend, &sql, [now.into(), id.to_string().into()]))
        .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.try_get_by_index::<String>(0)).collect::<Result<_, _>>()?;
    let tenants = Tenants::one(tenant);
    let mut log = Vec::with_capacity(ids.len() + 1);
    for r in &rows {
        let attempts: i32 = r.try_get_by_index(2)?;
        log.push(NewEvent {
            tenant: tenant.to_owned(),
            connection: Some(r.try_get_by_index(1)?),
            job_id: Some(id.to_string()),
            item_id: Some(r.try_get_by_index(0)?),
            kind: item_kind(ItemState::Cancelled),
            data: serde_json::json!({"state": ItemState::Cancelled.as_str(), "attempt": attempts,
                "detail": "its job was cancelled"}),
        });
    }
    let mut marks = Marks::new(backend);
    let sql = format!(
        "INSERT INTO job_cancels (job_id, cancelled_at_ms) VALUES ({}, {}) ON CONFLICT (job_id) DO NOTHING",
        marks.next(),
        marks.next()
    );
    txn.execute_raw(sea_orm::Statement::from_sql_and_values(backend, &sql, [id.to_string().into(), now.into()]))
        .await?;
    for chunk in ids.chunks(500) {
        item_event::Entity::insert_many(chunk.iter().map(|item| item_event::ActiveModel {
            item_id: Set(item.clone()),
            at_ms: Set(now),
            state: Set(ItemState::Cancelled.as_str().to_owned()),
            attempt: Set(0),
            detail: Set(Some("its job was cancelled".into())),
            ..Default::default()
        }))
        .exec(&txn)
        .await?;
    }
    if !ids.is_empty() {
        log.extend(event_log::completions(&txn, &[id.to_string()], &tenants).await?);
    }
    event_log::insert(&txn, &log, now).await?;
    txn.commit().await?;
    if !log.is_empty() {
        super::events::poke();
    }
    Ok(ids)
}
