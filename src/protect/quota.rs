//! Token quotas per client and hour / day (UTC windows) — the guard against
//! the runaway client that fetches a new token for every call.
//!
//! Counting never touches the database on the token path: each process counts
//! locally and, every sync, adds its counts to the shared totals and reads
//! them back, so replicas agree within one sync interval.
//!
//! While the database is unreachable, quotas are per process: each replica
//! goes on counting from the last totals it read, counts not yet added are
//! kept, and they are added to the shared totals once the database is back.
//! A quota may then be exceeded by up to (replicas − 1) × its share for the
//! outage; a valid request is never refused because the database is down.

use std::{collections::HashMap, sync::Mutex};

use chrono::{DateTime, Utc};

pub use super::period::Period;
use super::Limited;
use crate::{
    clients::{Client, ClientId},
    store::{Storage, Store, StoreError, UsageCount},
};

#[derive(Default)]
struct Counter {
    window: Option<DateTime<Utc>>,
    synced: u64,
    pending: u64,
}

impl Counter {
    fn roll(&mut self, window: DateTime<Utc>) {
        if self.window != Some(window) {
            *self = Self {
                window: Some(window),
                synced: 0,
                pending: 0,
            };
        }
    }
}

/// Per-client token counts.
pub struct Quotas {
    default_hour: Option<u64>,
    default_day: Option<u64>,
    counters: Mutex<HashMap<(ClientId, Period), Counter>>,
}

impl Quotas {
    /// Quotas with server defaults (0: none).
    #[must_use]
    pub fn new(default_hour: u64, default_day: u64) -> Self {
        Self {
            default_hour: (default_hour > 0).then_some(default_hour),
            default_day: (default_day > 0).then_some(default_day),
            counters: Mutex::new(HashMap::new()),
        }
    }

    fn limits(&self, client: &Client) -> [(Period, Option<u64>); 2] {
        [
            (
                Period::Hour,
                client
                    .token_quota_per_hour
                    .map(u64::from)
                    .or(self.default_hour),
            ),
            (
                Period::Day,
                client
                    .token_quota_per_day
                    .map(u64::from)
                    .or(self.default_day),
            ),
        ]
    }

    /// Counts one token for `client`, or refuses it when a quota is used up.
    /// The first time a client is seen in a window, the shared total is read,
    /// so a replica does not start from zero.
    pub async fn take(
        &self,
        store: &Storage,
        client: &Client,
        now: DateTime<Utc>,
    ) -> Result<(), Limited> {
        let limits = self.limits(client);
        if limits.iter().all(|(_, l)| l.is_none()) {
            return Ok(());
        }
        let unseen: Vec<UsageCount> = limits
            .iter()
            .filter(|(_, l)| l.is_some())
            .filter(|(p, _)| {
                self.counters.lock().is_ok_and(|c| {
                    c.get(&(client.id.clone(), *p))
                        .is_none_or(|c| c.window != Some(p.start(now)))
                })
            })
            .map(|(p, _)| UsageCount {
                client_id: client.id.clone(),
                period: *p,
                window_start: p.start(now),
                issued: 0,
            })
            .collect();
        if !unseen.is_empty() {
            if let Ok(totals) = store.add_token_usage(&unseen, now).await {
                if let Ok(mut counters) = self.counters.lock() {
                    for t in totals {
                        let c = counters.entry((t.client_id, t.period)).or_default();
                        c.roll(t.window_start);
                        c.synced = c.synced.max(t.issued);
                    }
                }
            }
        }
        let Ok(mut counters) = self.counters.lock() else {
            return Ok(());
        };
        for (period, limit) in limits {
            let Some(limit) = limit else { continue };
            let start = period.start(now);
            let c = counters.entry((client.id.clone(), period)).or_default();
            c.roll(start);
            if c.synced + c.pending >= limit {
                let ms = (start + period.duration() - now).num_milliseconds();
                let retry_after = ((ms + 999) / 1000).max(1) as u64;
                let name = if period == Period::Hour {
                    "quota_hour"
                } else {
                    "quota_day"
                };
                return Err(Limited {
                    retry_after,
                    limit: name,
                });
            }
        }
        for (period, limit) in limits {
            if limit.is_some() {
                let c = counters.entry((client.id.clone(), period)).or_default();
                c.pending += 1;
            }
        }
        Ok(())
    }

    /// Puts back counts a failed sync did not add, so the next sync adds them.
    fn restore(&self, increments: &[UsageCount]) {
        let Ok(mut counters) = self.counters.lock() else {
            return;
        };
        for i in increments {
            if let Some(c) = counters.get_mut(&(i.client_id.clone(), i.period)) {
                if c.window == Some(i.window_start) {
                    c.synced = c.synced.saturating_sub(i.issued);
                    c.pending += i.issued;
                }
            }
        }
    }

    /// Tokens counted in the current windows: (client, period, issued).
    #[must_use]
    pub fn usage(&self, now: DateTime<Utc>) -> Vec<(String, &'static str, u64)> {
        let Ok(counters) = self.counters.lock() else {
            return Vec::new();
        };
        counters
            .iter()
            .filter(|((_, p), c)| c.window == Some(p.start(now)))
            .map(|((id, p), c)| (id.to_string(), p.as_str(), c.synced + c.pending))
            .collect()
    }

    /// Adds local counts to the shared totals and reads the totals back.
    pub async fn sync(&self, store: &Storage, now: DateTime<Utc>) -> Result<(), StoreError> {
        let increments: Vec<UsageCount> = {
            let Ok(mut counters) = self.counters.lock() else {
                return Ok(());
            };
            counters.retain(|(_, p), c| c.window == Some(p.start(now)));
            counters
                .iter_mut()
                .map(|((id, period), c)| {
                    let n = std::mem::take(&mut c.pending);
                    c.synced += n;
                    UsageCount {
                        client_id: id.clone(),
                        period: *period,
                        window_start: period.start(now),
                        issued: n,
                    }
                })
                .collect()
        };
        if increments.is_empty() {
            return Ok(());
        }
        let totals = match store.add_token_usage(&increments, now).await {
            Ok(totals) => totals,
            Err(e) => {
                self.restore(&increments);
                return Err(e);
            }
        };
        if let Ok(mut counters) = self.counters.lock() {
            for t in totals {
                if let Some(c) = counters.get_mut(&(t.client_id, t.period)) {
                    if c.window == Some(t.window_start) {
                        c.synced = c.synced.max(t.issued);
                    }
                }
            }
        }
        Ok(())
    }
}
