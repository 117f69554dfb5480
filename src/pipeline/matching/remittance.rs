//! Matching by remittance advice: the payer said which invoices it pays, so the matcher
//! follows that and only caps each amount at what the bill and the payment allow.

use super::{Applied, MatchError, MatchOutcome, MatchStrategy, OpenBill, normalize_invoice_number};
use crate::domain::Payment;
use rust_decimal::Decimal;

/// Applies `payment` per its remittance to `bills` (sorted oldest due first).
pub(super) fn apply(payment: &Payment, bills: &[&OpenBill]) -> Result<MatchOutcome, MatchError> {
    let mut balances: Vec<Decimal> = bills.iter().map(|b| b.balance).collect();
    let mut remaining = payment.amount;
    let mut applied: Vec<(usize, Applied)> = Vec::new();
    let mut notes = Vec::new();
    for app in &payment.applications {
        let idx = find(payment, bills, &app.invoice_number)?;
        let bill = bills[idx];
        let amount = app.amount.min(balances[idx]).min(remaining);
        let named = if app.invoice_number == bill.number {
            format!("remittance names invoice {}", bill.number)
        } else {
            format!("remittance names {:?}, which is invoice {}", app.invoice_number, bill.number)
        };
        if amount <= Decimal::ZERO {
            notes.push(format!("{named} but nothing is left to apply to it"));
            continue;
        }
        let mut why = if amount == balances[idx] {
            format!("{named}; pays its balance {} in full", balances[idx])
        } else {
            let left = balances[idx] - amount;
            format!("{named}; partial payment of {amount} against balance {}, {left} stays open", balances[idx])
        };
        if amount < app.amount {
            why.push_str(&format!(" (the remittance asked for {})", app.amount));
        }
        balances[idx] -= amount;
        remaining -= amount;
        // One bill named twice is one application, so the ERP sees one link per bill.
        match applied.iter_mut().find(|(i, _)| *i == idx) {
            Some((_, a)) => {
                a.amount += amount;
                a.reason = format!("{}; {why}", a.reason);
            }
            None => applied
                .push((idx, Applied { erp_id: bill.erp_id.clone(), number: bill.number.clone(), amount, reason: why })),
        }
    }
    let mut reason = format!("applied per the remittance advice ({} invoice(s))", payment.applications.len());
    if remaining > Decimal::ZERO {
        reason.push_str(&format!(
            "; {remaining} is more than the remittance applies and stays as unapplied credit with the vendor"
        ));
    }
    for note in notes {
        reason.push_str("; ");
        reason.push_str(&note);
    }
    let strategy = if applied.is_empty() { MatchStrategy::Unmatched } else { MatchStrategy::Remittance };
    Ok(MatchOutcome { applied: applied.into_iter().map(|(_, a)| a).collect(), unapplied: remaining, strategy, reason })
}

/// The bill a remittance line means: an exact number first, then a normalised one;
/// among several, the one in the payment's currency.
fn find(payment: &Payment, bills: &[&OpenBill], number: &str) -> Result<usize, MatchError> {
    let key = normalize_invoice_number(number);
    let exact: Vec<usize> = (0..bills.len()).filter(|&i| bills[i].number == number).collect();
    let hits = if exact.is_empty() {
        (0..bills.len()).filter(|&i| normalize_invoice_number(&bills[i].number) == key).collect()
    } else {
        exact
    };
    let in_currency: Vec<usize> = hits.iter().copied().filter(|&i| bills[i].currency == payment.currency).collect();
    match (hits.as_slice(), in_currency.as_slice()) {
        ([], _) => Err(MatchError::UnknownBill(number.to_owned())),
        (_, [one]) => Ok(*one),
        ([first, ..], []) => Err(MatchError::CurrencyMismatch {
            payment: payment.currency.clone(),
            bill: bills[*first].currency.clone(),
            number: bills[*first].number.clone(),
        }),
        (_, many) => Err(MatchError::AmbiguousBill {
            number: number.to_owned(),
            candidates: many.iter().map(|&i| format!("{} ({})", bills[i].number, bills[i].erp_id)).collect(),
        }),
    }
}
