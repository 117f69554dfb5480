//! Xero's envelopes and error shapes, as the Accounting API and its gateway answer.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;

/// 429 as Xero sends it: `X-Rate-Limit-Problem` names the limit; `Retry-After` (seconds)
/// comes with the minute, app-minute and day limits, not with the concurrent one.
pub(super) fn too_many(kind: &'static str, retry_after: Option<u64>) -> Response {
    let mut r = (StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded").into_response();
    r.headers_mut().insert(HeaderName::from_static("x-rate-limit-problem"), HeaderValue::from_static(kind));
    if let Some(secs) = retry_after {
        r.headers_mut().insert("retry-after", HeaderValue::from(secs));
    }
    r
}

/// Xero's ProblemDetails body, used for 401, 403 and 503.
pub(super) fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = json!({
        "Type": null,
        "Title": title,
        "Status": status.as_u16(),
        "Detail": detail,
        "Instance": uuid::Uuid::new_v4().to_string(),
        "Extensions": {},
    });
    (status, axum::Json(body)).into_response()
}

/// The body of Xero's 400 ValidationException (ErrorNumber 10): the whole request refused,
/// with the failing elements.
pub(super) fn validation_body(elements: Vec<Value>) -> Value {
    json!({"ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation exception occurred", "Elements": elements})
}

/// Xero's 400 ApiException for a body it cannot read (`PostDataInvalidException`, 14) or
/// another refusal of the whole request.
pub(super) fn api_exception(number: u32, kind: &str, message: &str, elements: Vec<Value>) -> Response {
    let body = json!({"ErrorNumber": number, "Type": kind, "Message": message, "Elements": elements});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// 404 as the Accounting API answers it: a plain-text sentence, no JSON.
pub(super) fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "The resource you're looking for cannot be found").into_response()
}

/// The envelope around every Accounting API answer: `{Id, Status, ProviderName,
/// DateTimeUTC, <collection>: [...]}`.
pub(super) fn envelope(collection: &str, items: Vec<Value>) -> Value {
    let mut v = json!({
        "Id": uuid::Uuid::new_v4().to_string(),
        "Status": "OK",
        "ProviderName": "erpsync sandbox",
        "DateTimeUTC": ms_date(chrono::Utc::now(), false),
    });
    v[collection] = Value::Array(items);
    v
}

/// Xero's JSON date: `/Date(1552262400000+0000)/` (with the offset on record dates).
pub(super) fn ms_date(t: chrono::DateTime<chrono::Utc>, offset: bool) -> String {
    if offset { format!("/Date({}+0000)/", t.timestamp_millis()) } else { format!("/Date({})/", t.timestamp_millis()) }
}

/// An `application/x-www-form-urlencoded` body or a query string as name → value.
pub(super) fn form(body: &[u8]) -> HashMap<String, String> {
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                        Ok(v) => {
                            out.push(v);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}
