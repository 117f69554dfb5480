//! NetSuite REST web services' error bodies, as "Error Handling in REST Web Services"
//! (docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_156570709583.html) shows
//! them: `{"type", "title", "status", "o:errorDetails": [{"detail", "o:errorCode",
//! "o:errorPath"?}]}`. Oracle shows the 401 and 400 bodies; the 404, 429 and 503 ones
//! follow the same shape with codes `netsuite.md` lists as unverified.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The `type` link Oracle's examples give each status.
fn type_link(status: StatusCode) -> String {
    let section = match status.as_u16() {
        400 => "#sec10.4.1",
        401 => "",
        403 => "#sec10.4.4",
        404 => "#sec10.4.5",
        405 => "#sec10.4.6",
        500 => "#sec10.5.1",
        503 => "#sec10.5.4",
        _ => "",
    };
    format!("https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html{section}")
}

/// The error body of one `o:errorDetails` entry.
pub(super) fn error_body(status: StatusCode, detail: &str, code: &str, path: Option<&str>) -> Value {
    let mut entry = json!({"detail": detail, "o:errorCode": code});
    if let Some(p) = path {
        entry["o:errorPath"] = Value::String(p.to_owned());
    }
    json!({
        "type": type_link(status),
        "title": status.canonical_reason().unwrap_or(""),
        "status": status.as_u16(),
        "o:errorDetails": [entry],
    })
}

pub(super) fn error(status: StatusCode, detail: &str, code: &str, path: Option<&str>) -> Response {
    let mut r = (status, axum::Json(error_body(status, detail, code, path))).into_response();
    // NetSuite answers errors as problem details.
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/vnd.oracle.resource+json; type=error"));
    r
}

/// The 401 Oracle documents for a token it refuses, whatever the reason (a bad signature,
/// an unknown or revoked token, a replayed nonce): NetSuite does not say which.
pub(super) fn invalid_login() -> Response {
    let detail = "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI at Setup > \
                  Users/Roles > User Management > View Login Audit Trail.";
    error(StatusCode::UNAUTHORIZED, detail, "INVALID_LOGIN", None)
}

/// 429 when the account's concurrency limit is reached.
pub(super) fn concurrency_exceeded(limit: u64) -> Response {
    let detail = format!(
        "Request blocked: the number of concurrent requests for this account has reached its limit of {limit}. \
         Retry the request later."
    );
    error(StatusCode::TOO_MANY_REQUESTS, &detail, "CONCURRENCY_LIMIT_EXCEEDED", None)
}

/// 400 for a reference to a record that does not exist or is inactive (Oracle's example
/// of an invalid sublist item reference).
pub(super) fn invalid_reference(value: &str, field: &str, path: &str) -> Response {
    let detail = format!(
        "Error while accessing resource: You have entered an Invalid Field Value {value} for the following field: {field}"
    );
    error(StatusCode::BAD_REQUEST, &detail, "INVALID_CONTENT", Some(path))
}

/// 404 for a record id or external id that names no record.
pub(super) fn not_found() -> Response {
    let detail = "The record instance does not exist. Provide a valid record instance ID.";
    error(StatusCode::NOT_FOUND, detail, "NONEXISTENT_ID", None)
}

/// 503 for an injected fault.
pub(super) fn unavailable() -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, "The service is temporarily unavailable.", "SERVICE_UNAVAILABLE", None)
}

/// 400 for a body NetSuite cannot read or a field it does not take.
pub(super) fn invalid_content(detail: &str, path: Option<&str>) -> Response {
    error(StatusCode::BAD_REQUEST, detail, "INVALID_CONTENT", path)
}
