//! Sage Intacct XML API: the `<function>` element of a request, creating an `APBILL` or
//! an `APPYMT` whose details point at the bills' `RECORDNO`s. Purchase orders belong to
//! Intacct's Purchasing module and are refused (see `serialize`).
//!
//! The function's `controlid` attribute is the ledger's document kind plus the AP source
//! id: what matches a `<result>` to its function. The duplicate check is the request's:
//! Sage's "XML Requests" page (developer.intacct.com/web-services/requests) has the
//! control block's `<controlid>` identify the request and `<uniqueid>true</uniqueid>`
//! refuse a request executed before, checking its functions' `controlid` attributes to
//! tell whether the operation was already executed and completed. The connector's
//! envelope carries that control block (deterministic per document, with the session),
//! so both ids are stable across retries. Dates are MM/DD/YYYY as Intacct's object API
//! expects. Intacct bill lines always post to a GL account (an item is a dimension on
//! top), and tax is a tax entry naming a tax detail, so a taxed line needs a `tax_code`.
//! Payment methods are AP's own (Sage's SDK intacct/intacct-sdk-php,
//! `Functions/AccountsPayable/ApPaymentInfo.php`: `Printed Check`, `Cash`, `EFT`,
//! `Charge Card`, `ACH`; `Credit Card` is an AR receipt method, not an AP one).

use super::xml::XmlWriter;
use super::{Payload, SerializeError, bill_note, check_applied, clip, fit, require};
use crate::domain::{Invoice, Payment};
use crate::pipeline::Document;
use crate::pipeline::matching::MatchOutcome;
use chrono::NaiveDate;
use rust_decimal::Decimal;

const ERP: &str = "sage_intacct";
const NUMBER_MAX: usize = 45;
const TEXT_MAX: usize = 1000;
const RATE_TYPE: &str = "Intacct Daily Rate";

pub fn serialize(doc: &Document) -> Result<Payload, SerializeError> {
    let xml = match doc {
        Document::Invoice(inv) => bill(inv)?,
        Document::PurchaseOrder(_) => {
            // Intacct purchase orders live in the Purchasing module (`create_potransaction`
            // with a transaction definition per company), which erpsync does not map.
            return Err(SerializeError::Unsupported { erp: ERP, what: "purchase orders" });
        }
        Document::Payment(p, outcome) => payment(p, outcome)?,
    };
    Ok(Payload { content_type: "application/xml", body: xml.into_bytes() })
}

fn date(d: NaiveDate) -> String {
    d.format("%m/%d/%Y").to_string()
}

fn bill(inv: &Invoice) -> Result<String, SerializeError> {
    fit(ERP, "number", &inv.number, NUMBER_MAX)?;
    if let Some(po) = &inv.purchase_order {
        fit(ERP, "purchase_order", po, NUMBER_MAX)?;
    }
    let mut w = XmlWriter::new();
    let controlid = format!("bill-{}", inv.source_id);
    w.open("function", &[("controlid", &controlid)]).open("create", &[]).open("APBILL", &[]);
    w.leaf("WHENCREATED", date(inv.issue_date))
        .leaf("WHENPOSTED", date(inv.issue_date))
        .leaf("VENDORID", &inv.vendor.id)
        .leaf("RECORDID", &inv.number)
        .leaf_opt("DOCNUMBER", inv.purchase_order.as_deref())
        .leaf_opt("DESCRIPTION", bill_note(inv).map(|n| clip(&n, TEXT_MAX)).as_deref())
        .leaf("WHENDUE", date(inv.due_date))
        .leaf("CURRENCY", &inv.currency)
        .leaf("EXCH_RATE_TYPE_ID", RATE_TYPE);
    w.open("APBILLITEMS", &[]);
    for (i, l) in inv.lines.iter().enumerate() {
        let account = require(ERP, &format!("lines[{i}].gl_account"), &l.gl_account)?;
        w.open("APBILLITEM", &[])
            .leaf("ACCOUNTNO", account)
            .leaf("TRX_AMOUNT", l.amount)
            .leaf("ENTRYDESCRIPTION", clip(&l.description, TEXT_MAX))
            .leaf_opt("ITEMID", l.item.as_deref());
        if l.tax_amount > Decimal::ZERO {
            let detail = require(ERP, &format!("lines[{i}].tax_code"), &l.tax_code)?;
            w.open("TAXENTRIES", &[])
                .open("TAXENTRY", &[])
                .leaf("DETAILID", detail)
                .leaf("TRX_TAX", l.tax_amount)
                .close()
                .close();
        }
        w.close();
    }
    w.close().close().close().close();
    Ok(w.finish())
}

/// Intacct's names for how a payment was made.
fn payment_method(method: &str) -> Result<&'static str, SerializeError> {
    Ok(match method.to_ascii_lowercase().as_str() {
        "check" | "cheque" => "Printed Check",
        "ach" => "ACH",
        "wire" | "eft" => "EFT",
        "card" | "credit_card" | "charge_card" => "Charge Card",
        "cash" => "Cash",
        _ => {
            return Err(SerializeError::UnsupportedValue { erp: ERP, field: "method".into(), value: method.into() });
        }
    })
}

fn payment(p: &Payment, outcome: &MatchOutcome) -> Result<String, SerializeError> {
    // An Intacct bill payment pays bills; money beyond them is a vendor advance, a
    // separate document.
    check_applied(ERP, outcome, false)?;
    let account = require(ERP, "bank_account", &p.bank_account)?;
    let method = payment_method(&p.method)?;
    if let Some(r) = &p.reference {
        fit(ERP, "reference", r, NUMBER_MAX)?;
    }
    let mut w = XmlWriter::new();
    let controlid = format!("bill_payment-{}", p.source_id);
    w.open("function", &[("controlid", &controlid)]).open("create", &[]).open("APPYMT", &[]);
    w.leaf("FINANCIALENTITY", account)
        .leaf("PAYMENTMETHOD", method)
        .leaf("VENDORID", &p.vendor.id)
        .leaf_opt("DOCNUMBER", p.reference.as_deref())
        .leaf("DESCRIPTION", clip(&format!("{}: {}", p.source_id, outcome.reason), TEXT_MAX))
        .leaf("PAYMENTDATE", date(p.date))
        .leaf("CURRENCY", &p.currency)
        .leaf("EXCH_RATE_TYPE_ID", RATE_TYPE);
    w.open("APPYMTDETAILS", &[]);
    for a in &outcome.applied {
        w.open("APPYMTDETAIL", &[]).leaf("RECORDKEY", &a.erp_id).leaf("TRX_PAYMENTAMOUNT", a.amount).close();
    }
    w.close().close().close().close();
    Ok(w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::samples;
    use crate::pipeline::matching::match_payment;

    #[test]
    fn a_card_payment_is_a_charge_card_payment() {
        for m in ["card", "Credit_Card", "charge_card"] {
            assert_eq!(payment_method(m).unwrap(), "Charge Card");
        }
        assert_eq!(payment_method("cheque").unwrap(), "Printed Check");
    }

    /// `tests/golden/sage_intacct/bill_payment_card.xml` (`UPDATE_GOLDEN=1` rewrites it).
    #[test]
    fn a_card_payment_matches_its_golden_file() {
        let mut p = samples::payment();
        p.method = "card".into();
        let outcome = match_payment(&p, &crate::samples::sample_open_bills()).unwrap();
        let body = serialize(&Document::Payment(p, outcome)).unwrap().body;
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/sage_intacct/bill_payment_card.xml");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &body).unwrap();
        }
        let expected = std::fs::read_to_string(path).expect("the golden file (UPDATE_GOLDEN=1 writes it)");
        assert_eq!(String::from_utf8(body).unwrap(), expected);
    }
}
