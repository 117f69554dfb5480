//! The daemon's HTTP server: the `/v1` API behind bearer tokens (`auth`), its handlers
//! (`api`, `jobs_api`, `events_api`, `webhooks_api`; `idempotent` for keyed job submission; `views`, the bodies they answer), and `/metrics`, `/healthz` and `/readyz` (`health`), which need no token.
//! Its OpenAPI document (`openapi`) is made from the same routes, so it lists every one.
//!
//! Every error is answered with the same JSON shape, `{"error": {"code", "message"}}` (`errors`).

mod api;
pub mod auth;
mod errors;
mod events_api;
mod health;
mod idempotent;
mod jobs_api;
mod openapi;
mod views;
mod webhook_views;
mod webhooks_api;

use crate::actors::Ctx;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::Response;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) use errors::error;

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

/// The `/v1` routes that need a token. `routes!` takes only handlers with an OpenAPI
/// operation (`#[utoipa::path]`), so none of them can be left out of the document.
fn v1_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::create_job, jobs_api::list_jobs))
        .routes(routes!(api::get_job))
        .routes(routes!(jobs_api::cancel_job))
        .routes(routes!(jobs_api::get_item))
        .routes(routes!(jobs_api::redrive))
        .routes(routes!(api::job_csv))
        .routes(routes!(api::item_events))
        .routes(routes!(api::dead_letters))
        .routes(routes!(events_api::job_events))
        .routes(routes!(events_api::tenant_events))
        .routes(routes!(webhooks_api::create, webhooks_api::list))
        .routes(routes!(webhooks_api::get, webhooks_api::delete))
        .routes(routes!(webhooks_api::rotate))
        .routes(routes!(webhooks_api::deliveries))
        .routes(routes!(webhooks_api::redeliver))
}

/// The routes that need no token: the OpenAPI document, the health endpoints, and
/// `/metrics` when `metrics` is true.
fn open_routes(metrics: bool) -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi::document)).merge(health::router(metrics))
}

/// Whether `http.listen` serves `/metrics` (it does unless `http.metrics_listen` is set).
fn metrics_on_listen(state: &AppState) -> bool {
    state.ctx.config.http.metrics_listen.is_none()
}

/// The OpenAPI document of [`router`]; `metrics` as [`open_routes`] takes it.
pub fn api_doc(metrics: bool) -> utoipa::openapi::OpenApi {
    let routes = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi()).merge(v1_routes()).merge(open_routes(metrics));
    openapi::finish(routes.into_openapi())
}

/// The router of `http.listen`: the API, its OpenAPI document, the health endpoints, and
/// `/metrics` unless `http.metrics_listen` serves it elsewhere.
pub fn router(state: AppState) -> Router {
    let body_limit = usize::try_from(state.ctx.config.http.max_body_bytes.get()).unwrap_or(usize::MAX);
    let metrics = metrics_on_listen(&state);
    let v1 = v1_routes()
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(DefaultBodyLimit::max(body_limit));
    let (routes, _) = v1.merge(open_routes(metrics)).split_for_parts();
    routes
        .layer(axum::Extension(openapi::Document::of(&api_doc(metrics))))
        .layer(axum::middleware::map_response(errors::json_errors))
        .with_state(state)
}

/// The router of `http.metrics_listen`: `/metrics` and the health endpoints.
pub fn metrics_router(state: AppState) -> Router {
    let (routes, _) = health::router(true).split_for_parts();
    routes.layer(axum::middleware::map_response(errors::json_errors)).with_state(state)
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
}
