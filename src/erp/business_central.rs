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

use super::business_central_client::BusinessCentralClient;
use super::client_credentials::{self, ClientCredentialsFlow};
use super::module::{BatchCapacity, ClientContext, ErpModule, ErpProfile};
use super::{ErpClient, oauth, sandbox};
use crate::config::connection::ConnectionConfig;
use crate::domain::ErpKind;
use crate::pipeline::Document;
use crate::pipeline::serialize::{Payload, SerializeError, business_central as serializer};
use secrecy::SecretString;
use std::sync::Arc;

pub use super::business_central_client::MAX_BATCH_OPERATIONS;

/// The scope of a token for Business Central's APIs (every application permission granted).
pub const SCOPE: &str = "https://api.businesscentral.dynamics.com/.default";

/// 5 requests processed at once per user; 6,000 per sliding five-minute window (1,200 a
/// minute on average). A `$batch` carries up to [`MAX_BATCH_OPERATIONS`] operations, atomic
/// only with `Isolation: snapshot`; the client sends a payment's journal lines that way and
/// every bill and purchase order in a call of its own.
const PROFILE: ErpProfile = ErpProfile {
    max_concurrency: 5,
    rate_limit_per_min: Some(1_200),
    daily_limit: None,
    batch: BatchCapacity::all(MAX_BATCH_OPERATIONS as u32),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Op;
    use crate::erp::Attachment;
    use crate::erp::sandbox::{BC_SANDBOX_COMPANY, BC_VENDORS, BUSINESS_CENTRAL, Sandbox, SandboxOptions};
    use crate::erp::{ErpError, module::ClientContext};
    use serde_json::json;

    fn conn_with(creds: &str) -> (ConnectionConfig, std::path::PathBuf) {
        let dir = crate::rig::scratch_dir();
        let file = dir.join("creds.json");
        std::fs::write(&file, creds).unwrap();
        let mut c = ConnectionConfig::new("bc", ErpKind::BusinessCentral, "");
        c.credentials = Some(format!("file:{}", file.display()));
        (c, dir)
    }

    #[test]
    fn check_names_every_missing_key_at_once_and_never_quotes_a_secret() {
        let (mut c, dir) = conn_with(r#"{"client_id":"a","client_secret":"s3cr3t-value","refresh_token":"r"}"#);
        let problems = BusinessCentral.check(&c);
        let keys: Vec<&str> = problems.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["tenant_id", "environment", "company_id", "credentials"], "{problems:?}");
        assert!(problems[0].1.contains("not erpsync's own `tenant`"), "{problems:?}");
        assert!(problems[3].1.contains("refresh_token"), "the extra key is named: {problems:?}");
        assert!(problems.iter().all(|(_, m)| !m.contains("s3cr3t-value")));
        std::fs::write(dir.join("creds.json"), r#"{"client_id":"a"}"#).unwrap();
        c.tenant_id = Some("t".into());
        c.environment = Some("production".into());
        c.company_id = Some("not-a-guid".into());
        let problems = BusinessCentral.check(&c);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].1.contains("GUID") && problems[1].1.contains("client_secret"), "{problems:?}");
        std::fs::write(dir.join("creds.json"), r#"{"client_id":"a","client_secret":"b"}"#).unwrap();
        c.company_id = Some(BC_SANDBOX_COMPANY.into());
        assert!(BusinessCentral.check(&c).is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_default_urls_name_the_tenant_and_environment() {
        assert_eq!(
            default_base_url("t1", "production"),
            "https://api.businesscentral.dynamics.com/v2.0/t1/production/api/v2.0"
        );
        assert_eq!(default_token_url("t1"), "https://login.microsoftonline.com/t1/oauth2/v2.0/token");
    }

    async fn client_of(sb: &Sandbox) -> (Arc<dyn ErpClient>, std::path::PathBuf) {
        let dir = crate::rig::scratch_dir();
        let mut config = crate::config::Config::default();
        let conn = crate::rig::business_central_connection(&mut config, "bc", &sb.base_url(), &dir);
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        let cx = ClientContext { db, max_concurrency: 5, secrets: None };
        let text = conn.resolve_token().unwrap();
        (BusinessCentral.client(&conn, text, &cx).unwrap(), dir)
    }

    fn payload(v: serde_json::Value) -> Payload {
        Payload { content_type: "application/json", body: serde_json::to_vec(&v).unwrap() }
    }

    #[tokio::test]
    async fn orders_payments_and_attachments_are_created_once_and_found_again() {
        let sb = Sandbox::start_speaking(
            &BUSINESS_CENTRAL,
            "127.0.0.1:0".parse().unwrap(),
            SandboxOptions { latency_ms: 0, ..Default::default() },
        )
        .await
        .unwrap();
        let (client, dir) = client_of(&sb).await;
        let po = payload(
            json!({"vendorNumber": "10000", "number": "PO-7", "orderDate": "2026-10-12", "postingDate": "2026-10-12",
            "purchaseOrderLines": [{"lineType": "Account", "lineObjectNumber": "6100", "description": "x", "quantity": 1, "directUnitCost": 5}]}),
        );
        let created = client.create(Op::ExportPurchaseOrder, &po, "k").await.unwrap();
        assert_eq!(client.find_existing(Op::ExportPurchaseOrder, "s", &po).await.unwrap(), Some(created.erp_id));

        let bill = payload(json!({"vendorNumber": "10000", "vendorInvoiceNumber": "B-9", "postingDate": "2026-11-01",
            "purchaseInvoiceLines": [{"lineType": "Account", "lineObjectNumber": "6100", "description": "x", "quantity": 1, "unitCost": 5}]}));
        assert_eq!(client.find_existing(Op::ExportInvoice, "s", &bill).await.unwrap(), None);
        let bill_id = client.create(Op::ExportInvoice, &bill, "k").await.unwrap().erp_id;
        assert_eq!(client.find_existing(Op::ExportInvoice, "s", &bill).await.unwrap(), Some(bill_id.clone()));

        let line = |amount: f64| {
            json!({"method": "POST", "id": "1", "url": "vendorPayments", "headers": {"Content-Type": "application/json"},
            "body": {"vendorNumber": "10000", "postingDate": "2026-12-01", "amount": amount, "appliesToInvoiceId": bill_id, "description": "Payment", "comment": "pay-9 via wire"}})
        };
        let pay = payload(json!({"requests": [line(3.0), line(2.0)]}));
        assert_eq!(client.find_existing(Op::ExportPayment, "pay-9", &pay).await.unwrap(), None);
        let paid = client.create(Op::ExportPayment, &pay, "k").await.unwrap();
        assert_eq!(paid.erp_id.split(',').count(), 2);
        assert_eq!(client.find_existing(Op::ExportPayment, "pay-9", &pay).await.unwrap(), Some(paid.erp_id));

        let attach = |maybe_attached| Attachment {
            bill_id: &bill_id,
            file_name: "B-9.pdf",
            pdf: b"%PDF-1.7".to_vec(),
            idempotency_key: "k",
            maybe_attached,
        };
        let first = client.attach_pdf(attach(false)).await.unwrap();
        assert_eq!(
            client.attach_pdf(attach(true)).await.unwrap(),
            first,
            "an attempt after one that may have attached reuses it"
        );
        let stats = sb.stats();
        assert_eq!(
            (stats.creates, stats.duplicate_creates, stats.attachments, stats.duplicate_attachments),
            (4, 0, 1, 0),
            "{stats:?}"
        );

        // A blocked vendor's bill is refused with Business Central's code.
        let blocked = payload(json!({"vendorNumber": BC_VENDORS[3].1, "vendorInvoiceNumber": "B-10"}));
        let err = client.create(Op::ExportInvoice, &blocked, "k").await.unwrap_err();
        assert!(
            matches!(err, ErpError::Rejected { status: 400, ref code, .. } if code == "Application_DialogException"),
            "{err:?}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_revoked_client_secret_is_revoked_once_the_token_must_be_renewed() {
        let sb = Sandbox::start_speaking(
            &BUSINESS_CENTRAL,
            "127.0.0.1:0".parse().unwrap(),
            SandboxOptions { latency_ms: 0, ..Default::default() },
        )
        .await
        .unwrap();
        let (client, dir) = client_of(&sb).await;
        let po = payload(json!({"number": "PO-1"}));
        assert_eq!(client.find_existing(Op::ExportPurchaseOrder, "s", &po).await.unwrap(), None);
        let http = reqwest::Client::new();
        let hook = |path: &str| format!("{}/__sandbox/business_central/{path}", sb.base_url());
        http.post(hook("revoke-client-secret")).json(&json!({"client_id": "bc-client"})).send().await.unwrap();
        assert_eq!(
            client.find_existing(Op::ExportPurchaseOrder, "s", &po).await.unwrap(),
            None,
            "the issued token lives on"
        );
        http.post(hook("expire-access-tokens")).send().await.unwrap();
        let err = client.find_existing(Op::ExportPurchaseOrder, "s", &po).await.unwrap_err();
        let ErpError::Revoked { message } = err else { panic!("{err:?}") };
        assert!(message.contains("AADSTS7000222") && !message.contains("bc-secret"), "{message}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
