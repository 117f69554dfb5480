//! Intuit's OAuth 2.0 token endpoint as the QuickBooks dialect serves it: `POST
//! /oauth2/v1/tokens/bearer` with `grant_type=refresh_token` and HTTP Basic client auth,
//! rotating refresh tokens, access-token expiry, and the test hooks that revoke a client's
//! connection or expire its access tokens.
//!
//! Every refresh answers a new refresh token. Intuit says to always use the latest one and
//! does not document how long the previous one keeps working, so by default the previous
//! one is refused at once (`invalid_grant`), the strictest reading: a client must store the
//! new token before it uses it. With `--qbo-refresh-grace-secs`, the previous token answers
//! for that long, re-issuing the *same* successor (with a new access token) while that
//! successor is unused, so a client that lost an answer recovers (`token_book` keeps the
//! tokens).

use super::quickbooks_options::QuickbooksOptions;
use super::quickbooks_wire::oauth_error;
use super::token_book::{TokenBook, basic_auth};
use super::xero_wire::form;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Duration;

/// What Intuit answers as the refresh token's remaining life (100 days), in seconds.
const REFRESH_TOKEN_SECS: u64 = 8_726_400;

/// Answers `POST /oauth2/v1/tokens/bearer` (form-encoded, the client in HTTP Basic auth
/// as Intuit requires), and whether it refreshed.
pub(super) fn grant(book: &mut TokenBook, headers: &HeaderMap, body: &[u8], o: &QuickbooksOptions) -> (Response, bool) {
    let f = form(body);
    let Some((client_id, _)) = basic_auth(headers).filter(|(id, s)| book.authenticates(id, s)) else {
        return (oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed"), false);
    };
    if f.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return (oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Unsupported grant type"), false);
    }
    let Some(refresh) = f.get("refresh_token").filter(|t| !t.is_empty()) else {
        return (oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "refresh_token is required"), false);
    };
    let grace = Duration::from_secs(o.refresh_grace_secs);
    let lifetime = Duration::from_secs(o.access_token_secs);
    match book.exchange(&client_id, refresh, grace, lifetime) {
        Some((access, next)) => {
            let body = json!({
                "token_type": "bearer",
                "access_token": access,
                "expires_in": o.access_token_secs,
                "refresh_token": next,
                "x_refresh_token_expires_in": REFRESH_TOKEN_SECS,
            });
            let mut r = axum::Json(body).into_response();
            r.headers_mut().insert("cache-control", HeaderValue::from_static("no-cache, no-store"));
            (r, true)
        }
        None => (oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Incorrect or invalid refresh token"), false),
    }
}
