//! Lockout after repeated failed authentication — only for clients with an
//! imported secret, and only for the address the failures came from.
//!
//! A `client_id` is not secret (it is the `sub` of every token the client
//! shows to resource servers), so a lockout keyed by the id alone lets anyone
//! cut a client off from tokens by sending wrong secrets. Lockout exists to
//! slow the guessing of low-entropy secrets:
//!
//! - a secret Portcullis generated (256 random bits) cannot be guessed, so
//!   such clients are never locked (per-address rate limits still apply, and
//!   failures are still audited and counted);
//! - a client with an imported secret (possibly chosen by a person) is locked
//!   *for one address* ([`address_group`]: an IPv4 address or an IPv6 /64)
//!   after `threshold` failures from it within `window`, for `duration`.
//!   The client's usual caller, at another address, keeps getting tokens.
//!
//! Failures and locks are kept in memory in each process (bounded): with N
//! replicas a guesser gets at most N × threshold tries per window per
//! address, each costing a slow hash check. A lock is answered exactly like a
//! wrong secret, after the same hash work.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::Mutex,
};

use chrono::{DateTime, Duration, Utc};

use super::client_ip::address_group;

/// Most (client, address) pairs tracked; beyond that the stalest is dropped.
const CAPACITY: usize = 50_000;

type Key = (String, String);

/// The failure counter and the locks.
pub struct Lockout {
    threshold: usize,
    window: Duration,
    duration: Duration,
    failures: Mutex<HashMap<Key, VecDeque<DateTime<Utc>>>>,
    locks: Mutex<HashMap<Key, DateTime<Utc>>>,
}

impl Lockout {
    /// Locks after `threshold` failures within `window` for `duration` (threshold 0: never).
    #[must_use]
    pub fn new(threshold: u32, window: Duration, duration: Duration) -> Self {
        Self {
            threshold: threshold as usize,
            window,
            duration,
            failures: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn key(client_id: &str, ip: IpAddr) -> Key {
        (client_id.to_owned(), address_group(ip))
    }

    /// Records a failed authentication of `client_id` (a registered client
    /// with an imported secret) from `ip`. Returns the lock's end when this
    /// failure reaches the threshold (the pair is then locked).
    pub fn record_failure(
        &self,
        client_id: &str,
        ip: IpAddr,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if self.threshold == 0 {
            return None;
        }
        let key = Self::key(client_id, ip);
        let reached = {
            let mut failures = self.failures.lock().ok()?;
            if failures.len() >= CAPACITY && !failures.contains_key(&key) {
                let horizon = now - self.window;
                failures.retain(|_, t| t.back().is_some_and(|t| *t > horizon));
                if failures.len() >= CAPACITY {
                    evict_stalest(&mut failures, |t| t.back().copied());
                }
            }
            let times = failures.entry(key.clone()).or_default();
            times.push_back(now);
            while times.front().is_some_and(|t| *t <= now - self.window) {
                times.pop_front();
            }
            let reached = times.len() >= self.threshold;
            if reached {
                failures.remove(&key);
            }
            reached
        };
        if !reached {
            return None;
        }
        let until = now + self.duration;
        let mut locks = self.locks.lock().ok()?;
        locks.retain(|_, t| *t > now);
        if locks.len() >= CAPACITY {
            evict_stalest(&mut locks, |t| Some(*t));
        }
        locks.insert(key, until);
        Some(until)
    }

    /// Whether `client_id` is locked for `ip` at `now`.
    #[must_use]
    pub fn locked(&self, client_id: &str, ip: IpAddr, now: DateTime<Utc>) -> bool {
        let key = Self::key(client_id, ip);
        self.locks
            .lock()
            .is_ok_and(|locks| locks.get(&key).is_some_and(|t| *t > now))
    }

    /// Forgets the failures of `client_id` from `ip` (after a success there).
    pub fn clear(&self, client_id: &str, ip: IpAddr) {
        if let Ok(mut failures) = self.failures.lock() {
            if !failures.is_empty() {
                failures.remove(&Self::key(client_id, ip));
            }
        }
    }

    /// Lifts every lock and forgets every failure of `client_id` (an admin unlock).
    pub fn unlock(&self, client_id: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.retain(|(c, _), _| c != client_id);
        }
        if let Ok(mut locks) = self.locks.lock() {
            locks.retain(|(c, _), _| c != client_id);
        }
    }
}

/// Drops the entry whose time (by `at`) is the oldest.
fn evict_stalest<V>(map: &mut HashMap<Key, V>, at: impl Fn(&V) -> Option<DateTime<Utc>>) {
    if let Some(stalest) = map
        .iter()
        .min_by_key(|(_, v)| at(v))
        .map(|(k, _)| k.clone())
    {
        map.remove(&stalest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_threshold_within_the_window_locks_that_address_only() {
        let lockout = Lockout::new(3, Duration::seconds(60), Duration::seconds(600));
        let (attacker, caller) = (ip("203.0.113.7"), ip("198.51.100.2"));
        assert_eq!(lockout.record_failure("a", attacker, t(0)), None);
        assert_eq!(lockout.record_failure("a", attacker, t(30)), None);
        assert_eq!(
            lockout.record_failure("a", attacker, t(70)),
            None,
            "the first failure left the window"
        );
        assert_eq!(lockout.record_failure("a", attacker, t(71)), Some(t(671)));
        assert!(lockout.locked("a", attacker, t(670)));
        assert!(!lockout.locked("a", attacker, t(671)), "ended");
        assert!(!lockout.locked("a", caller, t(100)), "per address");
        assert!(!lockout.locked("b", attacker, t(100)), "per client");
        assert_eq!(lockout.record_failure("b", attacker, t(71)), None);
    }

    #[test]
    fn an_ipv6_64_counts_as_one_address_and_success_or_unlock_clears() {
        let lockout = Lockout::new(2, Duration::seconds(60), Duration::seconds(600));
        lockout.record_failure("a", ip("2001:db8::1"), t(0));
        assert!(lockout
            .record_failure("a", ip("2001:db8::2"), t(1))
            .is_some());
        assert!(lockout.locked("a", ip("2001:db8::ffff"), t(2)));
        assert!(!lockout.locked("a", ip("2001:db8:0:1::1"), t(2)));
        lockout.unlock("a");
        assert!(!lockout.locked("a", ip("2001:db8::1"), t(2)), "unlocked");
        lockout.record_failure("c", ip("192.0.2.1"), t(0));
        lockout.clear("c", ip("192.0.2.1"));
        assert_eq!(lockout.record_failure("c", ip("192.0.2.1"), t(1)), None);
        let never = Lockout::new(0, Duration::seconds(1), Duration::seconds(1));
        assert_eq!(never.record_failure("x", ip("192.0.2.1"), t(0)), None);
    }

    #[test]
    fn a_failure_exactly_one_window_old_no_longer_counts() {
        let lockout = Lockout::new(3, Duration::seconds(60), Duration::seconds(600));
        let attacker = ip("203.0.113.7");
        lockout.record_failure("a", attacker, t(0));
        lockout.record_failure("a", attacker, t(30));
        assert_eq!(lockout.record_failure("a", attacker, t(60)), None);
        assert_eq!(lockout.record_failure("a", attacker, t(61)), Some(t(661)));
    }

    #[test]
    fn pairs_count_and_lock_independently() {
        let lockout = Lockout::new(2, Duration::seconds(60), Duration::seconds(600));
        let (one, two) = (ip("203.0.113.7"), ip("198.51.100.2"));
        // Interleaved failures of two pairs both count.
        assert_eq!(lockout.record_failure("a", one, t(0)), None);
        assert_eq!(lockout.record_failure("b", two, t(1)), None);
        assert_eq!(lockout.record_failure("a", two, t(2)), None);
        assert!(lockout.record_failure("a", one, t(3)).is_some());
        assert!(lockout.record_failure("b", two, t(4)).is_some());
        // A second lock leaves the first in place.
        assert!(lockout.locked("a", one, t(5)));
        assert!(lockout.locked("b", two, t(5)));
        assert!(!lockout.locked("a", two, t(5)));
    }

    #[test]
    fn unlock_forgets_that_clients_failures_only() {
        let lockout = Lockout::new(2, Duration::seconds(60), Duration::seconds(600));
        let addr = ip("203.0.113.7");
        lockout.record_failure("a", addr, t(0));
        lockout.record_failure("b", addr, t(0));
        lockout.unlock("a");
        assert_eq!(lockout.record_failure("a", addr, t(1)), None, "forgotten");
        assert!(lockout.record_failure("b", addr, t(1)).is_some(), "kept");
        lockout.unlock("a");
        assert!(
            lockout.locked("b", addr, t(2)),
            "another client's lock stays"
        );
    }

    #[test]
    fn memory_stays_bounded_under_a_spread_out_flood() {
        let lockout = Lockout::new(5, Duration::seconds(60), Duration::seconds(600));
        for n in 0..(CAPACITY as u32 + 10) {
            let addr = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            lockout.record_failure("a", addr, t(0));
        }
        assert!(lockout.failures.lock().unwrap().len() <= CAPACITY);
    }

    #[test]
    fn a_full_table_drops_expired_failures_before_live_ones() {
        let lockout = Lockout::new(2, Duration::seconds(60), Duration::seconds(600));
        for n in 0..(CAPACITY as u32 - 1) {
            let addr = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            lockout.record_failure("flood", addr, t(0));
        }
        let attacker = ip("203.0.113.7");
        lockout.record_failure("a", attacker, t(50));
        // The table is full; the flood's failures are out of the window by now.
        lockout.record_failure("b", ip("198.51.100.2"), t(70));
        assert_eq!(lockout.failures.lock().unwrap().len(), 2);
        assert!(
            lockout.record_failure("a", attacker, t(71)).is_some(),
            "the live count survived"
        );
    }
}
