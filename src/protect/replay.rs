//! [`LocalReplays`]: the `private_key_jwt` assertion ids ([RFC 7523 §3]
//! item 7) this process accepted while the database was unreachable.
//!
//! Normally each `jti` is recorded in the database, so a replay is refused on
//! every replica. During an outage it is recorded here instead: a replay to
//! this process is still refused, one to another replica is not (each replica
//! keeps its own set) — the price of issuing tokens without the database.
//! The set is bounded ([`CAPACITY`] unexpired ids); when it is full, further
//! assertions are refused as `temporarily_unavailable` rather than accepted
//! unrecorded. Once the database is back, the ids are written to it
//! ([`LocalReplays::pending`]) and still consulted here until they expire.
//!
//! [RFC 7523 §3]: https://www.rfc-editor.org/rfc/rfc7523#section-3

use std::{collections::HashMap, sync::Mutex};

use chrono::{DateTime, Utc};

use crate::clients::ClientId;

/// Most unexpired assertion ids kept.
pub const CAPACITY: usize = 100_000;

/// One remembered assertion: until when, and whether the database has it.
#[derive(Clone, Copy, Debug)]
struct Seen {
    until: DateTime<Utc>,
    stored: bool,
}

/// Assertion ids accepted while the database was unavailable.
#[derive(Debug, Default)]
pub struct LocalReplays {
    seen: Mutex<HashMap<(ClientId, String), Seen>>,
}

/// The set is full of unexpired ids.
#[derive(Debug, thiserror::Error)]
#[error("the in-process assertion replay set is full")]
pub struct Full;

impl LocalReplays {
    /// Records `jti` of `client` until `until`; `Ok(false)` when it was seen
    /// before (a replay), `Err(Full)` when there is no room.
    pub fn record(
        &self,
        client: &ClientId,
        jti: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, Full> {
        let Ok(mut seen) = self.seen.lock() else {
            return Err(Full);
        };
        let key = (client.clone(), jti.to_owned());
        if seen.get(&key).is_some_and(|s| s.until > now) {
            return Ok(false);
        }
        if seen.len() >= CAPACITY {
            seen.retain(|_, s| s.until > now);
            if seen.len() >= CAPACITY {
                return Err(Full);
            }
        }
        seen.insert(
            key,
            Seen {
                until,
                stored: false,
            },
        );
        Ok(true)
    }

    /// Whether `jti` of `client` was accepted here during an outage and has
    /// not expired (the database may not know it).
    #[must_use]
    pub fn seen(&self, client: &ClientId, jti: &str, now: DateTime<Utc>) -> bool {
        self.seen.lock().is_ok_and(|seen| {
            seen.get(&(client.clone(), jti.to_owned()))
                .is_some_and(|s| s.until > now)
        })
    }

    /// The unexpired ids not yet written to the database (expired ones are
    /// forgotten on the way).
    #[must_use]
    pub fn pending(&self, now: DateTime<Utc>) -> Vec<(ClientId, String, DateTime<Utc>)> {
        let Ok(mut seen) = self.seen.lock() else {
            return Vec::new();
        };
        seen.retain(|_, s| s.until > now);
        seen.iter()
            .filter(|(_, s)| !s.stored)
            .map(|((c, j), s)| (c.clone(), j.clone(), s.until))
            .collect()
    }

    /// Notes that the database now holds `jti` of `client`.
    pub fn stored(&self, client: &ClientId, jti: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            if let Some(s) = seen.get_mut(&(client.clone(), jti.to_owned())) {
                s.stored = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_is_refused_until_the_assertion_expires() {
        let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let id = ClientId::parse("svc").unwrap();
        let other = ClientId::parse("other").unwrap();
        let replays = LocalReplays::default();
        assert!(replays.record(&id, "j1", t(60), t(0)).unwrap());
        assert!(!replays.record(&id, "j1", t(60), t(30)).unwrap(), "replay");
        assert!(
            replays.record(&other, "j1", t(60), t(30)).unwrap(),
            "per client"
        );
        assert!(replays.seen(&id, "j1", t(59)));
        assert!(!replays.seen(&id, "j1", t(60)), "expired");
        assert_eq!(replays.pending(t(10)).len(), 2);
        replays.stored(&id, "j1");
        assert_eq!(replays.pending(t(10)).len(), 1);
        assert!(
            replays.pending(t(61)).is_empty(),
            "expired ids are forgotten"
        );
    }
}
