//! NetSuite (REST record API): vendorBill, purchaseOrder and vendorPayment records.
//!
//! This build serializes its documents (`pipeline::serialize::netsuite`), which `erpsync preview`
//! shows, but has no client for it yet: a connection of this kind is refused when configured.

use super::module::{BatchCapacity, ErpModule, ErpProfile};
use crate::domain::ErpKind;
use crate::pipeline::Document;
use crate::pipeline::serialize::{Payload, SerializeError, netsuite as serializer};

/// The account-wide concurrency pool starts at 5 on the base tier (it grows by 10 per
/// SuiteCloud Plus licence: set `max_concurrency` to the account's figure); no per-minute
/// rate is documented; the REST record API creates one record per request.
const PROFILE: ErpProfile = ErpProfile {
    max_concurrency: 5,
    rate_limit_per_min: None,
    daily_limit: None,
    batch: BatchCapacity::ONE,
    accepts_purchase_orders: true,
};

pub struct Netsuite;

impl ErpModule for Netsuite {
    fn kind(&self) -> ErpKind {
        ErpKind::Netsuite
    }

    fn profile(&self) -> &'static ErpProfile {
        &PROFILE
    }

    fn serialize(&self, doc: &Document) -> Result<Payload, SerializeError> {
        serializer::serialize(doc)
    }
}
