//! JSON helpers shared by the JSON serializers.

use super::{Payload, SerializeError};
use rust_decimal::Decimal;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// A decimal written as a JSON number with exactly its digits ("1920.00"). ERPs want
/// numbers, and going through `f64` would turn 0.1 + 0.2 into 0.30000000000000004.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Num(pub Decimal);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.0.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

pub(super) fn payload<T: Serialize>(value: &T) -> Result<Payload, SerializeError> {
    let mut body = serde_json::to_vec_pretty(value).map_err(|e| SerializeError::Encode(e.to_string()))?;
    body.push(b'\n');
    Ok(Payload { content_type: "application/json", body })
}

#[cfg(test)]
mod tests {
    use super::Num;
    use rust_decimal_macros::dec;

    #[test]
    fn decimals_keep_their_digits() {
        let v = [Num(dec!(0.1) + dec!(0.2)), Num(dec!(1920.00)), Num(dec!(-3)), Num(dec!(129.9900))];
        assert_eq!(serde_json::to_string(&v).unwrap(), "[0.3,1920.00,-3,129.9900]");
    }
}
