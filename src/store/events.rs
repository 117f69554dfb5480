//! The event log, read: every item transition, job completion and connection park or
//! resume, in commit order, a page at a time after a cursor, and a cheap way to wait for
//! more. The rows are written by `event_log` in the transaction of the change each
//! describes, so an event exists if and only if its change committed.
//!
//! # Order without gaps
//!
//! A reader pages with a cursor and must never miss an event that commits after it read
//! past a smaller id. On SQLite one transaction writes at a time and allocates row ids
//! while it holds the write lock, so id order is commit order; the cursor is `0-<id>`.
//! On PostgreSQL, transactions of one daemon and of a fleet write at once, and a
//! `bigserial` taken early may commit late. Each row therefore carries its writing
//! transaction's id (`pg_current_xact_id()`), and a read returns only rows whose
//! transaction id is below the `xmin` of the reading statement's snapshot: every
//! transaction below `xmin` has ended, so every row below it that will ever exist is
//! visible to that read, and a transaction still running has an id at or above `xmin`
//! and its rows appear only after the cursor. Pages run in (`xid`, `id`) order and the
//! cursor is `<xid>-<id>`. Writers stay parallel; the price is that a long transaction
//! anywhere on the server holds readers back (never makes them skip) until it ends.

use super::StoreError;
use super::sql::Marks;
use crate::config::Config;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};
use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;
use tokio::sync::watch;

pub use super::event_log::{
    CONNECTION_PARKED, CONNECTION_RESUMED, JOB_COMPLETED, JOB_COMPLETED_WITH_ERRORS, item_kind,
};

/// Every event type the log records.
pub fn kinds() -> Vec<String> {
    let mut kinds: Vec<String> = crate::domain::ItemState::ALL.into_iter().map(item_kind).collect();
    kinds.extend([JOB_COMPLETED, JOB_COMPLETED_WITH_ERRORS, CONNECTION_PARKED, CONNECTION_RESUMED].map(String::from));
    kinds
}

/// Whether an event of type `kind` completes its job.
pub fn completes_job(kind: &str) -> bool {
    kind == JOB_COMPLETED || kind == JOB_COMPLETED_WITH_ERRORS
}

/// Where an event stands in the log: the SSE `id`, `<xid>-<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventCursor {
    pub xid: i64,
    pub id: i64,
}

impl fmt::Display for EventCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.xid, self.id)
    }
}

/// A string that is not a cursor of this log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an event id of this log (`<number>-<number>`)")]
pub struct BadCursor(pub String);

impl std::str::FromStr for EventCursor {
    type Err = BadCursor;

    fn from_str(s: &str) -> Result<EventCursor, BadCursor> {
        let bad = || BadCursor(s.chars().take(64).collect());
        let number = |p: &str| {
            if p.is_empty() || p.len() > 19 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse::<i64>().ok()
        };
        let (xid, id) = s.split_once('-').ok_or_else(bad)?;
        Ok(EventCursor { xid: number(xid).ok_or_else(bad)?, id: number(id).ok_or_else(bad)? })
    }
}

/// One event of the log.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Event {
    #[serde(serialize_with = "as_string")]
    pub cursor: EventCursor,
    pub tenant: String,
    pub connection: Option<String>,
    pub job_id: Option<String>,
    pub item_id: Option<String>,
    /// `item.<state>` (`item.in_progress`, `item.succeeded`, `item.retrying`, …),
    /// `job.completed`, `job.completed_with_errors`, `connection.parked`, `connection.resumed`.
    pub kind: String,
    pub data: serde_json::Value,
    /// When its transaction wrote it, in milliseconds since the epoch.
    pub at_ms: i64,
}

fn as_string<S: serde::Serializer>(c: &EventCursor, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(c)
}

/// Which events a read returns: each field that is set must match; `kinds` empty is all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    pub tenant: Option<String>,
    pub connection: Option<String>,
    pub job_id: Option<String>,
    pub kinds: Vec<String>,
}

/// The tenant of each connection, as configured: events are recorded with it.
#[derive(Debug, Clone)]
pub struct Tenants {
    by_connection: HashMap<String, String>,
    /// The tenant of a connection not named.
    otherwise: String,
}

impl Default for Tenants {
    fn default() -> Tenants {
        Tenants { by_connection: HashMap::new(), otherwise: crate::config::DEFAULT_TENANT.to_owned() }
    }
}

impl Tenants {
    pub fn from_config(cfg: &Config) -> Tenants {
        let by_connection = cfg.connections.iter().map(|c| (c.id.to_string(), c.tenant.clone())).collect();
        Tenants { by_connection, ..Tenants::default() }
    }

    /// Every connection `tenant`'s: for a writer that knows whose change it records.
    pub fn one(tenant: &str) -> Tenants {
        Tenants { by_connection: HashMap::new(), otherwise: tenant.to_owned() }
    }

    /// The tenant of `connection`; one the configuration does not name is the default's.
    pub fn of(&self, connection: &str) -> &str {
        self.by_connection.get(connection).unwrap_or(&self.otherwise)
    }
}

/// Up to `limit` events after `after` (from the start without one) that match `filter`,
/// in log order. An empty answer means none yet: wait ([`Waiter`]) and read again.
pub async fn read_after(
    db: &DatabaseConnection,
    after: Option<&EventCursor>,
    filter: &EventFilter,
    limit: u32,
) -> Result<Vec<Event>, StoreError> {
    let backend = db.get_database_backend();
    let after = after.copied().unwrap_or_default();
    let mut marks = Marks::new(backend);
    let mut conds = vec![format!("(xid, id) > ({}, {})", marks.next(), marks.next())];
    let mut values: Vec<Value> = vec![after.xid.into(), after.id.into()];
    if backend == DbBackend::Postgres {
        conds.push("xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint".into());
    }
    for (column, value) in
        [("tenant", &filter.tenant), ("connection_id", &filter.connection), ("job_id", &filter.job_id)]
    {
        if let Some(v) = value {
            conds.push(format!("{column} = {}", marks.next()));
            values.push(v.clone().into());
        }
    }
    if !filter.kinds.is_empty() {
        conds.push(format!("kind IN ({})", marks.row(filter.kinds.len())));
        values.extend(filter.kinds.iter().map(|k| k.clone().into()));
    }
    let sql = format!(
        "SELECT xid, id, tenant, connection_id, job_id, item_id, kind, data, at_ms FROM events \
         WHERE {} ORDER BY xid, id LIMIT {}",
        conds.join(" AND "),
        limit.max(1)
    );
    let rows = db.query_all_raw(Statement::from_sql_and_values(backend, &sql, values)).await?;
    rows.iter()
        .map(|r| {
            let data: String = r.try_get_by_index(7)?;
            Ok(Event {
                cursor: EventCursor { xid: r.try_get_by_index(0)?, id: r.try_get_by_index(1)? },
                tenant: r.try_get_by_index(2)?,
                connection: r.try_get_by_index(3)?,
                job_id: r.try_get_by_index(4)?,
                item_id: r.try_get_by_index(5)?,
                kind: r.try_get_by_index(6)?,
                data: serde_json::from_str(&data)
                    .map_err(|e| StoreError::Corrupt(format!("event data is not JSON: {e}")))?,
                at_ms: r.try_get_by_index(8)?,
            })
        })
        .collect()
}

/// Bumped after every commit in this process that wrote events, and on every notification
/// from another daemon (see [`listen`]).
static NEWS: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

/// Tells this process's waiters that events may have committed. Writers call it after
/// their commit.
pub fn poke() {
    NEWS.send_modify(|n| *n = n.wrapping_add(1));
}

/// How long a waiter sleeps at most without news: the other daemons of a fleet on SQLite
/// (one file, no notifications) are seen at least this often, and on PostgreSQL a
/// transaction without events that held the readers' `xmin` back.
pub const POLL: Duration = Duration::from_millis(250);

/// Waits for news of events: create one before the first read, so that nothing committed
/// between a read and the wait is slept through.
pub struct Waiter(watch::Receiver<u64>);

impl Waiter {
    pub fn new() -> Waiter {
        Waiter(NEWS.subscribe())
    }

    /// Returns at the next news since the last call (true), or after [`POLL`] (false).
    pub async fn wait(&mut self) -> bool {
        let news = matches!(tokio::time::timeout(POLL, self.0.changed()).await, Ok(Ok(())));
        self.0.mark_unchanged();
        news
    }
}

impl Default for Waiter {
    fn default() -> Self {
        Waiter::new()
    }
}

/// On PostgreSQL, a task that LISTENs for the events other daemons of the fleet commit
/// and pokes this process's waiters, reconnecting after a failure; None on SQLite.
pub fn listen(db: &DatabaseConnection) -> Option<tokio::task::JoinHandle<()>> {
    if db.get_database_backend() != DbBackend::Postgres {
        return None;
    }
    let pool = db.get_postgres_connection_pool().clone();
    Some(tokio::spawn(async move {
        loop {
            let failed = match listen_once(&pool).await {
                Err(e) => e,
                Ok(never) => match never {},
            };
            tracing::warn!(error = %failed, "event notifications lost; listening again");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }))
}

async fn listen_once(pool: &sea_orm::sqlx::PgPool) -> Result<std::convert::Infallible, sea_orm::sqlx::Error> {
    let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(super::event_log::CHANNEL).await?;
    // Whatever committed while nobody listened.
    poke();
    loop {
        listener.recv().await?;
        poke();
    }
}

#[cfg(test)]
mod tests {
    use super::EventCursor;

    #[test]
    fn a_cursor_reads_back_as_written_and_nothing_else_reads() {
        let c = EventCursor { xid: 7123, id: 42 };
        assert_eq!(c.to_string(), "7123-42");
        assert_eq!("7123-42".parse::<EventCursor>(), Ok(c));
        for bad in ["", "-", "1-", "-1", "1-2-3", "+1-2", "a-1", "1-0x2", "1 -2", "99999999999999999999-1"] {
            assert!(bad.parse::<EventCursor>().is_err(), "{bad:?}");
        }
    }
}
