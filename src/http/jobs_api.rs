//! The `/v1` handlers beyond submitting and showing a job: the job listing, one item,
//! cancelling a job, and redriving dead letters. Tenant-scoped like `api`: another
//! tenant's job, item or connection is answered exactly as an unknown one.

use super::api::{no_job, owns, parse_id};
use super::auth::Principal;
use super::views::{ItemErrorView, ItemView};
use super::{AppState, error, internal};
use crate::domain::{ErrorKind, ItemId, JobId, JobState};
use crate::store::{self, JobCursor, JobFilter};
use crate::telemetry;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

/// Jobs a page holds unless `limit` says otherwise, and at most.
pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 500;

fn bad_parameter(name: &str, message: impl std::fmt::Display) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_parameter", format!("query parameter `{name}`: {message}"))
}

fn no_connection(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, "not_found", format!("no connection {id:?}"))
}

/// The caller's tenant's configured connections.
fn tenant_connections(s: &AppState, p: &Principal) -> Vec<String> {
    s.ctx.config.connections.iter().filter(|c| c.tenant == p.tenant).map(|c| c.id.to_string()).collect()
}

/// The filter of a `GET /v1/jobs` query, or the 400 (or 404) to answer.
fn job_filter(s: &AppState, p: &Principal, q: &HashMap<String, String>) -> Result<JobFilter, Box<Response>> {
    const KNOWN: [&str; 5] = ["connection", "state", "since_ms", "limit", "cursor"];
    if let Some(other) = q.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(Box::new(bad_parameter(other, format!("unknown; known are {}", KNOWN.join(", ")))));
    }
    let connections = match q.get("connection") {
        Some(c) if owns(s, p, c) => vec![c.clone()],
        Some(c) => return Err(Box::new(no_connection(c))),
        None => tenant_connections(s, p),
    };
    let state = match q.get("state") {
        None => None,
        Some(v) => Some(JobState::parse(v).ok_or_else(|| {
            let names: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
            Box::new(bad_parameter("state", format!("{v:?} is not one of {}", names.join(", "))))
        })?),
    };
    let since_ms =
        match q.get("since_ms") {
            None => None,
            Some(v) => Some(v.parse::<i64>().map_err(|_| {
                Box::new(bad_parameter("since_ms", format!("{v:?} is not milliseconds since the epoch")))
            })?),
        };
    let limit = match q.get("limit") {
        None => DEFAULT_LIMIT,
        // As the document has it, an int64: larger numbers are refused, not capped.
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 1 => (n as u64).min(MAX_LIMIT),
            _ => {
                return Err(Box::new(bad_parameter(
                    "limit",
                    format!("{v:?} is not a whole number from 1 to {MAX_LIMIT}"),
                )));
            }
        },
    };
    let after = match q.get("cursor") {
        None => None,
        Some(v) => Some(
            JobCursor::decode(v)
                .ok_or_else(|| Box::new(bad_parameter("cursor", "not a cursor this API handed out")))?,
        ),
    };
    Ok(JobFilter { connections, state, since_ms, limit, after })
}

/// The query of `GET /v1/jobs`, as documented; [`job_filter`] reads it, refusing any
/// other parameter by name.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ListJobsQuery {
    /// Only this connection's jobs (one of the tenant's); all of the tenant's by default.
    connection: Option<String>,
    /// Only jobs in this state.
    #[param(inline)]
    state: Option<JobState>,
    /// Only jobs created at or after this time, in milliseconds since the epoch.
    since_ms: Option<i64>,
    /// Jobs a page holds: 50 by default, more than 500 is read as 500.
    #[param(minimum = 1)]
    limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The tenant's jobs, newest first, a page at a time: pass a page's `next_cursor` as
/// `cursor` for the next.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    params(ListJobsQuery),
    responses(
        (status = 200, body = crate::store::JobPage),
        (status = 400, description = "A parameter is unknown or malformed; the message names it", body = super::errors::ErrorBody),
        (status = 404, description = "`connection` is not one of the tenant's", body = super::errors::ErrorBody),
    )
)]
pub async fn list_jobs(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let filter = match job_filter(&s, &p, &q) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    match store::list_jobs(&s.ctx.db, &filter).await {
        Ok(page) => axum::Json(page).into_response(),
        Err(e) => internal(e),
    }
}

/// One item: its state, attempts and error. Another tenant's item is answered as an
/// unknown one.
#[utoipa::path(
    get,
    path = "/v1/items/{id}",
    tag = "items",
    params(super::views::ItemPath),
    responses(
        (status = 200, body = super::views::ItemView),
        super::views::NoSuchItem,
    )
)]
pub async fn get_item(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let id: ItemId = match parse_id("item", &id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let it = match store::item(&s.ctx.db, &id).await {
        Ok(Some(it)) if owns(&s, &p, &it.connection_id) => it,
        Ok(_) => return error(StatusCode::NOT_FOUND, "not_found", format!("no item {id}")),
        Err(e) => return internal(e),
    };
    let error = it.error_kind.as_deref().map(|kind| ItemErrorView {
        kind: ErrorKind::parse(kind).map(|k| k.as_str()).unwrap_or(kind).to_owned(),
        code: it.error_code.clone(),
        message: it.error_message.clone().unwrap_or_default(),
    });
    let job_url = format!("/v1/jobs/{}", it.job_id);
    axum::Json(ItemView {
        item_id: it.id,
        job_id: it.job_id,
        connection_id: it.connection_id,
        op: it.op,
        source_id: it.source_id,
        state: it.state,
        attempts: it.attempts,
        throttled: it.throttles,
        erp_id: it.erp_id,
        error,
        created_at_ms: it.created_at_ms,
        updated_at_ms: it.updated_at_ms,
        job_url,
    })
    .into_response()
}

/// `POST /v1/jobs/{id}/cancel`: answers the job's summary after the cancel; a job with
/// nothing left to run is a 409.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    tag = "jobs",
    params(super::views::JobPath),
    responses(
        (status = 200, description = "The job after the cancel: its queued items are `cancelled`; those in flight finish", body = crate::store::JobSummary),
        super::views::NoSuchJob,
        (status = 409, description = "The job has nothing left to cancel", body = super::errors::ErrorBody),
    )
)]
pub async fn cancel_job(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let id: JobId = match parse_id("job", &id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let before = match store::job_summary(&s.ctx.db, &id).await {
        Ok(Some(summary)) if owns(&s, &p, &summary.connection_id) => summary,
        Ok(_) => return no_job(&id),
        Err(e) => return internal(e),
    };
    if before.state != JobState::Running {
        return error(
            StatusCode::CONFLICT,
            "job_finished",
            format!("job {id} is {}: nothing is left to cancel", before.state.as_str()),
        );
    }
    let cancelled = match store::cancel_job(&s.ctx.db, &id, &p.tenant).await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    count_cancelled(&s, &before.connection_id, &before.op, cancelled.len() as u64);
    match store::job_summary(&s.ctx.db, &id).await {
        Ok(Some(summary)) => axum::Json(summary).into_response(),
        Ok(None) => no_job(&id),
        Err(e) => internal(e),
    }
}

fn count_cancelled(s: &AppState, connection: &str, op: &str, n: u64) {
    let config = &s.ctx.config;
    let Some((i, c)) = config.connections.iter().enumerate().find(|(_, c)| c.id.as_str() == connection) else {
        return;
    };
    let outcome = crate::domain::ItemState::Cancelled.as_str();
    metrics::counter!(telemetry::ITEMS, "erp" => c.erp.as_str(), "op" => op.to_owned(), "outcome" => outcome)
        .increment(n);
    let label = telemetry::connection_label(config, i, connection);
    metrics::counter!(telemetry::CONNECTION_ITEMS, "connection" => label, "outcome" => outcome).increment(n);
}

/// Which dead letters to redrive; an empty body takes the defaults.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    /// Only this connection's (one of the tenant's); all of the tenant's by default.
    connection: Option<String>,
    /// At most this many of the newest: 100 by default.
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "whole_number")]
    limit: Option<u64>,
}

/// A whole number as JSON Schema counts one: `2.0` is one too, which serde's `u64` refuses.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let Some(n) = <Option<serde_json::Number> as serde::Deserialize>::deserialize(d)? else { return Ok(None) };
    let whole = n.as_f64().filter(|f| f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(f));
    n.as_u64()
        .or(whole.map(|f| f as u64))
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("invalid value: {n}, expected a whole number")))
}

/// Dead letters a redrive moves unless `limit` says otherwise, and at most.
pub const REDRIVE_DEFAULT: u64 = 100;
pub const REDRIVE_MAX: u64 = 1000;

/// `POST /v1/dead-letters/redrive`: as `erpsync dlq redrive`, over the tenant's dead
/// letters only. A message that cannot be read as an envelope names no connection and is
/// redriven by no token (`erpsync dlq redrive` moves it).
#[utoipa::path(
    post,
    path = "/v1/dead-letters/redrive",
    tag = "dead-letters",
    request_body(content = Option<RedriveRequest>, description = "Optional: an empty body, or `null`, redrives up to 100 of the tenant's"),
    responses(
        (status = 200, description = "Every chosen dead letter is back on the queue", body = crate::redrive::Redriven),
        (status = 400, description = "The body is not a redrive request, or `limit` is not from 1 to 1000", body = super::errors::ErrorBody),
        (status = 404, description = "`connection` is not one of the tenant's", body = super::errors::ErrorBody),
        (status = 503, description = "Some chosen dead letters could not be moved (what was done), or the redrive could not run", body = super::views::RedriveUnavailable),
    )
)]
pub async fn redrive(State(s): State<AppState>, Extension(p): Extension<Principal>, body: Bytes) -> Response {
    let req = if body.is_empty() || body.trim_ascii() == b"null" {
        RedriveRequest { connection: None, limit: None }
    } else if !super::api::is_object(&body) {
        return error(StatusCode::BAD_REQUEST, "bad_request", "the body must be a JSON object, or empty");
    } else {
        match serde_json::from_slice::<RedriveRequest>(&body) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
        }
    };
    if let Some(c) = &req.connection
        && !owns(&s, &p, c)
    {
        return no_connection(c);
    }
    let limit = match req.limit {
        None => REDRIVE_DEFAULT,
        Some(n @ 1..=REDRIVE_MAX) => n,
        Some(n) => {
            return error(StatusCode::BAD_REQUEST, "bad_request", format!("limit: {n} is not from 1 to {REDRIVE_MAX}"));
        }
    };
    // The store is shared by every tenant: look through more than `limit` for the caller's.
    let scan = limit.saturating_mul(20).max(1000);
    let keep = |e: Option<&crate::queue::Envelope>| {
        e.is_some_and(|e| match &req.connection {
            Some(c) => e.connection_id.as_str() == c,
            None => owns(&s, &p, e.connection_id.as_str()),
        })
    };
    match crate::redrive::redrive(s.ctx.queue.as_ref(), &s.ctx.db, limit, scan, keep).await {
        Ok(r) => {
            let status = if r.moved < r.chosen { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
            (status, axum::Json(r)).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "redrive", e.to_string()),
    }
}
