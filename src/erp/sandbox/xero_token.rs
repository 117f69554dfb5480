//! Xero's identity server as the dialect serves it: `POST /connect/token` with the
//! refresh-token grant, rotating refresh tokens, access-token expiry, and the test
//! endpoints that revoke a client's connection or expire its access tokens.
//!
//! Rotation follows Xero's documented rule: every refresh answers a new refresh token and
//! the old one stops working, except that for a grace period (30 minutes) the old token
//! may be used again in case the answer was lost (`token_book` keeps the tokens).

use super::options::XeroOptions;
use super::token_book::{Refused, TokenBook, basic_auth};
use super::xero_wire::{form, problem};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Duration;

/// The scopes every token is granted.
const SCOPE: &str =
    "openid profile email accounting.transactions accounting.attachments accounting.contacts offline_access";

/// 401 AuthenticationUnsuccessful for an unknown token; 401 TokenExpired, with
/// `WWW-Authenticate` saying so, for an expired one.
pub(super) fn refused(r: Refused) -> Response {
    match r {
        Refused::Unknown => {
            let mut r = problem(StatusCode::UNAUTHORIZED, "Unauthorized", "AuthenticationUnsuccessful");
            r.headers_mut().insert("www-authenticate", HeaderValue::from_static("Bearer error=\"invalid_token\""));
            r
        }
        Refused::Expired(at) => {
            let at = at.format("%m/%d/%Y %H:%M:%S");
            let detail = format!("TokenExpired: token expired at {at}");
            let mut r = problem(StatusCode::UNAUTHORIZED, "Unauthorized", &detail);
            let header = format!("Bearer error=\"invalid_token\", error_description=\"The token expired at '{at}'\"");
            r.headers_mut().insert("www-authenticate", HeaderValue::from_str(&header).expect("ascii header"));
            r
        }
    }
}

fn oauth_error(status: StatusCode, code: &str) -> Response {
    (status, axum::Json(json!({"error": code}))).into_response()
}

/// Answers `POST /connect/token` (form-encoded, the client authenticated by HTTP Basic
/// or, as OAuth allows, `client_id`/`client_secret` in the form), and whether it
/// refreshed.
pub(super) fn grant(book: &mut TokenBook, headers: &HeaderMap, body: &[u8], o: &XeroOptions) -> (Response, bool) {
    let mut f = form(body);
    let creds = basic_auth(headers).or_else(|| Some((f.remove("client_id")?, f.remove("client_secret")?)));
    let Some((client_id, _)) = creds.filter(|(id, s)| book.authenticates(id, s)) else {
        return (oauth_error(StatusCode::BAD_REQUEST, "invalid_client"), false);
    };
    if f.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return (oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"), false);
    }
    let Some(refresh) = f.remove("refresh_token").filter(|t| !t.is_empty()) else {
        return (oauth_error(StatusCode::BAD_REQUEST, "invalid_request"), false);
    };
    let grace = Duration::from_secs(o.refresh_grace_secs);
    let lifetime = Duration::from_secs(o.access_token_secs);
    match book.exchange(&client_id, &refresh, grace, lifetime) {
        Some((access, next)) => {
            let body = json!({
                "access_token": access,
                "expires_in": o.access_token_secs,
                "token_type": "Bearer",
                "refresh_token": next,
                "scope": SCOPE,
            });
            let mut r = axum::Json(body).into_response();
            r.headers_mut().insert("cache-control", HeaderValue::from_static("no-store"));
            (r, true)
        }
        None => (oauth_error(StatusCode::BAD_REQUEST, "invalid_grant"), false),
    }
}
