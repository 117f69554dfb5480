//! The Business Central dialect: API v2.0 (`/v2.0/{tenant}/{environment}/api/v2.0/…`) and
//! the Microsoft identity platform's token endpoint (`/{tenant}/oauth2/v2.0/token`),
//! answering as Microsoft documents — client credentials tokens and their expiry, the
//! per-user limits and their 429s, the queue of requests beyond five, OData errors, deep
//! inserts, transactional `$batch`, document attachments. This file holds the routes, the
//! token endpoint's handler and the test hooks; `bc_state` admits API calls; `bc_token`
//! keeps the tokens; `bc_books` a company's records; `bc_api` the API routes; `bc_wire` the
//! envelopes. The wire contract and its sources: `business_central.md`.

use super::bc_api;
use super::bc_state::Bc;
use super::sim::{Dialect, Sim};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

pub use super::bc_books::{BC_ACCOUNTS, BC_ITEMS, BC_VENDORS};

/// Business Central's API v2.0 and the identity platform's token endpoint.
pub static BUSINESS_CENTRAL: Dialect = Dialect { name: "business_central", routes };

fn routes(sim: Arc<Sim>) -> Router {
    let bc = Arc::new(Bc::new(sim));
    Router::new()
        .route("/__sandbox/stats", get(|State(bc): State<Arc<Bc>>| async move { axum::Json(bc.sim.stats()) }))
        .route("/__sandbox/business_central/expire-access-tokens", post(expire_access_tokens))
        .route("/__sandbox/business_central/revoke-client-secret", post(revoke_client_secret))
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/v2.0/{tenant}/{environment}/api/v2.0/{*rest}", any(bc_api::dispatch))
        .with_state(bc)
}

/// `POST /{tenant}/oauth2/v2.0/token`: the client credentials grant. Counted in `refreshes`
/// (tokens issued).
async fn token(State(bc): State<Arc<Bc>>, Path(tenant): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    bc.sim.counters.requests.fetch_add(1, SeqCst);
    let lifetime = Duration::from_secs(bc.sim.opts.business_central.access_token_secs);
    let (answer, issued) =
        bc.tokens.lock().unwrap_or_else(|e| e.into_inner()).grant(&tenant, &headers, &body, lifetime);
    if issued {
        bc.sim.counters.refreshes.fetch_add(1, SeqCst);
    }
    answer
}

/// `POST /__sandbox/business_central/expire-access-tokens`: every access token issued so far
/// expires now.
async fn expire_access_tokens(State(bc): State<Arc<Bc>>) -> Response {
    let expired = bc.tokens.lock().unwrap_or_else(|e| e.into_inner()).expire_all();
    axum::Json(json!({"expired": expired})).into_response()
}

#[derive(Deserialize)]
struct Revoke {
    client_id: String,
}

/// `POST /__sandbox/business_central/revoke-client-secret` `{"client_id"}`: the client's
/// secret expires (token requests answer AADSTS7000222 from now on).
async fn revoke_client_secret(State(bc): State<Arc<Bc>>, axum::Json(r): axum::Json<Revoke>) -> Response {
    let revoked = bc.tokens.lock().unwrap_or_else(|e| e.into_inner()).revoke_secret(&r.client_id);
    axum::Json(json!({"revoked": revoked})).into_response()
}
