//! The client's address, and whether it may reach the dashboard at all.
//!
//! `X-Forwarded-For` is believed only when the connection comes from a configured trusted
//! proxy; then the client is the right-most address in it that is not itself a trusted proxy.

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

#[derive(Clone, Debug)]
pub struct Allowlist {
    pub allow: Vec<IpNet>,
    pub trusted_proxies: Vec<IpNet>,
}

impl Allowlist {
    /// The client's address for a connection from `peer` carrying `forwarded_for`.
    pub fn client(&self, peer: Option<SocketAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let peer = peer?.ip();
        if !self.trusted(peer) {
            return Some(peer);
        }
        let Some(header) = forwarded_for else {
            return Some(peer);
        };
        let mut client = peer;
        for hop in header.rsplit(',').map(str::trim) {
            let Ok(address) = hop.parse::<IpAddr>() else {
                break;
            };
            client = address;
            if !self.trusted(address) {
                break;
            }
        }
        Some(client)
    }

    pub fn allows(&self, client: IpAddr) -> bool {
        let client = canonical(client);
        self.allow.iter().any(|net| net.contains(&client))
    }

    fn trusted(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.trusted_proxies
            .iter()
            .any(|net| net.contains(&address))
    }
}

/// `::ffff:10.0.0.1` is `10.0.0.1`.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(allow: &str, proxies: &str) -> Allowlist {
        let nets = |s: &str| {
            s.split(',')
                .filter(|p| !p.is_empty())
                .map(|p| p.parse().expect("net"))
                .collect()
        };
        Allowlist {
            allow: nets(allow),
            trusted_proxies: nets(proxies),
        }
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let allowlist = list("10.0.0.0/8", "192.168.1.1/32");
        let from_proxy = Some("192.168.1.1:5000".parse().expect("addr"));
        let from_elsewhere = Some("203.0.113.9:5000".parse().expect("addr"));
        let client = allowlist.client(from_proxy, Some("1.2.3.4, 10.1.2.3"));
        assert_eq!(client, Some("10.1.2.3".parse().expect("ip")));
        assert!(allowlist.allows(client.expect("client")));
        let spoofed = allowlist.client(from_elsewhere, Some("10.1.2.3"));
        assert_eq!(spoofed, Some("203.0.113.9".parse().expect("ip")));
        assert!(!allowlist.allows(spoofed.expect("client")));
    }

    #[test]
    fn mapped_addresses_match_their_ipv4_network() {
        let allowlist = list("127.0.0.0/8", "");
        assert!(allowlist.allows("::ffff:127.0.0.1".parse().expect("ip")));
    }
}
