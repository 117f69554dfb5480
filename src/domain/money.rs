//! Currencies and their minor units. Money itself is always `rust_decimal::Decimal`: a
//! float cannot hold 0.10 exactly, and an ERP rejects a bill whose lines are a cent off.

use rust_decimal::Decimal;

/// ISO 4217 codes accepted in documents. Kept explicit: a typo like "UDS" must be refused
/// before it reaches an ERP, not after.
pub const KNOWN_CURRENCIES: &[&str] = &[
    "AED", "AUD", "BRL", "CAD", "CHF", "CLP", "CNY", "COP", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "IDR", "ILS",
    "INR", "JPY", "KRW", "MXN", "MYR", "NOK", "NZD", "PHP", "PLN", "RON", "SAR", "SEK", "SGD", "THB", "TRY", "TWD",
    "USD", "ZAR",
];

/// Currencies of [`KNOWN_CURRENCIES`] without a minor unit (ISO 4217 exponent 0).
const ZERO_DECIMAL: &[&str] = &["CLP", "JPY", "KRW"];

pub fn is_known_currency(code: &str) -> bool {
    KNOWN_CURRENCIES.contains(&code)
}

/// Decimal places an amount in `code` may carry: 0 for yen, 2 for euros. ERPs refuse
/// amounts with more places, so validation refuses them first.
pub fn minor_units(code: &str) -> u32 {
    if ZERO_DECIMAL.contains(&code) { 0 } else { 2 }
}

/// The smallest amount in `code` (0.01, or 1 for zero-decimal currencies).
pub fn smallest_unit(code: &str) -> Decimal {
    Decimal::new(1, minor_units(code))
}

/// True when `amount` needs more decimal places than `code` has.
pub fn has_excess_precision(amount: Decimal, code: &str) -> bool {
    amount.normalize().scale() > minor_units(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn minor_units_follow_iso_4217() {
        assert_eq!(minor_units("EUR"), 2);
        assert_eq!(minor_units("JPY"), 0);
        assert!(has_excess_precision(dec!(10.5), "JPY"));
        assert!(!has_excess_precision(dec!(10.50), "EUR"));
        assert!(!has_excess_precision(dec!(1000.00), "JPY"));
        assert!(has_excess_precision(dec!(1.005), "USD"));
    }
}
