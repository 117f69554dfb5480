//! Business Central API v2.0 over HTTP (MicrosoftDocs/dynamics365smb-devitpro-pb,
//! `dev-itpro/api-reference/v2.0/`: `resources/dynamics_purchaseinvoice.md`,
//! `dynamics_purchaseinvoiceline.md`, `dynamics_purchaseorder(line).md`,
//! `dynamics_vendorPayment.md`, `dynamics_documentattachment.md`,
//! `api/dynamics_documentattachment_create.md`, `api/dynamics_attachment_update.md`;
//! `dev-itpro/developer/devenv-connect-apps-tips.md` for transactional `$batch`;
//! `dev-itpro/webservices/dynamics-error-codes.md` for the OData error codes;
//! `dev-itpro/includes/include-http-status-error-codes.md` for the status codes).
//!
//! - Bills: `POST companies({id})/purchaseInvoices` with the lines deep-inserted
//!   (`purchaseInvoiceLines`), purchase orders likewise (`purchaseOrders`,
//!   `purchaseOrderLines`). Business Central takes no idempotency key: after an ambiguous
//!   create the connector asks [`ErpClient::find_existing`], which filters on the natural key
//!   (`vendorInvoiceNumber` and the vendor; a purchase order's `number`) and adopts what it
//!   finds.
//! - Payments: one `$batch` of `vendorPayments` lines in the company's first vendor payment
//!   journal, sent with `Isolation: snapshot` so it is atomic (all lines or none), at most
//!   100 operations. Found again by the lines' `comment`, which names the source payment —
//!   while the journal is not posted: posted lines leave the journal, so a retry after that
//!   finds nothing there, and erpsync's own ledger is what stands between it and a second
//!   payment.
//! - The PDF: a `documentAttachments` record (`parentType: "Purchase Invoice"`), then its
//!   content by `PATCH …/documentAttachments({id})/attachmentContent` with `If-Match: *`.
//!   After an attempt that may have attached it, the bill's attachments are listed first and
//!   a record of that file name is reused (its content uploaded if it has none), so a bill
//!   gets one copy.
//!
//! Answers: 429 throttled (`Retry-After` when given); 408 and 504 to a write ambiguous (the
//! server may have committed), to a read transient; other 5xx transient; 401 with an expired
//! token renews it once and retries once, other 401 and 403 are auth; other 4xx are the
//! document refused with Business Central's OData `{"error":{"code","message"}}`.

use super::client_credentials::ClientCredentialsFlow;
use crate::domain::Op;
use crate::erp::oauth::Sent;
use crate::erp::{Attachment, Created, ErpClient, ErpError, retry_after};
use crate::pipeline::serialize::Payload;
use async_trait::async_trait;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url, header};
use serde_json::{Value, json};

/// Operations one `$batch` may carry (Business Central's documented batch limit).
pub const MAX_BATCH_OPERATIONS: usize = 100;

/// The `parentType` of an attachment on a purchase invoice.
const PURCHASE_INVOICE: &str = "Purchase Invoice";

pub struct BusinessCentralClient {
    http: reqwest::Client,
    /// The API root (`…/api/v2.0/`).
    base: Url,
    company: String,
    tokens: ClientCredentialsFlow,
    journal: tokio::sync::OnceCell<String>,
}

/// An OData error body: `{"error":{"code","message"}}`.
pub(crate) fn odata_error(body: &str) -> Option<(String, String)> {
    let v: Value = serde_json::from_str(body).ok()?;
    let e = v.get("error")?;
    let code = e.get("code").and_then(Value::as_str).unwrap_or("Unknown").to_owned();
    let message = e.get("message").and_then(Value::as_str).unwrap_or("").to_owned();
    Some((code, message))
}

/// An expired access token, as the 401 says it (`WWW-Authenticate: Bearer
/// error="invalid_token"`, or a message saying it expired).
fn is_expired_token(headers: &header::HeaderMap, body: &str) -> bool {
    let www = headers.get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or("");
    www.contains("invalid_token") || body.to_ascii_lowercase().contains("expired")
}

/// A non-2xx answer as erpsync's class.
pub(crate) fn classify(method: &Method, status: StatusCode, headers: &header::HeaderMap, body: &str) -> ErpError {
    let short: String = body.chars().take(500).collect();
    let said = odata_error(body);
    let what = said.as_ref().map(|(c, m)| format!("{c}: {m}")).unwrap_or_else(|| short.clone());
    let write = *method != Method::GET;
    match status {
        StatusCode::TOO_MANY_REQUESTS => ErpError::Throttled { retry_after: retry_after(headers) },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErpError::Auth { status: status.as_u16(), message: what },
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT if write => {
            ErpError::Ambiguous(format!("Business Central answered {status}: the write may have been committed"))
        }
        s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
            ErpError::Transient(format!("Business Central answered {s}: {what}"))
        }
        s => match said {
            Some((code, message)) => ErpError::Rejected { status: s.as_u16(), code, message },
            None => ErpError::Rejected { status: s.as_u16(), code: s.as_u16().to_string(), message: short },
        },
    }
}

/// The `id` of a created entity (201 body); a create whose answer says no id is of unknown
/// outcome.
pub(crate) fn created_id(body: &[u8]) -> Result<String, ErpError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ErpError::Ambiguous(format!("unreadable Business Central answer: {e}")))?;
    v.get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ErpError::Ambiguous("Business Central's answer holds no id".into()))
}

/// The entities of a collection answer (`{"value":[…]}`).
pub(crate) fn values(body: &[u8]) -> Result<Vec<Value>, ErpError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ErpError::Transient(format!("unreadable Business Central answer: {e}")))?;
    match v.get("value") {
        Some(Value::Array(items)) => Ok(items.clone()),
        _ => Err(ErpError::Transient("Business Central's answer holds no value list".into())),
    }
}

/// The created ids of a transactional `$batch` answer (`{"responses":[{"id","status","body"}]}`),
/// or the refusal of the first inner request that failed (with `Isolation: snapshot`
/// nothing of the batch was kept then).
pub(crate) fn batch_ids(body: &[u8]) -> Result<Vec<String>, ErpError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ErpError::Ambiguous(format!("unreadable Business Central $batch answer: {e}")))?;
    let responses = v
        .get("responses")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ErpError::Ambiguous("Business Central's $batch answer holds no responses".into()))?;
    let mut ids = Vec::new();
    for r in responses {
        let status = r.get("status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok());
        let status = status.and_then(|s| StatusCode::from_u16(s).ok());
        let Some(status) = status else {
            return Err(ErpError::Ambiguous("a $batch response without a status".into()));
        };
        let inner = r.get("body").cloned().unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(classify(&Method::POST, status, &header::HeaderMap::new(), &inner.to_string()));
        }
        match inner.get("id").and_then(Value::as_str) {
            Some(id) => ids.push(id.to_owned()),
            None => return Err(ErpError::Ambiguous("a $batch response without an id".into())),
        }
    }
    Ok(ids)
}

/// An OData string literal: quoted, inner quotes doubled.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The `$filter` naming a document's vendor, as its body names it.
fn vendor_clause(doc: &Value) -> Option<String> {
    if let Some(id) = doc["vendorId"].as_str() {
        return Some(format!("vendorId eq {id}"));
    }
    doc["vendorNumber"].as_str().map(|n| format!("vendorNumber eq {}", literal(n)))
}

fn parse_payload(payload: &Payload) -> Result<Value, ErpError> {
    serde_json::from_slice(&payload.body).map_err(|e| ErpError::Transient(format!("unreadable payload: {e}")))
}

impl BusinessCentralClient {
    pub fn new(
        http: reqwest::Client,
        base: &str,
        company: String,
        tokens: ClientCredentialsFlow,
    ) -> Result<Self, String> {
        let mut base = Url::parse(base).map_err(|e| format!("{base:?}: {e}"))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(BusinessCentralClient { http, base, company, tokens, journal: tokio::sync::OnceCell::new() })
    }

    /// A path under the company (`companies({id})/…`), with an optional `$filter`.
    fn url(&self, path: &str, filter: Option<&str>) -> Url {
        let mut url = self.base.join(&format!("companies({})/{path}", self.company)).expect("relative paths join");
        if let Some(f) = filter {
            url.query_pairs_mut().append_pair("$filter", f);
        }
        url
    }

    /// Sends a request with a valid access token (renewed once on an expired one) and
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

    async fn post_json(&self, url: Url, body: Vec<u8>, extra: &[(&str, &str)]) -> Result<Vec<u8>, ErpError> {
        let resp = self
            .send(Method::POST, url, |r| {
                let mut r = r.header(header::CONTENT_TYPE, "application/json").body(body.clone());
                for (k, v) in extra {
                    r = r.header(*k, *v);
                }
                r
            })
            .await?;
        let bytes = resp.bytes().await.map_err(|e| ErpError::Ambiguous(format!("answer lost: {}", e.without_url())))?;
        Ok(bytes.to_vec())
    }

    async fn get(&self, url: Url) -> Result<Vec<u8>, ErpError> {
        let resp = self.send(Method::GET, url, |r| r).await?;
        let bytes = resp.bytes().await.map_err(|e| ErpError::Transient(format!("answer lost: {}", e.without_url())))?;
        Ok(bytes.to_vec())
    }

    /// The id of the company's vendor payment journal (its first), read once.
    async fn journal(&self) -> Result<String, ErpError> {
        self.journal
            .get_or_try_init(|| async {
                let journals = values(&self.get(self.url("vendorPaymentJournals", None)).await?)?;
                journals.first().and_then(|j| j["id"].as_str()).map(str::to_owned).ok_or_else(|| ErpError::Rejected {
                    status: 200,
                    code: "NoVendorPaymentJournal".into(),
                    message: "the company has no vendor payment journal to record payments in".into(),
                })
            })
            .await
            .cloned()
    }

    async fn create_payment(&self, payload: &Payload) -> Result<Created, ErpError> {
        let mut batch = parse_payload(payload)?;
        let journal = self.journal().await?;
        let lines = format!("companies({})/vendorPaymentJournals({journal})/vendorPayments", self.company);
        let Some(requests) = batch["requests"].as_array_mut() else {
            return Err(ErpError::Rejected { status: 0, code: "payload".into(), message: "not a $batch body".into() });
        };
        if requests.len() > MAX_BATCH_OPERATIONS {
            return Err(ErpError::Rejected {
                status: 0,
                code: "BatchTooLarge".into(),
                message: format!("{} operations; a $batch holds at most {MAX_BATCH_OPERATIONS}", requests.len()),
            });
        }
        for r in requests.iter_mut() {
            r["url"] = Value::String(lines.clone());
        }
        let url = self.base.join("$batch").expect("relative paths join");
        let body = serde_json::to_vec(&batch).expect("a JSON value encodes");
        let answer = self.post_json(url, body, &[("Isolation", "snapshot")]).await?;
        Ok(Created { erp_id: batch_ids(&answer)?.join(","), replayed: false })
    }

    /// Uploads an attachment record's content.
    async fn upload(&self, id: &str, pdf: &[u8]) -> Result<(), ErpError> {
        let url = self.url(&format!("documentAttachments({id})/attachmentContent"), None);
        let pdf = pdf.to_vec();
        self.send(Method::PATCH, url, |r| {
            r.header(header::CONTENT_TYPE, "application/octet-stream").header(header::IF_MATCH, "*").body(pdf.clone())
        })
        .await?;
        Ok(())
    }
}

/// A write that may have reached Business Central is ambiguous; a read that failed is only
/// transient.
fn classify_send_error(method: &Method, e: reqwest::Error) -> ErpError {
    let e = e.without_url();
    if e.is_connect() || *method == Method::GET {
        ErpError::Transient(format!("cannot reach Business Central: {e}"))
    } else if e.is_timeout() {
        ErpError::Ambiguous("Business Central did not answer in time".into())
    } else {
        ErpError::Ambiguous(e.to_string())
    }
}

#[async_trait]
impl ErpClient for BusinessCentralClient {
    async fn create(&self, op: Op, payload: &Payload, _idempotency_key: &str) -> Result<Created, ErpError> {
        let collection = match op {
            Op::ExportInvoice => "purchaseInvoices",
            Op::ExportPurchaseOrder => "purchaseOrders",
            Op::ExportPayment => return self.create_payment(payload).await,
        };
        let answer = self.post_json(self.url(collection, None), payload.body.clone(), &[]).await?;
        Ok(Created { erp_id: created_id(&answer)?, replayed: false })
    }

    async fn find_existing(&self, op: Op, _source_id: &str, payload: &Payload) -> Result<Option<String>, ErpError> {
        let doc = parse_payload(payload)?;
        let (path, filter) = match op {
            Op::ExportInvoice => {
                let (Some(number), Some(vendor)) = (doc["vendorInvoiceNumber"].as_str(), vendor_clause(&doc)) else {
                    return Ok(None);
                };
                ("purchaseInvoices".to_owned(), format!("vendorInvoiceNumber eq {} and {vendor}", literal(number)))
            }
            Op::ExportPurchaseOrder => {
                let Some(number) = doc["number"].as_str() else { return Ok(None) };
                ("purchaseOrders".to_owned(), format!("number eq {}", literal(number)))
            }
            Op::ExportPayment => {
                // Every line of one payment carries the same comment, naming its source.
                let Some(comment) = doc["requests"][0]["body"]["comment"].as_str() else { return Ok(None) };
                let journal = self.journal().await?;
                (format!("vendorPaymentJournals({journal})/vendorPayments"), format!("comment eq {}", literal(comment)))
            }
        };
        let found = values(&self.get(self.url(&path, Some(&filter))).await?)?;
        let ids: Vec<&str> = found.iter().filter_map(|d| d["id"].as_str()).collect();
        Ok((!ids.is_empty()).then(|| ids.join(",")))
    }

    async fn attach_pdf(&self, a: Attachment<'_>) -> Result<String, ErpError> {
        if a.maybe_attached {
            let listed = values(
                &self.get(self.url(&format!("purchaseInvoices({})/documentAttachments", a.bill_id), None)).await?,
            )?;
            if let Some(same) = listed.iter().find(|x| x["fileName"] == a.file_name)
                && let Some(id) = same["id"].as_str()
            {
                if same["byteSize"].as_u64().unwrap_or(0) == 0 {
                    self.upload(id, &a.pdf).await?;
                }
                return Ok(id.to_owned());
            }
        }
        let record = json!({"fileName": a.file_name, "parentType": PURCHASE_INVOICE, "parentId": a.bill_id});
        let body = serde_json::to_vec(&record).expect("a JSON value encodes");
        let id = created_id(&self.post_json(self.url("documentAttachments", None), body, &[]).await?)?;
        self.upload(&id, &a.pdf).await?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h() -> header::HeaderMap {
        header::HeaderMap::new()
    }

    #[test]
    fn business_centrals_answers_map_to_erpsyncs_classes() {
        let post = Method::POST;
        let blocked = r#"{"error":{"code":"Application_DialogException","message":"You cannot create this type of document when Vendor 40000 is blocked with type All  CorrelationId:  1."}}"#;
        let ErpError::Rejected { status, code, message } = classify(&post, StatusCode::BAD_REQUEST, &h(), blocked)
        else {
            panic!("a 400 is a rejection")
        };
        assert_eq!((status, code.as_str()), (400, "Application_DialogException"));
        assert!(message.contains("blocked with type All"), "{message}");
        let mut throttled = h();
        throttled.insert(header::RETRY_AFTER, "30".parse().unwrap());
        assert!(matches!(
            classify(&post, StatusCode::TOO_MANY_REQUESTS, &throttled, ""),
            ErpError::Throttled { retry_after: Some(d) } if d.as_secs() == 30
        ));
        assert!(matches!(
            classify(&post, StatusCode::TOO_MANY_REQUESTS, &h(), ""),
            ErpError::Throttled { retry_after: None }
        ));
        for lost in [StatusCode::REQUEST_TIMEOUT, StatusCode::GATEWAY_TIMEOUT] {
            assert!(matches!(classify(&post, lost, &h(), ""), ErpError::Ambiguous(_)), "{lost} on a write");
            assert!(matches!(classify(&Method::PATCH, lost, &h(), ""), ErpError::Ambiguous(_)), "{lost} on a write");
            assert!(matches!(classify(&Method::GET, lost, &h(), ""), ErpError::Transient(_)), "{lost} on a read");
        }
        let internal = r#"{"error":{"code":"Internal_ServerError","message":"Cannot establish a connection to the SQL Server/Database."}}"#;
        assert!(matches!(classify(&post, StatusCode::INTERNAL_SERVER_ERROR, &h(), internal), ErpError::Transient(_)));
        assert!(matches!(classify(&post, StatusCode::SERVICE_UNAVAILABLE, &h(), ""), ErpError::Transient(_)));
        assert!(matches!(classify(&post, StatusCode::UNAUTHORIZED, &h(), ""), ErpError::Auth { status: 401, .. }));
        assert!(matches!(classify(&post, StatusCode::FORBIDDEN, &h(), ""), ErpError::Auth { status: 403, .. }));
        let missing = r#"{"error":{"code":"Internal_RecordNotFound","message":"The G/L Account does not exist."}}"#;
        assert!(matches!(
            classify(&post, StatusCode::NOT_FOUND, &h(), missing),
            ErpError::Rejected { status: 404, ref code, .. } if code == "Internal_RecordNotFound"
        ));
        assert!(matches!(classify(&post, StatusCode::CONFLICT, &h(), "oops"), ErpError::Rejected { status: 409, .. }));
    }

    #[test]
    fn an_expired_token_is_told_from_other_401s() {
        let mut www = h();
        www.insert(
            header::WWW_AUTHENTICATE,
            r#"Bearer error="invalid_token", error_description="The token is expired""#.parse().unwrap(),
        );
        assert!(is_expired_token(&www, ""));
        assert!(is_expired_token(&h(), r#"{"error":{"code":"Unauthorized","message":"The token expired."}}"#));
        assert!(!is_expired_token(
            &h(),
            r#"{"error":{"code":"Authentication_InvalidCredentials","message":"The server has rejected the client credentials."}}"#
        ));
    }

    #[test]
    fn a_batch_answer_yields_every_id_or_the_first_refusal() {
        let ok =
            br#"{"responses":[{"id":"1","status":201,"body":{"id":"a"}},{"id":"2","status":201,"body":{"id":"b"}}]}"#;
        assert_eq!(batch_ids(ok).unwrap(), ["a", "b"]);
        let refused = br#"{"responses":[{"id":"1","status":201,"body":{"id":"a"}},{"id":"2","status":400,"body":{"error":{"code":"Application_DialogException","message":"The amount must be positive."}}}]}"#;
        assert!(matches!(batch_ids(refused), Err(ErpError::Rejected { status: 400, .. })));
        assert!(matches!(batch_ids(br#"{"responses":[]}"#), Err(ErpError::Ambiguous(_))));
        assert!(matches!(batch_ids(b"<html>"), Err(ErpError::Ambiguous(_))));
    }

    #[test]
    fn created_ids_and_lists_are_read() {
        assert_eq!(created_id(br#"{"@odata.etag":"W/\"x\"","id":"5d3c","number":"108001"}"#).unwrap(), "5d3c");
        assert!(matches!(created_id(br#"{"id":""}"#), Err(ErpError::Ambiguous(_))));
        assert_eq!(values(br#"{"value":[{"id":"a"}]}"#).unwrap().len(), 1);
        assert!(matches!(values(br#"{"value":null}"#), Err(ErpError::Transient(_))));
        assert_eq!(literal("O'Brien"), "'O''Brien'");
    }

    /// A real answer of each kind, for mutation.
    const REAL: [&str; 4] = [
        r#"{"@odata.context":"x","@odata.etag":"W/\"JzE5OzE7JyI=\"","id":"0b5e0b34-0000-4000-8000-000000000001","number":"108001","vendorInvoiceNumber":"c1-000001"}"#,
        r#"{"@odata.context":"x","value":[{"id":"a","fileName":"x.pdf","byteSize":0}]}"#,
        r#"{"responses":[{"id":"1","status":201,"headers":{},"body":{"id":"p1"}}]}"#,
        r#"{"error":{"code":"BadRequest","message":"The property 'directUnitCost' does not exist on type 'Microsoft.NAV.purchaseInvoiceLine'."}}"#,
    ];

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_parsers(body in proptest::collection::vec(any::<u8>(), 0..400), status in 400u16..600) {
            let text = String::from_utf8_lossy(&body);
            let status = StatusCode::from_u16(status).unwrap();
            let _ = classify(&Method::POST, status, &h(), &text);
            let _ = classify(&Method::GET, status, &h(), &text);
            prop_assert!(created_id(&body).is_err() || serde_json::from_slice::<Value>(&body).is_ok());
            let _ = values(&body);
            let _ = batch_ids(&body);
            let _ = odata_error(&text);
        }

        #[test]
        fn mutated_real_answers_never_panic_the_parsers(which in 0usize..4, at in any::<proptest::sample::Index>(), byte in any::<u8>(), cut in any::<proptest::sample::Index>()) {
            let mut body = REAL[which].as_bytes().to_vec();
            let i = at.index(body.len());
            body[i] = byte;
            body.truncate(cut.index(body.len() + 1).max(1));
            let text = String::from_utf8_lossy(&body);
            let _ = classify(&Method::POST, StatusCode::BAD_REQUEST, &h(), &text);
            let _ = created_id(&body);
            let _ = values(&body);
            let _ = batch_ids(&body);
        }
    }
}
