//! The `Idempotency-Key`s of `POST /v1/jobs` (table `job_idempotency`, see
//! `migration::m0011_job_idempotency`). A key is the tenant's: another tenant's same key is
//! another key. A key is kept [`KEPT`]; after that the same key starts afresh.

use super::StoreError;
use super::sql::Marks;
use crate::util::now_ms;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use std::time::Duration;

/// How long a key is remembered.
pub const KEPT: Duration = Duration::from_secs(24 * 3600);

/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// What reserving a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The key is new: the caller submits the job, then [`complete`]s or [`release`]s it.
    Reserved,
    /// The same key and body answered before: answer this again.
    Replay { status: u16, response: String },
    /// The same key with the same body is being submitted by another request right now.
    InProgress,
    /// The same key came with a different body.
    Mismatch,
}

fn cutoff() -> i64 {
    now_ms() - KEPT.as_millis() as i64
}

/// Reserves `key` of `tenant` for a request whose body hashes to `body_sha256`, or tells
/// what an earlier request with the key left.
pub async fn reserve(
    db: &DatabaseConnection,
    tenant: &str,
    key: &str,
    body_sha256: &str,
) -> Result<Reservation, StoreError> {
    let backend = db.get_database_backend();
    // Expired keys go first, this one's among them, so it can be reserved afresh.
    let mut marks = Marks::new(backend);
    let sql = format!("DELETE FROM job_idempotency WHERE created_at_ms < {}", marks.next());
    db.execute_raw(sea_orm::Statement::from_sql_and_values(backend, &sql, [cutoff().into()])).await?;
    let mut marks = Marks::new(backend);
    let sql = format!(
        "INSERT INTO job_idempotency (tenant, idempotency_key, body_sha256, created_at_ms) VALUES ({}) \
         ON CONFLICT (tenant, idempotency_key) DO NOTHING",
        marks.row(4)
    );
    let values = [tenant.into(), key.into(), body_sha256.into(), now_ms().into()];
    let inserted = db.execute_raw(sea_orm::Statement::from_sql_and_values(backend, &sql, values)).await?;
    if inserted.rows_affected() == 1 {
        return Ok(Reservation::Reserved);
    }
    let mut marks = Marks::new(backend);
    let sql = format!(
        "SELECT body_sha256, status, response FROM job_idempotency WHERE tenant = {} AND idempotency_key = {}",
        marks.next(),
        marks.next()
    );
    let row =
        db.query_one_raw(sea_orm::Statement::from_sql_and_values(backend, &sql, [tenant.into(), key.into()])).await?;
    // Released between the insert and this read: the key is free again, but another
    // request is taking it.
    let Some(row) = row else { return Ok(Reservation::InProgress) };
    let (hash, status, response): (String, Option<i32>, Option<String>) =
        (row.try_get_by_index(0)?, row.try_get_by_index(1)?, row.try_get_by_index(2)?);
    if hash != body_sha256 {
        return Ok(Reservation::Mismatch);
    }
    Ok(match (status, response) {
        (Some(status), Some(response)) => Reservation::Replay { status: status.clamp(100, 599) as u16, response },
        _ => Reservation::InProgress,
    })
}

/// Records the answer given to the request that reserved `key`.
pub async fn complete(
    db: &DatabaseConnection,
    tenant: &str,
    key: &str,
    status: u16,
    response: &str,
) -> Result<(), StoreError> {
    let backend = db.get_database_backend();
    let mut marks = Marks::new(backend);
    let sql = format!(
        "UPDATE job_idempotency SET status = {}, response = {} WHERE tenant = {} AND idempotency_key = {}",
        marks.next(),
        marks.next(),
        marks.next(),
        marks.next()
    );
    let values = [i32::from(status).into(), response.into(), tenant.into(), key.into()];
    db.execute_raw(sea_orm::Statement::from_sql_and_values(backend, &sql, values)).await?;
    Ok(())
}

/// Frees `key` after its request failed without recording a job, so a retry submits.
pub async fn release(db: &DatabaseConnection, tenant: &str, key: &str) -> Result<(), StoreError> {
    let backend = db.get_database_backend();
    let mut marks = Marks::new(backend);
    let sql = format!(
        "DELETE FROM job_idempotency WHERE tenant = {} AND idempotency_key = {} AND status IS NULL",
        marks.next(),
        marks.next()
    );
    db.execute_raw(sea_orm::Statement::from_sql_and_values(backend, &sql, [tenant.into(), key.into()])).await?;
    Ok(())
}

/// Whether `key` is acceptable: 1 to [`MAX_KEY_LEN`] visible ASCII characters.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        assert!(valid_key("order-1"));
        assert!(valid_key(&"k".repeat(MAX_KEY_LEN)));
        for bad in ["", "with space", "tab\there", "é", &"k".repeat(MAX_KEY_LEN + 1)] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn any_text_is_judged_without_panicking(s in "\\PC{0,300}") {
            prop_assert_eq!(valid_key(&s), !s.is_empty() && s.len() <= MAX_KEY_LEN && s.bytes().all(|b| b.is_ascii_graphic()));
        }
    }
}
