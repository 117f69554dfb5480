//! Sage Intacct (XML gateway): APBILL and APPYMT objects; purchase orders are refused.
//!
//! This build serializes its documents (`pipeline::serialize::sage_intacct`), which `erpsync preview`
//! shows, but has no client for it yet: a connection of this kind is refused when configured.

use super::module::{BatchCapacity, ErpModule, ErpProfile};
use crate::domain::ErpKind;
use crate::pipeline::Document;
use crate::pipeline::serialize::{Payload, SerializeError, sage_intacct as serializer};

/// 6 concurrent requests on the lowest performance tier; volume is billed monthly, not
/// throttled. A request may carry several functions, but its documented maximum is not
/// verified, so documents go one per request.
const PROFILE: ErpProfile = ErpProfile {
    max_concurrency: 6,
    rate_limit_per_min: None,
    daily_limit: None,
    batch: BatchCapacity::ONE,
    accepts_purchase_orders: false,
};

pub struct SageIntacct;

impl ErpModule for SageIntacct {
    fn kind(&self) -> ErpKind {
        ErpKind::SageIntacct
    }

    fn profile(&self) -> &'static ErpProfile {
        &PROFILE
    }

    fn serialize(&self, doc: &Document) -> Result<Payload, SerializeError> {
        serializer::serialize(doc)
    }
}
