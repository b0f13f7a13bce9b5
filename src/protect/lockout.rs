//! Lockout after repeated failed authentication of one client id.
//!
//! Failures are counted in memory per process; the lock itself is stored on
//! the client (so every replica honours it). A locked client is answered
//! exactly like a wrong secret, after the same argon2 work, so a lock reveals
//! neither the lock nor the client's existence.
//!
//! While the database is unreachable a lock cannot be stored: it is then
//! kept here, in this process only, until it ends ([`Lockout::lock_locally`]).

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use chrono::{DateTime, Duration, Utc};

/// The failure counter.
pub struct Lockout {
    threshold: usize,
    window: Duration,
    duration: Duration,
    failures: Mutex<HashMap<String, VecDeque<DateTime<Utc>>>>,
    /// Locks that could not be stored (database unavailable), until when.
    local_locks: Mutex<HashMap<String, DateTime<Utc>>>,
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
            local_locks: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failed authentication of `client_id` (a registered client).
    /// Returns the lock's end when this failure reaches the threshold.
    pub fn record_failure(&self, client_id: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.threshold == 0 {
            return None;
        }
        let Ok(mut failures) = self.failures.lock() else {
            return None;
        };
        let times = failures.entry(client_id.to_owned()).or_default();
        times.push_back(now);
        while times.front().is_some_and(|t| *t <= now - self.window) {
            times.pop_front();
        }
        if times.len() >= self.threshold {
            failures.remove(client_id);
            return Some(now + self.duration);
        }
        None
    }

    /// Locks `client_id` in this process until `until` (the database could
    /// not store the lock). Ended locks are forgotten on the way.
    pub fn lock_locally(&self, client_id: &str, until: DateTime<Utc>, now: DateTime<Utc>) {
        if let Ok(mut locks) = self.local_locks.lock() {
            locks.retain(|_, t| *t > now);
            locks.insert(client_id.to_owned(), until);
        }
    }

    /// Whether `client_id` is locked in this process at `now`.
    #[must_use]
    pub fn locally_locked(&self, client_id: &str, now: DateTime<Utc>) -> bool {
        self.local_locks
            .lock()
            .is_ok_and(|locks| locks.get(client_id).is_some_and(|t| *t > now))
    }

    /// Forgets the failures of `client_id` (after a success or an unlock).
    pub fn clear(&self, client_id: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(client_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_within_the_window_locks() {
        let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let lockout = Lockout::new(3, Duration::seconds(60), Duration::seconds(600));
        assert_eq!(lockout.record_failure("a", t(0)), None);
        assert_eq!(lockout.record_failure("a", t(30)), None);
        assert_eq!(
            lockout.record_failure("a", t(70)),
            None,
            "the first failure left the window"
        );
        assert_eq!(lockout.record_failure("a", t(71)), Some(t(671)));
        assert_eq!(lockout.record_failure("b", t(71)), None, "per client");
        lockout.record_failure("c", t(0));
        lockout.clear("c");
        lockout.record_failure("c", t(1));
        assert_eq!(lockout.record_failure("c", t(2)), None);
        assert_eq!(
            Lockout::new(0, Duration::seconds(1), Duration::seconds(1)).record_failure("x", t(0)),
            None
        );
    }

    #[test]
    fn a_local_lock_holds_until_it_ends() {
        let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let lockout = Lockout::new(3, Duration::seconds(60), Duration::seconds(600));
        lockout.lock_locally("a", t(600), t(0));
        assert!(lockout.locally_locked("a", t(599)));
        assert!(!lockout.locally_locked("a", t(600)), "ended");
        assert!(!lockout.locally_locked("b", t(1)), "per client");
    }
}
