//! The QuickBooks Online Accounting API v3 over HTTP (Intuit's reference: `POST
//! /v3/company/{realmId}/bill|purchaseorder|billpayment?minorversion=…&requestid=…`,
//! `GET /v3/company/{realmId}/query?query=…`, `POST /v3/company/{realmId}/upload`
//! multipart with `file_metadata_01` + `file_content_01`; the `Fault` answer,
//! developer.intuit.com "Error codes" and "Handling common errors").
//!
//! Intuit's answers map to erpsync's classes: a `Fault` (in a 400, or in a 200 as Intuit
//! allows) of type `ValidationFault` rejects the document with its code, message and detail;
//! a 401 (`AuthenticationFault`, code 3200) refreshes once and retries once, and is auth
//! after that; `AuthorizationFault` and 403 are auth, except the older 403 form of
//! `ThrottleExceeded`; 429 is throttled (Intuit documents no `Retry-After` and says to
//! wait a minute); 5xx transient; a timeout or a dropped connection after sending a create
//! ambiguous. Creates carry `requestid`, which QuickBooks answers a repeat of with the
//! original response.

use super::oauth::{RefreshFlow, Sent};
use super::{Attachment, Created, ErpClient, ErpError, retry_after};
use crate::domain::Op;
use crate::pipeline::serialize::Payload;
use async_trait::async_trait;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url, header};
use serde_json::{Value, json};
use std::time::Duration;

/// The API's minor version: 75 is the base Intuit serves every request at.
const MINOR_VERSION: &str = "75";

/// Without a `Retry-After`, Intuit asks a throttled app to wait a minute.
const THROTTLE_WAIT: Duration = Duration::from_secs(60);

pub struct QuickbooksClient {
    http: reqwest::Client,
    /// `{base}/v3/company/{realm}/`.
    company: Url,
    tokens: RefreshFlow,
}

/// The entity a document of `op` is created as, and its name in queries.
fn entity(op: Op) -> (&'static str, &'static str) {
    match op {
        Op::ExportInvoice => ("bill", "Bill"),
        Op::ExportPurchaseOrder => ("purchaseorder", "PurchaseOrder"),
        Op::ExportPayment => ("billpayment", "BillPayment"),
    }
}

/// QuickBooks' `requestid` for an idempotency key: at most 50 characters and stable per
/// document, so a UUID derived from the (longer) key.
fn request_id(idempotency_key: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, idempotency_key.as_bytes()).to_string()
}

/// A string literal in QuickBooks' query language.
fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Whether a 401 may be an expired access token. Intuit's 401 means the token "won't work
/// for API calls since it's either expired or revoked": one refresh tells the two apart.
fn is_expired_token(_headers: &header::HeaderMap, _body: &str) -> bool {
    true
}

/// `v[upper]`, or `v[lower]`: Intuit documents `Fault`/`Error`/`Message`/`Detail`, and its
/// 401s spell them in lower case.
fn either<'a>(v: &'a Value, upper: &str, lower: &str) -> &'a Value {
    v.get(upper).unwrap_or(&v[lower])
}

/// The `Fault` of an answer, if it carries one: (type, code, message).
fn fault(body: &Value) -> Option<(String, String, String)> {
    let f = body.get("Fault").or_else(|| body.get("fault"))?;
    let kind = f["type"].as_str().unwrap_or("Fault").to_owned();
    let errors = either(f, "Error", "error").as_array().map(Vec::as_slice).unwrap_or_default();
    let code = errors.first().and_then(|e| e["code"].as_str()).unwrap_or("").to_owned();
    let message = errors
        .iter()
        .map(|e| {
            let msg = either(e, "Message", "message").as_str().unwrap_or("");
            match either(e, "Detail", "detail").as_str() {
                Some(d) if !d.is_empty() && d != msg => format!("{msg}: {d}"),
                _ => msg.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    Some((kind, code, message))
}

fn classify_fault(
    status: StatusCode,
    kind: &str,
    code: String,
    message: String,
    headers: &header::HeaderMap,
) -> ErpError {
    match kind {
        "ThrottleExceeded" => ErpError::Throttled { retry_after: retry_after(headers).or(Some(THROTTLE_WAIT)) },
        "AuthenticationFault" | "AuthorizationFault" | "AUTHENTICATION" | "AUTHORIZATION" => {
            ErpError::Auth { status: status.as_u16(), message }
        }
        "SystemFault" => ErpError::Transient(format!("QuickBooks {kind} {code}: {message}")),
        _ => ErpError::Rejected {
            status: status.as_u16(),
            code: if code.is_empty() { kind.into() } else { code },
            message,
        },
    }
}

/// An answer that could not be read: a read is only transient, a create's outcome unknown.
fn unreadable(method: &Method, e: impl std::fmt::Display) -> ErpError {
    if *method == Method::GET {
        ErpError::Transient(format!("unreadable QuickBooks answer: {e}"))
    } else {
        ErpError::Ambiguous(format!("unreadable QuickBooks answer: {e}"))
    }
}

/// A 2xx answer's body, unless it is a `Fault` (classified like any other refusal).
pub(super) fn answer(
    method: &Method,
    status: StatusCode,
    headers: &header::HeaderMap,
    bytes: &[u8],
) -> Result<Value, ErpError> {
    let body: Value = serde_json::from_slice(bytes).map_err(|e| unreadable(method, e))?;
    if let Some((kind, code, message)) = fault(&body) {
        return Err(classify_fault(status, &kind, code, message, headers));
    }
    Ok(body)
}

/// The id of the entity `name` a create's answer holds.
pub(super) fn created_id(name: &str, answer: &Value) -> Result<String, ErpError> {
    answer[name]["Id"]
        .as_str()
        .filter(|id| !id.trim().is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ErpError::Ambiguous(format!("QuickBooks' answer holds no {name}.Id")))
}

pub(super) fn classify(method: &Method, status: StatusCode, headers: &header::HeaderMap, body: &str) -> ErpError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    if let Some((kind, code, message)) = parsed.as_ref().and_then(fault) {
        return classify_fault(status, &kind, code, message, headers);
    }
    let short: String = body.chars().take(500).collect();
    match status {
        StatusCode::TOO_MANY_REQUESTS => {
            ErpError::Throttled { retry_after: retry_after(headers).or(Some(THROTTLE_WAIT)) }
        }
        // The older throttle answer: 403 with an XML body naming ThrottleExceeded.
        StatusCode::FORBIDDEN if body.contains("ThrottleExceeded") => {
            ErpError::Throttled { retry_after: retry_after(headers).or(Some(THROTTLE_WAIT)) }
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErpError::Auth { status: status.as_u16(), message: short },
        StatusCode::GATEWAY_TIMEOUT | StatusCode::REQUEST_TIMEOUT if *method != Method::GET => {
            ErpError::Ambiguous(format!("QuickBooks answered {status}"))
        }
        s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
            ErpError::Transient(format!("QuickBooks answered {s}: {short}"))
        }
        s => ErpError::Rejected { status: s.as_u16(), code: s.as_u16().to_string(), message: short },
    }
}

fn classify_send_error(method: &Method, e: reqwest::Error) -> ErpError {
    if e.is_connect() || *method == Method::GET {
        ErpError::Transient(format!("cannot reach QuickBooks: {e}"))
    } else {
        ErpError::Ambiguous(if e.is_timeout() { "QuickBooks did not answer in time".to_owned() } else { e.to_string() })
    }
}

impl QuickbooksClient {
    pub fn new(http: reqwest::Client, base: &str, realm: &str, tokens: RefreshFlow) -> Result<Self, String> {
        let base = Url::parse(base).map_err(|e| format!("{base:?}: {e}"))?;
        let mut company = base.clone();
        company.set_path(&format!("{}/v3/company/{realm}/", base.path().trim_end_matches('/')));
        Ok(QuickbooksClient { http, company, tokens })
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.company.join(path).expect("relative paths join");
        url.query_pairs_mut().append_pair("minorversion", MINOR_VERSION);
        url
    }

    /// Sends a request with a valid access token (refreshed once after a 401); a 2xx whose
    /// body is a `Fault` is classified like any other refusal.
    async fn send(
        &self,
        method: Method,
        url: Url,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Value, ErpError> {
        let request = |token: &str| {
            build(
                self.http
                    .request(method.clone(), url.clone())
                    .bearer_auth(token)
                    .header(header::ACCEPT, "application/json"),
            )
        };
        let resp: Response = match self.tokens.send(request, is_expired_token).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(r)) => return Err(classify(&method, r.status, &r.headers, &r.body)),
            Err(Sent::Token(e)) => return Err(e),
            Err(Sent::Network(e)) => return Err(classify_send_error(&method, e)),
        };
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = resp.bytes().await.map_err(|e| unreadable(&method, e))?;
        answer(&method, status, &headers, &bytes)
    }

    /// `select * from {entity} where {condition}`: the rows QuickBooks answers.
    async fn query(&self, entity: &str, condition: &str) -> Result<Vec<Value>, ErpError> {
        let mut url = self.url("query");
        url.query_pairs_mut().append_pair("query", &format!("select * from {entity} where {condition}"));
        let answer = self.send(Method::GET, url, |r| r).await?;
        Ok(answer["QueryResponse"][entity].as_array().cloned().unwrap_or_default())
    }
}

#[async_trait]
impl ErpClient for QuickbooksClient {
    async fn create(&self, op: Op, payload: &Payload, idempotency_key: &str) -> Result<Created, ErpError> {
        let (path, name) = entity(op);
        let mut url = self.url(path);
        url.query_pairs_mut().append_pair("requestid", &request_id(idempotency_key));
        let body = payload.body.clone();
        let answer = self
            .send(Method::POST, url, |r| r.header(header::CONTENT_TYPE, payload.content_type).body(body.clone()))
            .await?;
        Ok(Created { erp_id: created_id(name, &answer)?, replayed: false })
    }

    async fn find_existing(&self, op: Op, _source_id: &str, payload: &Payload) -> Result<Option<String>, ErpError> {
        // QuickBooks keeps no reference of ours: a document is found by its number and vendor.
        let doc: Value = serde_json::from_slice(&payload.body).map_err(|e| ErpError::Transient(e.to_string()))?;
        let (Some(number), vendor) = (doc["DocNumber"].as_str(), doc["VendorRef"]["value"].as_str()) else {
            return Ok(None);
        };
        let (_, name) = entity(op);
        let rows = self.query(name, &format!("DocNumber = {}", quoted(number))).await?;
        let same = rows.iter().find(|r| vendor.is_none() || r["VendorRef"]["value"].as_str() == vendor);
        Ok(same.and_then(|r| r["Id"].as_str()).map(str::to_owned))
    }

    async fn attach_pdf(&self, a: Attachment<'_>) -> Result<String, ErpError> {
        if a.maybe_attached {
            // Uploads take no requestid: after an attempt that may have sent it, a file of
            // this name attached to the bill is that attachment.
            let rows =
                self.query("Attachable", &format!("AttachableRef.EntityRef.Value = {}", quoted(a.bill_id))).await?;
            if let Some(id) = rows.iter().find(|r| r["FileName"] == a.file_name).and_then(|r| r["Id"].as_str()) {
                return Ok(id.to_owned());
            }
        }
        let meta = json!({
            "AttachableRef": [{"EntityRef": {"type": "Bill", "value": a.bill_id}, "IncludeOnSend": false}],
            "FileName": a.file_name,
            "ContentType": "application/pdf",
        })
        .to_string();
        let (file_name, pdf) = (a.file_name.to_owned(), a.pdf);
        let answer = self
            .send(Method::POST, self.url("upload"), |r| {
                let form = reqwest::multipart::Form::new()
                    .part(
                        "file_metadata_01",
                        reqwest::multipart::Part::text(meta.clone())
                            .mime_str("application/json")
                            .expect("a valid media type"),
                    )
                    .part(
                        "file_content_01",
                        reqwest::multipart::Part::bytes(pdf.clone())
                            .file_name(file_name.clone())
                            .mime_str("application/pdf")
                            .expect("a valid media type"),
                    );
                r.multipart(form)
            })
            .await?;
        answer["AttachableResponse"][0]["Attachable"]["Id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ErpError::Ambiguous("QuickBooks' upload answer holds no Attachable.Id".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_stable_and_short() {
        let key = format!("erpsync:acme:bill:{}", "x".repeat(100));
        assert_eq!(request_id(&key), request_id(&key));
        assert_ne!(request_id(&key), request_id("erpsync:acme:bill:y"));
        assert!(request_id(&key).len() <= 50);
    }

    #[test]
    fn query_literals_are_escaped() {
        assert_eq!(quoted("O'Brien"), r"'O\'Brien'");
    }

    #[test]
    fn faults_map_to_erpsyncs_classes() {
        let h = header::HeaderMap::new();
        let post = Method::POST;
        let validation = r#"{"Fault":{"Error":[{"Message":"Invalid Reference Id","Detail":"Invalid Reference Id : Vendor assigned to this transaction has been deleted.","code":"2500","element":"VendorRef"}],"type":"ValidationFault"},"time":"2026-12-04T09:17:31.892-07:00"}"#;
        let ErpError::Rejected { status, code, message } = classify(&post, StatusCode::BAD_REQUEST, &h, validation)
        else {
            panic!("a ValidationFault is a rejection")
        };
        assert_eq!((status, code.as_str()), (400, "2500"));
        assert!(message.contains("has been deleted"), "{message}");
        let auth = r#"{"Fault":{"Error":[{"Message":"message=AuthenticationFailed; errorCode=003200; statusCode=401","code":"3200"}],"type":"AuthenticationFault"}}"#;
        assert!(matches!(classify(&post, StatusCode::UNAUTHORIZED, &h, auth), ErpError::Auth { status: 401, .. }));
        let throttle = r#"{"Fault":{"Error":[{"Message":"message=ThrottleExceeded; errorCode=003001; statusCode=429","code":"3001"}],"type":"ThrottleExceeded"}}"#;
        assert!(matches!(
            classify(&post, StatusCode::TOO_MANY_REQUESTS, &h, throttle),
            ErpError::Throttled { retry_after: Some(d) } if d == THROTTLE_WAIT
        ));
        let lower = r#"{"warnings":null,"intuitObject":null,"fault":{"error":[{"message":"message=AuthenticationFailed; errorCode=003200; statusCode=401","detail":"Token expired","code":"3200","element":null}],"type":"AUTHENTICATION"},"time":1}"#;
        let ErpError::Auth { message, .. } = classify(&post, StatusCode::UNAUTHORIZED, &h, lower) else {
            panic!("the lower-case 401 is auth")
        };
        assert!(message.contains("Token expired"), "{message}");
        let old = "<IntuitResponse><Fault type=\"ThrottleExceeded\"/></IntuitResponse>";
        assert!(matches!(classify(&post, StatusCode::FORBIDDEN, &h, old), ErpError::Throttled { .. }));
        assert!(matches!(classify(&post, StatusCode::FORBIDDEN, &h, "forbidden"), ErpError::Auth { status: 403, .. }));
        assert!(matches!(classify(&post, StatusCode::GATEWAY_TIMEOUT, &h, ""), ErpError::Ambiguous(_)));
        assert!(matches!(classify(&post, StatusCode::SERVICE_UNAVAILABLE, &h, ""), ErpError::Transient(_)));
        let system = r#"{"Fault":{"Error":[{"Message":"An application error has occurred","code":"10000"}],"type":"SystemFault"}}"#;
        assert!(matches!(classify(&post, StatusCode::INTERNAL_SERVER_ERROR, &h, system), ErpError::Transient(_)));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parsers() {
        let h = header::HeaderMap::new();
        for body in ["", "{", "null", "{\"Fault\":5}", "{\"Fault\":{\"Error\":[null,5]}}", "\u{0}"] {
            let _ = classify(&Method::POST, StatusCode::BAD_REQUEST, &h, body);
        }
    }
}
