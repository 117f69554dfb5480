//! NetSuite's REST record API (`/services/rest/record/v1`) over HTTP, every request signed
//! with token-based authentication (`erp::oauth1`).
//!
//! Oracle's reference (docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/):
//! - "Using the Upsert Operation" (section_156335203191.html): `PUT /{record}/eid:{externalId}`
//!   creates the record or updates the one with that external id, so a retry lands on the
//!   same record. "Using External IDs" (section_156334828635.html): `eid:` works wherever
//!   an internal id does, so `GET /{record}/eid:{externalId}` is the lookup after an
//!   ambiguous failure.
//! - The `replace` query parameter (the REST API Browser's upsert operations): the sublists
//!   named there have their lines replaced by the body's; others are appended to, so a
//!   retried upsert without it would double every line.
//! - "Creating a Record Instance" (section_1545141395.html): 204 without a body, the new
//!   record's URL in `Location`.
//! - "Error Handling in REST Web Services" (section_156570709583.html): errors are
//!   `{"type","title","status","o:errorDetails":[{"detail","o:errorCode","o:errorPath"}]}`;
//!   401 `INVALID_LOGIN` for a token NetSuite refuses.
//!
//! Classes: 429, and the concurrency faults NetSuite names in other channels
//! (`SSS_REQUEST_LIMIT_EXCEEDED`, `WS_REQUEST_BLOCKED`, …), are throttled; 400 and other 4xx
//! are rejected with NetSuite's `o:errorCode` and `detail`; 401 `INVALID_LOGIN` is revoked
//! (a TBA token has no refresh: only an operator's new token helps), other 401/403 auth; 5xx
//! transient; a gateway timeout or a connection lost after sending a write is ambiguous.

use super::oauth1::{self, TokenCredentials};
use crate::domain::Op;
use crate::erp::{Attachment, Created, ErpClient, ErpError, retry_after};
use crate::pipeline::serialize::Payload;
use async_trait::async_trait;
use reqwest::{Method, Response, StatusCode, Url, header};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

/// Why `attach_pdf` sends nothing: what `erpsync preview` and the module say.
pub const NOT_ATTACHED: &str = "NetSuite's REST record API has no file upload: a PDF reaches a vendor bill only \
     through the File Cabinet and SOAP `attach` or SuiteScript `record.attach`, which this connector does not speak";

/// The error codes of NetSuite's concurrency governance, in whichever channel they come.
const THROTTLE_CODES: [&str; 6] = [
    "SSS_REQUEST_LIMIT_EXCEEDED",
    "CONCURRENCY_LIMIT_EXCEEDED",
    "WS_REQUEST_BLOCKED",
    "WS_CONCUR_SESSION_DISALLWD",
    "ExceededConcurrentRequestLimitFault",
    "ExceededRequestLimitFault",
];

pub struct NetsuiteClient {
    http: reqwest::Client,
    base: Url,
    creds: TokenCredentials,
    /// ISO code → the account's currency internal id, as looked up once: held across the
    /// look-up, so calls starting together wait for one answer instead of asking each.
    currencies: tokio::sync::Mutex<HashMap<String, String>>,
}

/// One entry of `o:errorDetails`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetail {
    #[serde(default)]
    pub detail: String,
    #[serde(default, rename = "o:errorCode")]
    pub code: String,
    #[serde(default, rename = "o:errorPath")]
    pub path: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default, rename = "o:errorDetails")]
    details: Vec<ErrorDetail>,
}

/// `o:errorDetails` of an error body; empty for anything else.
pub fn error_details(body: &str) -> Vec<ErrorDetail> {
    serde_json::from_str::<ErrorBody>(body).map(|b| b.details).unwrap_or_default()
}

/// The REST record type a document of `op` is.
pub fn record(op: Op) -> &'static str {
    match op {
        Op::ExportInvoice => "vendorBill",
        Op::ExportPurchaseOrder => "purchaseOrder",
        Op::ExportPayment => "vendorPayment",
    }
}

/// The sublists a record body carries, which an upsert replaces rather than appends to.
fn sublists(body: &Value) -> Vec<&'static str> {
    ["expense", "item", "apply"].into_iter().filter(|s| body.get(*s).is_some()).collect()
}

/// The internal id at the end of a `Location` URL.
pub fn id_from_location(location: &str) -> Option<String> {
    let last = location.trim().trim_end_matches('/').rsplit('/').next()?;
    (!last.is_empty() && !last.starts_with("eid:") && !last.contains('?')).then(|| last.to_owned())
}

impl NetsuiteClient {
    pub fn new(http: reqwest::Client, base: &str, creds: TokenCredentials) -> Result<Self, String> {
        let mut base = Url::parse(base).map_err(|e| format!("{base:?}: {e}"))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(NetsuiteClient { http, base, creds, currencies: Default::default() })
    }

    /// `{base}/{record}/{key}` with `key` as one path segment.
    fn url(&self, record: &str, key: Option<&str>) -> Url {
        let mut url = self.base.join(record).expect("relative paths join");
        if let Some(k) = key {
            url.path_segments_mut().expect("an http URL").push(k);
        }
        url
    }

    /// Signs and sends one request; what is not 2xx is classified.
    async fn send(&self, method: Method, url: Url, body: Option<Vec<u8>>) -> Result<Response, ErpError> {
        let timestamp = chrono::Utc::now().timestamp().max(0) as u64;
        let auth = oauth1::authorization(&self.creds, method.as_str(), &url, &oauth1::nonce(), timestamp);
        let mut req = self
            .http
            .request(method.clone(), url)
            .header(header::AUTHORIZATION, auth)
            .header(header::ACCEPT, "application/json");
        if let Some(b) = body {
            req = req.header(header::CONTENT_TYPE, "application/json").body(b);
        }
        let resp = req.send().await.map_err(|e| classify_send_error(&method, e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let (status, headers) = (resp.status(), resp.headers().clone());
        let text = resp.text().await.unwrap_or_default();
        Err(classify(&method, status, &headers, &text))
    }

    /// The account's internal id of the currency with ISO code `code`.
    async fn currency_id(&self, code: &str) -> Result<String, ErpError> {
        let mut known = self.currencies.lock().await;
        if let Some(id) = known.get(code) {
            return Ok(id.clone());
        }
        let mut url = self.url("currency", None);
        url.query_pairs_mut().append_pair("q", &format!("symbol IS \"{code}\""));
        let resp = self.send(Method::GET, url, None).await?;
        let list: Value =
            resp.json().await.map_err(|e| ErpError::Transient(format!("unreadable NetSuite answer: {e}")))?;
        let id = list["items"].as_array().and_then(|i| i.first()).and_then(|c| c["id"].as_str()).ok_or_else(|| {
            ErpError::Rejected {
                status: 400,
                code: "INVALID_CONTENT".into(),
                message: format!("the NetSuite account has no currency whose symbol is {code}"),
            }
        })?;
        known.insert(code.to_owned(), id.to_owned());
        Ok(id.to_owned())
    }

    /// The body as sent: a currency given by ISO code (as the serializer writes it, having
    /// no account ids) becomes the account's internal id.
    async fn resolve(&self, mut body: Value) -> Result<Value, ErpError> {
        let code =
            body["currency"]["id"].as_str().filter(|c| !c.chars().all(|c| c.is_ascii_digit())).map(str::to_owned);
        if let Some(code) = code {
            let id = self.currency_id(&code).await?;
            body["currency"]["id"] = Value::String(id);
        }
        Ok(body)
    }

    /// `GET /{record}/eid:{externalId}`: the record's internal id, if it exists.
    async fn lookup(&self, record: &str, external_id: &str) -> Result<Option<String>, ErpError> {
        let url = self.url(record, Some(&format!("eid:{external_id}")));
        match self.send(Method::GET, url, None).await {
            Ok(resp) => {
                let found: Value =
                    resp.json().await.map_err(|e| ErpError::Transient(format!("unreadable NetSuite answer: {e}")))?;
                Ok(found["id"].as_str().map(str::to_owned))
            }
            Err(ErpError::Rejected { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A write that may have reached NetSuite is ambiguous; a read that failed only transient.
fn classify_send_error(method: &Method, e: reqwest::Error) -> ErpError {
    if e.is_connect() || *method == Method::GET {
        ErpError::Transient(format!("cannot reach NetSuite: {e}"))
    } else {
        ErpError::Ambiguous(if e.is_timeout() { "NetSuite did not answer in time".to_owned() } else { e.to_string() })
    }
}

/// NetSuite's answer other than 2xx as one of erpsync's classes.
pub fn classify(method: &Method, status: StatusCode, headers: &header::HeaderMap, body: &str) -> ErpError {
    let details = error_details(body);
    let short: String = body.chars().take(500).collect();
    let code = details.iter().map(|d| d.code.as_str()).find(|c| !c.is_empty()).unwrap_or("").to_owned();
    let message = if details.is_empty() {
        short.clone()
    } else {
        let each = details.iter().map(|d| match &d.path {
            Some(p) if !p.is_empty() => format!("{} (at {p})", d.detail),
            _ => d.detail.clone(),
        });
        each.collect::<Vec<_>>().join("; ")
    };
    if status == StatusCode::TOO_MANY_REQUESTS || THROTTLE_CODES.iter().any(|t| details.iter().any(|d| d.code == *t)) {
        return ErpError::Throttled { retry_after: retry_after(headers) };
    }
    match status {
        StatusCode::UNAUTHORIZED if code == "INVALID_LOGIN" || code == "INVALID_LOGIN_ATTEMPT" => {
            ErpError::Revoked { message }
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErpError::Auth { status: status.as_u16(), message },
        StatusCode::GATEWAY_TIMEOUT | StatusCode::REQUEST_TIMEOUT if *method != Method::GET => {
            ErpError::Ambiguous(format!("NetSuite answered {status}"))
        }
        s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
            ErpError::Transient(format!("NetSuite answered {s}: {message}"))
        }
        s => ErpError::Rejected {
            status: s.as_u16(),
            code: if code.is_empty() { s.as_u16().to_string() } else { code },
            message,
        },
    }
}

#[async_trait]
impl ErpClient for NetsuiteClient {
    async fn create(&self, op: Op, payload: &Payload, _idempotency_key: &str) -> Result<Created, ErpError> {
        let body: Value = serde_json::from_slice(&payload.body).map_err(|e| ErpError::Rejected {
            status: 0,
            code: "unreadable_payload".into(),
            message: e.to_string(),
        })?;
        let Some(external_id) = body["externalId"].as_str().map(str::to_owned) else {
            return Err(ErpError::Rejected {
                status: 0,
                code: "no_external_id".into(),
                message: "a NetSuite record is created by its externalId, which the payload lacks".into(),
            });
        };
        let body = self.resolve(body).await?;
        let record = record(op);
        let mut url = self.url(record, Some(&format!("eid:{external_id}")));
        let replace = sublists(&body);
        if !replace.is_empty() {
            url.query_pairs_mut().append_pair("replace", &replace.join(","));
        }
        let bytes = serde_json::to_vec(&body).expect("a JSON value serializes");
        let resp = self.send(Method::PUT, url, Some(bytes)).await?;
        let location = resp.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).and_then(id_from_location);
        let erp_id = match location {
            Some(id) => id,
            // The record is there (NetSuite answered 2xx): its id is one lookup away.
            None => self.lookup(record, &external_id).await?.ok_or_else(|| {
                ErpError::Ambiguous(format!("NetSuite accepted {record} {external_id} but cannot find it"))
            })?,
        };
        Ok(Created { erp_id, replayed: false })
    }

    async fn find_existing(&self, op: Op, source_id: &str, payload: &Payload) -> Result<Option<String>, ErpError> {
        let from_payload = serde_json::from_slice::<Value>(&payload.body)
            .ok()
            .and_then(|b| b["externalId"].as_str().map(str::to_owned));
        let external_id = from_payload.unwrap_or_else(|| source_id.to_owned());
        self.lookup(record(op), &external_id).await
    }

    async fn attach_pdf(&self, a: Attachment<'_>) -> Result<String, ErpError> {
        // Nothing is sent (see NOT_ATTACHED); the ledger records that, so no attempt repeats it.
        tracing::debug!(bill = a.bill_id, "pdf not attached: {NOT_ATTACHED}");
        Ok("not-attached".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVALID_LOGIN: &str = r#"{"type":"https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html","title":"Unauthorized",
        "status":401,"o:errorDetails":[{"detail":"Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI at Setup > Users/Roles > User Management > View Login Audit Trail.",
        "o:errorCode":"INVALID_LOGIN"}]}"#;
    const INVALID_CONTENT: &str = r#"{"type":"https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.1",
        "title":"Bad Request","status":400,"o:errorDetails":[{"detail":"Error while accessing resource: You have entered an Invalid Field Value 9999 for the following field: item",
        "o:errorCode":"INVALID_CONTENT","o:errorPath":"item.items[0].item"}]}"#;

    #[test]
    fn netsuites_answers_map_to_erpsyncs_classes() {
        let h = header::HeaderMap::new();
        let put = Method::PUT;
        let ErpError::Rejected { status, code, message } = classify(&put, StatusCode::BAD_REQUEST, &h, INVALID_CONTENT)
        else {
            panic!("a 400 user error is a rejection")
        };
        assert_eq!((status, code.as_str()), (400, "INVALID_CONTENT"));
        assert!(
            message.contains("Invalid Field Value 9999") && message.ends_with("(at item.items[0].item)"),
            "{message}"
        );
        assert!(matches!(classify(&put, StatusCode::UNAUTHORIZED, &h, INVALID_LOGIN), ErpError::Revoked { .. }));
        assert!(matches!(classify(&put, StatusCode::UNAUTHORIZED, &h, ""), ErpError::Auth { status: 401, .. }));
        assert!(matches!(classify(&put, StatusCode::FORBIDDEN, &h, ""), ErpError::Auth { status: 403, .. }));
        let mut throttled = header::HeaderMap::new();
        throttled.insert(header::RETRY_AFTER, "3".parse().unwrap());
        assert!(matches!(
            classify(&put, StatusCode::TOO_MANY_REQUESTS, &throttled, ""),
            ErpError::Throttled { retry_after: Some(d) } if d.as_secs() == 3
        ));
        let restlet = r#"{"o:errorDetails":[{"detail":"limit","o:errorCode":"SSS_REQUEST_LIMIT_EXCEEDED"}]}"#;
        assert!(matches!(
            classify(&put, StatusCode::BAD_REQUEST, &h, restlet),
            ErpError::Throttled { retry_after: None }
        ));
        assert!(matches!(classify(&put, StatusCode::SERVICE_UNAVAILABLE, &h, ""), ErpError::Transient(_)));
        assert!(matches!(classify(&put, StatusCode::GATEWAY_TIMEOUT, &h, ""), ErpError::Ambiguous(_)));
        assert!(matches!(classify(&Method::GET, StatusCode::GATEWAY_TIMEOUT, &h, ""), ErpError::Transient(_)));
        assert!(matches!(
            classify(&Method::GET, StatusCode::NOT_FOUND, &h, "not json"),
            ErpError::Rejected { status: 404, code, .. } if code == "404"
        ));
    }

    #[test]
    fn the_new_id_is_read_from_location() {
        let loc = "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/record/v1/vendorBill/647";
        assert_eq!(id_from_location(loc).as_deref(), Some("647"));
        assert_eq!(id_from_location("/services/rest/record/v1/vendorBill/eid:x"), None);
        assert_eq!(id_from_location(""), None);
    }

    #[test]
    fn an_upsert_replaces_every_sublist_it_carries() {
        let body = serde_json::json!({"externalId": "x", "expense": {"items": []}, "item": {"items": []}});
        assert_eq!(sublists(&body), ["expense", "item"]);
        assert_eq!(sublists(&serde_json::json!({"apply": {"items": []}})), ["apply"]);
    }

    #[tokio::test]
    async fn a_pdf_is_not_sent_and_nothing_fails() {
        let creds = TokenCredentials {
            realm: "1".into(),
            consumer_key: "ck".into(),
            consumer_secret: "cs".to_owned().into(),
            token_id: "tk".into(),
            token_secret: "ts".to_owned().into(),
        };
        // Port 1 refuses connections: any request would fail.
        let client = NetsuiteClient::new(reqwest::Client::new(), "http://127.0.0.1:1/services/rest/record/v1", creds);
        let a = Attachment {
            bill_id: "1001",
            file_name: "b.pdf",
            pdf: b"%PDF-".to_vec(),
            idempotency_key: "k",
            maybe_attached: false,
        };
        assert_eq!(client.unwrap().attach_pdf(a).await.unwrap(), "not-attached");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_parsers(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let text = String::from_utf8_lossy(&bytes);
            for status in [400u16, 401, 404, 429, 500, 503] {
                let _ = classify(&Method::PUT, StatusCode::from_u16(status).unwrap(), &header::HeaderMap::new(), &text);
            }
            let _ = id_from_location(&text);
        }

        #[test]
        fn mutated_real_answers_are_still_classified(cut in 0usize..400, junk in "[\\[\\]{}\",:a-z0-9]{0,8}") {
            for real in [INVALID_LOGIN, INVALID_CONTENT] {
                let at = real.char_indices().map(|(i, _)| i).nth(cut).unwrap_or(real.len());
                let mutated = format!("{}{junk}{}", &real[..at], &real[at..]);
                let e = classify(&Method::PUT, StatusCode::BAD_REQUEST, &header::HeaderMap::new(), &mutated);
                let classified = matches!(e, ErpError::Rejected { .. } | ErpError::Throttled { .. });
                proptest::prop_assert!(classified, "{:?}", e);
            }
        }
    }
}
