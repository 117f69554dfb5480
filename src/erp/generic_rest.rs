//! The generic REST ERP protocol (README, "Generic REST protocol"), for custom ERPs and
//! gateways: its module and its client. `erpsync sandbox-erp` serves it.

use super::module::{BatchCapacity, ClientContext, ErpModule, ErpProfile};
use super::{Attachment, Created, ErpClient, ErpError, sandbox};
use crate::config::connection::ConnectionConfig;
use crate::domain::{ErpKind, Op};
use crate::pipeline::Document;
use crate::pipeline::serialize::{Payload, SerializeError, generic_rest as serializer};
use async_trait::async_trait;
use reqwest::{StatusCode, Url, header};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// A custom ERP documents no limits of its own: 4 calls at once is a cautious default,
/// and its one-document endpoints take no batches.
const PROFILE: ErpProfile = ErpProfile {
    max_concurrency: 4,
    rate_limit_per_min: None,
    daily_limit: None,
    batch: BatchCapacity::ONE,
    accepts_purchase_orders: true,
};

pub struct GenericRest;

impl ErpModule for GenericRest {
    fn kind(&self) -> ErpKind {
        ErpKind::GenericRest
    }

    fn profile(&self) -> &'static ErpProfile {
        &PROFILE
    }

    fn serialize(&self, doc: &Document) -> Result<Payload, SerializeError> {
        serializer::serialize(doc)
    }

    fn check(&self, conn: &ConnectionConfig) -> Vec<(&'static str, String)> {
        if conn.base_url.is_empty() {
            return vec![("base_url", "is required for generic_rest (the protocol root)".into())];
        }
        Vec::new()
    }

    fn client(
        &self,
        conn: &ConnectionConfig,
        token: Option<SecretString>,
        cx: &ClientContext,
    ) -> Result<Arc<dyn ErpClient>, String> {
        // One idle connection per concurrent call, so a busy connection never reconnects.
        let max_idle = cx.max_concurrency as usize;
        let client =
            GenericRestClient::new(&conn.base_url, token, conn.request_timeout(), conn.connect_timeout(), max_idle)?;
        Ok(Arc::new(client))
    }

    fn sandbox(&self) -> Option<&'static sandbox::Dialect> {
        Some(&sandbox::GENERIC_REST)
    }
}

pub struct GenericRestClient {
    http: reqwest::Client,
    base: Url,
    token: Option<SecretString>,
}

#[derive(Deserialize)]
struct IdBody {
    id: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

#[derive(Deserialize)]
struct Items {
    items: Vec<serde_json::Value>,
}

fn collection(op: Op) -> &'static str {
    match op {
        Op::ExportInvoice => "bills",
        Op::ExportPurchaseOrder => "purchase-orders",
        Op::ExportPayment => "bill-payments",
    }
}

impl GenericRestClient {
    pub fn new(
        base_url: &str,
        token: Option<SecretString>,
        request_timeout: Duration,
        connect_timeout: Duration,
        max_idle: usize,
    ) -> Result<Self, String> {
        let mut base = Url::parse(base_url).map_err(|e| format!("{base_url:?}: {e}"))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(connect_timeout)
            .pool_max_idle_per_host(max_idle)
            .user_agent(concat!("erpsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(GenericRestClient { http, base, token })
    }

    fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("relative paths join")
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t.expose_secret()),
            None => req,
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ErpError> {
        let resp = self.auth(req).send().await.map_err(classify_send_error)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = super::retry_after(resp.headers());
        let text = resp.text().await.unwrap_or_default();
        let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) => (b.error.code, b.error.message),
            Err(_) => (status.as_u16().to_string(), text.chars().take(500).collect()),
        };
        Err(match status {
            StatusCode::TOO_MANY_REQUESTS => ErpError::Throttled { retry_after },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErpError::Auth { status: status.as_u16(), message },
            s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
                ErpError::Transient(format!("{} {}: {}", s.as_u16(), code, message))
            }
            s => ErpError::Rejected { status: s.as_u16(), code, message },
        })
    }
}

/// A request that never reached the ERP is transient; one that may have (timeout, reset
/// mid-exchange) is ambiguous and must be looked up before it is sent again.
fn classify_send_error(e: reqwest::Error) -> ErpError {
    if e.is_connect() {
        ErpError::Transient(format!("cannot connect: {e}"))
    } else {
        ErpError::Ambiguous(if e.is_timeout() { "request timed out".to_owned() } else { e.to_string() })
    }
}

#[async_trait]
impl ErpClient for GenericRestClient {
    async fn create(&self, op: Op, payload: &Payload, idempotency_key: &str) -> Result<Created, ErpError> {
        let req = self
            .http
            .post(self.url(collection(op)))
            .header(header::CONTENT_TYPE, payload.content_type)
            .header("Idempotency-Key", idempotency_key)
            .body(payload.body.clone());
        let resp = self.send(req).await?;
        let replayed = resp.status() == StatusCode::OK;
        let body: IdBody =
            resp.json().await.map_err(|e| ErpError::Ambiguous(format!("unreadable create answer: {e}")))?;
        Ok(Created { erp_id: body.id, replayed })
    }

    async fn find_existing(&self, op: Op, source_id: &str, _payload: &Payload) -> Result<Option<String>, ErpError> {
        let mut url = self.url(collection(op));
        url.query_pairs_mut().append_pair("external_ref", source_id);
        let resp = self.send(self.http.get(url)).await?;
        let items: Items =
            resp.json().await.map_err(|e| ErpError::Transient(format!("unreadable lookup answer: {e}")))?;
        Ok(items.items.iter().find_map(|i| i.get("id").and_then(|v| v.as_str()).map(str::to_owned)))
    }

    async fn attach_pdf(&self, a: Attachment<'_>) -> Result<String, ErpError> {
        // The protocol's attachments take an idempotency key, so a repeat is answered
        // with the first attachment and there is nothing to look for first.
        let req = self
            .http
            .post(self.url(&format!("bills/{}/attachments", a.bill_id)))
            .header(header::CONTENT_TYPE, "application/pdf")
            .header("Idempotency-Key", a.idempotency_key)
            .body(a.pdf);
        let resp = self.send(req).await?;
        let body: IdBody =
            resp.json().await.map_err(|e| ErpError::Ambiguous(format!("unreadable attach answer: {e}")))?;
        Ok(body.id)
    }
}
