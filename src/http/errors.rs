//! The one shape of every error answer, `{"error": {"code", "message"}}`: the type the
//! handlers answer with, and the layer that gives it to the answers axum makes itself (an
//! unknown path, a method a path does not take, a body or query its extractors refuse).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// What every error is answered with.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable, e.g. `not_found` or `rate_limited`.
    pub code: String,
    /// What went wrong, in words; it names the field or parameter at fault.
    pub message: String,
}

pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = ErrorBody { error: ErrorDetail { code: code.to_owned(), message: message.into() } };
    (status, axum::Json(body)).into_response()
}

/// The code of an error answer axum made itself. A path no route has is `unknown_path`,
/// unlike the `not_found` of an id a handler does not know.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "unknown_path",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

/// Error bodies larger than this are not read back into the message.
const MAX_TEXT: usize = 4096;

/// Rewrites an error answer that is not JSON into the shape, keeping its status and
/// headers (`Allow` of a 405, for one) and its text as the message.
pub async fn json_errors(r: Response) -> Response {
    let status = r.status();
    let is_json = r.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return r;
    }
    let (mut parts, body) = r.into_parts();
    let text = axum::body::to_bytes(body, MAX_TEXT).await.map(|b| String::from_utf8_lossy(&b).trim().to_owned());
    let message = match text {
        Ok(t) if !t.is_empty() => t,
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let fresh = error(status, code_of(status), message);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, fresh.into_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn rewritten(r: Response) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let r = json_errors(r).await;
        let (parts, body) = r.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_TEXT).await.unwrap();
        (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_plain_text_error_gets_the_shape_and_keeps_its_headers() {
        let mut r = (StatusCode::METHOD_NOT_ALLOWED, "").into_response();
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET,HEAD"));
        let (status, headers, body) = rewritten(r).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[header::ALLOW], "GET,HEAD");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(body["error"]["code"], "method_not_allowed");
        assert_eq!(body["error"]["message"], "method not allowed");

        let r = (StatusCode::BAD_REQUEST, "Failed to deserialize query string: limit: invalid digit").into_response();
        let (_, _, body) = rewritten(r).await;
        assert_eq!(body["error"]["code"], "bad_request");
        assert_eq!(body["error"]["message"], "Failed to deserialize query string: limit: invalid digit");
    }

    #[tokio::test]
    async fn json_errors_and_successes_pass_unchanged() {
        let (_, _, body) = rewritten(error(StatusCode::NOT_FOUND, "not_found", "no job x")).await;
        assert_eq!(body["error"]["code"], "not_found");
        let ok = json_errors((StatusCode::OK, "ready\n").into_response()).await;
        let bytes = axum::body::to_bytes(ok.into_body(), MAX_TEXT).await.unwrap();
        assert_eq!(&bytes[..], b"ready\n");
    }
}
