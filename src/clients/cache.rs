//! [`ClientCache`]: client registrations and verified credentials in memory,
//! so a token request for a known client needs neither the database nor argon2.
//!
//! - Registrations (with their secret hashes) are cached for at most
//!   `CACHE_TTL`, and dropped at once when this process changes a client or —
//!   on PostgreSQL — when any replica announces a change with `NOTIFY`.
//! - After one successful argon2 verification, the credential is remembered as
//!   an HMAC-SHA-256 digest of (client id, secret) under a key that never
//!   leaves this process; later requests compare digests in constant time.
//!   Failures are never remembered. Dropping the entry (rotation, disabling,
//!   deletion) forgets every remembered credential of the client.
//! - When change notices may have been missed (the `LISTEN` connection was
//!   lost or re-established), every entry is marked stale
//!   ([`ClientCache::mark_stale`]): it is re-read from the database before it
//!   is trusted as fresh again, and [`ClientCache::reconcile`] re-reads all
//!   of them once the subscription is back.
//! - While the database is unreachable, nothing is dropped: a cached client
//!   (fresh, stale or past its TTL) is served from memory — registration,
//!   secret hashes, remembered credentials — as long as the last successful
//!   database contact is within `outage_grace` ([`crate::store::DbHealth`]).
//!   Beyond it, and for clients not in the cache, the lookup fails with
//!   [`StoreError::Unavailable`] at once.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use chrono::{DateTime, Duration, Utc};
use ring::{
    hmac,
    rand::{SecureRandom, SystemRandom},
};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::{Client, ClientId, SecretHash};
use crate::store::{ExpiringSecret, Storage, Store, StoreError};

/// How long a registration may be served from memory without a change notice.
const CACHE_TTL: i64 = 30;
/// Most clients kept; beyond that the oldest entry is dropped.
const CAPACITY: usize = 10_000;
/// Most remembered credentials per client (old and new secret in a rotation, and spare).
const VERIFIED_PER_CLIENT: usize = 4;

/// A remembered credential: its HMAC digest and until when it holds.
type Remembered = ([u8; 32], Option<DateTime<Utc>>);

/// A client as cached: registration, active secret hashes, remembered credentials.
pub struct CachedClient {
    /// The registration (shared with the requests it authenticates).
    pub client: Arc<Client>,
    secrets: Vec<ExpiringSecret>,
    loaded_at: DateTime<Utc>,
    /// The cache's staleness epoch when the load began.
    epoch: u64,
    verified: Mutex<Vec<Remembered>>,
}

impl CachedClient {
    /// The hashes of the secrets valid at `now`.
    #[must_use]
    pub fn active_hashes(&self, now: DateTime<Utc>) -> Vec<SecretHash> {
        self.secrets
            .iter()
            .filter(|(_, exp)| exp.is_none_or(|e| e > now))
            .map(|(h, _)| h.clone())
            .collect()
    }
}

/// The cache.
pub struct ClientCache {
    entries: Mutex<HashMap<ClientId, Arc<CachedClient>>>,
    /// Bumped by every invalidation, so a load that raced one is not cached.
    generation: AtomicU64,
    /// Bumped when notices may have been missed: entries of older epochs are stale.
    epoch: AtomicU64,
    key: hmac::Key,
    /// Most clients kept ([`CAPACITY`]).
    capacity: usize,
}

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let size = self.entries.lock().map_or(0, |e| e.len());
        f.debug_struct("ClientCache")
            .field("clients", &size)
            .finish_non_exhaustive()
    }
}

impl ClientCache {
    /// An empty cache with a fresh random HMAC key.
    pub fn new() -> Result<Self, ring::error::Unspecified> {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        SystemRandom::new().fill(key.as_mut())?;
        Ok(Self {
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            key: hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
            capacity: CAPACITY,
        })
    }

    /// An empty cache holding at most `capacity` clients.
    #[cfg(test)]
    fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity,
            ..Self::new().unwrap()
        }
    }

    /// The client `id`, from memory when fresh, else from the store. While
    /// the database is unreachable, from memory within the outage grace
    /// (whatever the entry's age), else `Unavailable`.
    pub async fn get(
        &self,
        store: &Storage,
        id: &ClientId,
        now: DateTime<Utc>,
    ) -> Result<Option<Arc<CachedClient>>, StoreError> {
        if !store.health().is_up() {
            return self.during_outage(store, id, now);
        }
        if let Some(hit) = self.fresh(id, now) {
            return Ok(Some(hit));
        }
        match self.load(store, id, now).await {
            Err(e) if e.is_unavailable() => self.during_outage(store, id, now),
            other => other,
        }
    }

    /// The cached entry while the database cannot be asked: within the
    /// grace, any entry; otherwise none, and the caller answers 503.
    fn during_outage(
        &self,
        store: &Storage,
        id: &ClientId,
        now: DateTime<Utc>,
    ) -> Result<Option<Arc<CachedClient>>, StoreError> {
        let cached = self.entries.lock().ok().and_then(|e| e.get(id).cloned());
        match cached {
            Some(entry) if store.health().grace_left(now).is_some() => Ok(Some(entry)),
            _ => Err(StoreError::Unavailable(
                "the database is unreachable and the client cannot be served from memory",
            )),
        }
    }

    /// Reads the client from the store and caches it (keeping remembered
    /// credentials when its secrets did not change); forgets a client that
    /// no longer exists.
    async fn load(
        &self,
        store: &Storage,
        id: &ClientId,
        now: DateTime<Utc>,
    ) -> Result<Option<Arc<CachedClient>>, StoreError> {
        let generation = self.generation.load(Ordering::Acquire);
        let epoch = self.epoch.load(Ordering::Acquire);
        let Some(client) = store.find_client(id).await? else {
            if let Ok(mut entries) = self.entries.lock() {
                if self.generation.load(Ordering::Acquire) == generation {
                    entries.remove(id);
                }
            }
            return Ok(None);
        };
        let secrets = store.client_secrets(id, now).await?;
        // A refresh after the TTL keeps the remembered credentials when the
        // secrets did not change (an explicit invalidation removed the entry).
        let kept = self
            .entries
            .lock()
            .ok()
            .and_then(|e| {
                e.get(id)
                    .filter(|old| old.secrets == secrets)
                    .and_then(|old| old.verified.lock().ok().map(|v| v.clone()))
            })
            .unwrap_or_default();
        let entry = Arc::new(CachedClient {
            client: Arc::new(client),
            secrets,
            loaded_at: now,
            epoch,
            verified: Mutex::new(kept),
        });
        if let Ok(mut entries) = self.entries.lock() {
            // Cache only if no invalidation happened while loading.
            if self.generation.load(Ordering::Acquire) == generation {
                if entries.len() >= self.capacity && !entries.contains_key(id) {
                    if let Some(oldest) = entries
                        .iter()
                        .min_by_key(|(_, e)| e.loaded_at)
                        .map(|(k, _)| k.clone())
                    {
                        entries.remove(&oldest);
                    }
                }
                entries.insert(id.clone(), Arc::clone(&entry));
            }
        }
        Ok(Some(entry))
    }

    fn fresh(&self, id: &ClientId, now: DateTime<Utc>) -> Option<Arc<CachedClient>> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let entries = self.entries.lock().ok()?;
        entries
            .get(id)
            .filter(|e| {
                e.epoch == epoch
                    && now - e.loaded_at < Duration::seconds(CACHE_TTL)
                    && now >= e.loaded_at
            })
            .cloned()
    }

    /// Marks every entry stale (change notices may have been missed): each
    /// is re-read from the database before it is trusted as fresh, but kept
    /// and served while the database is unreachable.
    pub fn mark_stale(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Re-reads every stale entry from the store: changed clients are
    /// replaced (their remembered credentials kept when their secrets did
    /// not change), deleted ones dropped. Stops at the first unreachable-
    /// database error, leaving the rest stale. Returns how many were re-read.
    pub async fn reconcile(
        &self,
        store: &Storage,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let stale: Vec<ClientId> = self.entries.lock().map_or_else(
            |_| Vec::new(),
            |entries| {
                entries
                    .iter()
                    .filter(|(_, e)| e.epoch < epoch)
                    .map(|(id, _)| id.clone())
                    .collect()
            },
        );
        for id in &stale {
            self.load(store, id, now).await?;
        }
        Ok(stale.len())
    }

    /// How many clients are cached.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    /// Whether no client is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn digest(&self, id: &ClientId, secret: &SecretString) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(id.as_str().as_bytes());
        ctx.update(&[0]);
        ctx.update(secret.expose_secret().as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// Whether `secret` was verified for `entry` before and is still valid.
    #[must_use]
    pub fn remembered(
        &self,
        entry: &CachedClient,
        secret: &SecretString,
        now: DateTime<Utc>,
    ) -> bool {
        let digest = self.digest(&entry.client.id, secret);
        let Ok(verified) = entry.verified.lock() else {
            return false;
        };
        verified
            .iter()
            .fold(subtle::Choice::from(0), |found, (d, exp)| {
                let live = subtle::Choice::from(u8::from(exp.is_none_or(|e| e > now)));
                found | (d.ct_eq(&digest) & live)
            })
            .into()
    }

    /// Remembers that `secret` verified for `entry` (until the earliest expiry
    /// among its active secrets that carry one, to stay on the safe side).
    pub fn remember(&self, entry: &CachedClient, secret: &SecretString, now: DateTime<Utc>) {
        let digest = self.digest(&entry.client.id, secret);
        let expiry = entry
            .secrets
            .iter()
            .filter_map(|(_, e)| *e)
            .filter(|e| *e > now)
            .min();
        if let Ok(mut verified) = entry.verified.lock() {
            if verified.len() >= VERIFIED_PER_CLIENT {
                verified.remove(0);
            }
            verified.push((digest, expiry));
        }
    }

    /// Forgets the client `id` and its remembered credentials.
    pub fn invalidate(&self, id: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let (Ok(mut entries), Ok(id)) = (self.entries.lock(), ClientId::parse(id)) {
            entries.remove(&id);
        }
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
