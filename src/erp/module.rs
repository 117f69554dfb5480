//! What an ERP kind provides: its documented limits, its serializer, its client and its
//! simulator dialect. Each kind implements [`ErpModule`] in its own file; `erp::registry`
//! lists them.

use super::{ErpClient, sandbox};
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

/// What a client may need of the daemon besides its connection's configuration.
#[derive(Clone)]
pub struct ClientContext {
    /// Where rotated refresh tokens are kept.
    pub db: sea_orm::DatabaseConnection,
    /// The connection's concurrency limit in force (a client keeps as many connections
    /// to the ERP open).
    pub max_concurrency: u32,
    /// `[secrets] key`, when configured.
    pub secrets: Option<crate::secrets::SecretKey>,
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

    /// The client of one connection, built from its configuration and resolved
    /// credentials.
    fn client(
        &self,
        _conn: &ConnectionConfig,
        _credentials: Option<SecretString>,
        _cx: &ClientContext,
    ) -> Result<Arc<dyn ErpClient>, String> {
        Err(no_client_yet(self.kind()))
    }

    /// Whether its connections store secrets (rotated refresh tokens), which then needs
    /// `[secrets] key`.
    fn stores_secrets(&self) -> bool {
        false
    }

    /// The simulator of this ERP's protocol, where erpsync has one.
    fn sandbox(&self) -> Option<&'static sandbox::Dialect> {
        None
    }

    /// The vendor reference the sample documents (`erpsync preview --sample`, the golden
    /// files) carry for this ERP, where its own kind of id is not the samples' `V-1042`
    /// (a Xero contact is a UUID).
    fn sample_vendor_id(&self) -> Option<&'static str> {
        None
    }

    /// Files besides the request body that exporting `inv` sends (shown by `erpsync
    /// preview`), such as metadata that goes with the PDF attachment.
    fn attachment_files(&self, _inv: &Invoice) -> Result<Vec<(String, Vec<u8>)>, SerializeError> {
        Ok(Vec::new())
    }

    /// Why this ERP never receives the bill's PDF (its API takes no file), for `erpsync
    /// preview` to show as "not attached: <reason>"; `None` where the PDF is attached.
    fn pdf_not_attached(&self) -> Option<&'static str> {
        None
    }
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

pub(super) fn no_client_yet(kind: ErpKind) -> String {
    format!("{} connections are not supported by this build yet", kind.as_str())
}
