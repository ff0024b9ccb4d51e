//! Keeping webhook deliveries away from our own network (SSRF).
//!
//! A customer chooses the URL we POST to; without a guard they could make us call
//! `http://169.254.169.254/` (cloud metadata), `http://127.0.0.1:5432/` or anything else on
//! the private network. The guard refuses loopback, private, link-local, shared (CGNAT),
//! multicast, broadcast, documentation and reserved addresses, for IPv4 and IPv6, including
//! IPv4 addresses wrapped in IPv6 (`::ffff:127.0.0.1`, NAT64 `64:ff9b::/96`).
//!
//! The check runs when an endpoint is saved and again at every delivery, inside the HTTP
//! client's DNS resolution ([`GuardedResolver`]), so a name that resolved to a public
//! address when saved and to a private one later (DNS rebinding) is still refused.

use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What an endpoint URL may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UrlPolicy {
    /// `http://` as well as `https://` (local use and tests).
    pub allow_http: bool,
    /// Private, loopback and other internal addresses (local use and tests).
    pub allow_private_networks: bool,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlRefused {
    #[error("the URL is not valid: {0}")]
    Invalid(String),
    #[error("the URL must use https")]
    NotHttps,
    #[error("the URL must use http or https")]
    BadScheme,
    #[error("the URL must not carry a user name or password")]
    Credentials,
    #[error("{0} is a private, loopback or reserved address")]
    PrivateAddress(IpAddr),
    #[error("{host} resolves to {address}, a private, loopback or reserved address")]
    ResolvesPrivate { host: String, address: IpAddr },
    #[error("{0} does not resolve")]
    Unresolvable(String),
}

/// Whether deliveries to this address are refused.
pub fn is_forbidden(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..=127).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_forbidden_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., hi, lo] = segments;
        let v4 = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
        return is_forbidden_v4(v4);
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (segments[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || (segments[0] == 0x0100 && segments[1..4] == [0, 0, 0]) // discard-only 100::/64
        || segments[..5] == [0, 0, 0, 0, 0] // IPv4-compatible ::a.b.c.d (deprecated)
}

/// Checks a URL without DNS: scheme, credentials, and literal addresses.
pub fn check_url(url: &str, policy: UrlPolicy) -> Result<Url, UrlRefused> {
    let parsed = Url::parse(url).map_err(|e| UrlRefused::Invalid(e.to_string()))?;
    match parsed.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => return Err(UrlRefused::NotHttps),
        _ => return Err(UrlRefused::BadScheme),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlRefused::Credentials);
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| UrlRefused::Invalid("no host".to_owned()))?;
    if !policy.allow_private_networks
        && let Some(address) = literal_address(host)
        && is_forbidden(address)
    {
        return Err(UrlRefused::PrivateAddress(address));
    }
    Ok(parsed)
}

/// Checks a URL including what its host resolves to now (when an endpoint is saved).
pub async fn check_url_resolving(url: &str, policy: UrlPolicy) -> Result<Url, UrlRefused> {
    let parsed = check_url(url, policy)?;
    let host = parsed.host_str().unwrap_or_default().to_owned();
    if policy.allow_private_networks || literal_address(&host).is_some() {
        return Ok(parsed);
    }
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 443))
        .await
        .map_err(|_| UrlRefused::Unresolvable(host.clone()))?
        .collect();
    if addresses.is_empty() {
        return Err(UrlRefused::Unresolvable(host));
    }
    if let Some(address) = addresses
        .iter()
        .map(SocketAddr::ip)
        .find(|ip| is_forbidden(*ip))
    {
        return Err(UrlRefused::ResolvesPrivate { host, address });
    }
    Ok(parsed)
}

/// `[::1]` and `127.0.0.1` as addresses; names as `None`.
fn literal_address(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// A DNS resolver for the delivery client that refuses names resolving to forbidden
/// addresses, at connection time.
#[derive(Clone, Copy, Debug)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(address) = resolved
                .iter()
                .map(SocketAddr::ip)
                .find(|ip| is_forbidden(*ip))
            {
                return Err(Box::new(UrlRefused::ResolvesPrivate { host, address })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            if resolved.is_empty() {
                return Err(Box::new(UrlRefused::Unresolvable(host))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            let addresses: Addrs = Box::new(resolved.into_iter());
            Ok(addresses)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: UrlPolicy = UrlPolicy {
        allow_http: false,
        allow_private_networks: false,
    };

    #[test]
    fn internal_addresses_are_forbidden() {
        for address in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2001:db8::1",
        ] {
            let ip: IpAddr = address.parse().expect(address);
            assert!(is_forbidden(ip), "{address} should be forbidden");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for address in [
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = address.parse().expect(address);
            assert!(!is_forbidden(ip), "{address} should be allowed");
        }
    }

    #[test]
    fn urls_are_checked_without_dns() {
        assert!(check_url("https://example.com/hook", STRICT).is_ok());
        assert_eq!(
            check_url("http://example.com/hook", STRICT),
            Err(UrlRefused::NotHttps)
        );
        assert_eq!(
            check_url("ftp://example.com/", STRICT),
            Err(UrlRefused::BadScheme)
        );
        assert_eq!(
            check_url("https://u:p@example.com/", STRICT),
            Err(UrlRefused::Credentials)
        );
        assert!(matches!(
            check_url("https://127.0.0.1/", STRICT),
            Err(UrlRefused::PrivateAddress(_))
        ));
        assert!(matches!(
            check_url("https://[::1]/", STRICT),
            Err(UrlRefused::PrivateAddress(_))
        ));
        assert!(matches!(
            check_url("https://[::ffff:127.0.0.1]/", STRICT),
            Err(UrlRefused::PrivateAddress(_))
        ));
        assert!(matches!(
            check_url("not a url", STRICT),
            Err(UrlRefused::Invalid(_))
        ));
        let open = UrlPolicy {
            allow_http: true,
            allow_private_networks: true,
        };
        assert!(check_url("http://127.0.0.1:9000/", open).is_ok());
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused() {
        assert!(matches!(
            check_url_resolving("https://localhost/hook", STRICT).await,
            Err(UrlRefused::ResolvesPrivate { .. })
        ));
    }
}
