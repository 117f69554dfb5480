//! NetSuite REST record API bodies: `vendorBill`, `purchaseOrder` and `vendorPayment`
//! (with `apply.items`), as Oracle's REST API Browser (record/v1) describes the records;
//! Oracle's help pages cited are under docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/.
//!
//! Every record carries `externalId` = the AP source id: the connector creates with an
//! external-id upsert (`PUT /record/v1/vendorBill/eid:{externalId}`, "Using the Upsert
//! Operation", section_156335203191.html), which makes a retry after an ambiguous failure
//! land on the same record instead of a duplicate. References are by internal id
//! (`{"id": …}`; `refName` is only ever output): the vendor (`entity`), accounts and items
//! as the AP application imported them. Lines coded to a GL account go to the `expense`
//! sublist, item lines to `item`.
//!
//! No tax fields: REST web services do not support legacy tax ("Tax Type",
//! article_0814115234.html: "REST web services do not support legacy tax features … you
//! must have the SuiteTax feature enabled"), so `taxCode`/`tax1Amt` are SOAP-only. Under
//! SuiteTax the tax engine computes each line's `taxDetails` from the nexus and the
//! vendor's and item's tax settings; overriding it (`taxDetailsOverride` with
//! `taxDetailsReference` per line and a `taxType`) would need tax-type ids erpsync does not
//! import, so NetSuite computes the tax and the bill's total follows NetSuite's rates.
//!
//! `currency` is a reference by internal id, which is the account's own: the serializer
//! writes the ISO code there and the connector (`erp::netsuite`) replaces it with the id of
//! the account's currency of that symbol before sending. A vendor payment in NetSuite is
//! the sum of what it applies (an overpayment is a separate vendor prepayment), so
//! unapplied credit is refused.

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

/// Refuses a source id NetSuite cannot take as an external id: "An external ID can be any
/// string containing letters, numbers, underscore (_), and hyphen (-)" ("Using External
/// IDs", section_156334828635.html), and the upsert names it in the URL.
fn external_id(source_id: &str) -> Result<&str, SerializeError> {
    if source_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Ok(source_id);
    }
    Err(SerializeError::UnsupportedValue { erp: ERP, field: "source_id".into(), value: source_id.into() })
}

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
    currency: Id<'a>,
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
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemLine<'a> {
    item: Id<'a>,
    quantity: Num,
    rate: Num,
    amount: Num,
    description: String,
}

/// Splits lines into NetSuite's expense and item sublists; an empty one is left out.
fn sublists(lines: &[InvoiceLine]) -> (Option<Sublist<ExpenseLine<'_>>>, Option<Sublist<ItemLine<'_>>>) {
    let mut expense = Vec::new();
    let mut item = Vec::new();
    for l in lines {
        match (&l.item, &l.gl_account) {
            (Some(id), _) => item.push(ItemLine {
                item: Id { id },
                quantity: Num(l.quantity),
                rate: Num(l.unit_price),
                amount: Num(l.amount),
                description: clip(&l.description, MEMO_MAX),
            }),
            (None, account) => expense.push(ExpenseLine {
                account: Id { id: account.as_deref().unwrap_or_default() },
                amount: Num(l.amount),
                memo: clip(&l.description, MEMO_MAX),
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
        external_id: external_id(&inv.source_id)?,
        entity: Id { id: &inv.vendor.id },
        tran_id: &inv.number,
        tran_date: inv.issue_date,
        due_date: Some(inv.due_date),
        currency: Id { id: &inv.currency },
        memo: bill_note(inv).map(|m| clip(&m, MEMO_MAX)),
        expense,
        item,
    })
}

fn purchase_order(po: &PurchaseOrder) -> Result<Transaction<'_>, SerializeError> {
    fit(ERP, "number", &po.number, TRAN_ID_MAX)?;
    let (expense, item) = sublists(&po.lines);
    Ok(Transaction {
        external_id: external_id(&po.source_id)?,
        entity: Id { id: &po.vendor.id },
        tran_id: &po.number,
        tran_date: po.date,
        due_date: None,
        currency: Id { id: &po.currency },
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
    currency: Id<'a>,
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
        external_id: external_id(&p.source_id)?,
        entity: Id { id: &p.vendor.id },
        account: Id { id: account },
        tran_date: p.date,
        currency: Id { id: &p.currency },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_id_netsuite_cannot_key_by_is_refused_naming_the_field() {
        let mut inv = crate::domain::samples::invoice();
        inv.source_id = "ap/inv 7".into();
        let err = serialize(&Document::Invoice(inv)).unwrap_err();
        assert_eq!(err.kind(), "unsupported_value");
        assert!(err.to_string().starts_with("source_id "), "{err}");
    }

    #[test]
    fn lines_carry_no_legacy_tax_fields_and_the_currency_is_a_reference() {
        let body = serialize(&Document::Invoice(crate::domain::samples::invoice())).unwrap().body;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(!text.contains("taxCode") && !text.contains("tax1Amt"), "{text}");
        assert_eq!(v["currency"], serde_json::json!({"id": "EUR"}));
    }
}
