//! `GET /v1/jobs`: a tenant's jobs, newest first, a page at a time, each with its item
//! counts and derived state. The page ends at a cursor, the (creation time, id) of its
//! last job, handed to the client as an opaque token.

use super::StoreError;
use super::sql::Marks;
use crate::domain::{ItemState, JobState};
use base64::Engine;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde::Serialize;
use std::collections::BTreeMap;

/// Where a page starts: after the job of this creation time and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCursor {
    pub created_at_ms: i64,
    pub job_id: String,
}

const CURSOR: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

impl JobCursor {
    pub fn encode(&self) -> String {
        CURSOR.encode(format!("{}:{}", self.created_at_ms, self.job_id))
    }

    /// The cursor a page handed out; None for anything else.
    pub fn decode(s: &str) -> Option<JobCursor> {
        let bytes = CURSOR.decode(s).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let (ms, id) = text.split_once(':')?;
        let job_id = uuid::Uuid::parse_str(id).ok()?.to_string();
        Some(JobCursor { created_at_ms: ms.parse().ok()?, job_id })
    }
}

/// Which jobs to list.
#[derive(Debug, Clone)]
pub struct JobFilter {
    /// The connections whose jobs may be listed (a tenant's); empty lists nothing.
    pub connections: Vec<String>,
    pub state: Option<JobState>,
    /// Only jobs created at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    pub limit: u64,
    pub after: Option<JobCursor>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobListEntry {
    pub job_id: String,
    pub connection_id: String,
    #[schema(value_type = crate::domain::Op)]
    pub op: String,
    pub state: JobState,
    pub total_items: i32,
    pub created_at_ms: i64,
    pub counts: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobPage {
    pub jobs: Vec<JobListEntry>,
    /// The cursor of the next page; None on the last.
    pub next_cursor: Option<String>,
}

/// The SQL condition that job `jobs.id` has an item in one of `states`.
fn has_item_in(states: &[ItemState]) -> String {
    let list: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
    format!("EXISTS (SELECT 1 FROM job_items i WHERE i.job_id = jobs.id AND i.state IN ({}))", list.join(", "))
}

/// The SQL condition that job `jobs.id` is in `state`, as [`JobState::derive`] derives it.
fn in_state(state: JobState) -> String {
    let open: Vec<ItemState> = ItemState::ALL.into_iter().filter(|s| !s.is_terminal()).collect();
    let running = has_item_in(&open);
    let cancelled = has_item_in(&[ItemState::Cancelled]);
    let bad = has_item_in(&[ItemState::Failed, ItemState::DeadLettered]);
    match state {
        JobState::Running => running,
        JobState::Cancelled => format!("NOT {running} AND {cancelled}"),
        JobState::CompletedWithErrors => format!("NOT {running} AND NOT {cancelled} AND {bad}"),
        JobState::Succeeded => {
            let others: Vec<ItemState> = ItemState::ALL.into_iter().filter(|s| *s != ItemState::Succeeded).collect();
            format!("NOT {}", has_item_in(&others))
        }
    }
}

pub async fn list_jobs(db: &DatabaseConnection, f: &JobFilter) -> Result<JobPage, StoreError> {
    if f.connections.is_empty() || f.limit == 0 {
        return Ok(JobPage { jobs: Vec::new(), next_cursor: None });
    }
    let backend = db.get_database_backend();
    let mut marks = Marks::new(backend);
    let mut values: Vec<sea_orm::Value> = Vec::new();
    let mut conds = vec![format!("jobs.connection_id IN ({})", marks.row(f.connections.len()))];
    values.extend(f.connections.iter().map(|c| c.clone().into()));
    if let Some(since) = f.since_ms {
        conds.push(format!("jobs.created_at_ms >= {}", marks.next()));
        values.push(since.into());
    }
    if let Some(c) = &f.after {
        let (a, b, c2) = (marks.next(), marks.next(), marks.next());
        conds.push(format!("(jobs.created_at_ms < {a} OR (jobs.created_at_ms = {b} AND jobs.id < {c2}))"));
        values.extend([c.created_at_ms.into(), c.created_at_ms.into(), c.job_id.clone().into()]);
    }
    if let Some(state) = f.state {
        conds.push(in_state(state));
    }
    let sql = format!(
        "SELECT jobs.id, jobs.connection_id, jobs.op, jobs.total_items, jobs.created_at_ms FROM jobs \
         WHERE {} ORDER BY jobs.created_at_ms DESC, jobs.id DESC LIMIT {}",
        conds.join(" AND "),
        marks.next()
    );
    values.push(((f.limit + 1).min(i64::MAX as u64) as i64).into());
    let rows = db.query_all_raw(sea_orm::Statement::from_sql_and_values(backend, &sql, values)).await?;
    let mut jobs = Vec::with_capacity(rows.len());
    for r in &rows {
        jobs.push(JobListEntry {
            job_id: r.try_get_by_index(0)?,
            connection_id: r.try_get_by_index(1)?,
            op: r.try_get_by_index(2)?,
            state: JobState::Running,
            total_items: r.try_get_by_index(3)?,
            created_at_ms: r.try_get_by_index(4)?,
            counts: BTreeMap::new(),
        });
    }
    let more = jobs.len() as u64 > f.limit;
    jobs.truncate(f.limit as usize);
    count_items(db, &mut jobs).await?;
    let next_cursor = match jobs.last() {
        Some(j) if more => Some(JobCursor { created_at_ms: j.created_at_ms, job_id: j.job_id.clone() }.encode()),
        _ => None,
    };
    Ok(JobPage { jobs, next_cursor })
}

/// Fills in each job's counts and state, one statement for the page.
async fn count_items(db: &DatabaseConnection, jobs: &mut [JobListEntry]) -> Result<(), StoreError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let backend = db.get_database_backend();
    let mut marks = Marks::new(backend);
    let sql = format!(
        "SELECT job_id, state, COUNT(*) FROM job_items WHERE job_id IN ({}) GROUP BY job_id, state",
        marks.row(jobs.len())
    );
    let values: Vec<sea_orm::Value> = jobs.iter().map(|j| j.job_id.clone().into()).collect();
    let rows = db.query_all_raw(sea_orm::Statement::from_sql_and_values(backend, &sql, values)).await?;
    let mut per_job: std::collections::HashMap<String, Vec<(ItemState, u64)>> = Default::default();
    for r in rows {
        let (job, state, n): (String, String, i64) =
            (r.try_get_by_index(0)?, r.try_get_by_index(1)?, r.try_get_by_index(2)?);
        let state =
            ItemState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("unknown item state {state:?}")))?;
        per_job.entry(job).or_default().push((state, n.max(0) as u64));
    }
    for j in jobs {
        let pairs = per_job.remove(&j.job_id).unwrap_or_default();
        j.counts = ItemState::ALL.iter().map(|s| (s.as_str().to_owned(), 0)).collect();
        for (s, n) in &pairs {
            j.counts.insert(s.as_str().to_owned(), *n);
        }
        j.state = JobState::derive(&pairs);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_cursor_round_trips() {
        let c = JobCursor { created_at_ms: 1_700_000_000_123, job_id: uuid::Uuid::now_v7().to_string() };
        assert_eq!(JobCursor::decode(&c.encode()), Some(c));
    }

    proptest! {
        #[test]
        fn a_cursor_of_arbitrary_text_is_refused_or_well_formed(s in ".{0,80}") {
            if let Some(c) = JobCursor::decode(&s) {
                prop_assert!(uuid::Uuid::parse_str(&c.job_id).is_ok());
            }
        }
    }
}
