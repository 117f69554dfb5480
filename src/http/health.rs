//! `/metrics`, `/healthz` and `/readyz`: for scrapers, load balancers and systemd, so
//! they need no token.

use super::{AppState, error};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The health endpoints, and `/metrics` when `metrics` is true.
pub fn router(metrics: bool) -> OpenApiRouter<AppState> {
    let r = OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz));
    if metrics { r.routes(routes!(prometheus)) } else { r }
}

/// Alive: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// The Prometheus text exposition of every `erpsync_` metric.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, body = String, content_type = "text/plain")))]
async fn prometheus(State(s): State<AppState>) -> String {
    s.metrics.render()
}

/// Ready when the database answers and the poller and status writer are alive.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    responses(
        (status = 200, body = String, content_type = "text/plain"),
        (status = 503, description = "Not ready: the message names every problem", body = super::errors::ErrorBody)
    )
)]
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
