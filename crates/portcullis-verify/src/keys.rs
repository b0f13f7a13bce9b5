//! [`KeyCache`]: the issuer's JWKS, parsed into verification keys once per
//! fetch and swapped atomically. Kept for the response's `max-age` (within
//! bounds), revalidated with `If-None-Match`, renewed in the background once
//! `refresh_ahead` of the lifetime has passed, refetched on an unknown `kid`
//! at most every `refetch_interval`, and used stale for at most `max_stale`
//! while the issuer is unreachable.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
        Arc,
    },
};

use arc_swap::ArcSwapOption;
use reqwest::{header, StatusCode};
use serde::Deserialize;

use crate::{
    config::JwksConfig,
    fetch::{max_age, read_bounded, Discovery, FetchError},
    jwk::{PublicKey, RawJwk},
    Clock, VerifyError,
};

/// One fetched JWKS.
pub(crate) struct Snapshot {
    /// Keys by `kid`; keys without a `kid` are tried by algorithm.
    pub keys: Arc<HashMap<String, PublicKey>>,
    pub unnamed: Arc<Vec<PublicKey>>,
    etag: Option<String>,
    generation: u64,
    refresh_at: i64,
    expires_at: i64,
}

/// Counters of the cache's work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyCacheStats {
    /// Completed `200` fetches.
    pub fetches: u64,
    /// `304 Not Modified` revalidations.
    pub not_modified: u64,
    /// Failed fetches (network, status, size, content).
    pub failures: u64,
    /// Keys held now.
    pub keys: usize,
}

pub(crate) struct KeyCache {
    cfg: JwksConfig,
    http: reqwest::Client,
    discovery: Arc<Discovery>,
    clock: Clock,
    current: ArcSwapOption<Snapshot>,
    /// One fetch at a time.
    fetch_lock: tokio::sync::Mutex<()>,
    refreshing: AtomicBool,
    last_attempt: AtomicI64,
    generation: AtomicU64,
    fetches: AtomicU64,
    not_modified: AtomicU64,
    failures: AtomicU64,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<serde_json::Value>,
}

impl KeyCache {
    pub fn new(
        cfg: JwksConfig,
        http: reqwest::Client,
        discovery: Arc<Discovery>,
        clock: Clock,
    ) -> Self {
        Self {
            cfg,
            http,
            discovery,
            clock,
            current: ArcSwapOption::empty(),
            fetch_lock: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
            last_attempt: AtomicI64::new(i64::MIN),
            generation: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            not_modified: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> KeyCacheStats {
        KeyCacheStats {
            fetches: self.fetches.load(Ordering::Relaxed),
            not_modified: self.not_modified.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            keys: self
                .current
                .load()
                .as_ref()
                .map_or(0, |s| s.keys.len() + s.unnamed.len()),
        }
    }

    /// Usable keys: the cached set if still fresh (starting a background
    /// refresh when due), otherwise a fetch (or the stale set within `max_stale`).
    pub async fn keys(self: &Arc<Self>) -> Result<Arc<Snapshot>, VerifyError> {
        let now = self.clock.now();
        if let Some(snap) = self.current.load_full() {
            if now < snap.expires_at {
                if now >= snap.refresh_at && !self.refreshing.swap(true, Ordering::AcqRel) {
                    // Outside a tokio runtime there is no background: the keys
                    // are then renewed when they expire.
                    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                        let this = Arc::clone(self);
                        runtime.spawn(async move {
                            let _ = this.refetch(None).await;
                            this.refreshing.store(false, Ordering::Release);
                        });
                    } else {
                        self.refreshing.store(false, Ordering::Release);
                    }
                }
                return Ok(snap);
            }
        }
        self.refetch(None).await
    }

    /// Fetches again after an unknown `kid` — unless another fetch finished
    /// since `seen` was read or the last attempt is under `refetch_interval` old.
    pub async fn refetch_for_unknown_kid(&self, seen: &Snapshot) -> Option<Arc<Snapshot>> {
        self.refetch(Some(seen.generation)).await.ok()
    }

    async fn refetch(&self, seen: Option<u64>) -> Result<Arc<Snapshot>, VerifyError> {
        let _guard = self.fetch_lock.lock().await;
        let now = self.clock.now();
        let prev = self.current.load_full();
        if let Some(p) = &prev {
            let newer = seen.is_some_and(|g| p.generation != g);
            // Someone else refreshed while we waited for the lock.
            if newer || (seen.is_none() && now < p.refresh_at) {
                return Ok(Arc::clone(p));
            }
        }
        let last = self.last_attempt.load(Ordering::Relaxed);
        if now.saturating_sub(last) < self.cfg.refetch_interval {
            return match prev {
                Some(p) if seen.is_none() && now < p.expires_at + self.cfg.max_stale => Ok(p),
                Some(_) if seen.is_some() => Err(VerifyError::invalid_token(
                    "the token's signing key is unknown",
                )),
                _ => Err(VerifyError::unavailable(
                    "the issuer's keys are unavailable",
                )),
            };
        }
        self.last_attempt.store(now, Ordering::Relaxed);
        match self.fetch(prev.as_deref(), now).await {
            Ok(snap) => {
                let snap = Arc::new(snap);
                self.current.store(Some(Arc::clone(&snap)));
                Ok(snap)
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                match prev {
                    Some(p) if now < p.expires_at + self.cfg.max_stale => Ok(p),
                    _ => Err(VerifyError::unavailable(format!(
                        "the issuer's keys are unavailable: {e}"
                    ))),
                }
            }
        }
    }

    async fn fetch(&self, prev: Option<&Snapshot>, now: i64) -> Result<Snapshot, FetchError> {
        let uri = match &self.cfg.jwks_uri {
            Some(uri) => uri.clone(),
            None => self
                .discovery
                .metadata()
                .await
                .map_err(|_| FetchError::Invalid("the issuer's metadata is unavailable"))?
                .jwks_uri
                .clone()
                .ok_or(FetchError::Invalid("the metadata has no jwks_uri"))?,
        };
        let mut req = self
            .http
            .get(&uri)
            .header(header::ACCEPT, "application/json");
        if let Some(etag) = prev.and_then(|p| p.etag.as_deref()) {
            req = req.header(header::IF_NONE_MATCH, etag);
        }
        let res = req.send().await?;
        let ttl = max_age(&res)
            .unwrap_or(self.cfg.default_ttl)
            .clamp(self.cfg.min_ttl, self.cfg.max_ttl.max(self.cfg.min_ttl));
        let etag = res
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        // ttl is at most max_ttl (a day by default): exact as f64.
        #[allow(clippy::cast_precision_loss)]
        let refresh_at = now + ((ttl as f64) * self.cfg.refresh_ahead.clamp(0.0, 1.0)) as i64;
        let (keys, unnamed, etag) = match (res.status(), prev) {
            (StatusCode::NOT_MODIFIED, Some(p)) => {
                self.not_modified.fetch_add(1, Ordering::Relaxed);
                (
                    Arc::clone(&p.keys),
                    Arc::clone(&p.unnamed),
                    etag.or_else(|| p.etag.clone()),
                )
            }
            (StatusCode::OK, _) => {
                let body = read_bounded(res, self.cfg.max_bytes).await?;
                let (keys, unnamed) = self.parse(&body)?;
                self.fetches.fetch_add(1, Ordering::Relaxed);
                (Arc::new(keys), Arc::new(unnamed), etag)
            }
            (status, _) => return Err(FetchError::Status(status.as_u16())),
        };
        Ok(Snapshot {
            keys,
            unnamed,
            etag,
            generation,
            refresh_at,
            expires_at: now + ttl,
        })
    }

    /// Parses a JWKS. Keys this crate cannot use are skipped (RFC 7517 §5);
    /// a document that is not a JWKS, or holds no usable key, is refused.
    fn parse(
        &self,
        body: &[u8],
    ) -> Result<(HashMap<String, PublicKey>, Vec<PublicKey>), FetchError> {
        let jwks: Jwks =
            serde_json::from_slice(body).map_err(|_| FetchError::Invalid("not a JWKS"))?;
        let (mut keys, mut unnamed) = (HashMap::new(), Vec::new());
        for value in jwks.keys.into_iter().take(self.cfg.max_keys) {
            let Ok(raw) = serde_json::from_value::<RawJwk>(value) else {
                continue;
            };
            let Ok(key) = raw.to_public_key() else {
                continue;
            };
            match raw.kid {
                Some(kid) => {
                    keys.insert(kid, key);
                }
                None => unnamed.push(key),
            }
        }
        if keys.is_empty() && unnamed.is_empty() {
            return Err(FetchError::Invalid("the JWKS holds no usable key"));
        }
        Ok((keys, unnamed))
    }
}
