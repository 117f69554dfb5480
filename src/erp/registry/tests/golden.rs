//! Golden-file tests: every ERP × document kind, serialized from the representative
//! samples, must equal the checked-in payload byte for byte. `UPDATE_GOLDEN=1 cargo test`
//! rewrites the files; review the diff, because the files are the contract.

use crate::domain::{ErpKind, samples};
use crate::erp::registry::serialize;
use crate::pipeline::Document;
use crate::pipeline::matching::match_payment;
use crate::pipeline::serialize::Payload;
use std::path::PathBuf;

/// The samples, their vendor named the way `erp` names one.
fn documents(erp: ErpKind) -> Vec<(&'static str, Document)> {
    let payment = samples::payment();
    let outcome = match_payment(&payment, &crate::samples::sample_open_bills()).expect("the sample payment matches");
    let (mut invoice, mut po) = (samples::invoice(), samples::purchase_order());
    if let Some(id) = crate::erp::registry::module(erp).sample_vendor_id() {
        invoice.vendor.id = id.to_owned();
        po.vendor.id = id.to_owned();
    }
    vec![
        ("bill", Document::Invoice(invoice)),
        ("purchase_order", Document::PurchaseOrder(po)),
        ("bill_payment", Document::Payment(payment, outcome)),
    ]
}

fn golden_path(erp: &str, name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden")).join(erp).join(name)
}

fn check(erp: &str, name: &str, payload: &Payload) {
    let path = golden_path(erp, name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &payload.body).unwrap();
    }
    let expected =
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    let actual = String::from_utf8(payload.body.clone()).expect("payloads are UTF-8");
    assert_eq!(actual, String::from_utf8(expected).unwrap(), "{} differs from the golden file", path.display());
}

/// Proves a body is well-formed and that the vendor name survived encoding intact.
fn assert_well_formed(payload: &Payload) {
    let text = std::str::from_utf8(&payload.body).unwrap();
    match payload.content_type {
        "application/json" => {
            serde_json::from_str::<serde_json::Value>(text).expect("valid JSON");
        }
        "application/xml" => {
            let doc = roxmltree::Document::parse(text).expect("well-formed XML");
            assert_eq!(doc.root_element().tag_name().name(), "function");
            assert!(doc.root_element().attribute("controlid").is_some_and(|c| !c.is_empty()));
        }
        other => panic!("unexpected content type {other}"),
    }
}

#[test]
fn every_erp_matches_its_golden_files() {
    for erp in ErpKind::ALL {
        for (kind, doc) in documents(erp) {
            let result = serialize(erp, &doc);
            if erp == ErpKind::SageIntacct && kind == "purchase_order" {
                let err = result.unwrap_err();
                assert_eq!(
                    (err.kind(), err.to_string().as_str()),
                    ("unsupported", "sage_intacct has no serializer for purchase orders")
                );
                continue;
            }
            let payload = result.unwrap_or_else(|e| panic!("{} {kind}: {e}", erp.as_str()));
            assert_well_formed(&payload);
            let ext = if payload.content_type == "application/xml" { "xml" } else { "json" };
            check(erp.as_str(), &format!("{kind}.{ext}"), &payload);
        }
    }
}

#[test]
fn quickbooks_attachable_matches_its_golden_file() {
    let payload =
        crate::pipeline::serialize::quickbooks_online::attachable_metadata("1187", &samples::invoice()).unwrap();
    assert_well_formed(&payload);
    check("quickbooks_online", "attachable.json", &payload);
}

#[test]
fn intacct_xml_escapes_and_round_trips_text() {
    let payload = serialize(ErpKind::SageIntacct, &Document::Invoice(samples::invoice())).unwrap();
    let text = std::str::from_utf8(&payload.body).unwrap();
    assert!(text.contains("Spare parts kit &quot;HP-200&quot; &lt;seals &amp; gaskets&gt;"), "{text}");
    let doc = roxmltree::Document::parse(text).unwrap();
    let find = |tag: &str| doc.descendants().find(|n| n.has_tag_name(tag)).and_then(|n| n.text()).unwrap().to_owned();
    assert_eq!(find("RECORDID"), "RE-2026-000117");
    assert!(
        find("DESCRIPTION").starts_with("PO PO-4500012345: Quarterly maintenance per framework agreement <FA-2026/17>")
    );
    let amounts: Vec<&str> =
        doc.descendants().filter(|n| n.has_tag_name("TRX_AMOUNT")).filter_map(|n| n.text()).collect();
    assert_eq!(amounts, ["1920.00", "389.97", "212.35"]);
}

#[test]
fn json_vendor_names_survive_unescaped() {
    let payload = serialize(ErpKind::QuickbooksOnline, &Document::Invoice(samples::invoice())).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&payload.body).unwrap();
    assert_eq!(v["VendorRef"]["name"], samples::VENDOR_NAME);
}
