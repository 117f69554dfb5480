//! The invoice PDF attached to a bill: a single page with the header and the lines, in the
//! base Helvetica font. Deliberately small; the attachment exists so the ERP user can see
//! the document that was approved.

use super::RenderError;
use crate::domain::Invoice;
use std::fmt::Write as _;

/// Renders `inv` as a PDF document.
pub fn invoice_pdf(inv: &Invoice) -> Result<Vec<u8>, RenderError> {
    let mut lines = vec![
        format!("Invoice {} from {}", inv.number, inv.vendor.name),
        format!("Issued {}  Due {}  Currency {}", inv.issue_date, inv.due_date, inv.currency),
        String::new(),
    ];
    for l in &inv.lines {
        lines
            .push(format!("{}  {} x {} = {}  tax {}", l.description, l.quantity, l.unit_price, l.amount, l.tax_amount));
    }
    lines.push(String::new());
    lines.push(format!("Total {} {}", inv.total, inv.currency));

    let mut content = String::from("BT /F1 11 Tf 50 800 Td 14 TL\n");
    for line in &lines {
        content.push('(');
        content.push_str(&escape(line));
        content.push_str(") '\n");
    }
    content.push_str("ET\n");

    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>".to_string(),
        format!("<< /Length {} >>\nstream\n{}endstream", content.len(), content),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_string(),
    ];
    let mut out = String::from("%PDF-1.4\n");
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, obj) in objects.iter().enumerate() {
        offsets.push(out.len());
        let _ = write!(out, "{} 0 obj\n{}\nendobj\n", i + 1, obj);
    }
    let xref = out.len();
    let _ = write!(out, "xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for off in offsets {
        let _ = writeln!(out, "{off:010} 00000 n ");
    }
    let _ = write!(out, "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1);
    Ok(out.into_bytes())
}

/// Escapes PDF string delimiters; characters outside ASCII become '?' in this minimal
/// renderer (the base fonts cannot carry them without an encoding table).
fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '(' | ')' | '\\' => format!("\\{c}"),
            c if c.is_ascii() && !c.is_ascii_control() => c.to_string(),
            _ => "?".to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_a_pdf_with_the_invoice_number() {
        let pdf = super::invoice_pdf(&crate::domain::documents::tests::invoice(7)).unwrap();
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.starts_with("%PDF-1.4"));
        assert!(text.contains("INV-00007"));
        assert!(text.trim_end().ends_with("%%EOF"));
    }
}
