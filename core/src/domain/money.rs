//! Money, in whole cents.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Reads a whole number of cents from JSON: `1000` and `1000.0` alike (JSON Schema's
/// `integer` admits both, and so do clients that keep numbers as doubles); a fraction or a
/// value beyond `i64` is refused. For `#[serde(deserialize_with = …)]`.
pub fn deserialize_whole_cents<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<i64, D::Error> {
    use serde::de::Error;
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(whole) = number.as_i64() {
        return Ok(whole);
    }
    match number.as_f64() {
        // 2^63 is exactly representable; anything from it up does not fit.
        Some(value)
            if value.fract() == 0.0 && value >= -(2f64.powi(63)) && value < 2f64.powi(63) =>
        {
            Ok(value as i64)
        }
        _ => Err(D::Error::custom(format!(
            "expected a whole number of cents, got {number}"
        ))),
    }
}

/// A non-negative amount of money in cents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Cents(i64);

impl Cents {
    pub const ZERO: Cents = Cents(0);

    /// `None` for a negative amount.
    pub fn new(cents: i64) -> Option<Self> {
        (cents >= 0).then_some(Self(cents))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for Cents {
    type Error = String;

    fn try_from(cents: i64) -> Result<Self, Self::Error> {
        Cents::new(cents)
            .ok_or_else(|| format!("an amount in cents cannot be negative, got {cents}"))
    }
}

impl From<Cents> for i64 {
    fn from(cents: Cents) -> i64 {
        cents.0
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_amounts_cannot_be_built() {
        assert!(Cents::new(-1).is_none());
        assert_eq!(
            Cents::new(1050).map(|c| c.to_string()),
            Some("10.50".to_owned())
        );
        assert!(serde_json::from_str::<Cents>("-5").is_err());
    }

    #[test]
    fn whole_cents_come_as_integers_or_as_whole_doubles() {
        #[derive(serde::Deserialize)]
        struct Amount {
            #[serde(deserialize_with = "super::deserialize_whole_cents")]
            cents: i64,
        }
        let read = |json: &str| serde_json::from_str::<Amount>(json).map(|a| a.cents);
        assert_eq!(read(r#"{"cents": 1000}"#).ok(), Some(1000));
        assert_eq!(read(r#"{"cents": 1000.0}"#).ok(), Some(1000));
        assert!(read(r#"{"cents": 10.5}"#).is_err());
        assert!(read(r#"{"cents": 1e300}"#).is_err());
        assert!(read(r#"{"cents": "1000"}"#).is_err());
    }
}
