//! The embedded queue: a table in the daemon's own SQL database, with the semantics of SQS.
//!
//! A receipt handle is `<message id>.<receive count>`: every receive bumps the count, so a
//! handle from an earlier receive no longer matches and cannot delete or extend the message
//! (exactly SQS's "stale receipt handle" rule). Receiving is a single
//! `UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING …` statement; on PostgreSQL the inner
//! select takes `FOR UPDATE SKIP LOCKED`, so several daemons never get the same message
//! while its visibility lasts. SQLite serialises writers, which gives the same guarantee.

use super::GroupFilter;
use super::batcher::Batcher;
use super::{
    DeadLetter, Outgoing, Queue, QueueDepth, QueueError, ReceiptHandle, ReceiveBatch, ReceiveRequest, Received,
};
use crate::util::now_ms;
use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

pub struct EmbeddedQueue {
    db: DatabaseConnection,
    /// Deletes go out as one statement per batch of (id, receive count): one write
    /// transaction per message made the item tasks queue for SQLite's write lock.
    deletes: Batcher<(i64, i32)>,
    /// Queue name, so one table can hold several queues (and tests can share a database).
    name: String,
    max_receives: u32,
    poll_interval: Duration,
    activity: Arc<Notify>,
    /// When exhausted messages were last moved to the dead letters (ms since the epoch).
    last_sweep_ms: AtomicI64,
    /// FIFO: a group's messages are handed out in the order they were sent, and none while
    /// another of the group is in flight or waiting to be visible again.
    fifo: bool,
}

/// Longest a message received `max_receives` times waits to be dead-lettered while every
/// receive comes back full.
const SWEEP_EVERY_MS: i64 = 1000;

fn storage(e: DbErr) -> QueueError {
    QueueError::Storage(e.to_string())
}

fn parse_receipt(r: &ReceiptHandle) -> Result<(i64, i32), QueueError> {
    let bad = || QueueError::BadReceipt(r.0.clone());
    let (id, count) = r.0.split_once('.').ok_or_else(bad)?;
    Ok((id.parse().map_err(|_| bad())?, count.parse().map_err(|_| bad())?))
}

/// Most deletes per statement.
const DELETE_BATCH: usize = 250;

/// Deletes each (id, receive count) that is still live and still at that receive count;
/// answers, entry by entry, whether it was deleted (a stale receipt is `false`).
async fn delete_batch(db: DatabaseConnection, entries: Vec<(i64, i32)>) -> Vec<Result<bool, QueueError>> {
    let backend = db.get_database_backend();
    let mut marks = crate::store::Marks::new(backend);
    let rows: Vec<String> = entries.iter().map(|_| format!("({})", marks.row(2))).collect();
    let values: Vec<Value> = entries.iter().flat_map(|&(id, count)| [id.into(), count.into()]).collect();
    let sql = format!(
        "DELETE FROM queue_messages WHERE dead_at_ms IS NULL AND (id, receive_count) IN (VALUES {}) RETURNING id",
        rows.join(", ")
    );
    match db.query_all_raw(Statement::from_sql_and_values(backend, sql, values)).await {
        Ok(deleted) => {
            let ids: std::collections::HashSet<i64> =
                deleted.iter().filter_map(|r| r.try_get_by_index::<i64>(0).ok()).collect();
            entries.iter().map(|(id, _)| Ok(ids.contains(id))).collect()
        }
        Err(e) => {
            let message = e.to_string();
            entries.iter().map(|_| Err(QueueError::Storage(message.clone()))).collect()
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl EmbeddedQueue {
    pub fn new(db: DatabaseConnection, name: &str, max_receives: u32, poll_interval: Duration) -> Self {
        let conn = db.clone();
        let deletes = Batcher::spawn(DELETE_BATCH, 1, move |entries| delete_batch(conn.clone(), entries));
        EmbeddedQueue {
            db,
            deletes,
            name: name.to_owned(),
            max_receives,
            poll_interval,
            activity: Arc::new(Notify::new()),
            last_sweep_ms: AtomicI64::new(0),
            fifo: false,
        }
    }

    /// This queue, keeping each group's order as an SQS FIFO queue does when `fifo`.
    pub fn keeping_group_order(mut self, fifo: bool) -> Self {
        self.fifo = fifo;
        self
    }

    fn backend_kind(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    fn stmt(&self, sql: &str, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(self.backend_kind(), sql, values)
    }

    /// Adds the statements inserting `messages` to `script`. The caller may run it in a
    /// transaction of the daemon's store (the queue lives in the same database): a job and
    /// its messages then commit together. Call [`announce`](Self::announce) once they are
    /// committed.
    pub(crate) fn push_insert(&self, script: &mut crate::store::Script, messages: &[Outgoing]) {
        let now = now_ms();
        // Multi-row inserts in chunks keep each statement under the bind-parameter limits.
        for chunk in messages.chunks(500) {
            let mut sql = String::from(
                "INSERT INTO queue_messages (queue, group_id, body, sent_at_ms, visible_at_ms, receive_count) VALUES ",
            );
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 5);
            let mut marks = crate::store::Marks::new(self.backend_kind());
            for (i, m) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("({}, 0)", marks.row(5)));
                values.extend([
                    self.name.clone().into(),
                    m.group.clone().into(),
                    m.body.clone().into(),
                    now.into(),
                    (now + ms(m.delay)).into(),
                ]);
            }
            script.push(&sql, values);
        }
    }

    /// Records `job` with its items (as [`store::insert_job`](crate::store::insert_job)
    /// does) and one message per item, committed together, on `writer`'s connection. Call
    /// [`announce`](Self::announce) afterwards.
    pub async fn record_job(
        &self,
        writer: &crate::store::JobWriter,
        job: &crate::store::NewJob,
    ) -> Result<(), crate::store::StoreError> {
        let mut script = crate::store::Script::new(self.backend_kind());
        crate::store::push_job_insert(&mut script, job, crate::store::Enqueuing::WithTheJob);
        self.push_job_messages(&mut script, &job.id);
        Ok(script.run_in_transaction_on(writer, &self.db).await?)
    }

    /// Adds to `script` the statement inserting one message per item of the job `job_id`,
    /// built by the database from the item rows the same script inserts before it (see
    /// [`Envelope::by_ref_from_item_row`](crate::queue::Envelope::by_ref_from_item_row)),
    /// in its connection's group, visible at once, in the items' order. Built here, a
    /// 200-invoice job's messages were 1,000 more values to encode, copy and bind.
    fn push_job_messages(&self, script: &mut crate::store::Script, job_id: &crate::domain::JobId) {
        let (body, order) = match self.backend_kind() {
            DbBackend::Postgres => (crate::queue::Envelope::by_ref_from_item_row("json_build_object", "::text"), "id"),
            // Items' rows are inserted in id order, and the job index yields them by rowid.
            _ => (crate::queue::Envelope::by_ref_from_item_row("json_object", ""), "rowid"),
        };
        let mut marks = crate::store::Marks::new(self.backend_kind());
        let (queue, job) = (marks.next(), marks.next());
        let sql = format!(
            "INSERT INTO queue_messages (queue, group_id, body, sent_at_ms, visible_at_ms, receive_count) \
             SELECT {queue}, connection_id, {body}, created_at_ms, created_at_ms, 0 \
             FROM job_items WHERE job_id = {job} ORDER BY {order}"
        );
        script.push(&sql, vec![self.name.clone().into(), job_id.to_string().into()]);
    }

    /// Wakes this process's receivers after messages were committed.
    pub fn announce(&self) {
        self.activity.notify_waiters();
    }

    /// Moves visible messages that were already received `max_receives` times to the
    /// dead-letter store, as SQS's redrive policy does on the next receive.
    async fn redrive_exhausted(&self, now: i64) -> Result<Vec<DeadLetter>, QueueError> {
        let reason = format!("received {} times without being deleted (max_receives)", self.max_receives);
        let rows = self
            .db
            .query_all_raw(self.stmt(
                "UPDATE queue_messages SET dead_at_ms = $1, dead_reason = $2 \
                 WHERE queue = $3 AND dead_at_ms IS NULL AND visible_at_ms <= $1 AND receive_count >= $4 \
                 RETURNING id, body, receive_count",
                vec![now.into(), reason.clone().into(), self.name.clone().into(), (self.max_receives as i32).into()],
            ))
            .await
            .map_err(storage)?;
        rows.iter()
            .map(|r| {
                Ok(DeadLetter {
                    message_id: r.try_get_by_index::<i64>(0)?.to_string(),
                    body: r.try_get_by_index(1)?,
                    reason: reason.clone(),
                    dead_at_ms: now,
                    receive_count: r.try_get_by_index::<i32>(2)? as u32,
                })
            })
            .collect::<Result<_, DbErr>>()
            .map_err(storage)
    }

    async fn receive_now(&self, req: &ReceiveRequest<'_>) -> Result<ReceiveBatch, QueueError> {
        let now = now_ms();
        let lock = if self.backend_kind() == DbBackend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let mut values: Vec<Value> = vec![
            (now + ms(req.visibility)).into(),
            self.name.clone().into(),
            now.into(),
            (req.max_messages as i64).into(),
        ];
        let group_filter = match req.groups {
            GroupFilter::Any => String::new(),
            GroupFilter::Only(g) => {
                values.push(g.to_owned().into());
                " AND group_id = $5".to_owned()
            }
            GroupFilter::NoneOf(groups) => {
                let mut f = String::from(" AND (group_id IS NULL");
                if !groups.is_empty() {
                    let marks: Vec<String> = (0..groups.len()).map(|i| format!("${}", 5 + i)).collect();
                    f.push_str(&format!(" OR group_id NOT IN ({})", marks.join(", ")));
                    values.extend(groups.iter().map(|g| Value::from(g.clone())));
                }
                f.push(')');
                f
            }
        };
        // FIFO: a group whose messages are not all visible (one in flight, or sent back
        // with a delay) is locked, and the others go out oldest first, so a receive may
        // hold several of a group but only in order, and never one past the group's head.
        let (fifo_lock, order) = if self.fifo {
            (
                " AND NOT EXISTS (SELECT 1 FROM queue_messages o WHERE o.queue = m.queue \
                 AND o.group_id = m.group_id AND o.dead_at_ms IS NULL AND o.visible_at_ms > $3)",
                "id",
            )
        } else {
            ("", "visible_at_ms, id")
        };
        let sql = format!(
            "UPDATE queue_messages SET visible_at_ms = $1, receive_count = receive_count + 1 \
             WHERE id IN (SELECT id FROM queue_messages m \
                 WHERE queue = $2 AND dead_at_ms IS NULL AND visible_at_ms <= $3 AND receive_count < {max}{group_filter}{fifo_lock} \
                 ORDER BY {order} LIMIT $4{lock}) \
             RETURNING id, body, group_id, receive_count",
            max = self.max_receives
        );
        let rows = self.db.query_all_raw(self.stmt(&sql, values)).await.map_err(storage)?;
        let mut messages = rows
            .iter()
            .map(|r| {
                let id: i64 = r.try_get_by_index(0)?;
                let count: i32 = r.try_get_by_index(3)?;
                Ok(Received {
                    message_id: id.to_string(),
                    receipt: ReceiptHandle(format!("{id}.{count}")),
                    body: r.try_get_by_index(1)?,
                    group: r.try_get_by_index(2)?,
                    receive_count: count as u32,
                })
            })
            .collect::<Result<Vec<_>, DbErr>>()
            .map_err(storage)?;
        messages.sort_by_key(|m| m.message_id.parse::<i64>().unwrap_or(0));
        // Messages received `max_receives` times are never handed out again (above); they
        // move to the dead letters when a receive comes up short, or once a second. The
        // sweep reads every visible message, so on each receive it cost a draining
        // poller more than the receive itself.
        // A failed sweep must not fail the receive: its messages are already received.
        let due = now - self.last_sweep_ms.load(Ordering::Relaxed) >= SWEEP_EVERY_MS;
        let dead_lettered = if messages.len() < req.max_messages || due {
            match self.redrive_exhausted(now).await {
                Ok(dead) => {
                    self.last_sweep_ms.store(now, Ordering::Relaxed);
                    dead
                }
                Err(e) => {
                    tracing::warn!(error = %e, "moving exhausted messages to the dead letters failed; the next receive retries");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        Ok(ReceiveBatch { messages, dead_lettered })
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn can_receive_by_group(&self) -> bool {
        true
    }

    fn keeps_group_order(&self) -> bool {
        self.fifo
    }

    /// A receive is one statement whatever its size, and a draining poller, which receives
    /// for one connection after the other, is limited by how many it makes: 10 at a time
    /// drained 2,300 items/s in `bench drain`, 50 at a time 3,900.
    fn max_receive_batch(&self) -> usize {
        50
    }

    fn activity(&self) -> Option<Arc<Notify>> {
        Some(self.activity.clone())
    }

    async fn send(&self, messages: Vec<Outgoing>) -> Result<(), QueueError> {
        // All or none, so a failure never leaves some sent while reporting none sent.
        let mut script = crate::store::Script::new(self.backend_kind());
        self.push_insert(&mut script, &messages);
        script.run_in_transaction(&self.db).await.map_err(storage)?;
        self.announce();
        Ok(())
    }

    fn as_embedded(&self) -> Option<&EmbeddedQueue> {
        Some(self)
    }

    async fn receive(&self, req: ReceiveRequest<'_>) -> Result<ReceiveBatch, QueueError> {
        let deadline = tokio::time::Instant::now() + req.wait;
        loop {
            // Register interest before looking, so a send in between is not missed.
            let notified = self.activity.notified();
            let batch = self.receive_now(&req).await?;
            let now = tokio::time::Instant::now();
            if !batch.messages.is_empty() || !batch.dead_lettered.is_empty() || now >= deadline {
                return Ok(batch);
            }
            // Other processes' sends are only seen by looking again.
            let _ = tokio::time::timeout(self.poll_interval.min(deadline - now), notified).await;
        }
    }

    async fn delete(&self, receipt: &ReceiptHandle) -> Result<bool, QueueError> {
        self.deletes.submit(parse_receipt(receipt)?).await
    }

    async fn change_visibility(&self, entries: &[(ReceiptHandle, Duration)]) -> Result<Vec<bool>, QueueError> {
        let now = now_ms();
        let txn = self.db.begin().await.map_err(storage)?;
        let mut out = Vec::with_capacity(entries.len());
        for (receipt, after) in entries {
            let (id, count) = parse_receipt(receipt)?;
            let res = txn
                .execute_raw(self.stmt(
                    // Only a message still in flight, as on SQS: once visible again (its
                    // timeout over, or released), an old receipt cannot hide it anew.
                    "UPDATE queue_messages SET visible_at_ms = $1 \
                     WHERE id = $2 AND receive_count = $3 AND dead_at_ms IS NULL AND visible_at_ms > $4",
                    vec![(now + ms(*after)).into(), id.into(), count.into(), now.into()],
                ))
                .await
                .map_err(storage)?;
            out.push(res.rows_affected() == 1);
        }
        txn.commit().await.map_err(storage)?;
        if entries.iter().any(|(_, d)| d.is_zero()) {
            self.activity.notify_waiters();
        }
        Ok(out)
    }

    async fn settle(&self) {
        self.deletes.settle().await;
    }

    async fn dead_letter(&self, message: &Received, reason: &str) -> Result<bool, QueueError> {
        let (id, count) = parse_receipt(&message.receipt)?;
        let res = self
            .db
            .execute_raw(self.stmt(
                "UPDATE queue_messages SET dead_at_ms = $1, dead_reason = $2 \
                 WHERE id = $3 AND receive_count = $4 AND dead_at_ms IS NULL",
                vec![now_ms().into(), reason.to_owned().into(), id.into(), count.into()],
            ))
            .await
            .map_err(storage)?;
        Ok(res.rows_affected() == 1)
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let now = now_ms();
        // Counted from the ready index alone, one range each, and the oldest message found
        // by id (ids are in send order; a redriven message keeps its id and send time): one
        // pass over the whole table to sum by state costs a core for tens of milliseconds
        // per sample when hundreds of thousands of messages are queued, taken from the
        // `POST /v1/jobs` burst that queued them.
        // On SQLite the oldest is read in rowid order (`NOT INDEXED`), stopping at the
        // first live message; its planner would otherwise sort the ready index's range.
        let by_id = if self.backend_kind() == DbBackend::Sqlite { "NOT INDEXED" } else { "" };
        let live = "FROM queue_messages WHERE queue = $2 AND dead_at_ms IS NULL";
        let sql = format!(
            "SELECT \
               (SELECT COUNT(*) {live} AND visible_at_ms <= $1), \
               (SELECT COUNT(*) {live} AND visible_at_ms > $1 AND receive_count > 0), \
               (SELECT COUNT(*) {live} AND visible_at_ms > $1 AND receive_count = 0), \
               (SELECT COUNT(*) FROM queue_messages WHERE queue = $2 AND dead_at_ms IS NOT NULL), \
               COALESCE((SELECT sent_at_ms FROM queue_messages {by_id} \
                 WHERE queue = $2 AND dead_at_ms IS NULL ORDER BY id LIMIT 1), $1)"
        );
        let row = self
            .db
            .query_one_raw(self.stmt(&sql, vec![now.into(), self.name.clone().into()]))
            .await
            .map_err(storage)?
            .ok_or_else(|| QueueError::Storage("depth query returned no row".into()))?;
        let get = |i| row.try_get_by_index::<i64>(i).map(|v| v.max(0) as u64).map_err(storage);
        Ok(QueueDepth {
            visible: get(0)?,
            in_flight: get(1)?,
            delayed: get(2)?,
            dead_lettered: get(3)?,
            oldest_age_secs: Some(((now as u64).saturating_sub(get(4)?)) / 1000),
        })
    }

    async fn dead_letters(&self, limit: u64) -> Result<Vec<DeadLetter>, QueueError> {
        let rows = self
            .db
            .query_all_raw(self.stmt(
                "SELECT id, body, dead_reason, dead_at_ms, receive_count FROM queue_messages \
                 WHERE queue = $1 AND dead_at_ms IS NOT NULL ORDER BY dead_at_ms DESC, id DESC LIMIT $2",
                vec![self.name.clone().into(), (limit as i64).into()],
            ))
            .await
            .map_err(storage)?;
        rows.iter()
            .map(|r| {
                Ok(DeadLetter {
                    message_id: r.try_get_by_index::<i64>(0)?.to_string(),
                    body: r.try_get_by_index(1)?,
                    reason: r.try_get_by_index::<Option<String>>(2)?.unwrap_or_default(),
                    dead_at_ms: r.try_get_by_index(3)?,
                    receive_count: r.try_get_by_index::<i32>(4)? as u32,
                })
            })
            .collect::<Result<_, DbErr>>()
            .map_err(storage)
    }

    async fn redrive(&self, message_ids: &[String]) -> Result<usize, QueueError> {
        let mut moved = 0;
        for chunk in message_ids.chunks(500) {
            let ids: Vec<i64> = chunk.iter().filter_map(|id| id.parse().ok()).collect();
            if ids.is_empty() {
                continue;
            }
            let marks: Vec<String> = (0..ids.len()).map(|i| format!("${}", 3 + i)).collect();
            let mut values: Vec<Value> = vec![now_ms().into(), self.name.clone().into()];
            values.extend(ids.into_iter().map(Value::from));
            let res = self
                .db
                .execute_raw(self.stmt(
                    &format!(
                        "UPDATE queue_messages SET dead_at_ms = NULL, dead_reason = NULL, receive_count = 0, \
                         visible_at_ms = $1 WHERE queue = $2 AND dead_at_ms IS NOT NULL AND id IN ({})",
                        marks.join(", ")
                    ),
                    values,
                ))
                .await
                .map_err(storage)?;
            moved += res.rows_affected() as usize;
        }
        if moved > 0 {
            self.activity.notify_waiters();
        }
        Ok(moved)
    }
}
