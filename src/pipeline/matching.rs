//! Payment → open bills. This first version applies a payment to the bills its remittance
//! names by exact invoice number; what is left over is reported as unapplied credit.

use crate::domain::Payment;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A bill of the payment's vendor that still has a balance to pay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenBill {
    pub erp_id: String,
    pub number: String,
    pub balance: Decimal,
    pub currency: String,
    pub due_date: NaiveDate,
}

/// How much of the payment goes to one bill, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub erp_id: String,
    pub number: String,
    pub amount: Decimal,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MatchOutcome {
    pub applied: Vec<Applied>,
    /// Left over after every application: credit with the vendor.
    pub unapplied: Decimal,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MatchError {
    #[error("payment is in {payment} but bill {number} is in {bill}")]
    CurrencyMismatch { payment: String, bill: String, number: String },
    #[error("no open bill numbered {0:?} for this vendor")]
    UnknownBill(String),
}

impl MatchError {
    pub fn kind(&self) -> &'static str {
        match self {
            MatchError::CurrencyMismatch { .. } => "currency_mismatch",
            MatchError::UnknownBill(_) => "unknown_bill",
        }
    }
}

/// Applies `payment` to `open` bills by the invoice numbers its remittance names.
pub fn match_payment(payment: &Payment, open: &[OpenBill]) -> Result<MatchOutcome, MatchError> {
    let mut outcome = MatchOutcome { applied: Vec::new(), unapplied: payment.amount };
    for app in &payment.applications {
        let bill = open
            .iter()
            .find(|b| b.number == app.invoice_number)
            .ok_or_else(|| MatchError::UnknownBill(app.invoice_number.clone()))?;
        if bill.currency != payment.currency {
            return Err(MatchError::CurrencyMismatch {
                payment: payment.currency.clone(),
                bill: bill.currency.clone(),
                number: bill.number.clone(),
            });
        }
        let amount = app.amount.min(bill.balance).min(outcome.unapplied);
        outcome.unapplied -= amount;
        outcome.applied.push(Applied {
            erp_id: bill.erp_id.clone(),
            number: bill.number.clone(),
            amount,
            reason: format!("remittance names invoice {}", bill.number),
        });
    }
    Ok(outcome)
}
