//! Repeated client-authentication failures, folded: the first failure of
//! its kind in a window is audited as it happens (`token_denied`); the
//! identical ones that follow within [`WINDOW`] are counted in memory and
//! audited as one `token_denied_repeated` event (how many, first and last)
//! when the window closes. A wrong-secret flood then costs one audit event
//! per second per claimed client instead of one per request, and still
//! leaves its trace; every failure is still counted in the metrics and
//! logged.
//!
//! Identical means the same claimed client id, error and description and
//! grant. Only failed client authentication answered with the fixed
//! `invalid_client` text is folded (a wrong secret, an unknown client, no or
//! malformed credentials: guessing and floods); every other denial (a
//! refused assertion, certificate or federated token, scopes, grants) is
//! audited one by one. The table holds at most
//! [`CAPACITY`] open windows: beyond that, failures are audited one by one.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use chrono::{DateTime, Duration, Utc};

/// The kind of the event that reports a window's repeats.
pub const REPEATED_KIND: &str = "token_denied_repeated";
/// How long a window stays open after the failure that opened it.
pub const WINDOW: Duration = Duration::seconds(1);
/// Most windows open at once (claimed client ids).
pub const CAPACITY: usize = 4096;

/// The audit actor of a denial: the client the caller named, else `anonymous`.
#[must_use]
pub fn denial_actor(claimed: Option<&str>) -> String {
    claimed.map_or_else(|| "anonymous".to_owned(), |c| format!("client:{c}"))
}

/// What makes failures identical.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DenialKey {
    /// The client id the caller named, if any.
    pub client: Option<String>,
    /// The OAuth error code.
    pub error: &'static str,
    /// Its description (the fixed text of the error).
    pub description: &'static str,
    /// The grant requested.
    pub grant: &'static str,
}

/// A closed window's repeats: the event that reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repeated {
    /// Which failures.
    pub key: DenialKey,
    /// How many were folded (after the one audited when the window opened).
    pub count: u64,
    /// The first folded one.
    pub first_at: DateTime<Utc>,
    /// The last folded one.
    pub last_at: DateTime<Utc>,
}

/// Whether a failure is audited now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fold {
    /// Audit it now: it opened a window (or none could be opened).
    Record,
    /// Counted in its open window.
    Folded,
}

#[derive(Debug)]
struct Window {
    opened: DateTime<Utc>,
    repeats: Option<(u64, DateTime<Utc>, DateTime<Utc>)>,
}

impl Window {
    fn is_open(&self, now: DateTime<Utc>) -> bool {
        now >= self.opened && now - self.opened < WINDOW
    }

    fn into_repeated(self, key: DenialKey) -> Option<Repeated> {
        self.repeats.map(|(count, first_at, last_at)| Repeated {
            key,
            count,
            first_at,
            last_at,
        })
    }
}

/// The open windows.
#[derive(Debug, Default)]
pub struct Denials {
    open: Mutex<HashMap<DenialKey, Window>>,
}

impl Denials {
    /// Whether the failure `key` at `now` is audited now, and the repeats of
    /// its previous window when that one just closed.
    pub fn admit(&self, key: DenialKey, now: DateTime<Utc>) -> (Fold, Option<Repeated>) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(window) = open.get_mut(&key) {
            if window.is_open(now) {
                window.repeats = Some(match window.repeats {
                    Some((count, first, _)) => (count + 1, first, now),
                    None => (1, now, now),
                });
                return (Fold::Folded, None);
            }
            let closed = std::mem::replace(
                window,
                Window {
                    opened: now,
                    repeats: None,
                },
            );
            return (Fold::Record, closed.into_repeated(key));
        }
        if open.len() < CAPACITY {
            open.insert(
                key,
                Window {
                    opened: now,
                    repeats: None,
                },
            );
        }
        (Fold::Record, None)
    }

    /// Closes the windows that are over at `now` (all of them when `now`
    /// is `None`, at shutdown): the repeats to audit.
    pub fn close(&self, now: Option<DateTime<Utc>>) -> Vec<Repeated> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let over: Vec<DenialKey> = open
            .iter()
            .filter(|(_, w)| now.is_none_or(|now| !w.is_open(now)))
            .map(|(k, _)| k.clone())
            .collect();
        over.into_iter()
            .filter_map(|k| open.remove(&k).and_then(|w| w.into_repeated(k)))
            .collect()
    }

    /// How many windows are open.
    #[must_use]
    pub fn len(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no window is open.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::milliseconds(ms)
    }

    fn key(client: &str) -> DenialKey {
        DenialKey {
            client: Some(client.into()),
            error: "invalid_client",
            description: "client authentication failed",
            grant: "client_credentials",
        }
    }

    #[test]
    fn the_first_failure_is_recorded_and_the_repeats_in_its_window_folded() {
        let d = Denials::default();
        assert_eq!(d.admit(key("a"), t(0)), (Fold::Record, None));
        assert_eq!(d.admit(key("a"), t(10)), (Fold::Folded, None));
        assert_eq!(d.admit(key("a"), t(999)), (Fold::Folded, None));
        assert_eq!(d.admit(key("b"), t(500)), (Fold::Record, None), "per key");
        let mut other_grant = key("a");
        other_grant.grant = "refresh_token";
        assert_eq!(d.admit(other_grant, t(500)).0, Fold::Record);
        // The window is over: the next failure is recorded, with the repeats.
        let (fold, repeated) = d.admit(key("a"), t(1000));
        assert_eq!(fold, Fold::Record);
        assert_eq!(
            repeated,
            Some(Repeated {
                key: key("a"),
                count: 2,
                first_at: t(10),
                last_at: t(999),
            })
        );
        assert_eq!(d.admit(key("a"), t(1001)), (Fold::Folded, None));
    }

    #[test]
    fn closing_reports_only_windows_that_are_over_and_had_repeats() {
        let d = Denials::default();
        d.admit(key("a"), t(0));
        d.admit(key("a"), t(1));
        d.admit(key("b"), t(0));
        d.admit(key("c"), t(600));
        d.admit(key("c"), t(700));
        let closed = d.close(Some(t(1000)));
        assert_eq!(closed.len(), 1, "b had no repeats, c is still open");
        assert_eq!((closed[0].key.clone(), closed[0].count), (key("a"), 1));
        assert_eq!(d.len(), 1, "a and b are gone");
        assert!(d.close(Some(t(1599))).is_empty());
        let at_shutdown = d.close(None);
        assert_eq!(at_shutdown.len(), 1);
        assert_eq!(at_shutdown[0].last_at, t(700));
        assert!(d.is_empty());
    }

    #[test]
    fn a_clock_that_went_back_opens_a_new_window() {
        let d = Denials::default();
        d.admit(key("a"), t(500));
        assert_eq!(d.admit(key("a"), t(499)).0, Fold::Record);
    }

    #[test]
    fn a_full_table_records_every_failure() {
        let d = Denials::default();
        for i in 0..CAPACITY {
            d.admit(key(&i.to_string()), t(0));
        }
        assert_eq!(d.admit(key("new"), t(1)), (Fold::Record, None));
        assert_eq!(d.admit(key("new"), t(2)), (Fold::Record, None));
        assert_eq!(d.len(), CAPACITY);
        assert_eq!(
            d.admit(key("0"), t(3)).0,
            Fold::Folded,
            "open ones still fold"
        );
    }
}
