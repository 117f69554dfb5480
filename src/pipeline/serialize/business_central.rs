//! Dynamics 365 Business Central API v2.0 bodies: `purchaseInvoices` and `purchaseOrders`
//! with their lines deep-inserted, and vendor payment journal lines (`vendorPayments`,
//! each applied to one invoice with `appliesToInvoiceId`).
//!
//! Business Central computes tax from its posting groups; erpsync sends each line's tax
//! code and lets it, so the bill total there follows the ERP's setup. Text fields are 100
//! characters: a longer description continues on `Comment` lines under its line, and the
//! memo follows as comment lines, so nothing an AP clerk wrote is lost. A payment becomes
//! one journal line per paid invoice, plus one unapplied line for any credit, sent as one
//! `$batch` so they are created together; request URLs are relative to the connection's
//! vendor payment journal, which the connector prefixes.
//!
//! Field names follow the API v2.0 reference (MicrosoftDocs/dynamics365smb-devitpro-pb
//! `dev-itpro/api-reference/v2.0/resources/`): a purchase invoice line's price is `unitCost`
//! (`dynamics_purchaseinvoiceline.md`), a purchase order line's `directUnitCost`
//! (`dynamics_purchaseorderline.md`).

use super::json::{Num, payload};
use super::{Payload, SerializeError, bill_note, check_applied, clip, fit};
use crate::domain::{InvoiceLine, Payment, VendorRef};
use crate::pipeline::Document;
use crate::pipeline::matching::MatchOutcome;
use chrono::NaiveDate;
use serde::Serialize;

const ERP: &str = "business_central";
/// `Vendor Invoice No.` and `External Document No.` are Code[35]; descriptions Text[100].
const NUMBER_MAX: usize = 35;
const TEXT_MAX: usize = 100;
/// Operations one `$batch` may carry; it is atomic (all lines or none) only when sent with
/// `Isolation: snapshot`, which the connector adds (MicrosoftDocs/dynamics365smb-devitpro-pb
/// `dev-itpro/developer/devenv-connect-apps-tips.md`, "OData transactional $batch requests").
const MAX_BATCH_OPERATIONS: usize = 100;

pub fn serialize(doc: &Document) -> Result<Payload, SerializeError> {
    match doc {
        Document::Invoice(inv) => {
            fit(ERP, "number", &inv.number, NUMBER_MAX)?;
            payload(&PurchaseDocument {
                vendor: vendor(&inv.vendor),
                vendor_invoice_number: Some(&inv.number),
                number: None,
                invoice_date: Some(inv.issue_date),
                order_date: None,
                posting_date: inv.issue_date,
                due_date: Some(inv.due_date),
                currency_code: &inv.currency,
                purchase_invoice_lines: Some(lines(&inv.lines, bill_note(inv).as_deref(), Price::UnitCost)),
                purchase_order_lines: None,
            })
        }
        Document::PurchaseOrder(po) => {
            fit(ERP, "number", &po.number, NUMBER_MAX)?;
            payload(&PurchaseDocument {
                vendor: vendor(&po.vendor),
                vendor_invoice_number: None,
                number: Some(&po.number),
                invoice_date: None,
                order_date: Some(po.date),
                posting_date: po.date,
                due_date: None,
                currency_code: &po.currency,
                purchase_invoice_lines: None,
                purchase_order_lines: Some(lines(&po.lines, po.memo.as_deref(), Price::DirectUnitCost)),
            })
        }
        Document::Payment(p, outcome) => payload(&payment_batch(p, outcome)?),
    }
}

/// Business Central keys vendors by a GUID (`vendorId`) or by their number.
#[derive(Serialize)]
enum Vendor<'a> {
    #[serde(rename = "vendorId")]
    Id(&'a str),
    #[serde(rename = "vendorNumber")]
    Number(&'a str),
}

fn vendor(v: &VendorRef) -> Vendor<'_> {
    if uuid::Uuid::parse_str(&v.id).is_ok() { Vendor::Id(&v.id) } else { Vendor::Number(&v.id) }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PurchaseDocument<'a> {
    #[serde(flatten)]
    vendor: Vendor<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vendor_invoice_number: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    number: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invoice_date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_date: Option<NaiveDate>,
    posting_date: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    due_date: Option<NaiveDate>,
    currency_code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    purchase_invoice_lines: Option<Vec<Line<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purchase_order_lines: Option<Vec<Line<'a>>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    line_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    line_object_number: Option<&'a str>,
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    quantity: Option<Num>,
    /// Purchase invoice lines' price (`purchaseInvoiceLine.unitCost`).
    #[serde(skip_serializing_if = "Option::is_none")]
    unit_cost: Option<Num>,
    /// Purchase order lines' price (`purchaseOrderLine.directUnitCost`).
    #[serde(skip_serializing_if = "Option::is_none")]
    direct_unit_cost: Option<Num>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tax_code: Option<&'a str>,
}

/// Which price field a document's lines carry: the API pages differ.
#[derive(Clone, Copy)]
enum Price {
    UnitCost,
    DirectUnitCost,
}

fn comment<'a>(text: String) -> Line<'a> {
    Line {
        line_type: "Comment",
        line_object_number: None,
        description: text,
        quantity: None,
        unit_cost: None,
        direct_unit_cost: None,
        tax_code: None,
    }
}

fn lines<'a>(lines: &'a [InvoiceLine], memo: Option<&str>, price: Price) -> Vec<Line<'a>> {
    let mut out = Vec::with_capacity(lines.len());
    for l in lines {
        let mut chunks = wrap(&l.description, TEXT_MAX).into_iter();
        let (line_type, object) = match (&l.item, &l.gl_account) {
            (Some(item), _) => ("Item", item.as_str()),
            (None, gl) => ("Account", gl.as_deref().unwrap_or_default()),
        };
        out.push(Line {
            line_type,
            line_object_number: Some(object),
            description: chunks.next().unwrap_or_default(),
            quantity: Some(Num(l.quantity)),
            unit_cost: matches!(price, Price::UnitCost).then_some(Num(l.unit_price)),
            direct_unit_cost: matches!(price, Price::DirectUnitCost).then_some(Num(l.unit_price)),
            tax_code: l.tax_code.as_deref(),
        });
        out.extend(chunks.map(comment));
    }
    out.extend(memo.map(|m| wrap(m, TEXT_MAX)).unwrap_or_default().into_iter().map(comment));
    out
}

/// Breaks `text` into pieces of at most `max` characters, at spaces where possible.
fn wrap(text: &str, max: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut cur_len = 0;
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let room = if cur_len == 0 { max } else { max.saturating_sub(cur_len + 1) };
            if word.len() <= room {
                if cur_len > 0 {
                    cur.push(' ');
                    cur_len += 1;
                }
                cur.extend(word.iter());
                cur_len += word.len();
                break;
            }
            if cur_len > 0 {
                out.push(std::mem::take(&mut cur));
                cur_len = 0;
                continue;
            }
            // A single word longer than a whole piece is cut.
            out.push(word.drain(..max).collect());
        }
    }
    if cur_len > 0 || out.is_empty() {
        out.push(cur);
    }
    out
}

#[derive(Serialize)]
struct Batch<'a> {
    requests: Vec<BatchRequest<'a>>,
}

#[derive(Serialize)]
struct BatchRequest<'a> {
    method: &'static str,
    id: String,
    url: &'static str,
    headers: Headers,
    body: VendorPayment<'a>,
}

#[derive(Serialize)]
struct Headers {
    #[serde(rename = "Content-Type")]
    content_type: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VendorPayment<'a> {
    #[serde(flatten)]
    vendor: Vendor<'a>,
    posting_date: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_document_number: Option<&'a str>,
    amount: Num,
    #[serde(skip_serializing_if = "Option::is_none")]
    applies_to_invoice_id: Option<&'a str>,
    description: String,
    comment: String,
}

fn payment_batch<'a>(p: &'a Payment, outcome: &'a MatchOutcome) -> Result<Batch<'a>, SerializeError> {
    // An unapplied journal line is an open payment (credit) in Business Central.
    check_applied(ERP, outcome, true)?;
    if let Some(r) = &p.reference {
        fit(ERP, "reference", r, NUMBER_MAX)?;
    }
    let line = |amount, applies_to: Option<&'a str>, description: String| VendorPayment {
        vendor: vendor(&p.vendor),
        posting_date: p.date,
        external_document_number: p.reference.as_deref(),
        amount: Num(amount),
        applies_to_invoice_id: applies_to,
        description: clip(&description, TEXT_MAX),
        comment: clip(&format!("{} via {}", p.source_id, p.method), TEXT_MAX),
    };
    let mut bodies: Vec<VendorPayment<'a>> = outcome
        .applied
        .iter()
        .map(|a| line(a.amount, Some(a.erp_id.as_str()), format!("Payment of invoice {}", a.number)))
        .collect();
    if outcome.unapplied > rust_decimal::Decimal::ZERO {
        bodies.push(line(outcome.unapplied, None, format!("Unapplied credit from {}", p.source_id)));
    }
    if bodies.len() > MAX_BATCH_OPERATIONS {
        return Err(SerializeError::Unsupported {
            erp: ERP,
            what: "a payment of more than 100 journal lines (one $batch holds at most 100 operations)",
        });
    }
    let requests = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| BatchRequest {
            method: "POST",
            id: (i + 1).to_string(),
            url: "vendorPayments",
            headers: Headers { content_type: "application/json" },
            body,
        })
        .collect();
    Ok(Batch { requests })
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wraps_at_spaces_and_cuts_only_overlong_words() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("abcdefgh x", 3), ["abc", "def", "gh", "x"]);
        assert_eq!(wrap("", 5), [""]);
        assert!(wrap("Müller & Söhne — Ōsaka 株式会社", 10).iter().all(|p| p.chars().count() <= 10));
    }
}
