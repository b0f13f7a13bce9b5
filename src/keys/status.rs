//! The signing-key status report: every key with its lifecycle times (never
//! private material), the next rotation, and the rotation safety signal — the
//! JWKS consumers seen recently that have not fetched the next key yet.
//!
//! A consumer is a source address and `User-Agent`, or one folded consumer
//! per crowded address group (see [`super::consumers`]), so the counts are
//! bounded by `jwks_consumers_max` and one address weighs at most
//! `jwks_consumers_per_address`. [`StatusCache`] keeps the latest report in
//! memory for `/metrics`.

use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{
    consumers::Sighting,
    lifecycle::{self, Policy},
    KeySetError, KeyState,
};
use crate::store::{Storage, Store};

/// Consumers seen within this window count for the safety signal.
pub const CONSUMER_WINDOW_HOURS: i64 = 24;

/// One key as `GET /admin/keys` and `portcullis keys list` show it (never private material).
#[derive(Clone, Debug, Serialize)]
pub struct KeyInfo {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub alg: &'static str,
    /// Lifecycle state.
    pub state: KeyState,
    /// Generated (and published) at.
    pub created_at: DateTime<Utc>,
    /// Became `current` at.
    pub activated_at: Option<DateTime<Utc>>,
    /// Became `retired` at.
    pub retired_at: Option<DateTime<Utc>>,
    /// A retired key leaves the JWKS at.
    pub removal_at: Option<DateTime<Utc>>,
    /// KEK that seals the private part (none once retired).
    pub kek_id: Option<String>,
}

/// A JWKS consumer that has not fetched the next key yet.
#[derive(Clone, Debug, Serialize)]
pub struct LaggingConsumer {
    /// Source address.
    pub address: String,
    /// `User-Agent`; `*` for the folded consumer of a crowded address group.
    pub user_agent: String,
    /// Its last fetch.
    pub seen_at: DateTime<Utc>,
}

/// The key status report.
#[derive(Clone, Debug, Serialize)]
pub struct KeyStatus {
    /// Keys, oldest first.
    pub keys: Vec<KeyInfo>,
    /// Earliest time of the next scheduled rotation.
    pub next_rotation_at: Option<DateTime<Utc>>,
    /// Consumers seen in the last 24 hours.
    pub consumers_seen_last_day: usize,
    /// Of those, the ones whose JWKS lacks the next key.
    pub consumers_missing_next_key: Vec<LaggingConsumer>,
}

/// The key status from the store alone (no KEK needed): `portcullis keys list`.
pub async fn status(
    store: &Storage,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<KeyStatus, KeySetError> {
    let keys = store.signing_keys().await?;
    let next = keys.iter().find(|k| k.state == KeyState::Next);
    let (seen, lagging) = match next {
        Some(n) => lagging_consumers(store, &n.kid, now).await?,
        None => (
            store
                .jwks_consumers_since(now - Duration::hours(CONSUMER_WINDOW_HOURS))
                .await?
                .len(),
            Vec::new(),
        ),
    };
    Ok(KeyStatus {
        next_rotation_at: lifecycle::next_rotation_at(&keys, policy),
        keys: keys
            .iter()
            .map(|k| KeyInfo {
                kid: k.kid.clone(),
                alg: k.alg.as_str(),
                state: k.state,
                created_at: k.created_at,
                activated_at: k.activated_at,
                retired_at: k.retired_at,
                removal_at: lifecycle::removal_at(k, policy),
                kek_id: k.kek_id.clone(),
            })
            .collect(),
        consumers_seen_last_day: seen,
        consumers_missing_next_key: lagging
            .into_iter()
            .map(|s| LaggingConsumer {
                address: s.address,
                user_agent: s.user_agent,
                seen_at: s.seen_at,
            })
            .collect(),
    })
}

/// Consumers seen in the window, and those whose JWKS lacks `kid`.
pub(super) async fn lagging_consumers(
    store: &Storage,
    kid: &str,
    now: DateTime<Utc>,
) -> Result<(usize, Vec<Sighting>), KeySetError> {
    let seen = store
        .jwks_consumers_since(now - Duration::hours(CONSUMER_WINDOW_HOURS))
        .await?;
    let total = seen.len();
    Ok((
        total,
        seen.into_iter().filter(|s| !s.has_kid(kid)).collect(),
    ))
}

/// The latest key status, kept in memory: refreshed by every key check,
/// rotation and status request, read by `/metrics` without touching the store.
pub struct StatusCache(ArcSwap<KeyStatus>);

impl StatusCache {
    /// A cache holding `status`.
    #[must_use]
    pub fn new(status: KeyStatus) -> Self {
        Self(ArcSwap::from_pointee(status))
    }

    /// The latest status.
    #[must_use]
    pub fn get(&self) -> Arc<KeyStatus> {
        self.0.load_full()
    }

    /// Replaces the status.
    pub fn put(&self, status: KeyStatus) {
        self.0.store(Arc::new(status));
    }
}
