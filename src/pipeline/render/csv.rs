//! CSV exports: the bill export file and the payment batch file. RFC 4180 quoting comes
//! from the `csv` crate; amounts are written exactly as the decimals they are.
//!
//! These files are opened in spreadsheets by AP clerks, so free-text cells that a
//! spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) get a leading `'`
//! (OWASP "CSV injection"); numeric and date cells are never touched.

use super::RenderError;
use crate::domain::{Invoice, Payment};

const BILL_HEADER: [&str; 11] = [
    "source_id",
    "vendor_id",
    "vendor_name",
    "number",
    "issue_date",
    "due_date",
    "currency",
    "total",
    "tax",
    "purchase_order",
    "memo",
];

const PAYMENT_HEADER: [&str; 10] = [
    "source_id",
    "vendor_id",
    "vendor_name",
    "date",
    "method",
    "currency",
    "amount",
    "reference",
    "bank_account",
    "invoices",
];

/// A bill export file: a header and one row per invoice.
pub fn bills(invoices: &[Invoice]) -> Result<String, RenderError> {
    write(
        BILL_HEADER,
        invoices.iter().map(|inv| {
            vec![
                text(&inv.source_id),
                text(&inv.vendor.id),
                text(&inv.vendor.name),
                text(&inv.number),
                inv.issue_date.to_string(),
                inv.due_date.to_string(),
                inv.currency.clone(),
                inv.total.to_string(),
                inv.tax_total().to_string(),
                text(inv.purchase_order.as_deref().unwrap_or_default()),
                text(inv.memo.as_deref().unwrap_or_default()),
            ]
        }),
    )
}

/// A payment batch file: one row per payment; `invoices` lists the remittance as
/// `number=amount` pairs separated by `; `.
pub fn payment_batch(payments: &[Payment]) -> Result<String, RenderError> {
    write(
        PAYMENT_HEADER,
        payments.iter().map(|p| {
            let invoices: Vec<String> =
                p.applications.iter().map(|a| format!("{}={}", a.invoice_number, a.amount)).collect();
            vec![
                text(&p.source_id),
                text(&p.vendor.id),
                text(&p.vendor.name),
                p.date.to_string(),
                text(&p.method),
                p.currency.clone(),
                p.amount.to_string(),
                text(p.reference.as_deref().unwrap_or_default()),
                text(p.bank_account.as_deref().unwrap_or_default()),
                text(&invoices.join("; ")),
            ]
        }),
    )
}

fn write<const N: usize>(header: [&str; N], rows: impl Iterator<Item = Vec<String>>) -> Result<String, RenderError> {
    let err = |e: ::csv::Error| RenderError::Csv(e.to_string());
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record(header).map_err(err)?;
    for row in rows {
        w.write_record(&row).map_err(err)?;
    }
    let bytes = w.into_inner().map_err(|e| RenderError::Csv(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| RenderError::Csv(e.to_string()))
}

/// Defuses a free-text cell a spreadsheet would evaluate.
fn text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_owned() }
}

#[cfg(test)]
mod tests {
    use crate::domain::{documents::tests::invoice, samples};

    #[test]
    fn fields_with_commas_and_quotes_are_quoted() {
        let mut inv = invoice(1);
        inv.vendor.name = "Acme, \"The\" Company".into();
        let out = super::bills(&[inv]).unwrap();
        assert!(out.contains("\"Acme, \"\"The\"\" Company\""), "{out}");
        assert_eq!(out.lines().count(), 2);
    }

    #[test]
    fn the_sample_bill_round_trips_through_a_csv_reader() {
        let inv = samples::invoice();
        let out = super::bills(&[inv.clone(), invoice(2)]).unwrap();
        let mut r = ::csv::Reader::from_reader(out.as_bytes());
        let rows: Vec<::csv::StringRecord> = r.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[0][2], samples::VENDOR_NAME);
        assert_eq!(&rows[0][7], "2961.21");
        assert_eq!(&rows[0][8], "438.89");
        assert_eq!(&rows[0][10], samples::LONG_MEMO);
    }

    #[test]
    fn payment_batch_lists_the_remittance() {
        let mut p = samples::payment();
        p.vendor.name = "=HYPERLINK(\"http://x\")".into();
        let out = super::payment_batch(&[p]).unwrap();
        assert!(out.starts_with("source_id,vendor_id,vendor_name,date,method,currency,amount,"));
        let mut r = ::csv::Reader::from_reader(out.as_bytes());
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(&row[2], "'=HYPERLINK(\"http://x\")");
        assert_eq!(&row[6], "3361.21");
        assert_eq!(&row[9], "RE-2026-000117=2961.21; re 2026 000098=400.00");
    }
}
