//! `erpsync sandbox-erp`: a simulator of an ERP speaking the generic REST protocol.
//!
//! It behaves like the ERPs erpsync must survive: a concurrency limit and a rate limit
//! (429 with Retry-After past them), latency with jitter, injected 5xx faults, and
//! "timeouts after commit" (the document is created, then the answer stalls past the
//! client's timeout). Idempotency keys are remembered for a configurable time, like Xero's
//! six minutes, so erpsync's own ledger and lookups are what must prevent duplicates after.
//! `GET /__sandbox/stats` reports what it saw, including `duplicate_creates`: creates for
//! an external_ref that already had a document.
//!
//! Vendor id `V-INACTIVE` is refused with 422 (`vendor_inactive`), for tests of permanent
//! failures.
//!
//! [`XERO`] speaks Xero's Accounting API and token endpoint instead (`xero.md` beside this
//! file is its wire contract), [`QUICKBOOKS_ONLINE`] Intuit's (`quickbooks.md`).
//! [`BUSINESS_CENTRAL`] speaks Business Central's API v2.0 and Entra's token endpoint (`business_central.md`).
//! [`SAGE_INTACCT`] speaks Sage Intacct's XML gateway (`sage_intacct.md`).
//! [`NETSUITE`] speaks NetSuite's REST record API with token-based authentication (`netsuite.md`).

mod admission;
mod bc_api;
mod bc_books;
mod bc_options;
mod bc_state;
mod bc_token;
mod bc_wire;
mod business_central;
mod generic_rest;
mod intacct;
mod intacct_books;
mod intacct_options;
mod intacct_wire;
mod netsuite;
mod netsuite_auth;
mod netsuite_books;
mod netsuite_options;
mod netsuite_wire;
mod options;
mod quickbooks;
mod quickbooks_books;
mod quickbooks_multipart;
mod quickbooks_options;
mod quickbooks_query;
mod quickbooks_state;
mod quickbooks_token;
mod quickbooks_wire;
mod sim;
mod token_book;
mod xero;
mod xero_books;
mod xero_docs;
mod xero_invoices;
mod xero_state;
mod xero_token;
mod xero_wire;

pub use bc_options::{
    BC_SANDBOX_COMPANY, BC_SANDBOX_ENVIRONMENT, BC_SANDBOX_TENANT, BusinessCentralClient, BusinessCentralOptions,
};
pub use business_central::{BC_ACCOUNTS, BC_ITEMS, BC_VENDORS, BUSINESS_CENTRAL};
pub use generic_rest::GENERIC_REST;
pub use intacct::{INTACCT_INACTIVE_VENDOR, INTACCT_VENDORS, SAGE_INTACCT};
pub use intacct_options::{INTACCT_SANDBOX_COMPANY, IntacctOptions};
pub use netsuite::{NETSUITE, NETSUITE_ACCOUNTS, NETSUITE_INACTIVE_VENDOR, NETSUITE_VENDORS};
pub use netsuite_options::{NETSUITE_SANDBOX_ACCOUNT, NetsuiteOptions};
pub use options::{SandboxOptions, SandboxStats, XERO_SANDBOX_TENANT, XeroClient, XeroOptions};
pub use quickbooks::{
    QBO_ACCOUNTS, QBO_INACTIVE_VENDOR, QBO_ITEMS, QBO_SANDBOX_REALM, QBO_VENDORS, QUICKBOOKS_ONLINE, QuickbooksClient,
    QuickbooksOptions,
};
pub use sim::Dialect;
pub use token_book::OAuthClient;
pub use xero::{XERO, XERO_CONTACTS};

use serde_json::Value;
use sim::{Counters, Sim};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// A running sandbox.
pub struct Sandbox {
    pub addr: SocketAddr,
    sim: Arc<Sim>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Sandbox {
    /// Binds `listen` (port 0 picks a free one) and serves the generic REST protocol until
    /// stopped or dropped.
    pub async fn start(listen: SocketAddr, opts: SandboxOptions) -> std::io::Result<Sandbox> {
        Self::start_speaking(&GENERIC_REST, listen, opts).await
    }

    /// Like [`Sandbox::start`], speaking `dialect`.
    pub async fn start_speaking(
        dialect: &Dialect,
        listen: SocketAddr,
        opts: SandboxOptions,
    ) -> std::io::Result<Sandbox> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let sim = Arc::new(Sim {
            opts,
            timer_lead_us: Default::default(),
            counters: Counters::default(),
            books: Mutex::default(),
        });
        let stop = CancellationToken::new();
        let app = (dialect.routes)(sim.clone());
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(s.cancelled_owned()).await;
        });
        Ok(Sandbox { addr, sim, stop, task: Some(task) })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stats(&self) -> SandboxStats {
        self.sim.stats()
    }

    /// Document ids created for an external_ref in a collection (`bills`, …).
    pub async fn created_for(&self, collection: &str, external_ref: &str) -> Vec<String> {
        let books = self.sim.books.lock().await;
        books
            .docs
            .get(collection)
            .map(|d| d.iter().filter(|d| d.external_ref == external_ref).map(|d| d.id.clone()).collect())
            .unwrap_or_default()
    }

    /// The external_refs of a collection's documents, in the order they were created.
    pub async fn creation_order(&self, collection: &str) -> Vec<String> {
        let books = self.sim.books.lock().await;
        books.docs.get(collection).map(|d| d.iter().map(|d| d.external_ref.clone()).collect()).unwrap_or_default()
    }

    /// The bodies received for an external_ref in a collection, oldest first, each with
    /// the `id` the sandbox gave it: what the ERP was sent, for tests to inspect.
    pub async fn bodies_for(&self, collection: &str, external_ref: &str) -> Vec<Value> {
        let books = self.sim.books.lock().await;
        let Some(docs) = books.docs.get(collection) else { return Vec::new() };
        docs.iter()
            .filter(|d| d.external_ref == external_ref)
            .map(|d| {
                let mut v = d.body.clone();
                v["id"] = Value::String(d.id.clone());
                v
            })
            .collect()
    }

    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
