//! Pure pipeline logic: serializing documents into ERP payloads, rendering artefacts,
//! matching payments to bills. No actors, no database, no network: the stage actors in
//! `actors::stages` are thin shells around these functions.

pub mod matching;
pub mod render;
pub mod serialize;

use crate::domain::{Invoice, Payment, PurchaseOrder, ValidationErrors};

/// A document on its way to an ERP.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    Invoice(Invoice),
    PurchaseOrder(PurchaseOrder),
    /// A payment with the bill applications the matcher decided.
    Payment(Payment, matching::MatchOutcome),
}

impl Document {
    pub fn source_id(&self) -> &str {
        match self {
            Document::Invoice(d) => &d.source_id,
            Document::PurchaseOrder(d) => &d.source_id,
            Document::Payment(d, _) => &d.source_id,
        }
    }

    /// The ledger's document kind (`bill`, `purchase_order`, `bill_payment`).
    pub fn kind(&self) -> &'static str {
        match self {
            Document::Invoice(_) => "bill",
            Document::PurchaseOrder(_) => "purchase_order",
            Document::Payment(..) => "bill_payment",
        }
    }

    pub fn validate(&self) -> Result<(), ValidationErrors> {
        match self {
            Document::Invoice(d) => d.validate(),
            Document::PurchaseOrder(d) => d.validate(),
            Document::Payment(d, _) => d.validate(),
        }
    }
}
