//! Service and country codes, and account tiers, as customers write them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a code was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidCode(String);

/// A service code such as `telegram`: 1–32 lowercase letters, digits, `_` or `-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ServiceCode(String);

impl ServiceCode {
    pub fn parse(text: &str) -> Result<Self, InvalidCode> {
        let valid = (1..=32).contains(&text.len())
            && text.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidCode(format!(
                "`service` must be 1 to 32 lowercase letters, digits, '_' or '-', like \"telegram\"; got {text:?}"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A country as an ISO 3166-1 alpha-2 code, stored lowercase (`us`, `gb`, `in`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CountryCode(String);

impl CountryCode {
    /// Accepts either case (`US` or `us`).
    pub fn parse(text: &str) -> Result<Self, InvalidCode> {
        if text.len() == 2 && text.chars().all(|c| c.is_ascii_alphabetic()) {
            Ok(Self(text.to_ascii_lowercase()))
        } else {
            Err(InvalidCode(format!(
                "`country` must be a two-letter ISO 3166-1 code like \"us\"; got {text:?}"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An account's subscription tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Free,
    Basic,
    Pro,
    Enterprise,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Free, Tier::Basic, Tier::Pro, Tier::Enterprise];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Basic => "basic",
            Tier::Pro => "pro",
            Tier::Enterprise => "enterprise",
        }
    }

    pub fn parse(text: &str) -> Result<Self, InvalidCode> {
        Tier::ALL
            .into_iter()
            .find(|tier| tier.as_str() == text)
            .ok_or_else(|| {
                InvalidCode(format!(
                    "tier must be one of free, basic, pro, enterprise; got {text:?}"
                ))
            })
    }
}

impl TryFrom<String> for Tier {
    type Error = InvalidCode;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Tier::parse(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_codes_are_checked() {
        assert!(ServiceCode::parse("telegram").is_ok());
        assert!(ServiceCode::parse("open-ai_2").is_ok());
        assert!(ServiceCode::parse("").is_err());
        assert!(ServiceCode::parse("Telegram").is_err());
        assert!(ServiceCode::parse("tele gram").is_err());
        assert!(ServiceCode::parse(&"a".repeat(33)).is_err());
    }

    #[test]
    fn country_codes_are_lowercased() {
        assert_eq!(
            CountryCode::parse("US").map(|c| c.to_string()),
            Ok("us".to_owned())
        );
        assert!(CountryCode::parse("usa").is_err());
        assert!(CountryCode::parse("1a").is_err());
    }
}
