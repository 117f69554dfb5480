//! AP documents as the AP application sends them. Money is `Decimal`, never a float.
//!
//! `validate()` runs before anything is sent to an ERP; every violation names its field so
//! an AP clerk can fix the document without reading logs.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// ISO 4217 codes accepted in documents. Kept explicit: a typo like "UDS" must be refused
/// before it reaches an ERP, not after.
pub const KNOWN_CURRENCIES: &[&str] = &[
    "AED", "AUD", "BRL", "CAD", "CHF", "CLP", "CNY", "COP", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "IDR", "ILS",
    "INR", "JPY", "KRW", "MXN", "MYR", "NOK", "NZD", "PHP", "PLN", "RON", "SAR", "SEK", "SGD", "THB", "TRY", "TWD",
    "USD", "ZAR",
];

/// A vendor as referenced from a document: the id in the ERP (or the AP app) and a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorRef {
    pub id: String,
    pub name: String,
}

/// A vendor bill (an invoice received from a vendor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invoice {
    /// The AP application's id for this document; the idempotency ledger and the ERP's
    /// external reference are keyed by it.
    pub source_id: String,
    pub vendor: VendorRef,
    /// The vendor's invoice number.
    pub number: String,
    pub issue_date: NaiveDate,
    pub due_date: NaiveDate,
    pub currency: String,
    pub lines: Vec<InvoiceLine>,
    /// Sum of line amounts plus taxes.
    pub total: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_order: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceLine {
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gl_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    pub quantity: Decimal,
    pub unit_price: Decimal,
    /// quantity × unit_price, before tax.
    pub amount: Decimal,
    #[serde(default)]
    pub tax_amount: Decimal,
}

/// A purchase order sent to the ERP once approved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurchaseOrder {
    pub source_id: String,
    pub vendor: VendorRef,
    pub number: String,
    pub date: NaiveDate,
    pub currency: String,
    pub lines: Vec<InvoiceLine>,
    pub total: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
}

/// A payment made to a vendor, to be applied to the bills it pays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    pub source_id: String,
    pub vendor: VendorRef,
    pub amount: Decimal,
    pub currency: String,
    pub date: NaiveDate,
    /// check, ach, wire, card…
    pub method: String,
    /// Invoice numbers the payment says it pays (remittance advice); may be empty.
    #[serde(default)]
    pub applications: Vec<PaymentApplication>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentApplication {
    pub invoice_number: String,
    pub amount: Decimal,
}

/// One problem with a document, naming the field (`lines[2].amount`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every problem found in a document, not just the first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Collects field errors while a validator walks a document.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }
    fn required(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.add(field, "is required");
        }
    }
    fn currency(&mut self, value: &str) {
        if !KNOWN_CURRENCIES.contains(&value) {
            self.add("currency", format!("unknown currency code {value:?}"));
        }
    }
    fn vendor(&mut self, vendor: &VendorRef) {
        self.required("vendor.id", &vendor.id);
        self.required("vendor.name", &vendor.name);
    }
    /// Lines must be internally consistent and add up to `total` within a cent.
    fn lines(&mut self, lines: &[InvoiceLine], total: Decimal) {
        let cent = Decimal::new(1, 2);
        if lines.is_empty() {
            self.add("lines", "at least one line is required");
        }
        let mut sum = Decimal::ZERO;
        for (i, line) in lines.iter().enumerate() {
            if line.gl_account.as_deref().unwrap_or("").trim().is_empty()
                && line.item.as_deref().unwrap_or("").trim().is_empty()
            {
                self.add(format!("lines[{i}]"), "needs a gl_account or an item");
            }
            if line.quantity <= Decimal::ZERO {
                self.add(format!("lines[{i}].quantity"), "must be positive");
            }
            if (line.quantity * line.unit_price - line.amount).abs() > cent {
                self.add(
                    format!("lines[{i}].amount"),
                    format!("{} is not quantity × unit_price ({} × {})", line.amount, line.quantity, line.unit_price),
                );
            }
            if line.tax_amount < Decimal::ZERO {
                self.add(format!("lines[{i}].tax_amount"), "must not be negative");
            }
            sum += line.amount + line.tax_amount;
        }
        if !lines.is_empty() && (sum - total).abs() > cent {
            self.add("total", format!("{total} does not match the lines, which sum to {sum}"));
        }
    }
    fn finish(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(ValidationErrors(self.0)) }
    }
}

impl Invoice {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut p = Problems::default();
        p.required("source_id", &self.source_id);
        p.required("number", &self.number);
        p.vendor(&self.vendor);
        p.currency(&self.currency);
        if self.due_date < self.issue_date {
            p.add("due_date", format!("{} is before issue_date {}", self.due_date, self.issue_date));
        }
        p.lines(&self.lines, self.total);
        p.finish()
    }

    /// Tax over all lines.
    pub fn tax_total(&self) -> Decimal {
        self.lines.iter().map(|l| l.tax_amount).sum()
    }
}

impl PurchaseOrder {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut p = Problems::default();
        p.required("source_id", &self.source_id);
        p.required("number", &self.number);
        p.vendor(&self.vendor);
        p.currency(&self.currency);
        p.lines(&self.lines, self.total);
        p.finish()
    }
}

impl Payment {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut p = Problems::default();
        p.required("source_id", &self.source_id);
        p.vendor(&self.vendor);
        p.currency(&self.currency);
        p.required("method", &self.method);
        if self.amount <= Decimal::ZERO {
            p.add("amount", "must be positive");
        }
        for (i, a) in self.applications.iter().enumerate() {
            p.required(&format!("applications[{i}].invoice_number"), &a.invoice_number);
            if a.amount <= Decimal::ZERO {
                p.add(format!("applications[{i}].amount"), "must be positive");
            }
        }
        let applied: Decimal = self.applications.iter().map(|a| a.amount).sum();
        if applied > self.amount {
            p.add("applications", format!("apply {applied}, more than the payment {}", self.amount));
        }
        p.finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    pub fn invoice(n: usize) -> Invoice {
        Invoice {
            source_id: format!("ap-inv-{n}"),
            vendor: VendorRef { id: format!("V{}", n % 7), name: "Müller & Söhne GmbH".into() },
            number: format!("INV-{n:05}"),
            issue_date: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            due_date: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            currency: "EUR".into(),
            lines: vec![
                InvoiceLine {
                    description: "Consulting".into(),
                    gl_account: Some("6100".into()),
                    item: None,
                    quantity: dec!(2),
                    unit_price: dec!(150.00),
                    amount: dec!(300.00),
                    tax_amount: dec!(57.00),
                },
                InvoiceLine {
                    description: "Travel".into(),
                    gl_account: Some("6200".into()),
                    item: None,
                    quantity: dec!(1),
                    unit_price: dec!(42.50),
                    amount: dec!(42.50),
                    tax_amount: dec!(0),
                },
            ],
            total: dec!(399.50),
            memo: None,
            purchase_order: None,
        }
    }

    #[test]
    fn a_consistent_invoice_is_valid() {
        invoice(1).validate().unwrap();
    }

    #[test]
    fn every_violation_names_its_field() {
        let mut inv = invoice(1);
        inv.currency = "UDS".into();
        inv.lines[1].amount = dec!(40);
        inv.vendor.id.clear();
        let errs = inv.validate().unwrap_err();
        let fields: Vec<_> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["vendor.id", "currency", "lines[1].amount", "total"]);
        assert!(errs.to_string().contains("unknown currency code \"UDS\""));
    }

    #[test]
    fn totals_within_a_cent_are_accepted() {
        let mut inv = invoice(1);
        inv.total = dec!(399.51);
        inv.validate().unwrap();
        inv.total = dec!(399.52);
        assert!(inv.validate().is_err());
    }
}
