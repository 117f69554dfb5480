//! Representative documents: multi-line, taxed, in a foreign currency, with a long memo
//! and a vendor name outside ASCII. The golden-file tests pin every serializer's output
//! for them, and `erpsync preview --sample` shows them to support staff.

use super::{Invoice, InvoiceLine, Payment, PaymentApplication, PurchaseOrder, VendorRef};
use chrono::NaiveDate;
use rust_decimal_macros::dec;

/// The vendor name that catches encoding mistakes: Latin-1, Latin Extended, an em dash,
/// CJK, and the XML/HTML metacharacter `&`.
pub const VENDOR_NAME: &str = "Müller & Söhne — Ōsaka 株式会社";

pub const LONG_MEMO: &str = "Quarterly maintenance per framework agreement <FA-2026/17> \
    \"priority\" tier & on-site support. Approved by R. Østergaard (AP) after three-way \
    match against PO 4500012345 and goods receipt GR-88812; partial delivery of the spare \
    parts was accepted, the remainder ships in January. Pay to the Deutsche Bank account on \
    file; the vendor's new IBAN takes effect only after the verification call-back, which \
    is still pending. Questions to ap@example.com.";

fn vendor() -> VendorRef {
    VendorRef { id: "V-1042".into(), name: VENDOR_NAME.into() }
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("sample dates are valid")
}

fn lines() -> Vec<InvoiceLine> {
    vec![
        InvoiceLine {
            description: "Hydraulic pump service, 2 technicians × 2 days".into(),
            gl_account: Some("6100".into()),
            item: None,
            quantity: dec!(4),
            unit_price: dec!(480.00),
            amount: dec!(1920.00),
            tax_amount: dec!(364.80),
            tax_code: Some("VAT19".into()),
        },
        InvoiceLine {
            description: "Spare parts kit \"HP-200\" <seals & gaskets>, delivered to \
                          Werk Süd, Halle 3 — includes the replacement manifold ordered \
                          on 2026-10-12 and the express freight surcharge"
                .into(),
            gl_account: Some("1400".into()),
            item: Some("ITEM-HP200".into()),
            quantity: dec!(3),
            unit_price: dec!(129.9900),
            amount: dec!(389.97),
            tax_amount: dec!(74.09),
            tax_code: Some("VAT19".into()),
        },
        InvoiceLine {
            description: "Travel expenses (exempt)".into(),
            gl_account: Some("6200".into()),
            item: None,
            quantity: dec!(1),
            unit_price: dec!(212.35),
            amount: dec!(212.35),
            tax_amount: dec!(0),
            tax_code: Some("EXEMPT".into()),
        },
    ]
}

/// A three-line EUR bill with 19 % VAT on two lines.
pub fn invoice() -> Invoice {
    Invoice {
        source_id: "ap-inv-7f3a9c".into(),
        vendor: vendor(),
        number: "RE-2026-000117".into(),
        issue_date: date(2026, 11, 3),
        due_date: date(2026, 12, 3),
        currency: "EUR".into(),
        lines: lines(),
        total: dec!(2961.21),
        memo: Some(LONG_MEMO.into()),
        purchase_order: Some("PO-4500012345".into()),
    }
}

pub fn purchase_order() -> PurchaseOrder {
    PurchaseOrder {
        source_id: "ap-po-51e0d2".into(),
        vendor: vendor(),
        number: "PO-4500012345".into(),
        date: date(2026, 10, 12),
        currency: "EUR".into(),
        lines: lines(),
        total: dec!(2961.21),
        memo: Some(LONG_MEMO.into()),
    }
}

/// A wire paying the sample invoice in full and part of an older bill (a partial payment).
pub fn payment() -> Payment {
    Payment {
        source_id: "ap-pay-c0ffee".into(),
        vendor: vendor(),
        amount: dec!(3361.21),
        currency: "EUR".into(),
        date: date(2026, 12, 1),
        method: "wire".into(),
        applications: vec![
            PaymentApplication { invoice_number: "RE-2026-000117".into(), amount: dec!(2961.21) },
            PaymentApplication { invoice_number: "re 2026 000098".into(), amount: dec!(400.00) },
        ],
        reference: Some("WIRE-2026-12-01-0042".into()),
        bank_account: Some("1010".into()),
    }
}
