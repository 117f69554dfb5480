//! NetSuite REST record API bodies: `vendorBill`, `purchaseOrder` and `vendorPayment`
//! (with `apply.items`).
//!
//! Every record carries `externalId` = the AP source id: the connector creates with an
//! external-id upsert (`PUT /record/v1/vendorBill/eid:{externalId}`), which makes a retry
//! after an ambiguous failure land on the same record instead of a duplicate. Lines coded
//! to a GL account go to the `expense` sublist, item lines to `item`. Currencies are given
//! by ISO code (`refName`); accounts that key currencies by internal id map them in the
//! connector. A vendor payment in NetSuite is the sum of what it applies (an overpayment
//! is a separate vendor prepayment), so unapplied credit is refused.

use super::json::{Num, payload};
use super::{Payload, SerializeError, bill_note, check_applied, clip, fit, require};
use crate::domain::{Invoice, InvoiceLine, Payment, PurchaseOrder};
use crate::pipeline::Document;
use crate::pipeline::matching::MatchOutcome;
use chrono::NaiveDate;
use serde::Serialize;

const ERP: &str = "netsuite";
const TRAN_ID_MAX: usize = 45;
const MEMO_MAX: usize = 999;

pub fn serialize(doc: &Document) -> Result<Payload, SerializeError> {
    match doc {
        Document::Invoice(inv) => payload(&vendor_bill(inv)?),
        Document::PurchaseOrder(po) => payload(&purchase_order(po)?),
        Document::Payment(p, outcome) => payload(&vendor_payment(p, outcome)?),
    }
}

#[derive(Serialize)]
struct Id<'a> {
    id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Currency<'a> {
    ref_name: &'a str,
}

#[derive(Serialize)]
struct Sublist<T> {
    items: Vec<T>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Transaction<'a> {
    external_id: &'a str,
    entity: Id<'a>,
    tran_id: &'a str,
    tran_date: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    due_date: Option<NaiveDate>,
    currency: Currency<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expense: Option<Sublist<ExpenseLine<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<Sublist<ItemLine<'a>>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExpenseLine<'a> {
    account: Id<'a>,
    amount: Num,
    memo: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tax_code: Option<Id<'a>>,
    tax1_amt: Num,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemLine<'a> {
    item: Id<'a>,
    quantity: Num,
    rate: Num,
    amount: Num,
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tax_code: Option<Id<'a>>,
    tax1_amt: Num,
}

/// Splits lines into NetSuite's expense and item sublists; an empty one is left out.
fn sublists(lines: &[InvoiceLine]) -> (Option<Sublist<ExpenseLine<'_>>>, Option<Sublist<ItemLine<'_>>>) {
    let mut expense = Vec::new();
    let mut item = Vec::new();
    for l in lines {
        let tax_code = l.tax_code.as_deref().map(|id| Id { id });
        match (&l.item, &l.gl_account) {
            (Some(id), _) => item.push(ItemLine {
                item: Id { id },
                quantity: Num(l.quantity),
                rate: Num(l.unit_price),
                amount: Num(l.amount),
                description: clip(&l.description, MEMO_MAX),
                tax_code,
                tax1_amt: Num(l.tax_amount),
            }),
            (None, account) => expense.push(ExpenseLine {
                account: Id { id: account.as_deref().unwrap_or_default() },
                amount: Num(l.amount),
                memo: clip(&l.description, MEMO_MAX),
                tax_code,
                tax1_amt: Num(l.tax_amount),
            }),
        }
    }
    (sublist(expense), sublist(item))
}

fn sublist<T>(items: Vec<T>) -> Option<Sublist<T>> {
    (!items.is_empty()).then_some(Sublist { items })
}

fn vendor_bill(inv: &Invoice) -> Result<Transaction<'_>, SerializeError> {
    fit(ERP, "number", &inv.number, TRAN_ID_MAX)?;
    let (expense, item) = sublists(&inv.lines);
    Ok(Transaction {
        external_id: &inv.source_id,
        entity: Id { id: &inv.vendor.id },
        tran_id: &inv.number,
        tran_date: inv.issue_date,
        due_date: Some(inv.due_date),
        currency: Currency { ref_name: &inv.currency },
        memo: bill_note(inv).map(|m| clip(&m, MEMO_MAX)),
        expense,
        item,
    })
}

fn purchase_order(po: &PurchaseOrder) -> Result<Transaction<'_>, SerializeError> {
    fit(ERP, "number", &po.number, TRAN_ID_MAX)?;
    let (expense, item) = sublists(&po.lines);
    Ok(Transaction {
        external_id: &po.source_id,
        entity: Id { id: &po.vendor.id },
        tran_id: &po.number,
        tran_date: po.date,
        due_date: None,
        currency: Currency { ref_name: &po.currency },
        memo: po.memo.as_deref().map(|m| clip(m, MEMO_MAX)),
        expense,
        item,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VendorPayment<'a> {
    external_id: &'a str,
    entity: Id<'a>,
    account: Id<'a>,
    tran_date: NaiveDate,
    currency: Currency<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tran_id: Option<&'a str>,
    memo: String,
    apply: Sublist<Apply<'a>>,
}

#[derive(Serialize)]
struct Apply<'a> {
    doc: Id<'a>,
    apply: bool,
    amount: Num,
}

fn vendor_payment<'a>(p: &'a Payment, outcome: &'a MatchOutcome) -> Result<VendorPayment<'a>, SerializeError> {
    check_applied(ERP, outcome, false)?;
    let account = require(ERP, "bank_account", &p.bank_account)?;
    if let Some(r) = &p.reference {
        fit(ERP, "reference", r, TRAN_ID_MAX)?;
    }
    Ok(VendorPayment {
        external_id: &p.source_id,
        entity: Id { id: &p.vendor.id },
        account: Id { id: account },
        tran_date: p.date,
        currency: Currency { ref_name: &p.currency },
        tran_id: p.reference.as_deref(),
        memo: clip(&format!("{} via {}: {}", p.source_id, p.method, outcome.reason), MEMO_MAX),
        apply: Sublist {
            items: outcome
                .applied
                .iter()
                .map(|a| Apply { doc: Id { id: &a.erp_id }, apply: true, amount: Num(a.amount) })
                .collect(),
        },
    })
}
