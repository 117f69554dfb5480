//! Deterministic sample documents for `enqueue --sample`, the demo, benchmarks and tests.

use crate::domain::{Invoice, InvoiceLine, VendorRef};
use crate::pipeline::matching::OpenBill;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const VENDORS: [&str; 6] = [
    "Acme Office Supply",
    "Müller & Söhne GmbH",
    "Nordic Timber AB",
    "Café Lumière SARL",
    "Globex, Inc.",
    "Ōsaka Trading K.K.",
];

/// Invoice `n` of a sample batch tagged `tag` (so separate runs do not share source ids).
pub fn invoice(tag: &str, n: usize) -> Invoice {
    let lines: Vec<InvoiceLine> = (0..1 + n % 3)
        .map(|l| {
            let quantity = Decimal::from(1 + (n + l) % 5);
            let unit_price = Decimal::new(1_000 + ((n * 37 + l * 101) % 90_000) as i64, 2);
            let amount = quantity * unit_price;
            InvoiceLine {
                description: format!("Item {l} of sample invoice {n}"),
                gl_account: Some(format!("{}", 6000 + (l * 10))),
                item: None,
                quantity,
                unit_price,
                amount,
                tax_amount: (amount * Decimal::new(8, 2)).round_dp(2),
                tax_code: None,
            }
        })
        .collect();
    let total = lines.iter().map(|l| l.amount + l.tax_amount).sum();
    let issue = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap() + chrono::Days::new((n % 20) as u64);
    Invoice {
        source_id: format!("{tag}-inv-{n}"),
        vendor: VendorRef { id: format!("V{}", n % VENDORS.len()), name: VENDORS[n % VENDORS.len()].to_owned() },
        number: format!("{tag}-{n:06}"),
        issue_date: issue,
        due_date: issue + chrono::Days::new(30),
        currency: "USD".into(),
        lines,
        total,
        memo: Some(format!("sample batch {tag}")),
        purchase_order: None,
    }
}

pub fn invoices(tag: &str, count: usize) -> Vec<Invoice> {
    (0..count).map(|n| invoice(tag, n)).collect()
}

/// The open bills the representative sample payment (`domain::samples::payment`) pays:
/// the sample invoice in full, part of an older one. The golden files and `erpsync
/// preview --sample` both match the sample payment against these.
pub fn sample_open_bills() -> Vec<OpenBill> {
    let bill = |erp_id: &str, number: &str, balance, day| OpenBill {
        erp_id: erp_id.into(),
        number: number.into(),
        balance,
        currency: "EUR".into(),
        due_date: NaiveDate::from_ymd_opt(2026, 12, day).expect("sample dates are valid"),
    };
    vec![bill("1187", "RE-2026-000117", dec!(2961.21), 3), bill("1150", "RE-2026-000098", dec!(1250.00), 1)]
}

#[cfg(test)]
mod tests {
    #[test]
    fn samples_are_valid() {
        for inv in super::invoices("t", 50) {
            inv.validate().unwrap();
        }
    }
}
