//! The Xero Accounting API 2.0 over HTTP (XeroAPI/Xero-OpenAPI `xero_accounting.yaml`:
//! `PUT /Invoices`, `/PurchaseOrders` and `/Payments` with `summarizeErrors=false`,
//! `GET /Invoices?InvoiceNumbers=&ContactIDs=`, `PUT /Invoices/{InvoiceID}/Attachments/
//! {FileName}`; the `xero-tenant-id` and `Idempotency-Key` headers; the `Error` schema).
//!
//! Xero's answers map to erpsync's classes: a document Xero refuses (a 200 whose element
//! says `StatusAttributeString: ERROR` with `ValidationErrors`, or a 400
//! `ValidationException`) is rejected with Xero's message; 401 with an expired access
//! token refreshes once and retries once; other 401s and 403 are auth; 429 is throttled
//! (`Retry-After`, with `X-Rate-Limit-Problem` naming the limit); 5xx transient; a gateway
//! timeout or a dropped connection after sending is ambiguous.

use super::oauth::{RefreshFlow, Sent};
use super::{Attachment, Created, ErpClient, ErpError, retry_after};
use crate::domain::Op;
use crate::pipeline::serialize::Payload;
use async_trait::async_trait;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url, header};
use serde::Deserialize;
use serde_json::Value;

pub struct XeroClient {
    http: reqwest::Client,
    base: Url,
    tenant: String,
    tokens: RefreshFlow,
}

/// What Xero's `Error` schema carries (a 400).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct XeroError {
    #[serde(default)]
    r#type: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    elements: Vec<Value>,
}

/// The collection a document of `op` is created in, and the id field of its elements.
fn collection(op: Op) -> (&'static str, &'static str) {
    match op {
        Op::ExportInvoice => ("Invoices", "InvoiceID"),
        Op::ExportPurchaseOrder => ("PurchaseOrders", "PurchaseOrderID"),
        Op::ExportPayment => ("Payments", "PaymentID"),
    }
}

/// Every `ValidationErrors[].Message` of an element, joined.
fn validation_messages(element: &Value) -> Vec<String> {
    element["ValidationErrors"]
        .as_array()
        .map(|errs| errs.iter().filter_map(|e| e["Message"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// An expired access token, as Xero's 401 says it (`WWW-Authenticate: Bearer
/// error="invalid_token"`, or a problem body naming `TokenExpired`).
fn is_expired_token(headers: &header::HeaderMap, body: &str) -> bool {
    let www = headers.get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or("");
    www.contains("invalid_token") || body.contains("TokenExpired")
}

impl XeroClient {
    /// The live purchase order of `po`'s number and contact (`GET /PurchaseOrders/{number}`,
    /// Xero's getPurchaseOrderByNumber), if there is one.
    async fn find_purchase_order(&self, po: &Value) -> Result<Option<String>, ErpError> {
        let (Some(number), Some(contact)) = (po["PurchaseOrderNumber"].as_str(), po["Contact"]["ContactID"].as_str())
        else {
            return Ok(None);
        };
        let mut url = self.url("PurchaseOrders");
        url.path_segments_mut().expect("an http URL").push(number);
        match self.send(Method::GET, url, |r| r).await {
            Ok(resp) => {
                let found: Value =
                    resp.json().await.map_err(|e| ErpError::Transient(format!("unreadable Xero answer: {e}")))?;
                let live = found["PurchaseOrders"].as_array().into_iter().flatten().find(|p| {
                    p["Contact"]["ContactID"].as_str().is_some_and(|c| c.eq_ignore_ascii_case(contact))
                        && p["Status"].as_str() != Some("DELETED")
                });
                Ok(live.and_then(|p| p["PurchaseOrderID"].as_str()).map(str::to_owned))
            }
            Err(ErpError::Rejected { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn new(http: reqwest::Client, base: &str, tenant: String, tokens: RefreshFlow) -> Result<Self, String> {
        let mut base = Url::parse(base).map_err(|e| format!("{base:?}: {e}"))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(XeroClient { http, base, tenant, tokens })
    }

    fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("relative paths join")
    }

    /// Sends a request with a valid access token (refreshed once on an expired one) and
    /// classifies what is not 2xx.
    async fn send(
        &self,
        method: Method,
        url: Url,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, ErpError> {
        let request = |token: &str| {
            let req = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token)
                .header("xero-tenant-id", &self.tenant)
                .header(header::ACCEPT, "application/json");
            build(req)
        };
        match self.tokens.send(request, is_expired_token).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(r)) => Err(classify(&method, r.status, &r.headers, &r.body)),
            Err(Sent::Token(e)) => Err(e),
            Err(Sent::Network(e)) => Err(classify_send_error(&method, e)),
        }
    }
}

/// A create that may have reached Xero is ambiguous; a read that failed is only transient.
fn classify_send_error(method: &Method, e: reqwest::Error) -> ErpError {
    if e.is_connect() || *method == Method::GET {
        ErpError::Transient(format!("cannot reach Xero: {e}"))
    } else {
        ErpError::Ambiguous(if e.is_timeout() { "Xero did not answer in time".to_owned() } else { e.to_string() })
    }
}

pub(super) fn classify(method: &Method, status: StatusCode, headers: &header::HeaderMap, body: &str) -> ErpError {
    let short: String = body.chars().take(500).collect();
    match status {
        StatusCode::TOO_MANY_REQUESTS => ErpError::Throttled { retry_after: retry_after(headers) },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErpError::Auth { status: status.as_u16(), message: short },
        StatusCode::BAD_REQUEST => match serde_json::from_str::<XeroError>(body) {
            Ok(e) => {
                let details: Vec<String> = e.elements.iter().flat_map(validation_messages).collect();
                let message = if details.is_empty() { e.message.unwrap_or(short) } else { details.join("; ") };
                ErpError::Rejected {
                    status: 400,
                    code: e.r#type.unwrap_or_else(|| "ValidationException".into()),
                    message,
                }
            }
            Err(_) => ErpError::Rejected { status: 400, code: "400".into(), message: short },
        },
        StatusCode::GATEWAY_TIMEOUT | StatusCode::REQUEST_TIMEOUT if *method != Method::GET => {
            ErpError::Ambiguous(format!("Xero answered {status}"))
        }
        s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
            ErpError::Transient(format!("Xero answered {s}: {short}"))
        }
        s => ErpError::Rejected { status: s.as_u16(), code: s.as_u16().to_string(), message: short },
    }
}

/// The created ids of a create's 2xx answer: unreadable, it leaves the outcome unknown.
pub(super) fn created_from(op: Op, bytes: &[u8]) -> Result<Vec<String>, ErpError> {
    let answer: Value =
        serde_json::from_slice(bytes).map_err(|e| ErpError::Ambiguous(format!("unreadable Xero answer: {e}")))?;
    created_ids(op, &answer)
}

/// The created ids of a `summarizeErrors=false` answer, or the first element's refusal.
fn created_ids(op: Op, body: &Value) -> Result<Vec<String>, ErpError> {
    let (coll, id_field) = collection(op);
    let elements = body[coll]
        .as_array()
        .filter(|e| !e.is_empty())
        .ok_or_else(|| ErpError::Ambiguous(format!("Xero's answer holds no {coll}: the outcome is unknown")))?;
    let mut ids = Vec::new();
    for element in elements {
        let refused = element["StatusAttributeString"].as_str() == Some("ERROR") || element["HasErrors"] == true;
        let messages = validation_messages(element);
        if refused || !messages.is_empty() {
            return Err(ErpError::Rejected {
                status: 200,
                code: "ValidationError".into(),
                message: if messages.is_empty() { "Xero refused the document".into() } else { messages.join("; ") },
            });
        }
        match element[id_field].as_str() {
            Some(id) if !id.trim().is_empty() => ids.push(id.to_owned()),
            _ => return Err(ErpError::Ambiguous(format!("a {coll} element without {id_field}"))),
        }
    }
    Ok(ids)
}

#[async_trait]
impl ErpClient for XeroClient {
    async fn create(&self, op: Op, payload: &Payload, idempotency_key: &str) -> Result<Created, ErpError> {
        let (coll, _) = collection(op);
        let mut url = self.url(coll);
        url.query_pairs_mut().append_pair("summarizeErrors", "false");
        let body = payload.body.clone();
        let resp = self
            .send(Method::PUT, url, |r| {
                r.header(header::CONTENT_TYPE, payload.content_type)
                    .header("Idempotency-Key", idempotency_key)
                    .body(body.clone())
            })
            .await?;
        let bytes = resp.bytes().await.map_err(|e| ErpError::Ambiguous(format!("unreadable Xero answer: {e}")))?;
        // A payment document is one Xero payment per bill it pays: their ids, joined.
        let ids = created_from(op, &bytes)?;
        Ok(Created { erp_id: ids.join(","), replayed: false })
    }

    async fn find_existing(&self, op: Op, _source_id: &str, payload: &Payload) -> Result<Option<String>, ErpError> {
        // Xero keeps no reference of ours: a bill is found by its number and contact, a
        // purchase order by its number (unique in the organisation) and contact. A payment
        // has no such key; its create carries the same Idempotency-Key, and Xero refuses a
        // payment beyond what a bill has open.
        let doc: Value = serde_json::from_slice(&payload.body).map_err(|e| ErpError::Transient(e.to_string()))?;
        match op {
            Op::ExportInvoice => {}
            Op::ExportPurchaseOrder => return self.find_purchase_order(&doc["PurchaseOrders"][0]).await,
            Op::ExportPayment => return Ok(None),
        }
        let bill = &doc["Invoices"][0];
        let (Some(number), Some(contact)) = (bill["InvoiceNumber"].as_str(), bill["Contact"]["ContactID"].as_str())
        else {
            return Ok(None);
        };
        let mut url = self.url("Invoices");
        url.query_pairs_mut().append_pair("InvoiceNumbers", number).append_pair("ContactIDs", contact);
        let resp = self.send(Method::GET, url, |r| r).await?;
        let found: Value =
            resp.json().await.map_err(|e| ErpError::Transient(format!("unreadable Xero answer: {e}")))?;
        let live = found["Invoices"].as_array().into_iter().flatten().find(|i| {
            i["Type"].as_str() == Some("ACCPAY") && !matches!(i["Status"].as_str(), Some("DELETED" | "VOIDED"))
        });
        Ok(live.and_then(|i| i["InvoiceID"].as_str()).map(str::to_owned))
    }

    async fn attach_pdf(&self, a: Attachment<'_>) -> Result<String, ErpError> {
        let path = format!("Invoices/{}/Attachments", a.bill_id);
        if a.maybe_attached {
            // Xero keeps no key for attachments: after an attempt that may have sent it,
            // a file of this name on the bill is that attachment.
            let resp = self.send(Method::GET, self.url(&path), |r| r).await?;
            let listed: Value = resp.json().await.map_err(|e| ErpError::Transient(e.to_string()))?;
            let same = listed["Attachments"].as_array().into_iter().flatten().find(|x| x["FileName"] == a.file_name);
            if let Some(id) = same.and_then(|x| x["AttachmentID"].as_str()) {
                return Ok(id.to_owned());
            }
        }
        let mut url = self.url(&path);
        url.path_segments_mut().expect("an http URL").push(a.file_name);
        let pdf = a.pdf;
        let resp = self
            .send(Method::PUT, url, |r| {
                r.header(header::CONTENT_TYPE, "application/pdf")
                    .header("Idempotency-Key", a.idempotency_key)
                    .body(pdf.clone())
            })
            .await?;
        let answer: Value =
            resp.json().await.map_err(|e| ErpError::Ambiguous(format!("unreadable Xero answer: {e}")))?;
        answer["Attachments"][0]["AttachmentID"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ErpError::Ambiguous("Xero's attachment answer holds no AttachmentID".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_refused_element_is_a_rejection_with_xeros_messages() {
        let answer = json!({"Invoices": [{"InvoiceID": "00000000-0000-0000-0000-000000000000",
            "StatusAttributeString": "ERROR",
            "ValidationErrors": [{"Message": "Account code '9999' is not a valid code for this document."}]}]});
        let ErpError::Rejected { status, code, message } = created_ids(Op::ExportInvoice, &answer).unwrap_err() else {
            panic!("not a rejection")
        };
        assert_eq!((status, code.as_str()), (200, "ValidationError"));
        assert!(message.contains("Account code '9999'"), "{message}");
        let ok = json!({"Payments": [{"PaymentID": "p1", "StatusAttributeString": "OK"}, {"PaymentID": "p2"}]});
        assert_eq!(created_ids(Op::ExportPayment, &ok).unwrap(), ["p1", "p2"]);
        assert!(matches!(created_ids(Op::ExportInvoice, &json!({})), Err(ErpError::Ambiguous(_))));
    }

    #[test]
    fn xeros_answers_map_to_erpsyncs_classes() {
        let h = header::HeaderMap::new();
        let put = Method::PUT;
        let body = r#"{"ErrorNumber":10,"Type":"ValidationException","Message":"A validation exception occurred",
            "Elements":[{"ValidationErrors":[{"Message":"Email address must be valid."}]}]}"#;
        let ErpError::Rejected { code, message, .. } = classify(&put, StatusCode::BAD_REQUEST, &h, body) else {
            panic!("a 400 is a rejection")
        };
        assert_eq!((code.as_str(), message.as_str()), ("ValidationException", "Email address must be valid."));
        let mut throttled = header::HeaderMap::new();
        throttled.insert(header::RETRY_AFTER, "12".parse().unwrap());
        throttled.insert("x-rate-limit-problem", "minute".parse().unwrap());
        assert!(matches!(
            classify(&put, StatusCode::TOO_MANY_REQUESTS, &throttled, ""),
            ErpError::Throttled { retry_after: Some(d) } if d.as_secs() == 12
        ));
        assert!(matches!(classify(&put, StatusCode::FORBIDDEN, &h, ""), ErpError::Auth { status: 403, .. }));
        assert!(matches!(classify(&put, StatusCode::GATEWAY_TIMEOUT, &h, ""), ErpError::Ambiguous(_)));
        assert!(matches!(classify(&Method::GET, StatusCode::GATEWAY_TIMEOUT, &h, ""), ErpError::Transient(_)));
        assert!(matches!(classify(&put, StatusCode::SERVICE_UNAVAILABLE, &h, ""), ErpError::Transient(_)));
        assert!(matches!(classify(&put, StatusCode::NOT_FOUND, &h, ""), ErpError::Rejected { status: 404, .. }));
    }

    #[test]
    fn an_expired_token_is_told_from_other_401s() {
        let mut h = header::HeaderMap::new();
        assert!(is_expired_token(
            &h,
            r#"{"Title":"Unauthorized","Status":401,"Detail":"TokenExpired: token expired"}"#
        ));
        assert!(!is_expired_token(
            &h,
            r#"{"Title":"Unauthorized","Status":401,"Detail":"AuthenticationUnsuccessful"}"#
        ));
        h.insert(header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#.parse().unwrap());
        assert!(is_expired_token(&h, ""));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parsers() {
        let h = header::HeaderMap::new();
        for body in ["", "{", "null", "[]", "{\"Elements\":5}", "{\"Invoices\":[null]}", "\u{0}\u{ffff}"] {
            let _ = classify(&Method::PUT, StatusCode::BAD_REQUEST, &h, body);
            if let Ok(v) = serde_json::from_str::<Value>(body) {
                let _ = created_ids(Op::ExportInvoice, &v);
            }
        }
    }
}
