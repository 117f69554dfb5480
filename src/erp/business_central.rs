//! Microsoft Dynamics 365 Business Central (API v2.0): purchase invoices, purchase orders
//! and vendor payments of one company, through `business_central_client`, with access tokens
//! from the OAuth 2.0 client credentials grant (`client_credentials`).
//!
//! A connection names the Microsoft Entra tenant (`tenant_id`: the directory the environment
//! belongs to, not erpsync's own `tenant`), the environment (`environment`) and the company
//! (`company_id`, a GUID); its credentials are a JSON document `{"client_id",
//! "client_secret"}` of an Entra application registered in Business Central. Nothing is
//! stored: there is no refresh token to rotate.
//!
//! Limits (MicrosoftDocs/dynamics365smb-devitpro-pb `dev-itpro/administration/operational-limits-online.md`,
//! OData request limits; learn.microsoft.com "Operational limits for Business Central online"):
//! per user, 5 requests processed at once with up to 95 more queued (100 connections, 429
//! beyond), 6,000 requests in a sliding five-minute window, 8 minutes per request (408).
//! A `$batch` carries at most 100 operations and is atomic only with `Isolation: snapshot`
//! (`dev-itpro/developer/devenv-connect-apps-tips.md`): erpsync sends payments that way and
//! sends every bill and purchase order on its own (batching them is not done).

#[path = "business_central_client.rs"]
mod client;
#[path = "client_credentials.rs"]
pub mod client_credentials;

use super::module::{BatchCapacity, ClientContext, ErpModule, ErpProfile};
use super::{ErpClient, oauth, sandbox};
use crate::config::connection::ConnectionConfig;
use crate::domain::ErpKind;
use crate::pipeline::Document;
use crate::pipeline::serialize::{Payload, SerializeError, business_central as serializer};
use client::BusinessCentralClient;
use client_credentials::ClientCredentialsFlow;
use secrecy::SecretString;
use std::sync::Arc;

pub use client::MAX_BATCH_OPERATIONS;

/// The scope of a token for Business Central's APIs (every application permission granted).
pub const SCOPE: &str = "https://api.businesscentral.dynamics.com/.default";

/// 5 requests processed at once per user; 6,000 per sliding five-minute window (1,200 a
/// minute on average). One document per call: bills and purchase orders are not batched
/// (a payment's journal lines go in one `$batch` of at most [`MAX_BATCH_OPERATIONS`]).
const PROFILE: ErpProfile = ErpProfile {
    max_concurrency: 5,
    rate_limit_per_min: Some(1_200),
    daily_limit: None,
    batch: BatchCapacity::ONE,
    accepts_purchase_orders: true,
};

/// The API root of an environment.
pub fn default_base_url(tenant_id: &str, environment: &str) -> String {
    format!("https://api.businesscentral.dynamics.com/v2.0/{tenant_id}/{environment}/api/v2.0")
}

/// The Microsoft identity platform's token endpoint of a tenant.
pub fn default_token_url(tenant_id: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token")
}

pub struct BusinessCentral;

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl ErpModule for BusinessCentral {
    fn kind(&self) -> ErpKind {
        ErpKind::BusinessCentral
    }

    fn profile(&self) -> &'static ErpProfile {
        &PROFILE
    }

    fn serialize(&self, doc: &Document) -> Result<Payload, SerializeError> {
        serializer::serialize(doc)
    }

    fn check(&self, conn: &ConnectionConfig) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if given(&conn.tenant_id).is_none() {
            problems.push((
                "tenant_id",
                "is required for business_central: the Microsoft Entra tenant (directory) of the environment, \
                 not erpsync's own `tenant`"
                    .into(),
            ));
        }
        if given(&conn.environment).is_none() {
            problems.push(("environment", "is required for business_central (the environment's name)".into()));
        }
        match given(&conn.company_id) {
            None => problems.push(("company_id", "is required for business_central (the company's id, a GUID)".into())),
            Some(id) if uuid::Uuid::parse_str(id).is_err() => {
                problems.push(("company_id", format!("{id:?} is not a Business Central company id (a GUID)")))
            }
            Some(_) => {}
        }
        problems.extend(client_credentials::credentials_problem(conn));
        problems
    }

    fn client(
        &self,
        conn: &ConnectionConfig,
        text: Option<SecretString>,
        cx: &ClientContext,
    ) -> Result<Arc<dyn ErpClient>, String> {
        let (Some(tenant), Some(environment), Some(company)) =
            (given(&conn.tenant_id), given(&conn.environment), given(&conn.company_id))
        else {
            return Err("tenant_id, environment and company_id are required for business_central".into());
        };
        let creds = client_credentials::credentials(conn, text.as_ref())?;
        let http = oauth::http_client(conn, cx)?;
        let token_url = conn.token_url.clone().unwrap_or_else(|| default_token_url(tenant));
        let token_url = reqwest::Url::parse(&token_url).map_err(|e| format!("token_url {token_url:?}: {e}"))?;
        let flow = ClientCredentialsFlow::new(creds, token_url, SCOPE, http.clone());
        let base = if conn.base_url.is_empty() { default_base_url(tenant, environment) } else { conn.base_url.clone() };
        Ok(Arc::new(BusinessCentralClient::new(http, &base, company.to_owned(), flow)?))
    }

    fn sandbox(&self) -> Option<&'static sandbox::Dialect> {
        Some(&sandbox::BUSINESS_CENTRAL)
    }
}
