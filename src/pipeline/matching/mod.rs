//! Payment → open bills: which bills a payment pays, and how much of each.
//!
//! The evidence is tried strongest first, the way an AP clerk would: the remittance
//! advice (invoice numbers, normalised), then a reference that names a bill, then a
//! single bill with exactly the payment's amount, then every open bill when the payment
//! covers them all, then the smallest set of bills summing exactly to the payment. What
//! cannot be placed is unapplied credit with the vendor rather than a guess. Every
//! decision carries a sentence a person can read, because someone will ask "why did the
//! payment land on that bill?".

mod normalize;
mod remittance;
mod subset;
#[cfg(test)]
mod tests;

pub use normalize::normalize as normalize_invoice_number;
pub use subset::{MAX_BILLS, STEP_BUDGET};

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

/// Which evidence decided the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchStrategy {
    /// The payment's remittance advice named the bills.
    Remittance,
    /// The payment's reference is a bill's invoice number.
    Reference,
    /// Exactly one open bill has the payment's amount.
    Amount,
    /// The payment covers every open bill.
    AllOpenBills,
    /// The smallest set of bills summing exactly to the payment.
    Subset,
    /// The vendor's only open bill, paid in part.
    SingleBill,
    /// Nothing matched: the whole payment is unapplied credit.
    #[default]
    Unmatched,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MatchOutcome {
    pub applied: Vec<Applied>,
    /// Left over after every application: credit with the vendor.
    pub unapplied: Decimal,
    #[serde(default)]
    pub strategy: MatchStrategy,
    /// The decision as a whole, including why anything is left unapplied.
    #[serde(default)]
    pub reason: String,
}

impl MatchOutcome {
    pub fn applied_total(&self) -> Decimal {
        self.applied.iter().map(|a| a.amount).sum()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MatchError {
    #[error("payment is in {payment} but bill {number} is in {bill}")]
    CurrencyMismatch { payment: String, bill: String, number: String },
    #[error("no open bill numbered {0:?} for this vendor")]
    UnknownBill(String),
    #[error("invoice number {number:?} matches several open bills: {}", candidates.join(", "))]
    AmbiguousBill { number: String, candidates: Vec<String> },
    #[error("payment cannot be matched: {0}")]
    InvalidPayment(String),
}

impl MatchError {
    pub fn kind(&self) -> &'static str {
        match self {
            MatchError::CurrencyMismatch { .. } => "currency_mismatch",
            MatchError::UnknownBill(_) => "unknown_bill",
            MatchError::AmbiguousBill { .. } => "ambiguous_bill",
            MatchError::InvalidPayment(_) => "invalid_payment",
        }
    }
}

/// Decides which of the vendor's `open` bills `payment` pays and how much of each.
///
/// Errors are permanent for this payment/bill set: a remittance naming a bill that is not
/// open (perhaps not exported yet), naming one ambiguously, or a currency that differs
/// from the bills it would pay.
pub fn match_payment(payment: &Payment, open: &[OpenBill]) -> Result<MatchOutcome, MatchError> {
    if payment.amount <= Decimal::ZERO {
        return Err(MatchError::InvalidPayment(format!("amount {} is not positive", payment.amount)));
    }
    // Oldest due first, so "first" means "oldest" everywhere below; ties by number and id
    // keep the order independent of how the ERP listed the bills.
    let mut bills: Vec<&OpenBill> = open.iter().collect();
    bills.sort_by(|a, b| (a.due_date, &a.number, &a.erp_id).cmp(&(b.due_date, &b.number, &b.erp_id)));
    // A remittance may name a bill already paid in full: it is still the bill meant (not
    // an unknown one), and the money stays as credit with the reason.
    if !payment.applications.is_empty() {
        return remittance::apply(payment, &bills);
    }
    bills.retain(|b| b.balance > Decimal::ZERO);
    let (same, other): (Vec<&OpenBill>, Vec<&OpenBill>) = bills.iter().partition(|b| b.currency == payment.currency);
    // A vendor with open bills, none in the payment's currency: refuse rather than
    // book the whole payment as credit in a currency the vendor is not billed in.
    if same.is_empty()
        && let Some(b) = other.first()
    {
        return Err(MatchError::CurrencyMismatch {
            payment: payment.currency.clone(),
            bill: b.currency.clone(),
            number: b.number.clone(),
        });
    }
    let mut notes = Vec::new();
    if !other.is_empty() {
        notes.push(format!("{} open bill(s) in other currencies were not considered", other.len()));
    }
    let mut outcome = heuristics(payment, &same, &mut notes);
    if !notes.is_empty() {
        outcome.reason = format!("{} ({})", outcome.reason, notes.join("; "));
    }
    Ok(outcome)
}

/// Matching without a remittance, over the bills in the payment's currency.
fn heuristics(payment: &Payment, bills: &[&OpenBill], notes: &mut Vec<String>) -> MatchOutcome {
    let amount = payment.amount;
    if let Some(reference) = payment.reference.as_deref().filter(|r| !r.trim().is_empty()) {
        let key = normalize_invoice_number(reference);
        let hits: Vec<&&OpenBill> = bills.iter().filter(|b| normalize_invoice_number(&b.number) == key).collect();
        match hits.as_slice() {
            [bill] => {
                let why = format!("payment reference {reference:?} is invoice {}", bill.number);
                return pay_one(payment, bill, MatchStrategy::Reference, why);
            }
            [] => {}
            many => notes.push(format!("reference {reference:?} matches {} bills, so it was not used", many.len())),
        }
    }
    let exact: Vec<&&OpenBill> = bills.iter().filter(|b| b.balance == amount).collect();
    if let [bill] = exact.as_slice() {
        let why = format!("the only open bill with a balance of exactly {amount}");
        return pay_in_full(payment, &[bill], MatchStrategy::Amount, &why);
    }
    let open_total: Decimal = bills.iter().map(|b| b.balance).sum();
    if !bills.is_empty() && amount >= open_total {
        let why = format!("the payment covers all {} open bills ({open_total})", bills.len());
        return pay_in_full(payment, bills, MatchStrategy::AllOpenBills, &why);
    }
    if let Some(found) = subset_match(payment, bills, notes) {
        return found;
    }
    if let [bill] = bills {
        let why = format!("{} is the vendor's only open bill in {}", bill.number, payment.currency);
        return pay_one(payment, bill, MatchStrategy::SingleBill, why);
    }
    MatchOutcome {
        applied: Vec::new(),
        unapplied: amount,
        strategy: MatchStrategy::Unmatched,
        reason: format!(
            "no open bill or set of up to {MAX_BILLS} bills sums to {amount}; \
             the payment is left as unapplied credit for a person to apply"
        ),
    }
}

fn subset_match(payment: &Payment, bills: &[&OpenBill], notes: &mut Vec<String>) -> Option<MatchOutcome> {
    let scale = bills.iter().map(|b| b.balance.scale()).chain([payment.amount.scale()]).max()?;
    let to_units = |d: Decimal| {
        let mut d = d;
        d.rescale(scale);
        (d.scale() == scale).then(|| i64::try_from(d.mantissa()).ok()).flatten()
    };
    let target = to_units(payment.amount)?;
    let candidates = bills
        .iter()
        .enumerate()
        .map(|(rank, b)| Some(subset::Candidate { cents: to_units(b.balance)?, rank }))
        .collect::<Option<Vec<_>>>()?;
    let result = subset::smallest_exact_subset(&candidates, target);
    if result.exhausted {
        notes.push(format!("the search stopped after {} steps", result.steps));
    }
    let ranks = result.ranks?;
    let chosen: Vec<&OpenBill> = ranks.iter().map(|&r| bills[r]).collect();
    let why = if chosen.len() == 1 {
        let same = bills.iter().filter(|b| b.balance == payment.amount).count();
        format!("{same} open bills have a balance of {}; the one due first was paid", payment.amount)
    } else {
        let numbers: Vec<&str> = chosen.iter().map(|b| b.number.as_str()).collect();
        format!(
            "the smallest set of open bills whose balances sum exactly to {}: {} \
             (ties go to the bills due first)",
            payment.amount,
            numbers.join(" + ")
        )
    };
    Some(pay_in_full(payment, &chosen, MatchStrategy::Subset, &why))
}

fn pay_in_full(payment: &Payment, bills: &[&OpenBill], strategy: MatchStrategy, why: &str) -> MatchOutcome {
    let applied: Vec<Applied> = bills
        .iter()
        .map(|b| Applied {
            erp_id: b.erp_id.clone(),
            number: b.number.clone(),
            amount: b.balance,
            reason: format!("balance {} paid in full: {why}", b.balance),
        })
        .collect();
    let unapplied = payment.amount - applied.iter().map(|a| a.amount).sum::<Decimal>();
    let mut reason = why.to_owned();
    if unapplied > Decimal::ZERO {
        reason.push_str(&format!("; the remaining {unapplied} is unapplied credit with the vendor"));
    }
    MatchOutcome { applied, unapplied, strategy, reason }
}

/// Pays one bill up to its balance: a partial payment when the payment is smaller,
/// unapplied credit when it is larger.
fn pay_one(payment: &Payment, bill: &OpenBill, strategy: MatchStrategy, why: String) -> MatchOutcome {
    if payment.amount >= bill.balance {
        return pay_in_full(payment, &[bill], strategy, &why);
    }
    let left = bill.balance - payment.amount;
    let applied = vec![Applied {
        erp_id: bill.erp_id.clone(),
        number: bill.number.clone(),
        amount: payment.amount,
        reason: format!(
            "partial payment of {} against balance {}; {left} stays open: {why}",
            payment.amount, bill.balance
        ),
    }];
    MatchOutcome { applied, unapplied: Decimal::ZERO, strategy, reason: why }
}
