//! GCRA rate limits (governor) per source address, per client, per address
//! on the admin API and per address on the JWKS. Time comes from the server
//! [`Clock`], so tests move it instead of sleeping.
//!
//! "Per address" means per [`address_group`]: an IPv4 address, or an IPv6
//! /64 (IPv4-mapped IPv6 addresses count as IPv4).

use std::{
    collections::HashMap,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use governor::{
    clock::Clock as GovernorClock, middleware::NoOpMiddleware,
    state::keyed::DefaultKeyedStateStore, state::InMemoryState, state::NotKeyed, Quota,
    RateLimiter,
};

use super::{client_ip::address_group, Limited};
use crate::{clients::Client, clock::Clock, config::Settings};

/// The server clock as governor's clock: time since the epoch.
#[derive(Clone, Debug)]
pub struct LimiterClock(Clock);

impl GovernorClock for LimiterClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_micros(u64::try_from(self.0.now().timestamp_micros()).unwrap_or(0))
    }
}

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, LimiterClock, NoOpMiddleware<Duration>>;
type Direct = RateLimiter<NotKeyed, InMemoryState, LimiterClock, NoOpMiddleware<Duration>>;

/// A rate: sustained requests per second and burst.
fn quota(per_second: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    Some(Quota::per_second(rate).allow_burst(NonZeroU32::new(burst.max(1))?))
}

/// Every rate limiter of the server.
pub struct RateLimits {
    clock: LimiterClock,
    ip: Option<Keyed>,
    admin: Option<Keyed>,
    jwks: Option<Keyed>,
    client: Option<Keyed>,
    overrides: Mutex<HashMap<String, Override>>,
}

/// A client's own limiter and the `(rate, burst)` it was built for.
type Override = ((u32, u32), Arc<Direct>);

impl RateLimits {
    /// Limits as configured; a rate of 0 disables that limit.
    #[must_use]
    pub fn new(settings: &Settings, clock: Clock) -> Self {
        let clock = LimiterClock(clock);
        let keyed = |per_second, burst| {
            quota(per_second, burst)
                .map(|q| RateLimiter::new(q, DefaultKeyedStateStore::default(), clock.clone()))
        };
        Self {
            ip: keyed(
                settings.limits.rate_limit_ip_per_second,
                settings.limits.rate_limit_ip_burst,
            ),
            admin: keyed(
                settings.limits.rate_limit_admin_per_second,
                settings.limits.rate_limit_admin_burst,
            ),
            jwks: keyed(
                settings.limits.rate_limit_jwks_per_second,
                settings.limits.rate_limit_jwks_burst,
            ),
            client: keyed(
                settings.limits.rate_limit_client_per_second,
                settings.limits.rate_limit_client_burst,
            ),
            overrides: Mutex::new(HashMap::new()),
            clock,
        }
    }

    fn check(
        &self,
        limiter: Option<&Keyed>,
        key: &str,
        limit: &'static str,
    ) -> Result<(), Limited> {
        let Some(limiter) = limiter else {
            return Ok(());
        };
        limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| Limited {
                retry_after: not_until
                    .wait_time_from(self.clock.now())
                    .as_secs_f64()
                    .ceil()
                    .max(1.0) as u64,
                limit,
            })
    }

    /// The per-address limit of the OAuth endpoints.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Limited> {
        self.check_addr(self.ip.as_ref(), ip, "ip")
    }

    /// The per-address limit of the admin API.
    pub fn check_admin(&self, ip: IpAddr) -> Result<(), Limited> {
        self.check_addr(self.admin.as_ref(), ip, "admin")
    }

    /// The per-address limit of `GET /.well-known/jwks.json`.
    pub fn check_jwks(&self, ip: IpAddr) -> Result<(), Limited> {
        self.check_addr(self.jwks.as_ref(), ip, "jwks")
    }

    /// The address is turned into its group's key only when the limit is on
    /// (not on every request).
    fn check_addr(
        &self,
        limiter: Option<&Keyed>,
        ip: IpAddr,
        limit: &'static str,
    ) -> Result<(), Limited> {
        match limiter {
            Some(_) => self.check(limiter, &address_group(ip), limit),
            None => Ok(()),
        }
    }

    /// The per-client limit of an authenticated client (never counted for
    /// failed authentications, so nobody can use up another client's rate by
    /// naming its id): the client's own rate when it has one, else the default.
    pub fn check_client(&self, claimed_id: &str, client: Option<&Client>) -> Result<(), Limited> {
        let Some((client, per_second)) =
            client.and_then(|c| c.rate_limit_per_second.map(|r| (c, r)))
        else {
            return self.check(self.client.as_ref(), claimed_id, "client");
        };
        let burst = client
            .rate_limit_burst
            .unwrap_or(per_second.saturating_mul(2));
        let limiter = {
            let Ok(mut overrides) = self.overrides.lock() else {
                return Ok(());
            };
            let entry = overrides
                .entry(client.id.to_string())
                .or_insert_with(|| ((0, 0), Arc::new(direct(1, 1, &self.clock))));
            if entry.0 != (per_second, burst) {
                *entry = (
                    (per_second, burst),
                    Arc::new(direct(per_second, burst, &self.clock)),
                );
            }
            Arc::clone(&entry.1)
        };
        limiter.check().map_err(|not_until| Limited {
            retry_after: not_until
                .wait_time_from(self.clock.now())
                .as_secs_f64()
                .ceil()
                .max(1.0) as u64,
            limit: "client",
        })
    }

    /// Forgets addresses and clients that are back to a full burst (bounds memory).
    pub fn retain_recent(&self) {
        for limiter in [&self.ip, &self.admin, &self.jwks, &self.client]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

fn direct(per_second: u32, burst: u32, clock: &LimiterClock) -> Direct {
    let q = quota(per_second.max(1), burst).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN));
    RateLimiter::direct_with_clock(q, clock.clone())
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use figment::{providers::Serialized, Figment};

    use super::*;

    fn limits(overrides: &serde_json::Value) -> RateLimits {
        let settings =
            Settings::from_figment(&Figment::new().merge(Serialized::defaults(overrides))).unwrap();
        RateLimits::new(
            &settings,
            Clock::manual(DateTime::from_timestamp(1_800_000_000, 0).unwrap()),
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_bucket() {
        let l = limits(&serde_json::json!({
            "rate_limit_ip_per_second": 1, "rate_limit_ip_burst": 1,
        }));
        assert!(l.check_ip(ip("2001:db8:1:2::1")).is_ok());
        assert_eq!(
            l.check_ip(ip("2001:db8:1:2::ffff")).map_err(|e| e.limit),
            Err("ip"),
            "same /64: the bucket is spent"
        );
        assert!(l.check_ip(ip("2001:db8:1:3::1")).is_ok(), "another /64");
        assert!(l.check_ip(ip("192.0.2.1")).is_ok());
        assert!(l.check_ip(ip("192.0.2.2")).is_ok(), "IPv4 per address");
        assert!(
            l.check_ip(ip("::ffff:192.0.2.1")).is_err(),
            "IPv4-mapped counts as the IPv4 address"
        );
    }

    #[test]
    fn the_jwks_limit_counts_per_address_group() {
        let l = limits(&serde_json::json!({
            "rate_limit_jwks_per_second": 1, "rate_limit_jwks_burst": 1,
        }));
        assert!(l.check_jwks(ip("2001:db8:1:2::1")).is_ok());
        let refused = l.check_jwks(ip("2001:db8:1:2::2")).unwrap_err();
        assert_eq!((refused.limit, refused.retry_after), ("jwks", 1));
        assert!(l.check_jwks(ip("192.0.2.1")).is_ok());
    }
}
