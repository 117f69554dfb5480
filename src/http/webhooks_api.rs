//! `/v1/webhooks`: a tenant's subscriptions (make, list, show, delete, rotate the secret)
//! and each one's delivery log and redelivery. Another tenant's subscription is answered
//! exactly as an unknown one. The signing secret is shown twice only: in the answer that
//! made it and in the answer of the rotation that replaced it.

use super::auth::Principal;
use super::webhook_views::{DeliveryPage, WebhookWithSecret, Webhooks};
use super::{AppState, error, internal};
use crate::store::webhooks::{self as store, Subscription, deliveries};
use crate::util::now_ms;
use crate::webhooks::{self, address, signing};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde_json::Value;
use std::collections::HashMap;

/// Deliveries a log page holds unless `limit` says otherwise, and at most.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

fn unprocessable(field: &str, code: &str, message: impl std::fmt::Display) -> Response {
    error(StatusCode::UNPROCESSABLE_ENTITY, code, format!("{field}: {message}"))
}

fn no_webhook(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, "not_found", format!("no webhook {id:?}"))
}

fn no_key() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "secrets_key_missing",
        "webhook secrets are stored encrypted and this daemon has no `[secrets] key`: ask its operator to set one",
    )
}

/// The `url` and `events` of a subscription request, or the 4xx naming what is wrong.
async fn read_request(s: &AppState, body: &[u8]) -> Result<(String, Vec<String>), Box<Response>> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, "bad_request", format!("the body is not JSON: {e}"))))?;
    let Some(fields) = v.as_object() else {
        return Err(Box::new(error(StatusCode::BAD_REQUEST, "bad_request", "the body is not a JSON object")));
    };
    if let Some(other) = fields.keys().find(|k| !["url", "events"].contains(&k.as_str())) {
        return Err(Box::new(unprocessable(other, "unknown_field", "unknown; known are url, events")));
    }
    let url = match fields.get("url") {
        Some(Value::String(u)) => u.clone(),
        Some(_) => return Err(Box::new(unprocessable("url", "bad_url", "must be a string"))),
        None => return Err(Box::new(unprocessable("url", "bad_url", "is required"))),
    };
    let parsed = address::parse(&url).map_err(|e| Box::new(unprocessable("url", "bad_url", e)))?;
    let allow_private = s.ctx.config.webhooks.allow_private;
    address::check(&parsed, allow_private).await.map_err(|e| {
        let code = if e.contains("webhooks.allow_private") { "private_address" } else { "bad_url" };
        Box::new(unprocessable("url", code, e))
    })?;
    let Some(Value::Array(list)) = fields.get("events") else {
        return Err(Box::new(unprocessable("events", "bad_events", "must be a list of event types")));
    };
    let mut events = Vec::new();
    for e in list {
        let Some(kind) = e.as_str() else {
            return Err(Box::new(unprocessable("events", "bad_events", format!("{e} is not a string"))));
        };
        if !webhooks::is_event_type(kind) {
            let known = webhooks::EVENT_TYPES.join(", ");
            let message = format!("{kind:?} is not an event type (known: {known})");
            return Err(Box::new(unprocessable("events", "unknown_event_type", message)));
        }
        if !events.iter().any(|k| k == kind) {
            events.push(kind.to_owned());
        }
    }
    if events.is_empty() {
        return Err(Box::new(unprocessable("events", "bad_events", "name at least one event type")));
    }
    Ok((url, events))
}

/// Subscribes a URL to event types: answers the subscription with its signing secret,
/// shown here only.
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    tag = "webhooks",
    request_body = super::webhook_views::WebhookRequest,
    responses(
        (status = 201, body = WebhookWithSecret),
        (status = 400, description = "The body is not a JSON object", body = super::errors::ErrorBody),
        (status = 422, description = "`url` or `events` is wrong (the code names how: bad_url, private_address, unknown_event_type, bad_events, unknown_field)", body = super::errors::ErrorBody),
        (status = 503, description = "The daemon has no `[secrets] key` to store the secret with", body = super::errors::ErrorBody),
    )
)]
pub async fn create(State(s): State<AppState>, Extension(p): Extension<Principal>, body: Bytes) -> Response {
    let (url, events) = match read_request(&s, &body).await {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let Some(key) = s.ctx.secrets.as_ref() else { return no_key() };
    let now = now_ms();
    let sub = Subscription {
        id: format!("wh_{}", uuid::Uuid::now_v7().simple()),
        tenant: p.tenant.clone(),
        url,
        events,
        created_at_ms: now,
        secret_set_at_ms: now,
        previous_secret_valid_until_ms: None,
    };
    let secret = signing::new_secret();
    let sealed = key.seal(&webhooks::secret_owner(&sub.id), &secret);
    if let Err(e) = store::insert(&s.ctx.db, &sub, &sealed).await {
        return internal(e);
    }
    let answer = WebhookWithSecret { subscription: sub, secret: secret.expose_secret().to_owned() };
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

/// The tenant's subscriptions.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", responses((status = 200, body = Webhooks)))]
pub async fn list(State(s): State<AppState>, Extension(p): Extension<Principal>) -> Response {
    match store::list(&s.ctx.db, &p.tenant).await {
        Ok(webhooks) => axum::Json(Webhooks { webhooks }).into_response(),
        Err(e) => internal(e),
    }
}

/// The caller's subscription `id`, or the 404 (or 500) to answer.
async fn owned(s: &AppState, p: &Principal, id: &str) -> Result<Subscription, Box<Response>> {
    match store::get(&s.ctx.db, &p.tenant, id).await {
        Ok(Some(sub)) => Ok(sub),
        Ok(None) => Err(Box::new(no_webhook(id))),
        Err(e) => Err(Box::new(internal(e))),
    }
}

/// One subscription (never its secret).
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    params(super::webhook_views::WebhookPath),
    responses((status = 200, body = Subscription), (status = 404, description = "No such subscription of this tenant", body = super::errors::ErrorBody))
)]
pub async fn get(State(s): State<AppState>, Extension(p): Extension<Principal>, Path(id): Path<String>) -> Response {
    match owned(&s, &p, &id).await {
        Ok(sub) => axum::Json(sub).into_response(),
        Err(r) => *r,
    }
}

/// Deletes a subscription and its deliveries.
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    params(super::webhook_views::WebhookPath),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such subscription of this tenant", body = super::errors::ErrorBody))
)]
pub async fn delete(State(s): State<AppState>, Extension(p): Extension<Principal>, Path(id): Path<String>) -> Response {
    match store::delete(&s.ctx.db, &p.tenant, &id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => no_webhook(&id),
        Err(e) => internal(e),
    }
}

/// Rotates the signing secret: answers the new one; the old one keeps signing beside it
/// for `webhooks.secret_overlap_secs`.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/rotate-secret",
    tag = "webhooks",
    params(super::webhook_views::WebhookPath),
    responses(
        (status = 200, body = WebhookWithSecret),
        (status = 404, description = "No such subscription of this tenant", body = super::errors::ErrorBody),
        (status = 503, description = "The daemon has no `[secrets] key` to store the secret with", body = super::errors::ErrorBody),
    )
)]
pub async fn rotate(State(s): State<AppState>, Extension(p): Extension<Principal>, Path(id): Path<String>) -> Response {
    if let Err(r) = owned(&s, &p, &id).await {
        return *r;
    }
    let Some(key) = s.ctx.secrets.as_ref() else { return no_key() };
    let secret = signing::new_secret();
    let sealed = key.seal(&webhooks::secret_owner(&id), &secret);
    let now = now_ms();
    let until = now + i64::from(s.ctx.config.webhooks.secret_overlap_secs.get()) * 1000;
    match store::rotate(&s.ctx.db, &p.tenant, &id, &sealed, now, until).await {
        Ok(Some(sub)) => {
            let answer = WebhookWithSecret { subscription: sub, secret: secret.expose_secret().to_owned() };
            axum::Json(answer).into_response()
        }
        Ok(None) => no_webhook(&id),
        Err(e) => internal(e),
    }
}

/// A subscription's delivery log, newest first, each delivery with its attempts.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(super::webhook_views::WebhookPath, super::webhook_views::DeliveriesQuery),
    responses(
        (status = 200, body = DeliveryPage),
        (status = 404, description = "No such subscription of this tenant", body = super::errors::ErrorBody),
        (status = 422, description = "A parameter is unknown or out of range; the message names it", body = super::errors::ErrorBody),
    )
)]
pub async fn deliveries(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(other) = q.keys().find(|k| !["limit", "cursor"].contains(&k.as_str())) {
        return unprocessable(other, "bad_parameter", "unknown; known are limit, cursor");
    }
    let limit = match q.get("limit").map(|v| v.parse::<u32>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(n @ 1..=MAX_LIMIT)) => n,
        Some(_) => return unprocessable("limit", "bad_parameter", format!("a whole number from 1 to {MAX_LIMIT}")),
    };
    let cursor = q.get("cursor").map(String::as_str);
    if cursor.is_some_and(|c| !is_delivery_id(c)) {
        return unprocessable("cursor", "bad_parameter", "not a cursor this API handed out");
    }
    if let Err(r) = owned(&s, &p, &id).await {
        return *r;
    }
    match deliveries::page(&s.ctx.db, &id, cursor, limit).await {
        Ok(list) => {
            let next = (list.len() == limit as usize).then(|| list.last().map(|d| d.id.clone())).flatten();
            axum::Json(DeliveryPage { deliveries: list, next_cursor: next }).into_response()
        }
        Err(e) => internal(e),
    }
}

/// Whether `id` has the shape of a delivery id (`msg_` and 32 hex digits).
fn is_delivery_id(id: &str) -> bool {
    id.strip_prefix("msg_").is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Queues a delivery again at once (the same `webhook-id`, a fresh retry window).
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
    tag = "webhooks",
    params(super::webhook_views::DeliveryPath),
    responses(
        (status = 202, body = deliveries::DeliveryView),
        (status = 404, description = "No such subscription of this tenant, or no such delivery of it", body = super::errors::ErrorBody),
    )
)]
pub async fn redeliver(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path((id, delivery)): Path<(String, String)>,
) -> Response {
    if let Err(r) = owned(&s, &p, &id).await {
        return *r;
    }
    let window = i64::from(s.ctx.config.webhooks.retry_window_secs.get()) * 1000;
    let missing = || error(StatusCode::NOT_FOUND, "not_found", format!("no delivery {delivery:?} of webhook {id:?}"));
    match deliveries::redeliver(&s.ctx.db, &id, &delivery, now_ms(), window).await {
        Ok(true) => {}
        Ok(false) => return missing(),
        Err(e) => return internal(e),
    }
    match deliveries::get(&s.ctx.db, &id, &delivery).await {
        Ok(Some(d)) => (StatusCode::ACCEPTED, axum::Json(d)).into_response(),
        Ok(None) => missing(),
        Err(e) => internal(e),
    }
}
