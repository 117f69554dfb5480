//! Readable validation failures. A document is checked completely and every problem is
//! reported with the field it concerns (`lines[2].amount`), because the person fixing it
//! is an AP clerk looking at a status page, not a developer reading logs.

use super::money;
use serde::Serialize;
use std::fmt;

/// One problem with a document, naming the field (`lines[2].amount`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every problem found in a document, not just the first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// A stable error code for metrics and the status API.
    pub fn kind(&self) -> &'static str {
        "validation"
    }
}

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
pub(crate) struct Problems(Vec<FieldError>);

impl Problems {
    pub(crate) fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }

    pub(crate) fn required(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.add(field, "is required");
        }
    }

    pub(crate) fn currency(&mut self, field: &str, value: &str) {
        if !money::is_known_currency(value) {
            self.add(field, format!("unknown currency code {value:?}"));
        }
    }

    /// Refuses amounts with more decimals than the currency has (12.345 EUR, 10.5 JPY).
    pub(crate) fn precision(&mut self, field: &str, amount: rust_decimal::Decimal, currency: &str) {
        if money::is_known_currency(currency) && money::has_excess_precision(amount, currency) {
            let places = money::minor_units(currency);
            self.add(field, format!("{amount} has more than {places} decimal places for {currency}"));
        }
    }

    pub(crate) fn finish(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(ValidationErrors(self.0)) }
    }
}
