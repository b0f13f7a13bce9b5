//! Abuse protection for the OAuth, JWKS and admin endpoints (SPEC §3 "Abuse
//! limits"): the caller's address behind trusted proxies, GCRA rate limits
//! per address (IPv6: per /64) and per client, token quotas per client and window,
//! lockout after repeated failed authentication, and the in-process assertion
//! replay set used while the database is unreachable.

pub mod client_ip;
pub mod lockout;
pub mod period;
pub mod quota;
pub mod rate_limit;
pub mod replay;

/// A request refused by a limit: when to retry, and which limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    /// Seconds until a retry can succeed (at least 1).
    pub retry_after: u64,
    /// The limit that refused it (`ip`, `client`, `admin`, `jwks`, `quota_hour`,
    /// `quota_day`).
    pub limit: &'static str,
}
