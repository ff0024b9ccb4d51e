//! Money, in whole cents.

use serde::{Deserialize, Serialize};
use std::fmt;

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
}
