//! Microsoft Dynamics 365 Business Central (API v2.0): purchaseInvoices, purchaseOrders and vendor payments.
//!
//! This build serializes its documents (`pipeline::serialize::business_central`), which `erpsync preview`
//! shows, but has no client for it yet: a connection of this kind is refused when configured.

use super::module::{BatchCapacity, ErpModule, ErpProfile};
use crate::domain::ErpKind;
use crate::pipeline::Document;
use crate::pipeline::serialize::{Payload, SerializeError, business_central as serializer};

/// 5 requests processed at once per user; 6,000 per five-minute window (1,200 a
/// minute); `$batch` carries up to 100 operations (shared/ERP_LIMITS.md, from Microsoft's
/// documentation of the API limits).
const PROFILE: ErpProfile = ErpProfile {
    max_concurrency: 5,
    rate_limit_per_min: Some(1_200),
    daily_limit: None,
    batch: BatchCapacity::all(100),
    accepts_purchase_orders: true,
};

pub struct BusinessCentral;

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
}
