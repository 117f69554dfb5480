//! The Xero dialect: Xero's Accounting API (`/api.xro/2.0/…`) and its identity server's token
//! endpoint (`/connect/token`), answering as Xero documents — the per-tenant limits and
//! their 429s, 401 TokenExpired, 403 for a tenant the token cannot reach, per-document
//! `ValidationErrors`, `Idempotency-Key` replays. This file holds the routes and the token
//! endpoint's handlers; `xero_state` admits API calls; `token_book` keeps the tokens and `xero_token` answers for them;
//! `xero_books` a tenant's records; `xero_invoices` and `xero_docs` the document routes;
//! `xero_wire` Xero's envelopes. The wire contract and its sources: `xero.md`.

use super::sim::{Dialect, Sim};
use super::token_book::{Reconnect, Revoke};
use super::xero_state::Xero;
use super::xero_token;
use super::{xero_docs, xero_invoices};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

pub use super::xero_books::XERO_CONTACTS;

/// Xero's Accounting API and token endpoint.
pub static XERO: Dialect = Dialect { name: "xero", routes };

fn routes(sim: Arc<Sim>) -> Router {
    let x = Arc::new(Xero::new(sim));
    Router::new()
        .route("/__sandbox/stats", get(|State(x): State<Arc<Xero>>| async move { axum::Json(x.sim.stats()) }))
        .route("/__sandbox/xero/revoke", post(revoke))
        .route("/__sandbox/xero/reconnect", post(reconnect))
        .route("/__sandbox/xero/expire-access-tokens", post(expire_access_tokens))
        .route("/connect/token", post(token))
        .route("/api.xro/2.0/Invoices", get(xero_invoices::list).put(xero_invoices::create).post(xero_invoices::upsert))
        .route("/api.xro/2.0/Invoices/{id}", get(xero_invoices::one))
        .route("/api.xro/2.0/Invoices/{id}/Attachments", get(xero_invoices::attachments))
        .route(
            "/api.xro/2.0/Invoices/{id}/Attachments/{file}",
            get(xero_invoices::attachment_bytes).put(xero_invoices::attach).post(xero_invoices::attach),
        )
        .route("/api.xro/2.0/Payments", put(xero_docs::create_payments))
        .route("/api.xro/2.0/PurchaseOrders", put(xero_docs::create_pos))
        .route("/api.xro/2.0/PurchaseOrders/{id}", get(xero_docs::one_po))
        .with_state(x)
}

/// `POST /connect/token`: the refresh-token grant.
async fn token(State(x): State<Arc<Xero>>, headers: HeaderMap, body: Bytes) -> Response {
    x.sim.counters.requests.fetch_add(1, SeqCst);
    let (answer, refreshed) = xero_token::grant(&mut *x.tokens.lock().await, &headers, &body, &x.sim.opts.xero);
    if refreshed {
        x.sim.counters.refreshes.fetch_add(1, SeqCst);
    }
    answer
}

/// `POST /__sandbox/xero/revoke` `{"client_id"}` (every token of the client dies, as when
/// the user disconnects the app) or `{"refresh_token"}` (that one only).
async fn revoke(State(x): State<Arc<Xero>>, axum::Json(r): axum::Json<Revoke>) -> Response {
    let revoked = x.tokens.lock().await.revoke(&r);
    axum::Json(json!({"revoked": revoked})).into_response()
}

/// `POST /__sandbox/xero/reconnect` `{"client_id"}`: a new refresh token for the
/// client, as when the user connects the app again (the authorization-code flow).
async fn reconnect(State(x): State<Arc<Xero>>, axum::Json(r): axum::Json<Reconnect>) -> Response {
    match x.tokens.lock().await.reconnect(&r.client_id) {
        Some(token) => axum::Json(json!({"refresh_token": token})).into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

/// `POST /__sandbox/xero/expire-access-tokens`: every access token issued so far expires
/// now, so a test can expire one mid-export without waiting out its lifetime.
async fn expire_access_tokens(State(x): State<Arc<Xero>>) -> Response {
    let expired = x.tokens.lock().await.expire_access();
    axum::Json(json!({"expired": expired})).into_response()
}
