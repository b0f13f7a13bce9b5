//! Where the server may fetch a client's `jwks_uri` from: only public
//! unicast addresses. Private (RFC 1918), loopback, link-local (with the
//! cloud metadata endpoints), unique-local, shared (CGNAT), unspecified,
//! multicast, broadcast, documentation, benchmarking and reserved ranges are
//! refused, also when an IPv6 address embeds one (IPv4-mapped, IPv4-compatible,
//! NAT64, 6to4). Loopback is allowed only for local development
//! (`jwks_uri_allow_loopback`).
//!
//! [`GuardedResolver`] applies the check after DNS resolution, at connection
//! time: it resolves the host itself, refuses the name if any address is not
//! allowed, and hands the HTTP client only the checked addresses, so a name
//! that changes its answer between a check and the connection (DNS rebinding)
//! cannot reach an internal address.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs as _},
    sync::Arc,
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether the server may connect to `ip` to fetch a client's keys.
#[must_use]
pub fn fetch_allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_allowed(v4, allow_loopback),
        IpAddr::V6(v6) => v6_allowed(v6, allow_loopback),
    }
}

/// Whether `ip` is within `net`/`prefix`.
fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

/// IPv4 networks never fetched from.
const DENIED_V4: [([u8; 4], u32); 15] = [
    ([0, 0, 0, 0], 8),       // "this network", unspecified
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // shared address space (CGNAT; Alibaba metadata)
    ([169, 254, 0, 0], 16),  // link-local (AWS, GCP, Azure metadata)
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation
    ([192, 31, 196, 0], 24), // AS112
    ([192, 52, 193, 0], 24), // AMT
    ([192, 88, 99, 0], 24),  // 6to4 relay anycast
    ([192, 168, 0, 0], 16),  // private
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation
    ([203, 0, 113, 0], 24),  // documentation
    ([224, 0, 0, 0], 3),     // multicast, reserved, broadcast
];

fn v4_allowed(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    if ip.is_loopback() {
        return allow_loopback;
    }
    !DENIED_V4
        .iter()
        .any(|(net, prefix)| in_v4(ip, *net, *prefix))
}

/// Whether `ip` is within `net`/`prefix`.
fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

fn v6_allowed(ip: Ipv6Addr, allow_loopback: bool) -> bool {
    let segments = ip.segments();
    if ip.is_loopback() {
        return allow_loopback;
    }
    if ip.is_unspecified() {
        return false;
    }
    // ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible, deprecated) and
    // 64:ff9b::a.b.c.d (NAT64) reach an IPv4 address: judge that one.
    let o = ip.octets();
    let embedded = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_allowed(v4, allow_loopback);
    }
    if segments[..6] == [0; 6] || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return v4_allowed(embedded, false);
    }
    // 6to4 (2002::/16) carries the IPv4 address in bits 16..48.
    if segments[0] == 0x2002 {
        return v4_allowed(Ipv4Addr::new(o[2], o[3], o[4], o[5]), false);
    }
    let net = |s: [u16; 8]| Ipv6Addr::from(s);
    let denied: [(Ipv6Addr, u32); 9] = [
        (net([0x64, 0xff9b, 1, 0, 0, 0, 0, 0]), 48), // NAT64 local use
        (net([0x100, 0, 0, 0, 0, 0, 0, 0]), 64),     // discard-only
        (net([0x2001, 0, 0, 0, 0, 0, 0, 0]), 23),    // IETF protocol assignments (Teredo, …)
        (net([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0]), 32), // documentation
        (net([0x3fff, 0, 0, 0, 0, 0, 0, 0]), 20),    // documentation
        (net([0xfc00, 0, 0, 0, 0, 0, 0, 0]), 7),     // unique local (AWS metadata fd00:ec2::254)
        (net([0xfe80, 0, 0, 0, 0, 0, 0, 0]), 10),    // link-local
        (net([0xfec0, 0, 0, 0, 0, 0, 0, 0]), 10),    // site-local (deprecated)
        (net([0xff00, 0, 0, 0, 0, 0, 0, 0]), 8),     // multicast
    ];
    !denied.iter().any(|(n, prefix)| in_v6(ip, *n, *prefix))
}

/// A DNS resolver for the key fetcher that returns only allowed addresses
/// and fails when any address of the name is not allowed.
#[derive(Debug)]
pub struct GuardedResolver {
    allow_loopback: bool,
    allow_private: bool,
}

impl GuardedResolver {
    /// A resolver allowing loopback addresses only when `allow_loopback`.
    #[must_use]
    pub fn new(allow_loopback: bool) -> Arc<Self> {
        Arc::new(Self {
            allow_loopback,
            allow_private: false,
        })
    }

    /// A resolver that also allows private addresses (not loopback unless
    /// `allow_loopback`): for fetches pinned to an administrator's CA
    /// bundle, where only a server holding a certificate of that CA can answer.
    #[must_use]
    pub fn trusting_private(allow_loopback: bool) -> Arc<Self> {
        Arc::new(Self {
            allow_loopback,
            allow_private: true,
        })
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let lookup = host.clone();
            let addrs: Vec<SocketAddr> =
                tokio::task::spawn_blocking(move || (lookup.as_str(), 0).to_socket_addrs())
                    .await??
                    .collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no address").into());
            }
            if let Some(bad) = addrs.iter().find(|a| {
                let private_ok = allow_private && !a.ip().is_loopback();
                !private_ok && !fetch_allowed(a.ip(), allow_loopback)
            }) {
                return Err(format!(
                    "{host} resolves to {}, which is not a public address",
                    bad.ip()
                )
                .into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_ipv4_addresses_are_allowed_and_internal_ones_refused() {
        for ok in [
            "93.184.215.14",
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
        ] {
            assert!(fetch_allowed(ip(ok), false), "{ok}");
        }
        for bad in [
            "169.254.169.254",
            "169.254.0.1",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.100.100.200",
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "192.0.0.170",
        ] {
            assert!(!fetch_allowed(ip(bad), false), "{bad}");
        }
    }

    #[test]
    fn public_ipv6_addresses_are_allowed_and_internal_or_embedding_ones_refused() {
        for ok in [
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(fetch_allowed(ip(ok), false), "{ok}");
        }
        for bad in [
            "::",
            "::1",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "3fff::1",
            "100::1",
            "2001::1",
            "64:ff9b:1::1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:0.0.0.0",
            "::169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2002:0a00:0001::1",
        ] {
            assert!(!fetch_allowed(ip(bad), false), "{bad}");
        }
    }

    #[test]
    fn loopback_only_with_the_development_setting() {
        for lo in ["127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"] {
            assert!(!fetch_allowed(ip(lo), false), "{lo}");
            assert!(fetch_allowed(ip(lo), true), "{lo}");
        }
        // Only loopback: the rest stays refused.
        for bad in ["10.0.0.1", "169.254.169.254", "::", "fd00::1", "0.0.0.0"] {
            assert!(!fetch_allowed(ip(bad), true), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_with_an_internal_address() {
        let guarded = GuardedResolver::new(false);
        let err = guarded
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost is loopback");
        assert!(err.to_string().contains("not a public address"), "{err}");
        let dev = GuardedResolver::new(true);
        let addrs: Vec<SocketAddr> = dev
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
