//! Invoice numbers as people type them. A remittance says "inv 0042", the ERP holds
//! "INV-42": both must land on the same bill, and nothing else may.

/// Prefixes vendors and payers put before the number; longest first so "INVOICE" wins
/// over "INV".
const PREFIXES: &[&str] = &["INVOICENO", "INVOICE", "INVNO", "INV", "BILL", "NO", "NR"];

/// Upper-cases, drops separators (spaces, `-`, `_`, `/`, `.`, `#`), a leading prefix such
/// as "INV" when a digit follows it, and leading zeros of the number that remains.
///
/// `normalize("inv-00042") == normalize("INV 42") == "42"`; "RE-2026-000117" becomes
/// "RE2026000117" (only zeros at the start of the number go, never inner ones).
pub fn normalize(number: &str) -> String {
    let compact: String = number
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '_' | '/' | '.' | '#' | ':'))
        .flat_map(char::to_uppercase)
        .collect();
    let mut rest = compact.as_str();
    for prefix in PREFIXES {
        if let Some(after) = rest.strip_prefix(prefix)
            && after.starts_with(|c: char| c.is_ascii_digit())
        {
            rest = after;
            break;
        }
    }
    let trimmed = rest.trim_start_matches('0');
    if trimmed.is_empty() && !rest.is_empty() { "0".to_owned() } else { trimmed.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn spellings_of_one_number_agree() {
        for n in ["INV-00042", "inv 42", "Invoice #0042", "INV_42", "0042", "inv.no. 42", "42"] {
            assert_eq!(normalize(n), "42", "{n}");
        }
    }

    #[test]
    fn different_numbers_stay_different() {
        assert_ne!(normalize("INV-420"), normalize("INV-42"));
        assert_ne!(normalize("INV-1001"), normalize("INV-101"));
        assert_eq!(normalize("RE-2026-000117"), "RE2026000117");
        // "INVALID" is not the prefix "INV" followed by a number.
        assert_eq!(normalize("invalid-7"), "INVALID7");
        assert_eq!(normalize("000"), "0");
        assert_eq!(normalize(""), "");
    }
}
