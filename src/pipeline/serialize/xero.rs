//! Xero Accounting API bodies: `PUT /Invoices` with a bill (`Type: ACCPAY`),
//! `PUT /PurchaseOrders`, and `PUT /Payments` with one payment per paid bill (a Xero
//! payment always belongs to exactly one invoice).
//!
//! Bills are created `AUTHORISED` (approved in the AP app already, and Xero accepts
//! payments only against authorised bills) with tax-exclusive lines and explicit
//! `TaxAmount`s. Xero has no memo field on a bill, so the memo travels as a
//! description-only line, the way Xero users annotate bills. An overpayment needs a
//! separate overpayment transaction in Xero, so a payment with unapplied credit is refused.

use super::json::{Num, payload};
use super::{Payload, SerializeError, bill_note, check_applied, clip, fit, require};
use crate::domain::{Invoice, InvoiceLine, Payment, PurchaseOrder};
use crate::pipeline::Document;
use crate::pipeline::matching::MatchOutcome;
use chrono::NaiveDate;
use serde::Serialize;

const ERP: &str = "xero";
const NUMBER_MAX: usize = 255;
const DESCRIPTION_MAX: usize = 4000;

pub fn serialize(doc: &Document) -> Result<Payload, SerializeError> {
    match doc {
        Document::Invoice(inv) => payload(&Invoices { invoices: [invoice(inv)?] }),
        Document::PurchaseOrder(po) => payload(&PurchaseOrders { purchase_orders: [purchase_order(po)?] }),
        Document::Payment(p, outcome) => payload(&Payments { payments: payments(p, outcome)? }),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Invoices<'a> {
    invoices: [InvoiceBody<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PurchaseOrders<'a> {
    purchase_orders: [PurchaseOrderBody<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Payments<'a> {
    payments: Vec<PaymentBody<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Contact<'a> {
    #[serde(rename = "ContactID")]
    contact_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct InvoiceBody<'a> {
    #[serde(rename = "Type")]
    kind: &'static str,
    contact: Contact<'a>,
    invoice_number: &'a str,
    date: NaiveDate,
    due_date: NaiveDate,
    currency_code: &'a str,
    line_amount_types: &'static str,
    status: &'static str,
    line_items: Vec<LineItem<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PurchaseOrderBody<'a> {
    contact: Contact<'a>,
    purchase_order_number: &'a str,
    date: NaiveDate,
    currency_code: &'a str,
    line_amount_types: &'static str,
    status: &'static str,
    line_items: Vec<LineItem<'a>>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "PascalCase")]
struct LineItem<'a> {
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    quantity: Option<Num>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit_amount: Option<Num>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tax_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tax_amount: Option<Num>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line_amount: Option<Num>,
}

fn line_items<'a>(lines: &'a [InvoiceLine], note: Option<String>) -> Vec<LineItem<'a>> {
    let mut items: Vec<LineItem<'a>> = lines
        .iter()
        .map(|l| LineItem {
            description: clip(&l.description, DESCRIPTION_MAX),
            quantity: Some(Num(l.quantity)),
            unit_amount: Some(Num(l.unit_price)),
            account_code: l.gl_account.as_deref(),
            item_code: l.item.as_deref(),
            tax_type: l.tax_code.as_deref(),
            tax_amount: Some(Num(l.tax_amount)),
            line_amount: Some(Num(l.amount)),
        })
        .collect();
    if let Some(note) = note {
        items.push(LineItem { description: clip(&note, DESCRIPTION_MAX), ..Default::default() });
    }
    items
}

/// Xero names a contact only by its ContactID, a UUID: anything else cannot be one of
/// the organisation's contacts, and is refused before any call.
fn contact_id(id: &str) -> Result<&str, SerializeError> {
    match uuid::Uuid::parse_str(id) {
        Ok(_) => Ok(id),
        Err(_) => Err(SerializeError::InvalidReference {
            erp: ERP,
            field: "vendor.id".into(),
            value: id.into(),
            expected: "ContactID (a UUID)",
        }),
    }
}

fn invoice(inv: &Invoice) -> Result<InvoiceBody<'_>, SerializeError> {
    fit(ERP, "number", &inv.number, NUMBER_MAX)?;
    let contact_id = contact_id(&inv.vendor.id)?;
    Ok(InvoiceBody {
        kind: "ACCPAY",
        contact: Contact { contact_id },
        invoice_number: &inv.number,
        date: inv.issue_date,
        due_date: inv.due_date,
        currency_code: &inv.currency,
        line_amount_types: "Exclusive",
        status: "AUTHORISED",
        line_items: line_items(&inv.lines, bill_note(inv)),
    })
}

fn purchase_order(po: &PurchaseOrder) -> Result<PurchaseOrderBody<'_>, SerializeError> {
    fit(ERP, "number", &po.number, NUMBER_MAX)?;
    let contact_id = contact_id(&po.vendor.id)?;
    Ok(PurchaseOrderBody {
        contact: Contact { contact_id },
        purchase_order_number: &po.number,
        date: po.date,
        currency_code: &po.currency,
        line_amount_types: "Exclusive",
        status: "AUTHORISED",
        line_items: line_items(&po.lines, po.memo.clone()),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PaymentBody<'a> {
    invoice: InvoiceRef<'a>,
    account: Account<'a>,
    date: NaiveDate,
    amount: Num,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<&'a str>,
}

#[derive(Serialize)]
struct InvoiceRef<'a> {
    #[serde(rename = "InvoiceID")]
    invoice_id: &'a str,
}

/// Xero accepts a bank account by its id (a UUID) or by its code ("090").
#[derive(Serialize)]
enum Account<'a> {
    #[serde(rename = "AccountID")]
    Id(&'a str),
    #[serde(rename = "Code")]
    Code(&'a str),
}

fn payments<'a>(p: &'a Payment, outcome: &'a MatchOutcome) -> Result<Vec<PaymentBody<'a>>, SerializeError> {
    check_applied(ERP, outcome, false)?;
    let bank = require(ERP, "bank_account", &p.bank_account)?;
    let account = || {
        if uuid::Uuid::parse_str(bank).is_ok() { Account::Id(bank) } else { Account::Code(bank) }
    };
    Ok(outcome
        .applied
        .iter()
        .map(|a| PaymentBody {
            invoice: InvoiceRef { invoice_id: &a.erp_id },
            account: account(),
            date: p.date,
            amount: Num(a.amount),
            reference: p.reference.as_deref(),
        })
        .collect())
}
