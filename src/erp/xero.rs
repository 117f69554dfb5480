//! Xero (Accounting API 2.0): ACCPAY invoices, purchase orders and payments per tenant,
//! through `xero_client` with OAuth 2.0 access tokens from a rotating refresh token.
//!
//! A connection names its organisation (`tenant_id`, sent as `Xero-tenant-id`) and its
//! credentials: a JSON document `{"client_id", "client_secret", "refresh_token"}`. The
//! refresh tokens Xero rotates are stored sealed with `[secrets] key`.

use super::module::{BatchCapacity, ClientContext, ErpModule, ErpProfile};
use super::oauth;
use super::xero_client::XeroClient;
use super::{ErpClient, sandbox};
use crate::config::connection::ConnectionConfig;
use crate::domain::ErpKind;
use crate::pipeline::Document;
use crate::pipeline::serialize::{Payload, SerializeError, xero as serializer};
use secrecy::SecretString;
use std::sync::Arc;

/// Xero's API root and token endpoint, unless a connection names others (a simulator).
pub const API_ROOT: &str = "https://api.xero.com/api.xro/2.0";
pub const TOKEN_URL: &str = "https://identity.xero.com/connect/token";

/// 5 concurrent calls, 60 a minute and 5,000 a day per tenant; `PUT Invoices` (and
/// `PurchaseOrders`, `Payments`) take up to 50 documents with per-document results
/// (shared/ERP_LIMITS.md, from Xero's API reference).
const PROFILE: ErpProfile = ErpProfile {
    max_concurrency: 5,
    rate_limit_per_min: Some(60),
    daily_limit: Some(5_000),
    batch: BatchCapacity::all(50),
    accepts_purchase_orders: true,
};

pub struct Xero;

impl ErpModule for Xero {
    fn kind(&self) -> ErpKind {
        ErpKind::Xero
    }

    fn profile(&self) -> &'static ErpProfile {
        &PROFILE
    }

    fn serialize(&self, doc: &Document) -> Result<Payload, SerializeError> {
        serializer::serialize(doc)
    }

    fn check(&self, conn: &ConnectionConfig) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        match conn.tenant_id.as_deref().map(str::trim) {
            None | Some("") => {
                problems.push(("tenant_id", "is required for xero (the organisation's tenant id)".into()))
            }
            Some(id) if uuid::Uuid::parse_str(id).is_err() => {
                problems.push(("tenant_id", format!("{id:?} is not a Xero tenant id (a UUID)")))
            }
            Some(_) => {}
        }
        // An unreadable reference is reported by the connection's own checks.
        problems.extend(oauth::credentials_problem(conn));
        problems
    }

    fn client(
        &self,
        conn: &ConnectionConfig,
        text: Option<SecretString>,
        cx: &ClientContext,
    ) -> Result<Arc<dyn ErpClient>, String> {
        let http = oauth::http_client(conn, cx)?;
        let flow = oauth::flow(conn, text.as_ref(), TOKEN_URL, http.clone(), cx)?;
        let base = if conn.base_url.is_empty() { API_ROOT } else { &conn.base_url };
        let tenant = conn.tenant_id.clone().unwrap_or_default();
        Ok(Arc::new(XeroClient::new(http, base, tenant, flow)?))
    }

    fn stores_secrets(&self) -> bool {
        true
    }

    fn sandbox(&self) -> Option<&'static sandbox::Dialect> {
        Some(&sandbox::XERO)
    }

    fn sample_vendor_id(&self) -> Option<&'static str> {
        Some(sandbox::XERO_CONTACTS[0].0)
    }
}
