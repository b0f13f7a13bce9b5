//! The rotation safety signal: which JWKS version each consumer fetched last,
//! and when.
//!
//! A consumer is a source address and `User-Agent`. The JWKS endpoint is
//! public, so one caller must not be able to mint consumers at will: at most
//! [`ConsumerLimits::per_address`] user agents are tracked separately per
//! address group (an IPv4 address, or an IPv6 /64); once a group shows more,
//! all of its sightings fold into one consumer, `(group, "*")`, holding the
//! version of the group's latest fetch. At most [`ConsumerLimits::total`]
//! consumers are kept; sightings of new consumers beyond that are dropped.
//!
//! The JWKS handler records sightings in memory (no database write per
//! request); the key check flushes them to the store (which applies the same
//! bounds across flushes and replicas), so a rotation can ask "who has not
//! yet seen the next key?".

use std::{collections::HashMap, net::IpAddr, sync::Mutex};

use chrono::{DateTime, Utc};

use crate::protect::client_ip::{address_group, canonical};

/// Longest `User-Agent` kept, in characters.
const MAX_USER_AGENT: usize = 200;

/// The `User-Agent` of a folded consumer: every user agent of its address group.
pub const FOLDED: &str = "*";

/// How many consumers are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsumerLimits {
    /// User agents tracked separately per address group (0: one consumer per group).
    pub per_address: usize,
    /// Consumers kept in all.
    pub total: usize,
}

/// One consumer's latest JWKS fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sighting {
    /// Source IP address, or the address group of a folded consumer.
    pub address: String,
    /// The address group the bounds count under (IPv4 address or IPv6 /64).
    pub group: String,
    /// `User-Agent` header (truncated), empty when absent; [`FOLDED`] for a folded consumer.
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

    /// Whether this is the folded consumer of its address group.
    #[must_use]
    pub fn is_folded(&self) -> bool {
        self.user_agent == FOLDED
    }

    /// Takes `other`'s version when it is at least as recent.
    fn absorb(&mut self, other: &Self) {
        if other.seen_at >= self.seen_at {
            other.etag.clone_into(&mut self.etag);
            other.kids.clone_into(&mut self.kids);
            self.seen_at = other.seen_at;
        }
    }

    /// The folded consumer of `group` holding the latest of `sightings`.
    #[must_use]
    pub fn fold<'a>(group: &str, sightings: impl IntoIterator<Item = &'a Self>) -> Option<Self> {
        let latest = sightings.into_iter().max_by_key(|s| s.seen_at)?;
        Some(Self {
            address: group.to_owned(),
            group: group.to_owned(),
            user_agent: FOLDED.to_owned(),
            ..latest.clone()
        })
    }
}

/// The pending sightings of one address group.
#[derive(Default)]
struct Group {
    named: HashMap<(String, String), Sighting>,
    folded: Option<Sighting>,
}

impl Group {
    fn len(&self) -> usize {
        self.named.len() + usize::from(self.folded.is_some())
    }
}

#[derive(Default)]
struct Pending {
    groups: HashMap<String, Group>,
    len: usize,
    dropped: u64,
}

/// Sightings not yet flushed, bounded per address group and in total.
pub struct ConsumerTracker {
    pending: Mutex<Pending>,
    limits: ConsumerLimits,
}

impl ConsumerTracker {
    /// A tracker holding sightings within `limits` between flushes.
    #[must_use]
    pub fn new(limits: ConsumerLimits) -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            limits,
        }
    }

    /// The bounds this tracker (and the store, when flushed) applies.
    #[must_use]
    pub fn limits(&self) -> ConsumerLimits {
        self.limits
    }

    /// Records that `ip`/`user_agent` now holds the JWKS `etag` with `kids`.
    pub fn record(&self, ip: IpAddr, user_agent: &str, etag: &str, kids: &str, now: DateTime<Utc>) {
        let group = address_group(ip);
        let sighting = Sighting {
            address: canonical(ip).to_string(),
            group: group.clone(),
            user_agent: user_agent.chars().take(MAX_USER_AGENT).collect(),
            etag: etag.to_owned(),
            kids: kids.to_owned(),
            seen_at: now,
        };
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let pending = &mut *pending;
        if !pending.groups.contains_key(&group) && pending.len >= self.limits.total {
            pending.dropped += 1;
            return;
        }
        let entry = pending.groups.entry(group.clone()).or_default();
        let before = entry.len();
        if let Some(folded) = &mut entry.folded {
            folded.absorb(&sighting);
        } else if let Some(s) = entry
            .named
            .get_mut(&(sighting.address.clone(), sighting.user_agent.clone()))
        {
            s.absorb(&sighting);
        } else if entry.named.len() >= self.limits.per_address || sighting.is_folded() {
            entry.folded = Sighting::fold(&group, entry.named.values().chain([&sighting]));
            entry.named.clear();
        } else if pending.len >= self.limits.total {
            pending.dropped += 1;
        } else {
            entry.named.insert(
                (sighting.address.clone(), sighting.user_agent.clone()),
                sighting,
            );
        }
        pending.len = pending.len + entry.len() - before;
    }

    /// Takes every pending sighting, and how many were dropped since the last
    /// drain because the tracker was full.
    pub fn drain(&self) -> (Vec<Sighting>, u64) {
        let Ok(mut pending) = self.pending.lock() else {
            return (Vec::new(), 0);
        };
        let taken = std::mem::take(&mut *pending);
        let sightings = taken
            .groups
            .into_values()
            .flat_map(|g| g.named.into_values().chain(g.folded))
            .collect();
        (sightings, taken.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn keeps_the_latest_version_per_consumer() {
        let tracker = ConsumerTracker::new(ConsumerLimits {
            per_address: 4,
            total: 10,
        });
        tracker.record(ip("10.0.0.1"), "envoy", "\"a\"", "k1", t(1));
        tracker.record(ip("10.0.0.1"), "envoy", "\"b\"", "k1 k2", t(2));
        tracker.record(ip("10.0.0.2"), "istio", "\"a\"", "k1", t(3));
        let (mut seen, dropped) = tracker.drain();
        seen.sort_by_key(|s| s.seen_at);
        assert_eq!((seen.len(), dropped), (2, 0));
        assert_eq!(seen[0].address, "10.0.0.1");
        assert!(seen[0].has_kid("k2") && !seen[1].has_kid("k2"));
        assert!(tracker.drain().0.is_empty());
    }

    #[test]
    fn one_address_cannot_mint_more_than_its_share_of_consumers() {
        let tracker = ConsumerTracker::new(ConsumerLimits {
            per_address: 3,
            total: 5,
        });
        for i in 0..20_000 {
            tracker.record(ip("192.0.2.7"), &format!("ua-{i}"), "\"a\"", "k1", t(1));
        }
        // A legitimate refetch from that address after a new key appeared.
        tracker.record(ip("192.0.2.7"), "envoy", "\"b\"", "k1 k2", t(2));
        // IPv6: one /64 is one group, IPv4-mapped is IPv4.
        for i in 0..100 {
            tracker.record(
                ip(&format!("2001:db8:0:1::{i:x}")),
                "envoy",
                "\"a\"",
                "k1",
                t(1),
            );
        }
        tracker.record(ip("::ffff:192.0.2.7"), "curl", "\"b\"", "k1 k2", t(3));
        tracker.record(ip("198.51.100.1"), "envoy", "\"a\"", "k1", t(1));
        tracker.record(ip("198.51.100.1"), "istio", "\"a\"", "k1", t(1));
        let (mut seen, _) = tracker.drain();
        seen.sort_by(|a, b| (&a.group, &a.user_agent).cmp(&(&b.group, &b.user_agent)));
        let summary: Vec<(&str, &str, bool)> = seen
            .iter()
            .map(|s| (s.address.as_str(), s.user_agent.as_str(), s.has_kid("k2")))
            .collect();
        assert_eq!(
            summary,
            [
                ("192.0.2.7", FOLDED, true),
                ("198.51.100.1", "envoy", false),
                ("198.51.100.1", "istio", false),
                ("2001:db8:0:1::/64", FOLDED, false),
            ],
            "each flooding group is one consumer holding its latest fetch"
        );
        assert_eq!(seen[0].seen_at, t(3));
    }

    #[test]
    fn the_total_bounds_new_consumers_and_counts_the_dropped() {
        let tracker = ConsumerTracker::new(ConsumerLimits {
            per_address: 2,
            total: 3,
        });
        for i in 0..10 {
            tracker.record(ip(&format!("10.0.0.{i}")), "envoy", "\"a\"", "k1", t(i));
        }
        tracker.record(ip("10.0.0.0"), "envoy", "\"b\"", "k1 k2", t(20));
        tracker.record(ip("10.0.0.1"), "istio", "\"b\"", "k1 k2", t(20));
        let (seen, dropped) = tracker.drain();
        assert_eq!(seen.len(), 3, "the first three consumers are kept");
        assert_eq!(dropped, 8);
        assert!(
            seen.iter()
                .any(|s| s.address == "10.0.0.0" && s.has_kid("k2")),
            "a known consumer is still updated when full"
        );
        let only_address = ConsumerTracker::new(ConsumerLimits {
            per_address: 0,
            total: 3,
        });
        only_address.record(ip("10.0.0.1"), "envoy", "\"a\"", "k1", t(1));
        only_address.record(ip("10.0.0.1"), "istio", "\"b\"", "k1 k2", t(2));
        let (seen, _) = only_address.drain();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].is_folded() && seen[0].has_kid("k2"));
    }
}
