//! The event stream as Server-Sent Events: `GET /v1/events` (the token's tenant's, by
//! connection and type) and `GET /v1/jobs/{id}/events` (one job's, ending after its
//! completion). Each SSE event is one event of the log: `id:` its cursor, `event:` its
//! type, `data:` it as JSON. A client resumes with `Last-Event-ID` (or `?after=`); the
//! events come from the database, so nothing is lost across a restart or when the client
//! reconnects to another daemon of the fleet.

use super::api::{no_job, owns, parse_id};
use super::auth::Principal;
use super::{AppState, error, internal};
use crate::domain::JobId;
use crate::store;
use crate::store::events::{self, Event, EventCursor, EventFilter, Waiter};
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use sea_orm::DatabaseConnection;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Events read from the database at once.
const PAGE: u32 = 256;

fn bad_parameter(name: &str, message: impl std::fmt::Display) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_parameter", format!("{name}: {message}"))
}

/// Where the stream starts: after `Last-Event-ID`, else after `?after=`, else at the start.
fn start(headers: &HeaderMap, q: &[(String, String)]) -> Result<Option<EventCursor>, Box<Response>> {
    if let Some(v) = headers.get("last-event-id") {
        let text = v.to_str().map_err(|_| Box::new(bad_parameter("header `Last-Event-ID`", "not text")))?;
        return text.parse().map(Some).map_err(|e| Box::new(bad_parameter("header `Last-Event-ID`", e)));
    }
    match q.iter().find(|(k, _)| k == "after") {
        Some((_, v)) => v.parse().map(Some).map_err(|e| Box::new(bad_parameter("query parameter `after`", e))),
        None => Ok(None),
    }
}

/// Refuses query parameters other than `known`.
fn only(q: &[(String, String)], known: &[&str]) -> Result<(), Box<Response>> {
    match q.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        Some((k, _)) => Err(Box::new(bad_parameter(
            &format!("query parameter `{k}`"),
            format!("unknown; known are {}", known.join(", ")),
        ))),
        None => Ok(()),
    }
}

/// The tenant's events as Server-Sent Events, forever, with heartbeats: `id:` the
/// event's cursor, `event:` its type, `data:` the event as JSON. Resume with
/// `Last-Event-ID` (or `after`).
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    params(
        super::webhook_views::EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Start after this event id"),
    ),
    responses(
        (status = 200, description = "The stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "`Last-Event-ID`, `after` or another parameter is not ours; the message names it", body = super::errors::ErrorBody),
        (status = 404, description = "`connection` is not one of the tenant's", body = super::errors::ErrorBody),
        (status = 422, description = "`type` names no event type", body = super::errors::ErrorBody),
    )
)]
pub async fn tenant_events(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = only(&q, &["connection", "type", "after"]) {
        return *r;
    }
    let after = match start(&headers, &q) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let mut filter = EventFilter { tenant: Some(p.tenant.clone()), ..Default::default() };
    if let Some((_, c)) = q.iter().find(|(k, _)| k == "connection") {
        if !owns(&s, &p, c) {
            return error(StatusCode::NOT_FOUND, "not_found", format!("no connection {c:?}"));
        }
        filter.connection = Some(c.clone());
    }
    let known = events::kinds();
    for (_, v) in q.iter().filter(|(k, _)| k == "type") {
        for kind in v.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            if !known.iter().any(|k| k == kind) {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "bad_parameter",
                    format!("query parameter `type`: {kind:?} is not one of {}", known.join(", ")),
                );
            }
            filter.kinds.push(kind.to_owned());
        }
    }
    stream(&s, filter, after, false)
}

/// One job's events as Server-Sent Events (as `GET /v1/events`), ending after the job's
/// completion event.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/events",
    tag = "events",
    params(
        super::views::JobPath,
        super::webhook_views::JobEventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Start after this event id"),
    ),
    responses(
        (status = 200, description = "The stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "The id is not a job id, or `Last-Event-ID`, `after` or another parameter is not ours", body = super::errors::ErrorBody),
        (status = 404, description = "No such job of this tenant", body = super::errors::ErrorBody),
    )
)]
pub async fn job_events(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let id: JobId = match parse_id("job", &id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    if let Err(r) = only(&q, &["after"]) {
        return *r;
    }
    match store::job_connection(&s.ctx.db, &id).await {
        Ok(Some(c)) if owns(&s, &p, &c) => {}
        Ok(_) => return no_job(&id),
        Err(e) => return internal(e),
    }
    let after = match start(&headers, &q) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let filter = EventFilter { tenant: Some(p.tenant.clone()), job_id: Some(id.to_string()), ..Default::default() };
    stream(&s, filter, after, true)
}

fn stream(s: &AppState, filter: EventFilter, after: Option<EventCursor>, until_completion: bool) -> Response {
    let heartbeat = Duration::from_millis(s.ctx.config.http.sse_heartbeat_ms.get().into());
    let events = follow(s.ctx.db.clone(), s.ctx.shutdown.clone(), filter, after, until_completion);
    Sse::new(events).keep_alive(KeepAlive::new().interval(heartbeat)).into_response()
}

/// The SSE form of `e`.
fn sse(e: &Event) -> SseEvent {
    let data = serde_json::json!({
        "id": e.cursor.to_string(),
        "type": e.kind,
        "tenant": e.tenant,
        "connection_id": e.connection,
        "job_id": e.job_id,
        "item_id": e.item_id,
        "at_ms": e.at_ms,
        "data": e.data,
    });
    SseEvent::default().id(e.cursor.to_string()).event(&e.kind).data(data.to_string())
}

/// The events of `filter` after `after`, as they commit; with `until_completion`, up to
/// and including the first job completion. Ends when the daemon shuts down (the server's
/// graceful stop waits for every response to end; the client resumes elsewhere).
///
/// After news (a commit here, a notification from another daemon) that a read finds
/// nothing for, the next reads come soon after, in short doubling steps: on PostgreSQL
/// the news may be of a transaction that another, still running, holds back from readers
/// (see `store::events`), and that one need not send news when it ends.
fn follow(
    db: DatabaseConnection,
    shutdown: CancellationToken,
    filter: EventFilter,
    mut after: Option<EventCursor>,
    until_completion: bool,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    async_stream::stream! {
        let mut waiter = Waiter::new();
        let mut page: VecDeque<Event> = VecDeque::new();
        let mut soon = Duration::ZERO;
        loop {
            if let Some(e) = page.pop_front() {
                yield Ok(sse(&e));
                if until_completion && events::completes_job(&e.kind) {
                    return;
                }
                continue;
            }
            match events::read_after(&db, after.as_ref(), &filter, PAGE).await {
                Ok(read) if !read.is_empty() => {
                    after = read.last().map(|e| e.cursor);
                    page.extend(read);
                    soon = Duration::ZERO;
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read events for a stream; trying again"),
            }
            if soon > Duration::ZERO && soon < events::POLL {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(soon) => soon *= 2,
                }
            } else {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    news = waiter.wait() => {
                        soon = if news { Duration::from_millis(5) } else { Duration::ZERO };
                    }
                }
            }
        }
    }
}
