//! [`KeyManager`]: runs the signing-key lifecycle against the store — the
//! periodic check (bootstrap, scheduled rotation, retention, reloading what
//! other replicas changed), manual and emergency rotation with the safety
//! signal, and KEK rewrapping. The rules themselves are in [`super::lifecycle`].
//! The latest status is kept in memory for `/metrics`.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

pub use super::status::{status, KeyInfo, KeyStatus, LaggingConsumer};
use super::{
    consumers::{ConsumerLimits, ConsumerTracker},
    generate,
    lifecycle::{self, KeyChange, Policy, Trigger},
    status::{lagging_consumers, StatusCache, CONSUMER_WINDOW_HOURS},
    KekRing, KeySet, KeySetError, KeyState, StoredKey,
};
use crate::{
    config::Settings,
    store::{Storage, Store},
};

/// Why a manual rotation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// `safe` was asked for and the rotation could break verifiers.
    #[error("rotation refused: {}", .0.join("; "))]
    Unsafe(Vec<String>),
    /// Storage or key material failed.
    #[error(transparent)]
    Keys(#[from] KeySetError),
}

impl From<crate::store::StoreError> for RotateError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Keys(e.into())
    }
}

/// The outcome of a manual rotation.
#[derive(Debug, Serialize)]
pub struct RotationReport {
    /// Whether a key was promoted.
    pub rotated: bool,
    /// The key that signs now.
    pub current: String,
    /// The newly published next key.
    pub next: Option<String>,
    /// Keys removed from the JWKS by this rotation.
    pub removed: Vec<String>,
    /// What this rotation may break, in plain words.
    pub warnings: Vec<String>,
    /// The changes applied (for the audit trail).
    #[serde(skip)]
    pub changes: Vec<KeyChange>,
}

/// The lifecycle runner shared by the server, the admin API and the CLI.
pub struct KeyManager {
    store: Storage,
    ring: Arc<KekRing>,
    keys: Arc<KeySet>,
    policy: Policy,
    consumers: ConsumerTracker,
    cached: StatusCache,
    jwks_max_age: u32,
    max_token_ttl: u32,
}

impl KeyManager {
    /// The lifecycle policy the settings describe.
    #[must_use]
    pub fn policy(settings: &Settings) -> Policy {
        let secs = |s: u64| Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1_000_000));
        Policy {
            alg: settings.keys.signing_alg,
            rotation_interval: (settings.keys.key_rotation_interval > 0)
                .then(|| secs(settings.keys.key_rotation_interval)),
            prepublish: secs(settings.keys.key_prepublish),
            retention: secs(settings.tokens.retired_key_retention()),
        }
    }

    /// Checks that every stored key's KEK is configured, brings the keys up to
    /// date (first key, due rotation, retention) and loads them.
    pub async fn start(
        store: Storage,
        ring: KekRing,
        settings: &Settings,
        now: DateTime<Utc>,
    ) -> Result<Self, KeySetError> {
        for key in store.signing_keys().await? {
            if let (Some(kek_id), Some(_)) = (&key.kek_id, &key.sealed_private_key) {
                if !ring.has(kek_id) {
                    return Err(super::KekError::Unknown {
                        kid: key.kid,
                        needed: kek_id.clone(),
                        configured: ring.ids().join(", "),
                    }
                    .into());
                }
            }
        }
        let policy = Self::policy(settings);
        let ring = Arc::new(ring);
        change(&store, &ring, &policy, Trigger::Scheduled, now).await?;
        let keys = store.signing_keys().await?;
        let keys = Arc::new(KeySet::new(KeySet::snapshot(&keys, &ring, None)?));
        let cached = StatusCache::new(status(&store, &policy, now).await?);
        Ok(Self {
            store,
            ring,
            keys,
            policy,
            consumers: ConsumerTracker::new(ConsumerLimits {
                per_address: settings.limits.jwks_consumers_per_address,
                total: settings.limits.jwks_consumers_max,
            }),
            cached,
            jwks_max_age: settings.tokens.jwks_max_age,
            max_token_ttl: settings.tokens.max_access_token_ttl,
        })
    }

    /// A key derived from the primary KEK for `purpose` (see
    /// [`super::kek::Kek::derive_hmac_key`]): shared by every replica with this KEK.
    #[must_use]
    pub fn derive_hmac_key(&self, purpose: &'static str) -> ring::hmac::Key {
        self.ring.primary().derive_hmac_key(purpose)
    }

    /// The loaded keys (what the token endpoint signs with).
    #[must_use]
    pub fn key_set(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys)
    }

    /// Where the JWKS handler records who fetched which version.
    #[must_use]
    pub fn consumers(&self) -> &ConsumerTracker {
        &self.consumers
    }

    /// The periodic check: flush consumer sightings, apply what is due,
    /// reload keys (including changes made by other replicas), and refresh
    /// the status kept for `/metrics`.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<Vec<KeyChange>, KeySetError> {
        self.flush_consumers(now).await?;
        let keys = self.store.signing_keys().await?;
        let due = lifecycle::plan(&keys, &self.policy, Trigger::Scheduled, now, |_| Err(()));
        let mut changes = Vec::new();
        if !matches!(due, Ok(ref c) if c.is_empty()) {
            changes = change(
                &self.store,
                &self.ring,
                &self.policy,
                Trigger::Scheduled,
                now,
            )
            .await?;
            log_changes(&changes, "scheduled");
        }
        self.reload().await?;
        self.cached
            .put(status(&self.store, &self.policy, now).await?);
        Ok(changes)
    }

    /// Re-reads the keys and installs them if they changed.
    pub async fn reload(&self) -> Result<(), KeySetError> {
        let keys = self.store.signing_keys().await?;
        let snapshot = KeySet::snapshot(&keys, &self.ring, Some(&self.keys))?;
        self.keys.install(snapshot);
        Ok(())
    }

    /// Manual rotation: promotes the published `next` key and publishes a new
    /// one. `compromised` removes the current key from the JWKS at once;
    /// `safe` refuses while the rotation could break verifiers.
    pub async fn rotate(
        &self,
        now: DateTime<Utc>,
        compromised: bool,
        safe: bool,
    ) -> Result<RotationReport, RotateError> {
        self.flush_consumers(now).await?;
        let keys = self.store.signing_keys().await?;
        let current = keys
            .iter()
            .find(|k| k.state == KeyState::Current)
            .map(|k| k.kid.clone());
        let next = keys
            .iter()
            .find(|k| k.state == KeyState::Next && k.alg == self.policy.alg);
        let mut warnings = match next {
            Some(next) => self.promotion_risks(next, now).await?,
            None => vec![format!(
                "there is no published next key with algorithm {}: one is published now; rotate again after \
                 key_prepublish ({}s) so that verifiers have fetched it",
                self.policy.alg.as_str(),
                self.policy.prepublish.num_seconds()
            )],
        };
        if compromised {
            warnings.push(format!(
                "key {} was removed from the JWKS: every access token it signed (up to {}s old) now fails \
                 verification wherever the JWKS is fetched again; verifiers holding a cached JWKS accept them \
                 for up to {}s more; callers must obtain new tokens",
                current.as_deref().unwrap_or("(none)"),
                self.max_token_ttl,
                self.jwks_max_age
            ));
        } else if safe && !warnings.is_empty() {
            return Err(RotateError::Unsafe(warnings));
        }
        let trigger = if compromised {
            Trigger::Compromised
        } else {
            Trigger::Manual
        };
        let changes = change(&self.store, &self.ring, &self.policy, trigger, now).await?;
        log_changes(&changes, if compromised { "compromised" } else { "manual" });
        for w in &warnings {
            tracing::warn!(warning = %w, "key rotation");
        }
        self.reload().await?;
        self.cached
            .put(status(&self.store, &self.policy, now).await?);
        let after = self.store.signing_keys().await?;
        let find = |s| after.iter().find(|k| k.state == s).map(|k| k.kid.clone());
        Ok(RotationReport {
            rotated: changes
                .iter()
                .any(|c| matches!(c, KeyChange::Promote { .. }))
                || (compromised && current.is_some()),
            current: find(KeyState::Current).unwrap_or_default(),
            next: find(KeyState::Next),
            removed: changes
                .iter()
                .filter_map(|c| match c {
                    KeyChange::Remove { kid } => Some(kid.clone()),
                    _ => None,
                })
                .collect(),
            warnings,
            changes,
        })
    }

    async fn promotion_risks(
        &self,
        next: &StoredKey,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, KeySetError> {
        let mut risks = Vec::new();
        let age = now - next.created_at;
        if age < self.policy.prepublish {
            risks.push(format!(
                "the next key {} has been published for only {}s, less than key_prepublish ({}s): verifiers that \
                 cached the JWKS before it appeared reject its tokens until their cache expires",
                next.kid,
                age.num_seconds(),
                self.policy.prepublish.num_seconds()
            ));
        }
        let lagging = lagging_consumers(&self.store, &next.kid, now).await?.1;
        if !lagging.is_empty() {
            let names: Vec<String> = lagging
                .iter()
                .take(5)
                .map(|c| format!("{} ({})", c.address, c.user_agent))
                .collect();
            risks.push(format!(
                "{} JWKS consumer(s) seen in the last {CONSUMER_WINDOW_HOURS} h have not fetched a JWKS containing \
                 the next key {}: {}",
                lagging.len(),
                next.kid,
                names.join(", ")
            ));
        }
        Ok(risks)
    }

    /// The status as of the last key check, rotation or status request,
    /// from memory (for `/metrics`: a scrape never reads the store).
    #[must_use]
    pub fn cached_status(&self) -> Arc<KeyStatus> {
        self.cached.get()
    }

    /// The status report of `GET /admin/keys` (after flushing this process's sightings).
    pub async fn status(&self, now: DateTime<Utc>) -> Result<KeyStatus, KeySetError> {
        self.flush_consumers(now).await?;
        let report = status(&self.store, &self.policy, now).await?;
        self.cached.put(report.clone());
        Ok(report)
    }

    /// Writes this process's sightings to the store (within the consumer
    /// bounds) and forgets consumers not seen for a week.
    async fn flush_consumers(&self, now: DateTime<Utc>) -> Result<(), KeySetError> {
        let (pending, dropped) = self.consumers.drain();
        let refused = self
            .store
            .record_jwks_consumers(&pending, now - Duration::days(7), self.consumers.limits())
            .await?;
        let lost = dropped + refused as u64;
        if lost > 0 {
            tracing::warn!(
                dropped = lost,
                limit = self.consumers.limits().total,
                "JWKS consumers not recorded: jwks_consumers_max reached; the rotation safety signal may miss them"
            );
        }
        Ok(())
    }
}

/// Re-seals every private key not sealed under the primary KEK, in one
/// transaction. Returns how many keys were rewrapped.
pub async fn rewrap(store: &Storage, ring: &KekRing) -> Result<usize, KeySetError> {
    let changes = store
        .change_signing_keys(|keys| {
            let primary = ring.primary();
            let mut changes = Vec::new();
            for key in keys {
                let (Some(sealed), Some(kek_id)) = (&key.sealed_private_key, &key.kek_id) else {
                    continue;
                };
                if kek_id == primary.id() {
                    continue;
                }
                let plain = ring.open(kek_id, &key.kid, sealed)?;
                changes.push(KeyChange::Reseal {
                    kid: key.kid.clone(),
                    sealed: primary.seal(&key.kid, &plain)?,
                    kek_id: primary.id().to_owned(),
                });
            }
            Ok::<_, KeySetError>(changes)
        })
        .await??;
    tracing::info!(
        rewrapped = changes.len(),
        kek_id = ring.primary().id(),
        "signing keys rewrapped"
    );
    Ok(changes.len())
}

/// Plans and applies `trigger` under the store's key lock.
async fn change(
    store: &Storage,
    ring: &KekRing,
    policy: &Policy,
    trigger: Trigger,
    now: DateTime<Utc>,
) -> Result<Vec<KeyChange>, KeySetError> {
    store
        .change_signing_keys(|keys| {
            lifecycle::plan(keys, policy, trigger, now, |state| {
                new_key(ring, policy, state, now)
            })
        })
        .await?
}

fn new_key(
    ring: &KekRing,
    policy: &Policy,
    state: KeyState,
    now: DateTime<Utc>,
) -> Result<StoredKey, KeySetError> {
    let generated = generate(policy.alg)?;
    let public_jwk =
        serde_json::to_string(&generated.public_jwk).map_err(|_| KeySetError::Corrupt {
            kid: generated.kid.clone(),
            why: "JWK does not serialize",
        })?;
    Ok(StoredKey {
        sealed_private_key: Some(ring.primary().seal(&generated.kid, &generated.pkcs8)?),
        kek_id: Some(ring.primary().id().to_owned()),
        kid: generated.kid,
        alg: policy.alg,
        state,
        public_jwk,
        created_at: now,
        activated_at: (state == KeyState::Current).then_some(now),
        retired_at: None,
    })
}

fn log_changes(changes: &[KeyChange], trigger: &str) {
    for c in changes {
        let (change, kid) = c.summary();
        tracing::info!(%kid, change, trigger, "signing key changed");
    }
}
