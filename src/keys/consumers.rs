//! The rotation safety signal: which JWKS version each consumer (source
//! address + `User-Agent`) fetched last, and when.
//!
//! The JWKS handler records sightings in memory (no database write per
//! request); the key check flushes them to the store, where every replica's
//! sightings meet, so a rotation can ask "who has not yet seen the next key?".

use std::{collections::HashMap, sync::Mutex};

use chrono::{DateTime, Utc};

/// Longest `User-Agent` kept, in characters.
const MAX_USER_AGENT: usize = 200;

/// One consumer's latest JWKS fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sighting {
    /// Source IP address.
    pub address: String,
    /// `User-Agent` header (truncated), empty when absent.
    pub user_agent: String,
    /// The `ETag` of the version it holds.
    pub etag: String,
    /// The key ids in that version, space-separated.
    pub kids: String,
    /// When it fetched or revalidated it.
    pub seen_at: DateTime<Utc>,
}

impl Sighting {
    /// Whether the version this consumer holds publishes `kid`.
    #[must_use]
    pub fn has_kid(&self, kid: &str) -> bool {
        self.kids.split(' ').any(|k| k == kid)
    }
}

/// Sightings not yet flushed, bounded in size (the oldest are dropped).
pub struct ConsumerTracker {
    pending: Mutex<HashMap<(String, String), Sighting>>,
    capacity: usize,
}

impl ConsumerTracker {
    /// A tracker holding at most `capacity` consumers between flushes.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Records that `address`/`user_agent` now holds the JWKS `etag` with `kids`.
    pub fn record(
        &self,
        address: &str,
        user_agent: &str,
        etag: &str,
        kids: &str,
        now: DateTime<Utc>,
    ) {
        let user_agent: String = user_agent.chars().take(MAX_USER_AGENT).collect();
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let key = (address.to_owned(), user_agent);
        if let Some(s) = pending.get_mut(&key) {
            if s.etag != etag {
                etag.clone_into(&mut s.etag);
                kids.clone_into(&mut s.kids);
            }
            s.seen_at = now;
            return;
        }
        if pending.len() >= self.capacity {
            if let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, s)| s.seen_at)
                .map(|(k, _)| k.clone())
            {
                pending.remove(&oldest);
            }
        }
        let sighting = Sighting {
            address: key.0.clone(),
            user_agent: key.1.clone(),
            etag: etag.to_owned(),
            kids: kids.to_owned(),
            seen_at: now,
        };
        pending.insert(key, sighting);
    }

    /// Takes every pending sighting.
    pub fn drain(&self) -> Vec<Sighting> {
        self.pending
            .lock()
            .map(|mut p| p.drain().map(|(_, s)| s).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_version_per_consumer_within_capacity() {
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        let tracker = ConsumerTracker::new(2);
        tracker.record("10.0.0.1", "envoy", "\"a\"", "k1", t(1));
        tracker.record("10.0.0.1", "envoy", "\"b\"", "k1 k2", t(2));
        tracker.record("10.0.0.2", "istio", "\"a\"", "k1", t(3));
        tracker.record("10.0.0.3", "curl", "\"b\"", "k1 k2", t(4));
        let mut seen = tracker.drain();
        seen.sort_by_key(|s| s.seen_at);
        assert_eq!(
            seen.len(),
            2,
            "capacity bounds memory; the oldest is dropped"
        );
        assert_eq!(seen[0].address, "10.0.0.2");
        assert!(seen[1].has_kid("k2") && !seen[0].has_kid("k2"));
        assert!(tracker.drain().is_empty());
    }
}
