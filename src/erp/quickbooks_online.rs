//! QuickBooks Online (Accounting API v3): Bills, PurchaseOrders and BillPayments per
//! company (realm), through `quickbooks_client` with OAuth 2.0 access tokens from a
//! rotating refresh token.
//!
//! A connection names its company (`realm_id`) and its credentials: a JSON document
//! `{"client_id", "client_secret", "refresh_token"}`. The refresh tokens Intuit rotates
//! are stored sealed with `[secrets] key`.

use super::module::{BatchCapacity, ClientContext, ErpModule, ErpProfile};
use super::quickbooks_client::QuickbooksClient;
use super::{ErpClient, oauth, sandbox};
use crate::config::connection::ConnectionConfig;
use crate::domain::{ErpKind, Invoice};
use crate::pipeline::Document;
use crate::pipeline::serialize::{Payload, SerializeError, quickbooks_online as serializer};
use secrecy::SecretString;
use std::sync::Arc;

/// Intuit's production API host and token endpoint, unless a connection names others.
pub const API_ROOT: &str = "https://quickbooks.api.intuit.com";
pub const TOKEN_URL: &str = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer";

/// 10 concurrent requests per realm and app; 500 requests a minute per realm; a `batch`
/// call carries up to 30 operations (shared/ERP_LIMITS.md, from Intuit's documentation).
const PROFILE: ErpProfile = ErpProfile {
    max_concurrency: 10,
    rate_limit_per_min: Some(500),
    daily_limit: None,
    batch: BatchCapacity::all(30),
    accepts_purchase_orders: true,
};

pub struct QuickbooksOnline;

impl ErpModule for QuickbooksOnline {
    fn kind(&self) -> ErpKind {
        ErpKind::QuickbooksOnline
    }

    fn profile(&self) -> &'static ErpProfile {
        &PROFILE
    }

    fn serialize(&self, doc: &Document) -> Result<Payload, SerializeError> {
        serializer::serialize(doc)
    }

    fn check(&self, conn: &ConnectionConfig) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        match conn.realm_id.as_deref().map(str::trim) {
            None | Some("") => {
                problems.push(("realm_id", "is required for quickbooks_online (the company's realm id)".into()))
            }
            Some(id) if !id.chars().all(|c| c.is_ascii_digit()) => {
                problems.push(("realm_id", format!("{id:?} is not a QuickBooks realm id (digits)")))
            }
            Some(_) => {}
        }
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
        let realm = conn.realm_id.clone().unwrap_or_default();
        Ok(Arc::new(QuickbooksClient::new(http, base, &realm, flow)?))
    }

    fn stores_secrets(&self) -> bool {
        true
    }

    fn sandbox(&self) -> Option<&'static sandbox::Dialect> {
        Some(&sandbox::QUICKBOOKS_ONLINE)
    }

    /// The attachment's `Attachable` metadata part; the bill's id is only known once
    /// QuickBooks has created it.
    fn attachment_files(&self, inv: &Invoice) -> Result<Vec<(String, Vec<u8>)>, SerializeError> {
        let meta = serializer::attachable_metadata("<bill id>", inv)?;
        Ok(vec![("attachable.json".into(), meta.body)])
    }
}
