//! Reads the PDFs back with poppler-utils, the way a person's viewer would.

use super::fonts;
use super::invoice_pdf;
use crate::domain::{Invoice, InvoiceLine, samples};
use rust_decimal::Decimal;
use std::path::PathBuf;
use std::process::Command;

fn poppler(tool: &str, pdf: &[u8], name: &str, args: &[&str]) -> String {
    let path: PathBuf = std::env::temp_dir().join(format!("erpsync-{}-{name}.pdf", std::process::id()));
    std::fs::write(&path, pdf).unwrap();
    let out = Command::new(tool).args(args).arg(&path).arg("-").output();
    let _ = std::fs::remove_file(&path);
    let out = out.unwrap_or_else(|e| {
        panic!("cannot run {tool} ({e}); the PDF tests need poppler-utils: apt-get install -y poppler-utils")
    });
    assert!(out.status.success(), "{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn pdftotext(pdf: &[u8], name: &str) -> String {
    let raw = poppler("pdftotext", pdf, name, &["-layout", "-enc", "UTF-8"]);
    // Columns come out separated by runs of spaces; one space is enough to compare.
    raw.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join("\n")
}

fn pages(pdf: &[u8], name: &str) -> usize {
    let path = std::env::temp_dir().join(format!("erpsync-{}-{name}-info.pdf", std::process::id()));
    std::fs::write(&path, pdf).unwrap();
    let out = Command::new("pdfinfo").arg(&path).output();
    let _ = std::fs::remove_file(&path);
    let out = out.unwrap_or_else(|e| {
        panic!("cannot run pdfinfo ({e}); the PDF tests need poppler-utils: apt-get install -y poppler-utils")
    });
    assert!(out.status.success(), "pdfinfo failed: {}", String::from_utf8_lossy(&out.stderr));
    let info = String::from_utf8(out.stdout).unwrap();
    let line = info.lines().find(|l| l.starts_with("Pages:")).expect("pdfinfo reports Pages");
    line["Pages:".len()..].trim().parse().unwrap()
}

/// Every wrapped piece of every description, as it appears on the page.
fn description_pieces(inv: &Invoice) -> Vec<String> {
    let f = fonts::get().unwrap();
    inv.lines.iter().flat_map(|l| f.wrap(&l.description, super::BODY, super::DESC_WIDTH)).collect()
}

#[test]
fn the_sample_invoice_reads_back_completely() {
    let inv = samples::invoice();
    let pdf = invoice_pdf(&inv).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let text = pdftotext(&pdf, "sample");
    assert!(text.contains("Invoice RE-2026-000117"), "{text}");
    assert!(text.contains(samples::VENDOR_NAME), "vendor name missing or mangled:\n{text}");
    for piece in description_pieces(&inv) {
        assert!(text.contains(&piece), "missing {piece:?} in:\n{text}");
    }
    for l in &inv.lines {
        assert!(
            text.contains(&format!("{} {} {} {}", l.quantity, l.unit_price, l.amount, l.tax_amount)),
            "{l:?}\n{text}"
        );
    }
    assert!(text.contains("Tax EUR 438.89"), "{text}");
    assert!(text.contains("Total EUR 2961.21"), "{text}");
    assert!(text.contains("PO PO-4500012345"));
    assert!(text.contains("by R. Østergaard (AP)"), "{text}");
    assert_eq!(pages(&pdf, "sample"), 1);
}

#[test]
fn three_hundred_lines_make_a_multi_page_pdf() {
    let mut inv = samples::invoice();
    inv.lines = (1..=300)
        .map(|i| InvoiceLine {
            description: format!(
                "Line {i:03}: replacement filter cartridge, Werk Süd {}",
                "extra words ".repeat(i % 4 * 5)
            ),
            gl_account: Some("6100".into()),
            item: None,
            quantity: Decimal::from(i),
            unit_price: Decimal::new(125, 2),
            amount: Decimal::from(i) * Decimal::new(125, 2),
            tax_amount: Decimal::ZERO,
            tax_code: None,
        })
        .collect();
    inv.total = inv.subtotal();
    inv.validate().unwrap();
    let pdf = invoice_pdf(&inv).unwrap();
    let n = pages(&pdf, "long");
    assert!(n >= 5, "300 lines on {n} pages");
    let text = pdftotext(&pdf, "long");
    for piece in description_pieces(&inv) {
        assert!(text.contains(&piece), "missing {piece:?}");
    }
    assert!(text.contains(&format!("Total EUR {}", inv.total)));
    assert!(text.contains(&format!("page {n} of {n}")));
    // The header repeats, so every page says whose invoice it is.
    assert_eq!(text.matches("Invoice RE-2026-000117 (").count() + text.matches("Invoice RE-2026-000117\n").count(), n);
}

#[test]
fn an_ascii_invoice_does_not_embed_the_cjk_font() {
    let mut inv = samples::invoice();
    inv.vendor.name = "Acme Corp".into();
    let small = invoice_pdf(&inv).unwrap();
    let big = invoice_pdf(&samples::invoice()).unwrap();
    let text = pdftotext(&small, "ascii");
    assert!(text.contains("Acme Corp (V-1042)"));
    assert!(small.len() <= big.len());
}

#[test]
fn latin_text_shares_the_prebuilt_subset_and_other_scripts_get_their_own() {
    let fonts = fonts::get().unwrap();
    let common = fonts::common().unwrap();
    let chars = |s: &str| s.chars().collect::<std::collections::BTreeSet<char>>();
    assert!(common.covers(fonts, &chars("Müller & Söhne — Ōsaka, Łódź, Œuvre “quoted” € 12,50 × 3 · ‰")));
    assert!(!common.covers(fonts, &chars("Αθήνα")));
    // Both paths read back correctly: Greek (a per-document subset of the primary face)
    // beside Latin Extended-A.
    let mut inv = samples::invoice();
    inv.vendor.name = "Παπαδόπουλος Α.Ε. — Łódź".into();
    let pdf = invoice_pdf(&inv).unwrap();
    let text = pdftotext(&pdf, "greek");
    assert!(text.contains("Παπαδόπουλος Α.Ε. — Łódź (V-1042)"), "{text}");
    // The shared subset travels deflated, like every other stream.
    let mut latin = samples::invoice();
    latin.vendor.name = "Łódź Żurawie sp. z o.o.".into();
    let pdf = invoice_pdf(&latin).unwrap();
    assert!(pdf.len() < common.font.original_bytes.len(), "{} bytes", pdf.len());
    assert!(pdftotext(&pdf, "latin").contains("Łódź Żurawie sp. z o.o. (V-1042)"));
}
