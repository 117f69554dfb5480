//! The bodies the `/v1` handlers answer with where no store or domain type is the answer
//! as it stands: typed, so the OpenAPI document's schemas are the answers' own.

use crate::domain::{ItemId, JobId};
use serde::{Deserialize, Serialize};

/// How a job was accepted: `queued` once every item is on the queue; `accepted` while the
/// outbox still has some to send.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Acceptance {
    Queued,
    Accepted,
}

/// The answer to an accepted job.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobAcceptedBody {
    pub job_id: JobId,
    /// Items recorded, one a document.
    pub items: usize,
    /// Items not on the queue yet; the outbox sends them shortly.
    pub unsent: usize,
    pub state: Acceptance,
    /// Where the job's status is: `GET` it.
    pub status_url: String,
}

/// An item's timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemTimeline {
    pub item_id: ItemId,
    /// Oldest first, from the item's creation (`queued`).
    pub events: Vec<crate::store::ItemEventRow>,
}

/// The newest dead letters.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetters {
    pub dead_letters: Vec<crate::queue::DeadLetter>,
}

/// What went wrong with an item's latest attempt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemErrorView {
    /// One of the error kinds (`rejected`, `validation`, `transient`, …).
    pub kind: String,
    /// The ERP's own error code, when it gave one.
    pub code: Option<String>,
    pub message: String,
}

/// One item of a job.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemView {
    pub item_id: String,
    pub job_id: String,
    pub connection_id: String,
    #[schema(value_type = crate::domain::Op)]
    pub op: String,
    /// The document's `source_id`.
    pub source_id: String,
    #[schema(value_type = crate::domain::ItemState)]
    pub state: String,
    pub attempts: i32,
    /// Of `attempts`, those the ERP throttled.
    pub throttled: i32,
    /// The document's id in the ERP, once exported.
    pub erp_id: Option<String>,
    pub error: Option<ItemErrorView>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Where the item's job is.
    pub job_url: String,
}

/// A redrive that moved fewer than it chose, or could not run.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // a schema only: the two answers are built as they are
pub enum RedriveUnavailable {
    Partly(crate::redrive::Redriven),
    Failed(super::errors::ErrorBody),
}

/// The id of a job in a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // documents the path; handlers read the id themselves, to answer 400 as they do
pub struct JobPath {
    /// The job's id
    id: uuid::Uuid,
}

/// The id of an item in a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // as `JobPath`
pub struct ItemPath {
    /// The item's id
    id: uuid::Uuid,
}

/// What looking up a job by its id can answer besides the job.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a document only: handlers answer through `error`
pub enum NoSuchJob {
    /// The id is not a job id
    #[response(status = 400)]
    BadId(super::errors::ErrorBody),
    /// No such job of this tenant
    #[response(status = 404)]
    NotFound(super::errors::ErrorBody),
}

/// What looking up an item by its id can answer besides the item.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // as `NoSuchJob`
pub enum NoSuchItem {
    /// The id is not an item id
    #[response(status = 400)]
    BadId(super::errors::ErrorBody),
    /// No such item of this tenant
    #[response(status = 404)]
    NotFound(super::errors::ErrorBody),
}
