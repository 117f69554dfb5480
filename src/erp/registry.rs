//! The ERP kinds erpsync can talk to, one line each, and what a kind provides: its
//! documented limits, its serializer, its client and its simulator dialect.
//!
//! Everything that differs by ERP kind is asked of the kind's [`ErpModule`] here; the
//! daemon, the configuration, `erpsync preview` and the stage actors never match on the
//! kind themselves, so adding an ERP is a module of its own plus one line in [`module`].

use super::{ErpClient, sandbox};
use super::{business_central, generic_rest, netsuite, quickbooks_online, sage_intacct, xero};
use crate::config::connection::ConnectionConfig;
use crate::domain::{ErpKind, Invoice, Op};
use crate::pipeline::Document;
use crate::pipeline::serialize::{Payload, SerializeError};
use secrecy::SecretString;
use std::sync::Arc;

/// What an ERP kind's vendor documents about its limits. Every value is only a default:
/// a connection's own settings override it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErpProfile {
    /// ERP calls in flight at once per connection (tenant, realm, company).
    pub max_concurrency: u32,
    /// Requests per minute per connection, where the vendor meters them.
    pub rate_limit_per_min: Option<u32>,
    /// Requests per day per connection, where the vendor meters them.
    pub daily_limit: Option<u32>,
    /// Documents one call may carry, per document kind (1: one document per call).
    pub batch: BatchCapacity,
    /// Whether the kind's serializer maps purchase orders.
    pub accepts_purchase_orders: bool,
}

/// Documents of each kind one ERP call may create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchCapacity {
    pub bills: u32,
    pub purchase_orders: u32,
    pub payments: u32,
}

impl BatchCapacity {
    /// One document per call for every kind.
    pub const ONE: BatchCapacity = BatchCapacity::all(1);

    pub const fn all(n: u32) -> BatchCapacity {
        BatchCapacity { bills: n, purchase_orders: n, payments: n }
    }

    pub fn for_op(&self, op: Op) -> u32 {
        match op {
            Op::ExportInvoice => self.bills,
            Op::ExportPurchaseOrder => self.purchase_orders,
            Op::ExportPayment => self.payments,
        }
    }
}

/// One ERP kind: the only place that knows how erpsync speaks to that ERP.
pub trait ErpModule: Send + Sync + 'static {
    fn kind(&self) -> ErpKind;

    /// The vendor's documented limits, the defaults of every connection of this kind.
    fn profile(&self) -> &'static ErpProfile;

    /// The request body creating `doc` (already validated) in this ERP.
    fn serialize(&self, doc: &Document) -> Result<Payload, SerializeError>;

    /// Problems with a connection of this kind, as (key under the connection, message).
    /// A kind without a client of its own refuses every connection, so it is refused at
    /// configuration time rather than failing every item.
    fn check(&self, _conn: &ConnectionConfig) -> Vec<(&'static str, String)> {
        vec![("erp", no_client_yet(self.kind()))]
    }

    /// The client of one connection, built from its configuration and resolved token.
    fn client(&self, _conn: &ConnectionConfig, _token: Option<SecretString>) -> Result<Arc<dyn ErpClient>, String> {
        Err(no_client_yet(self.kind()))
    }

    /// The simulator of this ERP's protocol, where erpsync has one.
    fn sandbox(&self) -> Option<&'static sandbox::Dialect> {
        None
    }

    /// Files besides the request body that exporting `inv` sends (shown by `erpsync
    /// preview`), such as metadata that goes with the PDF attachment.
    fn attachment_files(&self, _inv: &Invoice) -> Result<Vec<(String, Vec<u8>)>, SerializeError> {
        Ok(Vec::new())
    }
}

/// The module of `kind`: one line per ERP kind.
pub fn module(kind: ErpKind) -> &'static dyn ErpModule {
    match kind {
        ErpKind::GenericRest => &generic_rest::GenericRest,
        ErpKind::QuickbooksOnline => &quickbooks_online::QuickbooksOnline,
        ErpKind::Xero => &xero::Xero,
        ErpKind::Netsuite => &netsuite::Netsuite,
        ErpKind::BusinessCentral => &business_central::BusinessCentral,
        ErpKind::SageIntacct => &sage_intacct::SageIntacct,
    }
}

/// Validates `doc`, then serializes it for an ERP of kind `erp`: an ERP never sees a
/// document erpsync already knows is wrong.
pub fn serialize(erp: ErpKind, doc: &Document) -> Result<Payload, SerializeError> {
    doc.validate()?;
    module(erp).serialize(doc)
}

fn no_client_yet(kind: ErpKind) -> String {
    format!("{} connections are not supported by this build yet", kind.as_str())
}

/// The limits a connection runs under: its own settings, else its kind's profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_concurrency: u32,
    pub rate_limit_per_min: Option<u32>,
    pub daily_limit: Option<u32>,
    /// Items held ready beyond the concurrency limit, so a freed slot is refilled at once.
    pub prefetch: u32,
}

/// The limits in force for `conn`.
pub fn limits(conn: &ConnectionConfig) -> Limits {
    let profile = module(conn.erp).profile();
    let max_concurrency = conn.max_concurrency.map_or(profile.max_concurrency, |n| n.get());
    Limits {
        max_concurrency,
        rate_limit_per_min: conn.rate_limit_per_min.map(|n| n.get()).or(profile.rate_limit_per_min),
        daily_limit: profile.daily_limit,
        // At least one receive batch, so a small limit still has work ready when a call ends.
        prefetch: conn.prefetch.unwrap_or_else(|| max_concurrency.max(10)),
    }
}

#[cfg(test)]
mod tests;
