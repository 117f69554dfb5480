//! QuickBooks Online Accounting API v3 bodies: `Bill`, `PurchaseOrder`, `BillPayment`
//! (one `Line` per paid bill, linked by `LinkedTxn`), and the `Attachable` metadata part
//! of the multipart upload that attaches the invoice PDF to a bill.
//!
//! Amounts are tax-exclusive with `TxnTaxDetail.TotalTax`, so the bill total in QuickBooks
//! equals the AP document's. A bill payment may carry more than it links: QuickBooks keeps
//! the rest as unapplied credit with the vendor.

use super::json::{Num, payload};
use super::{Payload, SerializeError, bill_note, check_applied, clip, fit, require};
use crate::domain::{Invoice, InvoiceLine, Payment, PurchaseOrder};
use crate::pipeline::Document;
use crate::pipeline::matching::MatchOutcome;
use chrono::NaiveDate;
use serde::Serialize;

const ERP: &str = "quickbooks_online";
/// `DocNumber` is 21 characters in QuickBooks; free-text fields are 4000.
const DOC_NUMBER_MAX: usize = 21;
const TEXT_MAX: usize = 4000;

pub fn serialize(doc: &Document) -> Result<Payload, SerializeError> {
    match doc {
        Document::Invoice(inv) => payload(&bill(inv)?),
        Document::PurchaseOrder(po) => payload(&purchase_order(po)?),
        Document::Payment(p, outcome) => payload(&bill_payment(p, outcome)?),
    }
}

/// The `file_metadata_01` part of `POST /v3/company/{realm}/upload`, attaching the
/// invoice PDF to the bill QuickBooks created with id `bill_id`.
pub fn attachable_metadata(bill_id: &str, inv: &Invoice) -> Result<Payload, SerializeError> {
    payload(&Attachable {
        attachable_ref: vec![AttachableRef {
            entity_ref: EntityRef { kind: "Bill", value: bill_id },
            include_on_send: false,
        }],
        file_name: super::attachment_file_name(inv),
        content_type: "application/pdf",
        note: clip(&format!("Invoice {} from {}", inv.number, inv.vendor.name), TEXT_MAX),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Attachable<'a> {
    attachable_ref: Vec<AttachableRef<'a>>,
    file_name: String,
    content_type: &'static str,
    note: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AttachableRef<'a> {
    entity_ref: EntityRef<'a>,
    include_on_send: bool,
}

#[derive(Serialize)]
struct EntityRef<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    value: &'a str,
}

#[derive(Serialize)]
struct Ref<'a> {
    value: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

fn id(value: &str) -> Ref<'_> {
    Ref { value, name: None }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Bill<'a> {
    vendor_ref: Ref<'a>,
    doc_number: &'a str,
    txn_date: NaiveDate,
    due_date: NaiveDate,
    currency_ref: Ref<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    private_note: Option<String>,
    global_tax_calculation: &'static str,
    txn_tax_detail: TaxDetail,
    line: Vec<Line<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PurchaseOrderBody<'a> {
    vendor_ref: Ref<'a>,
    doc_number: &'a str,
    txn_date: NaiveDate,
    currency_ref: Ref<'a>,
    #[serde(rename = "POStatus")]
    po_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    memo: Option<String>,
    global_tax_calculation: &'static str,
    txn_tax_detail: TaxDetail,
    line: Vec<Line<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TaxDetail {
    total_tax: Num,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Line<'a> {
    line_num: usize,
    description: String,
    amount: Num,
    detail_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_based_expense_line_detail: Option<AccountDetail<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item_based_expense_line_detail: Option<ItemDetail<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AccountDetail<'a> {
    account_ref: Ref<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tax_code_ref: Option<Ref<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ItemDetail<'a> {
    item_ref: Ref<'a>,
    qty: Num,
    unit_price: Num,
    #[serde(skip_serializing_if = "Option::is_none")]
    tax_code_ref: Option<Ref<'a>>,
}

fn lines(lines: &[InvoiceLine]) -> Vec<Line<'_>> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let tax_code_ref = l.tax_code.as_deref().map(id);
            // An item line when the line names an item; validation guarantees one of the two.
            let (detail_type, account, item) = match (&l.item, &l.gl_account) {
                (Some(item), _) => (
                    "ItemBasedExpenseLineDetail",
                    None,
                    Some(ItemDetail {
                        item_ref: id(item),
                        qty: Num(l.quantity),
                        unit_price: Num(l.unit_price),
                        tax_code_ref,
                    }),
                ),
                (None, gl) => (
                    "AccountBasedExpenseLineDetail",
                    Some(AccountDetail { account_ref: id(gl.as_deref().unwrap_or_default()), tax_code_ref }),
                    None,
                ),
            };
            Line {
                line_num: i + 1,
                description: clip(&l.description, TEXT_MAX),
                amount: Num(l.amount),
                detail_type,
                account_based_expense_line_detail: account,
                item_based_expense_line_detail: item,
            }
        })
        .collect()
}

fn bill(inv: &Invoice) -> Result<Bill<'_>, SerializeError> {
    fit(ERP, "number", &inv.number, DOC_NUMBER_MAX)?;
    Ok(Bill {
        vendor_ref: Ref { value: &inv.vendor.id, name: Some(&inv.vendor.name) },
        doc_number: &inv.number,
        txn_date: inv.issue_date,
        due_date: inv.due_date,
        currency_ref: id(&inv.currency),
        private_note: bill_note(inv).map(|n| clip(&n, TEXT_MAX)),
        global_tax_calculation: "TaxExcluded",
        txn_tax_detail: TaxDetail { total_tax: Num(inv.tax_total()) },
        line: lines(&inv.lines),
    })
}

fn purchase_order(po: &PurchaseOrder) -> Result<PurchaseOrderBody<'_>, SerializeError> {
    fit(ERP, "number", &po.number, DOC_NUMBER_MAX)?;
    Ok(PurchaseOrderBody {
        vendor_ref: Ref { value: &po.vendor.id, name: Some(&po.vendor.name) },
        doc_number: &po.number,
        txn_date: po.date,
        currency_ref: id(&po.currency),
        po_status: "Open",
        memo: po.memo.as_deref().map(|m| clip(m, TEXT_MAX)),
        global_tax_calculation: "TaxExcluded",
        txn_tax_detail: TaxDetail { total_tax: Num(po.lines.iter().map(|l| l.tax_amount).sum()) },
        line: lines(&po.lines),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BillPayment<'a> {
    vendor_ref: Ref<'a>,
    pay_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    check_payment: Option<CheckPayment<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credit_card_payment: Option<CardPayment<'a>>,
    total_amt: Num,
    txn_date: NaiveDate,
    currency_ref: Ref<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    doc_number: Option<&'a str>,
    private_note: String,
    line: Vec<PaymentLine<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CheckPayment<'a> {
    bank_account_ref: Ref<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CardPayment<'a> {
    #[serde(rename = "CCAccountRef")]
    cc_account_ref: Ref<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PaymentLine<'a> {
    amount: Num,
    linked_txn: [LinkedTxn<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LinkedTxn<'a> {
    txn_id: &'a str,
    txn_type: &'static str,
}

fn bill_payment<'a>(p: &'a Payment, outcome: &'a MatchOutcome) -> Result<BillPayment<'a>, SerializeError> {
    // QuickBooks keeps what is not linked as vendor credit, so unapplied credit is fine.
    check_applied(ERP, outcome, true)?;
    let account = require(ERP, "bank_account", &p.bank_account)?;
    if let Some(r) = &p.reference {
        fit(ERP, "reference", r, DOC_NUMBER_MAX)?;
    }
    // QuickBooks knows two kinds of bill payment: by card, and "Check" for every
    // bank payment (ACH and wires included).
    let card = matches!(p.method.to_ascii_lowercase().as_str(), "card" | "credit_card" | "creditcard");
    Ok(BillPayment {
        vendor_ref: Ref { value: &p.vendor.id, name: Some(&p.vendor.name) },
        pay_type: if card { "CreditCard" } else { "Check" },
        check_payment: (!card).then(|| CheckPayment { bank_account_ref: id(account) }),
        credit_card_payment: card.then(|| CardPayment { cc_account_ref: id(account) }),
        total_amt: Num(p.amount),
        txn_date: p.date,
        currency_ref: id(&p.currency),
        doc_number: p.reference.as_deref(),
        private_note: clip(&format!("{} via {}: {}", p.source_id, p.method, outcome.reason), TEXT_MAX),
        line: outcome
            .applied
            .iter()
            .map(|a| PaymentLine {
                amount: Num(a.amount),
                linked_txn: [LinkedTxn { txn_id: &a.erp_id, txn_type: "Bill" }],
            })
            .collect(),
    })
}
