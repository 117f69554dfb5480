//! Document → ERP request body, one module per ERP (each ERP kind's module in
//! `erp::registry` names its serializer).
//!
//! Documents reach a serializer validated (`erp::registry::serialize`), so an ERP never
//! sees a document that erpsync already knows is wrong; each serializer also refuses what its ERP cannot express (a number too
//! long for the field, a payment method the ERP has no name for) with an error naming the
//! field: a permanent item failure a person can act on, instead of an ERP 400 later.
//! JSON bodies are pretty-printed: they are what `erpsync preview` shows support staff,
//! and the bytes are negligible next to the PDF that travels with a bill.

pub mod business_central;
pub mod generic_rest;
pub mod netsuite;
pub mod quickbooks_online;
pub mod sage_intacct;
pub mod xero;

mod json;
mod xml;

use super::matching::MatchOutcome;
use crate::domain::{Invoice, ValidationErrors};
use rust_decimal::Decimal;

/// A serialized request body and its media type.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SerializeError {
    #[error("invalid document: {0}")]
    Invalid(#[from] ValidationErrors),
    #[error("{erp} has no serializer for {what}")]
    Unsupported { erp: &'static str, what: &'static str },
    #[error("{field} is required for {erp}")]
    MissingField { erp: &'static str, field: String },
    #[error("{field} is {len} characters, {erp} allows at most {max}")]
    FieldTooLong { erp: &'static str, field: String, len: usize, max: usize },
    #[error("{field} {value:?} has no equivalent in {erp}")]
    UnsupportedValue { erp: &'static str, field: String, value: String },
    #[error("{field} {value:?} is not a {erp} {expected}")]
    InvalidReference { erp: &'static str, field: String, value: String, expected: &'static str },
    #[error("the payment is applied to no bill; {erp} needs at least one (apply it by hand or send remittance advice)")]
    NothingApplied { erp: &'static str },
    #[error("{erp} cannot record {amount} of unapplied credit on a bill payment; record the overpayment by hand")]
    UnappliedCredit { erp: &'static str, amount: Decimal },
    #[error("could not encode the payload: {0}")]
    Encode(String),
}

impl SerializeError {
    pub fn kind(&self) -> &'static str {
        match self {
            SerializeError::Invalid(_) => "validation",
            SerializeError::Unsupported { .. } => "unsupported",
            SerializeError::MissingField { .. } => "missing_field",
            SerializeError::FieldTooLong { .. } => "field_too_long",
            SerializeError::UnsupportedValue { .. } => "unsupported_value",
            SerializeError::InvalidReference { .. } => "invalid_reference",
            SerializeError::NothingApplied { .. } => "nothing_applied",
            SerializeError::UnappliedCredit { .. } => "unapplied_credit",
            SerializeError::Encode(_) => "encode",
        }
    }
}

/// The file name an invoice PDF is uploaded under: the invoice number, made safe for
/// every ERP's file store.
pub fn attachment_file_name(inv: &Invoice) -> String {
    let safe: String = inv
        .number
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect();
    format!("{}.pdf", if safe.is_empty() { "invoice" } else { &safe })
}

/// Refuses a value longer than the ERP field. Used for identifiers (numbers, references),
/// which must never be shortened: a shortened invoice number is a different invoice.
fn fit(erp: &'static str, field: &str, value: &str, max: usize) -> Result<(), SerializeError> {
    let len = value.chars().count();
    if len > max {
        return Err(SerializeError::FieldTooLong { erp, field: field.into(), len, max });
    }
    Ok(())
}

/// Shortens free text (memos, descriptions) to the ERP's limit with a trailing "…". The
/// full text stays in the PDF attached to the bill.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The bill's internal note: the PO number (which ERPs can link only by their own id)
/// and the memo.
fn bill_note(inv: &Invoice) -> Option<String> {
    match (&inv.purchase_order, &inv.memo) {
        (Some(po), Some(memo)) => Some(format!("PO {po}: {memo}")),
        (Some(po), None) => Some(format!("PO {po}")),
        (None, Some(memo)) => Some(memo.clone()),
        (None, None) => None,
    }
}

/// Refuses a payment the matcher applied to nothing, and (where the ERP cannot keep it on
/// the payment) one with unapplied credit.
fn check_applied(erp: &'static str, outcome: &MatchOutcome, credit_ok: bool) -> Result<(), SerializeError> {
    if outcome.applied.is_empty() {
        return Err(SerializeError::NothingApplied { erp });
    }
    if !credit_ok && outcome.unapplied > Decimal::ZERO {
        return Err(SerializeError::UnappliedCredit { erp, amount: outcome.unapplied });
    }
    Ok(())
}

fn require<'a>(erp: &'static str, field: &str, value: &'a Option<String>) -> Result<&'a str, SerializeError> {
    value
        .as_deref()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| SerializeError::MissingField { erp, field: field.into() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::samples;

    #[test]
    fn free_text_is_clipped_but_identifiers_are_refused() {
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("Ōsaka", 5), "Ōsaka");
        let e = fit("xero", "number", "0123456789", 5).unwrap_err();
        assert_eq!(e.to_string(), "number is 10 characters, xero allows at most 5");
        assert_eq!(e.kind(), "field_too_long");
    }

    #[test]
    fn attachment_names_are_safe() {
        let mut inv = samples::invoice();
        inv.number = "RE 2026/117 ü".into();
        assert_eq!(attachment_file_name(&inv), "RE_2026_117__.pdf");
    }
}
