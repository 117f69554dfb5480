//! QuickBooks Online (Accounting API v3): Bills, PurchaseOrders and BillPayments per realm.
//!
//! This build serializes its documents (`pipeline::serialize::quickbooks_online`), which `erpsync preview`
//! shows, but has no client for it yet: a connection of this kind is refused when configured.

use super::module::{BatchCapacity, ErpModule, ErpProfile};
use crate::domain::{ErpKind, Invoice};
use crate::pipeline::Document;
use crate::pipeline::serialize::{Payload, SerializeError, quickbooks_online as serializer};

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

    /// The attachment's `Attachable` metadata part; the bill's id is only known once
    /// QuickBooks has created it.
    fn attachment_files(&self, inv: &Invoice) -> Result<Vec<(String, Vec<u8>)>, SerializeError> {
        let meta = serializer::attachable_metadata("<bill id>", inv)?;
        Ok(vec![("attachable.json".into(), meta.body)])
    }
}
