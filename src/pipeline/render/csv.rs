//! CSV exports (RFC 4180 quoting through the `csv` crate).

use super::RenderError;
use crate::domain::Invoice;

const BILL_HEADER: [&str; 8] =
    ["source_id", "vendor_id", "vendor_name", "number", "issue_date", "due_date", "currency", "total"];

/// A bill export file: a header and one row per invoice.
pub fn bills(invoices: &[Invoice]) -> Result<String, RenderError> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let err = |e: ::csv::Error| RenderError::Csv(e.to_string());
    w.write_record(BILL_HEADER).map_err(err)?;
    for inv in invoices {
        w.write_record([
            inv.source_id.as_str(),
            &inv.vendor.id,
            &inv.vendor.name,
            &inv.number,
            &inv.issue_date.to_string(),
            &inv.due_date.to_string(),
            &inv.currency,
            &inv.total.to_string(),
        ])
        .map_err(err)?;
    }
    let bytes = w.into_inner().map_err(|e| RenderError::Csv(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| RenderError::Csv(e.to_string()))
}

#[cfg(test)]
mod tests {
    use crate::domain::documents::tests::invoice;

    #[test]
    fn fields_with_commas_and_quotes_are_quoted() {
        let mut inv = invoice(1);
        inv.vendor.name = "Acme, \"The\" Company".into();
        let out = super::bills(&[inv]).unwrap();
        assert!(out.contains("\"Acme, \"\"The\"\" Company\""), "{out}");
        assert_eq!(out.lines().count(), 2);
    }
}
