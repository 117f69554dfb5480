//! The daemon's HTTP server: the `/v1` API behind bearer tokens (`auth`), its handlers
//! (`api`, `jobs_api`, `webhooks_api`; `idempotent` for keyed job submission), and `/metrics`, `/healthz` and `/readyz` (`health`), which need no token.
//!
//! Every error is answered with the same JSON shape, `{"error": {"code", "message"}}`.

mod api;
pub mod auth;
mod events_api;
mod health;
mod idempotent;
mod jobs_api;
mod webhooks_api;

use crate::actors::Ctx;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub ctx: Arc<Ctx>,
    pub metrics: PrometheusHandle,
    pub auth: Arc<auth::Auth>,
}

impl AppState {
    pub fn new(ctx: Arc<Ctx>, metrics: PrometheusHandle) -> AppState {
        let auth = Arc::new(auth::Auth::new(ctx.config.http.requests_per_min_per_token.get()));
        AppState { ctx, metrics, auth }
    }
}

/// The router of `http.listen`: the API, the health endpoints, and `/metrics` unless
/// `http.metrics_listen` serves it elsewhere.
pub fn router(state: AppState) -> Router {
    let body_limit = usize::try_from(state.ctx.config.http.max_body_bytes.get()).unwrap_or(usize::MAX);
    let v1 = Router::new()
        .route("/v1/jobs", post(api::create_job).get(jobs_api::list_jobs))
        .route("/v1/jobs/{id}", get(api::get_job))
        .route("/v1/jobs/{id}/cancel", post(jobs_api::cancel_job))
        .route("/v1/items/{id}", get(jobs_api::get_item))
        .route("/v1/dead-letters/redrive", post(jobs_api::redrive))
        .route("/v1/jobs/{id}/bills.csv", get(api::job_csv))
        .route("/v1/items/{id}/events", get(api::item_events))
        .route("/v1/jobs/{id}/events", get(events_api::job_events))
        .route("/v1/events", get(events_api::tenant_events))
        .route("/v1/dead-letters", get(api::dead_letters))
        .route("/v1/webhooks", post(webhooks_api::create).get(webhooks_api::list))
        .route("/v1/webhooks/{id}", get(webhooks_api::get).delete(webhooks_api::delete))
        .route("/v1/webhooks/{id}/rotate-secret", post(webhooks_api::rotate))
        .route("/v1/webhooks/{id}/deliveries", get(webhooks_api::deliveries))
        .route("/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", post(webhooks_api::redeliver))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(DefaultBodyLimit::max(body_limit));
    let ops = health::router(state.ctx.config.http.metrics_listen.is_none());
    v1.merge(ops).with_state(state)
}

/// The router of `http.metrics_listen`: `/metrics` and the health endpoints.
pub fn metrics_router(state: AppState) -> Router {
    health::router(true).with_state(state)
}

pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": {"code": code, "message": message.into()}}))).into_response()
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
}
