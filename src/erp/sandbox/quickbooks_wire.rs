//! QuickBooks Online's answer shapes: the `Fault` envelope of the Accounting API (400
//! ValidationFault, 429 ThrottleExceeded, 5xx SystemFault), the gateway's lowercase `fault`
//! of a 401 or 403, the `time` stamp, and the token endpoint's OAuth errors.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The `time` every Accounting API answer carries: local time with milliseconds and offset.
pub(super) fn time() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()
}

/// One entry of a `Fault`'s `Error` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FaultError {
    pub(super) code: &'static str,
    pub(super) message: &'static str,
    pub(super) detail: String,
    pub(super) element: &'static str,
}

/// `{"Fault":{"Error":[{"Message","Detail","code","element"}],"type"},"time"}`, the shape of
/// Intuit's "Handling common errors" page.
pub(super) fn fault_body(kind: &str, errors: &[FaultError]) -> Value {
    let errors: Vec<Value> = errors
        .iter()
        .map(|e| json!({"Message": e.message, "Detail": e.detail, "code": e.code, "element": e.element}))
        .collect();
    json!({"Fault": {"Error": errors, "type": kind}, "time": time()})
}

/// 400 ValidationFault.
pub(super) fn validation(error: FaultError) -> (StatusCode, Value) {
    (StatusCode::BAD_REQUEST, fault_body("ValidationFault", &[error]))
}

/// 429 as Intuit throttles: errorCode 003001, no Retry-After (Intuit says wait 60 s).
pub(super) fn throttled() -> Response {
    let body = json!({
        "Fault": {
            "Error": [{
                "Message": "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                "Detail": "The request limit was reached.",
                "code": "3001",
            }],
            "type": "ThrottleExceeded",
        },
        "time": time(),
    });
    (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
}

/// 503 SystemFault: an injected fault, answered before anything was done.
pub(super) fn unavailable() -> Response {
    let error = FaultError {
        code: "10000",
        message: "An application error has occurred while processing your request",
        detail: "System Failure Error: service temporarily unavailable".into(),
        element: "",
    };
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(fault_body("SystemFault", &[error]))).into_response()
}

/// The gateway's answer to a token it refuses or a realm the token cannot reach: a
/// lowercase `fault` inside the SDK's full response object, as the API sends it for
/// 401 (code 3200, type AUTHENTICATION) and 403 (code 3100).
fn gateway_fault(status: StatusCode, message: &str, detail: &str, code: &str, kind: &str) -> Response {
    let body = json!({
        "warnings": null,
        "intuitObject": null,
        "fault": {"error": [{"message": message, "detail": detail, "code": code, "element": null}], "type": kind},
        "report": null,
        "queryResponse": null,
        "batchItemResponse": [],
        "attachableResponse": [],
        "syncErrorResponse": null,
        "requestId": null,
        "time": chrono::Utc::now().timestamp_millis(),
        "status": null,
        "cdcresponse": [],
    });
    (status, axum::Json(body)).into_response()
}

/// 401 AuthenticationFailed (3200): `detail` says why (expired, revoked, malformed).
pub(super) fn unauthorized(detail: &str) -> Response {
    let message = "message=AuthenticationFailed; errorCode=003200; statusCode=401";
    let mut r = gateway_fault(StatusCode::UNAUTHORIZED, message, detail, "3200", "AUTHENTICATION");
    r.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer realm=\"Intuit\""));
    r
}

/// 403 ApplicationAuthorizationFailed (3100): the token does not reach this realm.
pub(super) fn forbidden_realm() -> Response {
    let message = "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403";
    gateway_fault(StatusCode::FORBIDDEN, message, "", "3100", "SERVICE")
}

/// The token endpoint's OAuth error (RFC 6749 §5.2).
pub(super) fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    (status, axum::Json(json!({"error": code, "error_description": description}))).into_response()
}
