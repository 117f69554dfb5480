//! The daemon's HTTP server: the `/v1` API, `/metrics`, `/healthz` and `/readyz`.

use crate::actors::Ctx;
use crate::domain::{ItemId, JobId};
use crate::jobs::{self, JobRequest, SubmitError};
use crate::store;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct AppState {
    pub ctx: Arc<Ctx>,
    pub metrics: PrometheusHandle,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/jobs", post(create_job))
        .route("/v1/jobs/{id}", get(get_job))
        .route("/v1/jobs/{id}/bills.csv", get(job_csv))
        .route("/v1/items/{id}/events", get(item_events))
        .route("/v1/dead-letters", get(dead_letters))
        .route("/metrics", get(|State(s): State<AppState>| async move { s.metrics.render() }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": {"code": code, "message": message.into()}}))).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
}

async fn create_job(State(s): State<AppState>, body: Result<axum::Json<JobRequest>, JsonRejection>) -> Response {
    let axum::Json(req) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e.body_text()),
    };
    match jobs::submit(&s.ctx, req).await {
        Ok(acc) => {
            let url = format!("/v1/jobs/{}", acc.job_id);
            // `queued` only once every item is on the queue; otherwise the outbox sends
            // the rest shortly and the job is `accepted`.
            let state = if acc.unsent == 0 { "queued" } else { "accepted" };
            let body = json!({"job_id": acc.job_id, "items": acc.items, "unsent": acc.unsent, "state": state, "status_url": url});
            (StatusCode::ACCEPTED, axum::Json(body)).into_response()
        }
        Err(e @ SubmitError::ShuttingDown) => error(StatusCode::SERVICE_UNAVAILABLE, e.kind(), e.to_string()),
        Err(e @ SubmitError::Store(_)) => error(StatusCode::SERVICE_UNAVAILABLE, e.kind(), e.to_string()),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e.kind(), e.to_string()),
    }
}

fn parse_id<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, Box<Response>> {
    s.parse().map_err(|_| Box::new(error(StatusCode::BAD_REQUEST, "bad_id", format!("{s:?} is not a {what} id"))))
}

async fn get_job(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let id: JobId = match parse_id("job", &id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match store::job_summary(&s.ctx.db, &id).await {
        Ok(Some(summary)) => axum::Json(summary).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "not_found", format!("no job {id}")),
        Err(e) => internal(e),
    }
}

/// The job's invoices as a bill export file.
async fn job_csv(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let id: JobId = match parse_id("job", &id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
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

async fn item_events(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let id: ItemId = match parse_id("item", &id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match store::item_events(&s.ctx.db, &id).await {
        Ok(events) => axum::Json(json!({"item_id": id, "events": events})).into_response(),
        Err(e) => internal(e),
    }
}

#[derive(serde::Deserialize)]
struct Limit {
    limit: Option<u64>,
}

async fn dead_letters(State(s): State<AppState>, Query(q): Query<Limit>) -> Response {
    match s.ctx.queue.dead_letters(q.limit.unwrap_or(100).min(1000)).await {
        Ok(list) => axum::Json(json!({"dead_letters": list})).into_response(),
        Err(e) => internal(e),
    }
}

/// Ready when the database answers and the poller and status writer are alive.
async fn readyz(State(s): State<AppState>) -> Response {
    let ctx = &s.ctx;
    let mut problems = Vec::new();
    if ctx.shutdown.is_cancelled() {
        problems.push("shutting down".to_owned());
    }
    if let Err(e) = tokio::time::timeout(Duration::from_secs(2), ctx.db.ping())
        .await
        .unwrap_or(Err(sea_orm::DbErr::Custom("timed out".into())))
    {
        problems.push(format!("database: {e}"));
    }
    for (what, cell) in [("poller", &ctx.poller_progress), ("status writer", &ctx.status_progress)] {
        let actor = if what == "poller" { "poller" } else { "status" };
        if ractor::registry::where_is(ctx.name(actor)).is_none() {
            problems.push(format!("{what} is not running"));
        } else if what == "poller" && ctx.since_progress(cell) > Duration::from_secs(30) {
            problems.push(format!("{what} made no progress for {} s", ctx.since_progress(cell).as_secs()));
        }
    }
    if problems.is_empty() {
        "ready\n".into_response()
    } else {
        error(StatusCode::SERVICE_UNAVAILABLE, "not_ready", problems.join("; "))
    }
}
