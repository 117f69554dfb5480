//! AP documents as the AP application sends them. Money is `Decimal`, never a float.
//!
//! `validate()` runs before anything is sent to an ERP; every violation names its field so
//! an AP clerk can fix the document without reading logs.
//!
//! The API documents an amount as decimal text (as `Decimal` writes it) of at most 15
//! digits and 6 decimals, so that any text the schema allows fits a `Decimal`.

use super::money;
use super::validation::Problems;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use super::money::KNOWN_CURRENCIES;
pub use super::validation::{FieldError, ValidationErrors};

/// A vendor as referenced from a document: the id in the ERP (or the AP app) and a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VendorRef {
    pub id: String,
    pub name: String,
}

/// A vendor bill (an invoice received from a vendor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    #[schema(value_type = String, pattern = r"^-?[0-9]{1,15}(\.[0-9]{1,6})?$")]
    pub total: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_order: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceLine {
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gl_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    #[schema(value_type = String, pattern = r"^-?[0-9]{1,15}(\.[0-9]{1,6})?$")]
    pub quantity: Decimal,
    #[schema(value_type = String, pattern = r"^-?[0-9]{1,15}(\.[0-9]{1,6})?$")]
    pub unit_price: Decimal,
    /// quantity × unit_price, before tax.
    #[schema(value_type = String, pattern = r"^-?[0-9]{1,15}(\.[0-9]{1,6})?$")]
    pub amount: Decimal,
    #[serde(default)]
    #[schema(value_type = String, pattern = r"^-?[0-9]{1,15}(\.[0-9]{1,6})?$")]
    pub tax_amount: Decimal,
    /// The ERP's tax code / tax rate id for this line (Xero `TaxType`, QuickBooks
    /// `TaxCodeRef`, Intacct tax detail). Needed by ERPs that will not take a bare amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_code: Option<String>,
}

/// A purchase order sent to the ERP once approved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseOrder {
    pub source_id: String,
    pub vendor: VendorRef,
    pub number: String,
    pub date: NaiveDate,
    pub currency: String,
    pub lines: Vec<InvoiceLine>,
    #[schema(value_type = String, pattern = r"^-?[0-9]{1,15}(\.[0-9]{1,6})?$")]
    pub total: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
}

/// A payment made to a vendor, to be applied to the bills it pays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    pub source_id: String,
    pub vendor: VendorRef,
    #[schema(value_type = String, pattern = r"^-?[0-9]{1,15}(\.[0-9]{1,6})?$")]
    pub amount: Decimal,
    pub currency: String,
    pub date: NaiveDate,
    /// check, ach, wire, card…
    pub method: String,
    /// Invoice numbers the payment says it pays (remittance advice); may be empty.
    #[serde(default)]
    pub applications: Vec<PaymentApplication>,
    /// Check number or remittance reference. When it names an invoice number the matcher
    /// uses it; ERPs show it as the payment's document number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The ERP's bank (or card) account the money left from. ERPs require one on a bill
    /// payment; serializers refuse a payment without it, naming this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_account: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentApplication {
    pub invoice_number: String,
    #[schema(value_type = String, pattern = r"^-?[0-9]{1,15}(\.[0-9]{1,6})?$")]
    pub amount: Decimal,
}

impl Problems {
    fn vendor(&mut self, vendor: &VendorRef) {
        self.required("vendor.id", &vendor.id);
        self.required("vendor.name", &vendor.name);
    }

    /// Lines must be internally consistent and add up to `total` within the currency's
    /// smallest unit (a cent).
    fn lines(&mut self, lines: &[InvoiceLine], total: Decimal, currency: &str) {
        let unit = money::smallest_unit(currency);
        if lines.is_empty() {
            self.add("lines", "at least one line is required");
        }
        let mut sum = Decimal::ZERO;
        for (i, line) in lines.iter().enumerate() {
            let blank = |v: &Option<String>| v.as_deref().unwrap_or("").trim().is_empty();
            if blank(&line.gl_account) && blank(&line.item) {
                self.add(format!("lines[{i}]"), "needs a gl_account or an item");
            }
            if line.quantity <= Decimal::ZERO {
                self.add(format!("lines[{i}].quantity"), "must be positive");
            }
            if (line.quantity * line.unit_price - line.amount).abs() > unit {
                self.add(
                    format!("lines[{i}].amount"),
                    format!("{} is not quantity × unit_price ({} × {})", line.amount, line.quantity, line.unit_price),
                );
            }
            self.precision(&format!("lines[{i}].amount"), line.amount, currency);
            if line.tax_amount < Decimal::ZERO {
                self.add(format!("lines[{i}].tax_amount"), "must not be negative");
            }
            self.precision(&format!("lines[{i}].tax_amount"), line.tax_amount, currency);
            sum += line.amount + line.tax_amount;
        }
        self.precision("total", total, currency);
        if !lines.is_empty() && (sum - total).abs() > unit {
            self.add("total", format!("{total} does not match the lines, which sum to {sum}"));
        }
    }
}

impl Invoice {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut p = Problems::default();
        p.required("source_id", &self.source_id);
        p.required("number", &self.number);
        p.vendor(&self.vendor);
        p.currency("currency", &self.currency);
        if self.due_date < self.issue_date {
            p.add("due_date", format!("{} is before issue_date {}", self.due_date, self.issue_date));
        }
        p.lines(&self.lines, self.total, &self.currency);
        p.finish()
    }

    /// Tax over all lines.
    pub fn tax_total(&self) -> Decimal {
        self.lines.iter().map(|l| l.tax_amount).sum()
    }

    /// Line amounts before tax.
    pub fn subtotal(&self) -> Decimal {
        self.lines.iter().map(|l| l.amount).sum()
    }
}

impl PurchaseOrder {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut p = Problems::default();
        p.required("source_id", &self.source_id);
        p.required("number", &self.number);
        p.vendor(&self.vendor);
        p.currency("currency", &self.currency);
        p.lines(&self.lines, self.total, &self.currency);
        p.finish()
    }
}

impl Payment {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut p = Problems::default();
        p.required("source_id", &self.source_id);
        p.vendor(&self.vendor);
        p.currency("currency", &self.currency);
        p.required("method", &self.method);
        if self.amount <= Decimal::ZERO {
            p.add("amount", "must be positive");
        }
        p.precision("amount", self.amount, &self.currency);
        if let Some(account) = &self.bank_account {
            p.required("bank_account", account);
        }
        for (i, a) in self.applications.iter().enumerate() {
            p.required(&format!("applications[{i}].invoice_number"), &a.invoice_number);
            if a.amount <= Decimal::ZERO {
                p.add(format!("applications[{i}].amount"), "must be positive");
            }
            p.precision(&format!("applications[{i}].amount"), a.amount, &self.currency);
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

    /// A small two-line EUR invoice; `n` varies the ids and the number.
    pub fn invoice(n: usize) -> Invoice {
        let line = |description: &str, gl: &str, qty, price, amount, tax| InvoiceLine {
            description: description.into(),
            gl_account: Some(gl.into()),
            item: None,
            quantity: qty,
            unit_price: price,
            amount,
            tax_amount: tax,
            tax_code: None,
        };
        Invoice {
            source_id: format!("ap-inv-{n}"),
            vendor: VendorRef { id: format!("V{}", n % 7), name: "Müller & Söhne GmbH".into() },
            number: format!("INV-{n:05}"),
            issue_date: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            due_date: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            currency: "EUR".into(),
            lines: vec![
                line("Consulting", "6100", dec!(2), dec!(150.00), dec!(300.00), dec!(57.00)),
                line("Travel", "6200", dec!(1), dec!(42.50), dec!(42.50), dec!(0)),
            ],
            total: dec!(399.50),
            memo: None,
            purchase_order: None,
        }
    }

    #[test]
    fn a_consistent_invoice_is_valid() {
        invoice(1).validate().unwrap();
        crate::domain::samples::invoice().validate().unwrap();
        crate::domain::samples::purchase_order().validate().unwrap();
        crate::domain::samples::payment().validate().unwrap();
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

    #[test]
    fn amounts_finer_than_the_currency_are_refused() {
        let mut inv = invoice(1);
        inv.lines[1].unit_price = dec!(42.505);
        inv.lines[1].amount = dec!(42.505);
        inv.total = dec!(399.505);
        let errs = inv.validate().unwrap_err();
        let fields: Vec<_> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["lines[1].amount", "total"]);
    }

    #[test]
    fn payment_problems_are_all_reported() {
        let mut p = crate::domain::samples::payment();
        p.amount = dec!(-1);
        p.method.clear();
        p.bank_account = Some(" ".into());
        p.applications[0].amount = dec!(0);
        let errs = p.validate().unwrap_err();
        let fields: Vec<_> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["method", "amount", "bank_account", "applications[0].amount", "applications"]);
    }

    #[test]
    fn documents_without_the_new_optional_fields_still_parse() {
        let json = r#"{"source_id":"p1","vendor":{"id":"V1","name":"A"},"amount":"10.00",
            "currency":"USD","date":"2026-11-05","method":"ach"}"#;
        let p: Payment = serde_json::from_str(json).unwrap();
        assert_eq!(p.reference, None);
        assert!(p.applications.is_empty());
    }
}
