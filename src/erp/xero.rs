//! Xero (Accounting API 2.0): ACCPAY invoices, purchase orders and payments per tenant.
//!
//! This build serializes its documents (`pipeline::serialize::xero`), which `erpsync preview`
//! shows, but has no client for it yet: a connection of this kind is refused when configured.

use super::registry::{BatchCapacity, ErpModule, ErpProfile};
use crate::domain::ErpKind;
use crate::pipeline::Document;
use crate::pipeline::serialize::{Payload, SerializeError, xero as serializer};

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
}
