//! The generic REST protocol's JSON bodies (see DESIGN.md): the domain documents as they
//! are, plus `external_ref` (the source id) so the ERP can be searched after an ambiguous
//! failure.

use super::{Payload, SerializeError};
use crate::pipeline::Document;
use serde_json::{Value, json};

pub fn serialize(doc: &Document) -> Result<Payload, SerializeError> {
    let value = match doc {
        Document::Invoice(inv) => with_external_ref(inv, &inv.source_id)?,
        Document::PurchaseOrder(po) => with_external_ref(po, &po.source_id)?,
        Document::Payment(p, outcome) => {
            let mut v = with_external_ref(p, &p.source_id)?;
            v["applied_to"] = json!(
                outcome
                    .applied
                    .iter()
                    .map(|a| json!({"bill_id": a.erp_id, "number": a.number, "amount": a.amount}))
                    .collect::<Vec<_>>()
            );
            v["unapplied"] = json!(outcome.unapplied);
            v
        }
    };
    let body = serde_json::to_vec(&value).map_err(|e| SerializeError::Encode(e.to_string()))?;
    Ok(Payload { content_type: "application/json", body })
}

fn with_external_ref<T: serde::Serialize>(doc: &T, source_id: &str) -> Result<Value, SerializeError> {
    let mut v = serde_json::to_value(doc).map_err(|e| SerializeError::Encode(e.to_string()))?;
    v["external_ref"] = Value::String(source_id.to_owned());
    Ok(v)
}
