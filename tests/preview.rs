//! `erpsync preview` as support staff run it: a real process writing real files, the
//! request body compared with the golden files (the contract of what an export sends),
//! the PDF read back with poppler's `pdftotext`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_erpsync");
const ERPS: [&str; 6] = ["quickbooks_online", "xero", "netsuite", "business_central", "sage_intacct", "generic_rest"];
const VENDOR_NAME: &str = "Müller & Söhne — Ōsaka 株式会社";

fn erpsync(args: &[&str]) -> Output {
    Command::new(BIN).arg("preview").args(args).env_remove("ERPSYNC_CONFIG").output().expect("erpsync runs")
}

fn golden(erp: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(erp).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn pdftotext(pdf: &Path) -> String {
    let out = Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(pdf)
        .arg("-")
        .output()
        .unwrap_or_else(|e| panic!("cannot run pdftotext ({e}); install poppler-utils"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Columns come out separated by runs of spaces; one space is enough to compare.
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join("\n")
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_sample_invoice_for_every_erp_is_what_an_export_sends() {
    let tmp = tempfile::tempdir().unwrap();
    for erp in ERPS {
        let dir = tmp.path().join(erp);
        let out = erpsync(&["--erp", erp, "--sample", "--out", dir.to_str().unwrap()]);
        ok(&out);
        let body = if erp == "sage_intacct" { "payload.xml" } else { "payload.json" };
        // NetSuite's API takes no file: the preview says so instead of showing a PDF.
        let pdf = if erp == "netsuite" { "not-attached.txt" } else { "RE-2026-000117.pdf" };
        let mut expected = vec![pdf, "bills.csv", body];
        if erp == "quickbooks_online" {
            expected.push("attachable.json");
        }
        expected.sort();
        assert_eq!(files_in(&dir), expected, "{erp}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.lines().count(), expected.len(), "one line per file written: {stdout}");
        let ext = body.rsplit('.').next().unwrap();
        assert!(
            std::fs::read(dir.join(body)).unwrap() == golden(erp, &format!("bill.{ext}")),
            "{erp}: {body} differs from tests/golden/{erp}/bill.{ext}"
        );
        let csv = std::fs::read_to_string(dir.join("bills.csv")).unwrap();
        assert!(csv.starts_with("source_id,vendor_id,vendor_name,number,"), "{csv}");
        // Each ERP's sample names the vendor as that ERP does (a Xero contact by its UUID).
        let vendor = if erp == "xero" { erpsync::erp::sandbox::XERO_CONTACTS[0].0 } else { "V-1042" };
        assert!(csv.contains(&format!("ap-inv-7f3a9c,{vendor},")) && csv.contains(",2961.21,438.89,"), "{csv}");
    }
    // The PDF is the same whatever the ERP; read one back.
    let text = pdftotext(&tmp.path().join("xero/RE-2026-000117.pdf"));
    for needle in ["Invoice RE-2026-000117", VENDOR_NAME, "Hydraulic pump service", "Total EUR 2961.21"] {
        assert!(text.contains(needle), "{needle:?} missing from the PDF text:\n{text}");
    }
}

#[test]
fn sample_payments_and_purchase_orders_match_the_golden_files() {
    let tmp = tempfile::tempdir().unwrap();
    for erp in ERPS {
        let dir: PathBuf = tmp.path().join(erp);
        let out = erpsync(&["--erp", erp, "--sample", "--doc", "payment", "--out", dir.to_str().unwrap()]);
        ok(&out);
        let ext = if erp == "sage_intacct" { "xml" } else { "json" };
        assert_eq!(files_in(&dir), ["matching.json".to_owned(), format!("payload.{ext}"), "payments.csv".into()]);
        assert!(
            std::fs::read(dir.join(format!("payload.{ext}"))).unwrap() == golden(erp, &format!("bill_payment.{ext}"))
        );
        let matching: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("matching.json")).unwrap()).unwrap();
        assert_eq!(matching["strategy"], "remittance");
        assert!(matching["applied"][1]["reason"].as_str().unwrap().contains("partial payment of 400.00"));

        let po = tmp.path().join(format!("{erp}-po"));
        let out = erpsync(&["--erp", erp, "--sample", "--doc", "purchase-order", "--out", po.to_str().unwrap()]);
        if erp == "sage_intacct" {
            assert_eq!(out.status.code(), Some(2));
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("sage_intacct has no serializer for purchase orders")
            );
            continue;
        }
        ok(&out);
        assert!(std::fs::read(po.join("payload.json")).unwrap() == golden(erp, "purchase_order.json"), "{erp}");
    }
}

#[test]
fn a_document_file_is_previewed_and_a_bad_one_lists_every_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let doc = serde_json::json!({
        "source_id": "ap-inv-42", "vendor": {"id": "V7", "name": "Ærø Fisk ApS"},
        "number": "F-42", "issue_date": "2026-11-03", "due_date": "2026-12-03", "currency": "DKK",
        "lines": [{"description": "Torsk, 12 kg", "gl_account": "5010", "quantity": "12",
                   "unit_price": "85.50", "amount": "1026.00", "tax_amount": "256.50"}],
        "total": "1282.50"
    });
    let path = tmp.path().join("invoice.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    let dir = tmp.path().join("out");
    ok(&erpsync(&["--erp", "business_central", "--file", path.to_str().unwrap(), "--out", dir.to_str().unwrap()]));
    let body: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("payload.json")).unwrap()).unwrap();
    assert_eq!(body["vendorInvoiceNumber"], "F-42", "{body:#}");
    let text = pdftotext(&dir.join("F-42.pdf"));
    assert!(text.contains("Ærø Fisk ApS (V7)") && text.contains("Total DKK 1282.50"), "{text}");

    let mut bad = doc.clone();
    bad["currency"] = "KRONER".into();
    bad["vendor"]["id"] = "".into();
    bad["lines"][0]["amount"] = "1000.00".into();
    bad["due_date"] = "2026-10-01".into();
    std::fs::write(&path, bad.to_string()).unwrap();
    let bad_dir = tmp.path().join("bad");
    let out = erpsync(&["--erp", "xero", "--file", path.to_str().unwrap(), "--out", bad_dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for field in
        ["vendor.id: is required", "currency: unknown currency code", "due_date: ", "lines[0].amount: ", "total: "]
    {
        assert!(stderr.contains(field), "{field:?} missing from:\n{stderr}");
    }
    assert!(!bad_dir.exists(), "nothing is written for a bad document");

    std::fs::write(&path, r#"{"source_id": "x"}"#).unwrap();
    let out = erpsync(&["--erp", "xero", "--file", path.to_str().unwrap(), "--out", bad_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid invoice"), "{out:?}");
    let out = erpsync(&["--erp", "sap", "--sample", "--out", bad_dir.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown ERP kind \"sap\""), "{out:?}");
}
