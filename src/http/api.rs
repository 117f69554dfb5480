//! The `/v1` handlers. Each sees only the caller's tenant: a job, item or dead letter of
//! another tenant's connection is answered exactly as an unknown one, so a token cannot
//! even learn that it exists.

use super::auth::Principal;
use super::views::{Acceptance, DeadLetters, ItemTimeline, JobAcceptedBody};
use super::{AppState, error, internal};
use crate::domain::{ItemId, JobId};
use crate::jobs::{self, JobRequest, SubmitError};
use crate::queue::Envelope;
use crate::store;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// Whether the caller's tenant owns `connection`. A connection no longer configured
/// belongs to no one: its jobs are hidden from every token.
pub(super) fn owns(s: &AppState, p: &Principal, connection: &str) -> bool {
    s.ctx.config.tenant_of(connection) == Some(p.tenant.as_str())
}

/// Submits a job: its documents are recorded and queued, and the answer comes at once;
/// follow the job at its `status_url`. With an `Idempotency-Key`, a repeat of the same
/// request (same key, same body) is answered as the first was, with
/// `Idempotent-Replayed: true`, and creates no second job.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    tag = "jobs",
    request_body = crate::jobs::JobRequestSchema,
    params((
        "Idempotency-Key" = Option<String>,
        Header,
        description = "Makes the submission safe to retry: 1 to 255 visible ASCII characters, the tenant's own",
        min_length = 1,
        max_length = 255,
        pattern = r"^[\x21-\x7E]+$"
    )),
    responses(
        (status = 202, description = "Accepted", body = super::views::JobAcceptedBody, headers(
            ("Idempotent-Replayed" = String, description = "`true` when this answers a repeat of an earlier request")
        )),
        (status = 400, description = "The body is not a job request, or the Idempotency-Key header is malformed", body = super::errors::ErrorBody),
        (status = 409, description = "A request with this Idempotency-Key is still being processed", body = super::errors::ErrorBody),
        (status = 422, description = "An unknown connection, no or too many documents, a document that is not one of `op`, \
                                      or an Idempotency-Key used before with another body", body = super::errors::ErrorBody),
        (status = 503, description = "The daemon is shutting down, or the job could not be recorded", body = super::errors::ErrorBody),
    )
)]
pub async fn create_job(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let max = s.ctx.config.http.max_body_bytes;
            return error(e.status(), "body_too_large", format!("the request body exceeds {max} bytes"));
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e.body_text()),
    };
    match super::idempotent::key(&headers) {
        Ok(None) => answer(submit_job(&s, &p, &body).await),
        Ok(Some(key)) => super::idempotent::submit_once(&s, &p, key, &body, submit_job(&s, &p, &body)).await,
        Err(r) => *r,
    }
}

/// A job's acceptance, or the error response.
pub(super) type Submitted = Result<(StatusCode, serde_json::Value), Response>;

pub(super) fn answer(r: Submitted) -> Response {
    match r {
        Ok((status, body)) => (status, axum::Json(body)).into_response(),
        Err(r) => r,
    }
}

/// Whether `body` is a JSON object, not an array: serde would read a struct from an
/// array too, by position.
pub(super) fn is_object(body: &[u8]) -> bool {
    body.trim_ascii_start().first() == Some(&b'{')
}

async fn submit_job(s: &AppState, p: &Principal, body: &[u8]) -> Submitted {
    if !is_object(body) {
        return Err(error(StatusCode::BAD_REQUEST, "bad_request", "the body must be a JSON object"));
    }
    let axum::Json(req) = axum::Json::<JobRequest>::from_bytes(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    let outcome = if owns(s, p, req.connection_id.as_str()) {
        jobs::submit(&s.ctx, req).await
    } else {
        Err(SubmitError::UnknownConnection(req.connection_id.to_string()))
    };
    match outcome {
        Ok(acc) => {
            let url = format!("/v1/jobs/{}", acc.job_id);
            // `queued` only once every item is on the queue; otherwise the outbox sends
            // the rest shortly and the job is `accepted`.
            let state = if acc.unsent == 0 { Acceptance::Queued } else { Acceptance::Accepted };
            let body =
                JobAcceptedBody { job_id: acc.job_id, items: acc.items, unsent: acc.unsent, state, status_url: url };
            Ok((StatusCode::ACCEPTED, serde_json::to_value(body).map_err(super::internal)?))
        }
        Err(e @ SubmitError::ShuttingDown) => Err(error(StatusCode::SERVICE_UNAVAILABLE, e.kind(), e.to_string())),
        Err(e @ SubmitError::Store(_)) => Err(error(StatusCode::SERVICE_UNAVAILABLE, e.kind(), e.to_string())),
        Err(e) => Err(error(StatusCode::UNPROCESSABLE_ENTITY, e.kind(), e.to_string())),
    }
}

pub(super) fn parse_id<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, Box<Response>> {
    s.parse().map_err(|_| Box::new(error(StatusCode::BAD_REQUEST, "bad_id", format!("{s:?} is not a {what} id"))))
}

pub(super) fn no_job(id: &JobId) -> Response {
    error(StatusCode::NOT_FOUND, "not_found", format!("no job {id}"))
}

/// A job: its state, item counts and items. Another tenant's job is answered as an
/// unknown one.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    params(super::views::JobPath),
    responses(
        (status = 200, body = crate::store::JobSummary),
        super::views::NoSuchJob,
    )
)]
pub async fn get_job(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let id: JobId = match parse_id("job", &id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match store::job_summary(&s.ctx.db, &id).await {
        Ok(Some(summary)) if owns(&s, &p, &summary.connection_id) => axum::Json(summary).into_response(),
        Ok(_) => no_job(&id),
        Err(e) => internal(e),
    }
}

/// The job's invoices as a bill export file.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/bills.csv",
    tag = "jobs",
    params(super::views::JobPath),
    responses(
        (status = 200, description = "One row a bill line", body = String, content_type = "text/csv"),
        super::views::NoSuchJob,
    )
)]
pub async fn job_csv(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let id: JobId = match parse_id("job", &id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match store::job_connection(&s.ctx.db, &id).await {
        Ok(Some(c)) if owns(&s, &p, &c) => {}
        Ok(_) => return no_job(&id),
        Err(e) => return internal(e),
    }
    let items = match store::job_payloads(&s.ctx.db, &id).await {
        Ok(items) => items,
        Err(e) => return internal(e),
    };
    let invoices: Vec<crate::domain::Invoice> = items.iter().filter_map(|p| serde_json::from_str(p).ok()).collect();
    match crate::pipeline::render::csv::bills(&invoices) {
        Ok(csv) => ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response(),
        Err(e) => internal(e),
    }
}

/// An item's timeline: every state it went through, with its attempt.
#[utoipa::path(
    get,
    path = "/v1/items/{id}/events",
    tag = "items",
    params(super::views::ItemPath),
    responses(
        (status = 200, body = super::views::ItemTimeline),
        super::views::NoSuchItem,
    )
)]
pub async fn item_events(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let id: ItemId = match parse_id("item", &id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match store::item_connection(&s.ctx.db, &id).await {
        Ok(Some(c)) if owns(&s, &p, &c) => {}
        Ok(_) => return error(StatusCode::NOT_FOUND, "not_found", format!("no item {id}")),
        Err(e) => return internal(e),
    }
    match store::item_events(&s.ctx.db, &id).await {
        Ok(events) => axum::Json(ItemTimeline { item_id: id, events }).into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Limit {
    /// At most this many (default 100; more than 1000 is read as 1000).
    #[param(minimum = 0)]
    limit: Option<i64>,
}

/// The newest dead letters of the caller's connections. The store is shared by every
/// tenant, so this looks through up to ten times `limit` (at most 1000) of the newest
/// and keeps the caller's; a message that cannot be read as an envelope names no
/// connection and is shown to no one (`erpsync dlq list` shows it).
#[utoipa::path(
    get,
    path = "/v1/dead-letters",
    tag = "dead-letters",
    params(Limit),
    responses(
        (status = 200, body = super::views::DeadLetters),
        (status = 400, description = "`limit` is not a whole number", body = super::errors::ErrorBody),
    )
)]
pub async fn dead_letters(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<Limit>,
) -> Response {
    let limit = match q.limit {
        None => 100,
        Some(n) => match u64::try_from(n) {
            Ok(n) => n.min(1000),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_parameter",
                    "query parameter `limit`: must not be negative",
                );
            }
        },
    };
    match s.ctx.queue.dead_letters(limit.saturating_mul(10).min(1000)).await {
        Ok(list) => {
            let mine: Vec<_> = list
                .into_iter()
                .filter(|d| Envelope::decode(&d.body).is_ok_and(|e| owns(&s, &p, e.connection_id.as_str())))
                .take(limit as usize)
                .collect();
            axum::Json(DeadLetters { dead_letters: mine }).into_response()
        }
        Err(e) => internal(e),
    }
}
