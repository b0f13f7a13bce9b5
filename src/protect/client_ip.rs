//! The caller's address: the TCP peer, or — only when the peer is a
//! configured trusted proxy — the nearest untrusted address in
//! `X-Forwarded-For`. From anyone else the header is ignored, so it cannot be
//! used to dodge per-address limits.
//!
//! Per-address limits and the JWKS consumer bounds count an [`address_group`]:
//! an IPv4 address, or the /64 network of an IPv6 address (one host usually
//! holds a whole /64, so counting single IPv6 addresses would let it multiply
//! its budget). IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) count as IPv4.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv6Net};

/// The prefix length IPv6 addresses are grouped by.
pub const IPV6_GROUP_PREFIX: u8 = 64;

/// The address as limits see it: IPv4-mapped IPv6 addresses become IPv4.
#[must_use]
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The key per-address limits count under: the IPv4 address itself
/// (`192.0.2.1`), or the IPv6 address's /64 network (`2001:db8:1:2::/64`).
#[must_use]
pub fn address_group(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => Ipv6Net::new(v6, IPV6_GROUP_PREFIX)
            .map_or_else(|_| v6.to_string(), |n| n.trunc().to_string()),
    }
}

/// Addresses and networks whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.1`) and networks (`10.0.0.0/8`).
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| {
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("trusted_proxies: {e:?} is not an IP address or network"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `ip` is a trusted proxy.
    #[must_use]
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client address of a request from `peer` carrying `forwarded_for`.
    #[must_use]
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let Some(header) = forwarded_for else {
            return peer;
        };
        let hops: Vec<IpAddr> = header
            .split(',')
            .filter_map(|h| h.trim().parse().ok())
            .collect();
        // Walk from the nearest hop outwards; the first address we do not trust is the client.
        hops.iter()
            .rev()
            .find(|ip| !self.trusts(**ip))
            .or(hops.first())
            .copied()
            .unwrap_or(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.168.1.5".into()]).unwrap();
        let xff = Some("203.0.113.9, 10.1.2.3");
        assert_eq!(proxies.client_ip(ip("10.9.9.9"), xff), ip("203.0.113.9"));
        assert_eq!(
            proxies.client_ip(ip("192.168.1.5"), Some("198.51.100.7")),
            ip("198.51.100.7")
        );
        assert_eq!(
            proxies.client_ip(ip("198.51.100.1"), xff),
            ip("198.51.100.1"),
            "untrusted peer"
        );
        assert_eq!(
            proxies.client_ip(ip("10.9.9.9"), Some("garbage")),
            ip("10.9.9.9")
        );
        assert_eq!(
            proxies.client_ip(ip("10.9.9.9"), Some("10.1.1.1")),
            ip("10.1.1.1"),
            "all trusted"
        );
        assert!(TrustedProxies::parse(&["not-an-ip".into()]).is_err());
    }

    #[test]
    fn ipv6_addresses_group_by_64_and_ipv4_stays_per_address() {
        let g = |s| address_group(ip(s));
        assert_eq!(g("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(
            g("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            g("2001:db8:1:2::1"),
            "one /64"
        );
        assert_ne!(g("2001:db8:1:3::1"), g("2001:db8:1:2::1"), "another /64");
        assert_eq!(g("192.0.2.1"), "192.0.2.1");
        assert_ne!(g("192.0.2.1"), g("192.0.2.2"), "IPv4 is not grouped");
        assert_eq!(g("::ffff:192.0.2.1"), "192.0.2.1", "IPv4-mapped is IPv4");
        assert_eq!(canonical(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }
}
