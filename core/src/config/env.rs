//! Typed reads of single variables, each with the error that names it. The sections'
//! own readers (`providers`, `scheduler` …) build on these.

use std::{fmt, net::SocketAddr, time::Duration};

use super::ConfigError;

/// Where the variables come from: the process environment, or a map in tests.
pub(super) struct Env<'a>(pub(super) &'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    pub(super) fn raw(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|value| !value.trim().is_empty())
    }

    pub(super) fn error(&self, variable: &'static str, expected: impl Into<String>) -> ConfigError {
        ConfigError {
            variable,
            expected: expected.into(),
        }
    }

    pub(super) fn url(
        &self,
        name: &'static str,
        default: &str,
        schemes: &[&str],
    ) -> Result<String, ConfigError> {
        let value = self.raw(name).unwrap_or_else(|| default.to_owned());
        let scheme = value.split_once("://").map(|(scheme, _)| scheme);
        match scheme {
            Some(scheme) if schemes.contains(&scheme) => Ok(value),
            // The value may hold a password, so the message does not repeat it.
            _ => Err(self.error(
                name,
                format!("a URL starting with {}://", schemes.join(":// or ")),
            )),
        }
    }

    /// `provider=value,…` (empty when unset), each value read by `parse`.
    pub(super) fn pairs<T>(
        &self,
        name: &'static str,
        expected: &'static str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Vec<(String, T)>, ConfigError> {
        let value = self.raw(name).unwrap_or_default();
        value
            .split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                pair.split_once('=')
                    .and_then(|(provider, value)| Some((provider.trim(), parse(value.trim())?)))
                    .filter(|(provider, _)| !provider.is_empty())
                    .map(|(provider, value)| (provider.to_owned(), value))
                    .ok_or_else(|| self.error(name, expected))
            })
            .collect()
    }

    /// A comma-separated list of URLs (empty when unset).
    pub(super) fn url_list(
        &self,
        name: &'static str,
        schemes: &[&str],
    ) -> Result<Vec<String>, ConfigError> {
        let value = self.raw(name).unwrap_or_default();
        value
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| match url.split_once("://") {
                Some((scheme, rest)) if schemes.contains(&scheme) && !rest.is_empty() => {
                    Ok(url.to_owned())
                }
                _ => Err(self.error(
                    name,
                    format!(
                        "URLs starting with {}://, separated by commas",
                        schemes.join(":// or ")
                    ),
                )),
            })
            .collect()
    }

    pub(super) fn socket_addr(
        &self,
        name: &'static str,
        default: &str,
    ) -> Result<SocketAddr, ConfigError> {
        let value = self.raw(name).unwrap_or_else(|| default.to_owned());
        value.parse().map_err(|_| {
            self.error(
                name,
                format!("an address like 127.0.0.1:8080, got {value:?}"),
            )
        })
    }

    pub(super) fn number<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(value) = self.raw(name) else {
            return Ok(default);
        };
        let expected = || {
            self.error(
                name,
                format!(
                    "a whole number from {} to {}, got {value:?}",
                    range.start(),
                    range.end()
                ),
            )
        };
        let number: T = value.trim().parse().map_err(|_| expected())?;
        if range.contains(&number) {
            Ok(number)
        } else {
            Err(expected())
        }
    }

    /// A comma-separated list of networks (`10.0.0.0/8`) or single addresses.
    pub(super) fn networks(
        &self,
        name: &'static str,
        default: &str,
    ) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        let value = self.raw(name).unwrap_or_else(|| default.to_owned());
        value
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                part.parse::<ipnet::IpNet>()
                    .or_else(|_| part.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| self.error(name, format!("comma-separated networks like 10.0.0.0/8 or addresses, got {part:?}")))
            })
            .collect()
    }

    pub(super) fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self
            .raw(name)
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(self.error(name, format!("true or false, got {other:?}"))),
        }
    }

    pub(super) fn fraction(&self, name: &'static str, default: f64) -> Result<f64, ConfigError> {
        let Some(value) = self.raw(name) else {
            return Ok(default);
        };
        match value.trim().parse::<f64>() {
            Ok(fraction) if (0.0..=1.0).contains(&fraction) => Ok(fraction),
            _ => Err(self.error(name, format!("a number from 0 to 1, got {value:?}"))),
        }
    }

    pub(super) fn duration(
        &self,
        name: &'static str,
        default: &str,
    ) -> Result<Duration, ConfigError> {
        let value = self.raw(name).unwrap_or_else(|| default.to_owned());
        parse_duration(&value).ok_or_else(|| {
            self.error(
                name,
                format!("a duration like 250ms, 2s or 5m, got {value:?}"),
            )
        })
    }

    pub(super) fn duration_list(
        &self,
        name: &'static str,
        default: &str,
    ) -> Result<Vec<Duration>, ConfigError> {
        let value = self.raw(name).unwrap_or_else(|| default.to_owned());
        let durations: Option<Vec<Duration>> = value.split(',').map(parse_duration).collect();
        match durations {
            Some(list) if !list.is_empty() => Ok(list),
            _ => Err(self.error(
                name,
                format!("a comma-separated list of durations like 2s,3s,5s, got {value:?}"),
            )),
        }
    }
}

/// `250ms`, `2s`, `5m`, `1h`, or combinations humantime accepts.
pub fn parse_duration(value: &str) -> Option<Duration> {
    humantime::parse_duration(value.trim()).ok()
}
