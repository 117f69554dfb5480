//! The `/v1` handlers. Each sees only the caller's tenant: a job, item or dead letter of
//! another tenant's connection is answered exactly as an unknown one, so a token cannot
//! even learn that it exists.

use super::auth::Principal;
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
use serde_json::json;

/// Whether the caller's tenant owns `connection`. A connection no longer configured
/// belongs to no one: its jobs are hidden from every token.
pub(super) fn owns(s: &AppState, p: &Principal, connection: &str) -> bool {
    s.ctx.config.tenant_of(connection) == Some(p.tenant.as_str())
}

/// `POST /v1/jobs`. With an `Idempotency-Key` header, see [`super::idempotent`].
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

async fn submit_job(s: &AppState, p: &Principal, body: &[u8]) -> Submitted {
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
            let state = if acc.unsent == 0 { "queued" } else { "accepted" };
            let body = json!({"job_id": acc.job_id, "items": acc.items, "unsent": acc.unsent, "state": state, "status_url": url});
            Ok((StatusCode::ACCEPTED, body))
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
        Ok(events) => axum::Json(json!({"item_id": id, "events": events})).into_response(),
        Err(e) => internal(e),
    }
}

#[derive(serde::Deserialize)]
pub struct Limit {
    limit: Option<u64>,
}

/// The newest dead letters of the caller's connections. The store is shared by every
/// tenant, so this looks through up to ten times `limit` (at most 1000) of the newest
/// and keeps the caller's; a message that cannot be read as an envelope names no
/// connection and is shown to no one (`erpsync dlq list` shows it).
pub async fn dead_letters(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<Limit>,
) -> Response {
    let limit = q.limit.unwrap_or(100).min(1000);
    match s.ctx.queue.dead_letters(limit.saturating_mul(10).min(1000)).await {
        Ok(list) => {
            let mine: Vec<_> = list
                .into_iter()
                .filter(|d| Envelope::decode(&d.body).is_ok_and(|e| owns(&s, &p, e.connection_id.as_str())))
                .take(limit as usize)
                .collect();
            axum::Json(json!({"dead_letters": mine})).into_response()
        }
        Err(e) => internal(e),
    }
}
