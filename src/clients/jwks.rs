//! [`ClientJwks`]: a client's registered public keys, inline or fetched from
//! its `jwks_uri` with a timeout, a size limit and a cache, and fetched again
//! (at most every `jwks_refetch_interval`) when an unknown `kid` appears.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize as _;

use super::{credentials::validate_jwks, Client};
use crate::config::Settings;

/// Why a client's keys are unavailable. Messages are safe to return to the
/// client: they name the problem, never the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// The client registered no keys.
    #[error("the client has no registered keys (jwks or jwks_uri)")]
    NoKeys,
    /// The `jwks_uri` could not be fetched or did not hold a valid key set.
    #[error("the client's jwks_uri could not be used: {0}")]
    Fetch(String),
    /// The stored inline set is invalid (it was validated at registration).
    #[error("the client's registered jwks is invalid")]
    Invalid,
}

/// One client's fetched set.
struct Fetched {
    uri: String,
    keys: Arc<JwkSet>,
    at: Instant,
}

/// Fetches and caches clients' key sets.
pub struct ClientJwks {
    http: reqwest::Client,
    max_bytes: usize,
    ttl: Duration,
    refetch_interval: Duration,
    fetched: Mutex<HashMap<String, Fetched>>,
    attempts: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for ClientJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientJwks")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl ClientJwks {
    /// A fetcher with the limits of `settings`.
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.client_auth.jwks_fetch_timeout))
            .connect_timeout(Duration::from_secs(settings.client_auth.jwks_fetch_timeout))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            max_bytes: settings.client_auth.jwks_fetch_max_bytes,
            ttl: Duration::from_secs(settings.client_auth.jwks_cache_ttl),
            refetch_interval: Duration::from_secs(settings.client_auth.jwks_refetch_interval),
            fetched: Mutex::default(),
            attempts: Mutex::default(),
        })
    }

    /// The client's keys. With a `jwks_uri`, a cached set younger than the
    /// cache lifetime is used unless it lacks `want_kid` (then the set is
    /// fetched again, if the last attempt is old enough).
    pub async fn keys(
        &self,
        client: &Client,
        want_kid: Option<&str>,
    ) -> Result<Arc<JwkSet>, JwksError> {
        if let Some(inline) = &client.keys.jwks {
            // Validated at registration; only parsed here.
            return JwkSet::deserialize(inline)
                .map(Arc::new)
                .map_err(|_| JwksError::Invalid);
        }
        let Some(uri) = &client.keys.jwks_uri else {
            return Err(JwksError::NoKeys);
        };
        let id = client.id.as_str();
        let cached = self.cached(id, uri);
        if let Some((keys, fresh)) = &cached {
            let has_kid = want_kid.is_none_or(|kid| {
                keys.keys
                    .iter()
                    .any(|k| k.common.key_id.as_deref() == Some(kid))
            });
            if (*fresh && has_kid) || !self.may_attempt(id) {
                return Ok(Arc::clone(keys));
            }
        } else if !self.may_attempt(id) {
            return Err(JwksError::Fetch(
                "the last fetch failed moments ago; retrying shortly".into(),
            ));
        }
        match self.fetch(uri).await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                self.lock_fetched().insert(
                    id.to_owned(),
                    Fetched {
                        uri: uri.clone(),
                        keys: Arc::clone(&keys),
                        at: Instant::now(),
                    },
                );
                Ok(keys)
            }
            Err(e) => {
                tracing::warn!(client_id = id, error = %e, "client jwks_uri fetch failed");
                // A stale set still beats none while the client's endpoint is down.
                cached.map(|(keys, _)| keys).ok_or(e)
            }
        }
    }

    fn lock_fetched(&self) -> std::sync::MutexGuard<'_, HashMap<String, Fetched>> {
        self.fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached set for `id` fetched from `uri`, and whether it is fresh.
    fn cached(&self, id: &str, uri: &str) -> Option<(Arc<JwkSet>, bool)> {
        let fetched = self.lock_fetched();
        let f = fetched.get(id).filter(|f| f.uri == uri)?;
        Some((Arc::clone(&f.keys), f.at.elapsed() < self.ttl))
    }

    /// Records an attempt if none happened within the re-fetch interval.
    fn may_attempt(&self, id: &str) -> bool {
        let mut attempts = self
            .attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if attempts
            .get(id)
            .is_some_and(|t| now.duration_since(*t) < self.refetch_interval)
        {
            return false;
        }
        if attempts.len() > 100_000 {
            attempts.retain(|_, t| now.duration_since(*t) < self.refetch_interval);
        }
        attempts.insert(id.to_owned(), now);
        true
    }

    async fn fetch(&self, uri: &str) -> Result<JwkSet, JwksError> {
        let fail = |m: String| JwksError::Fetch(m);
        let mut response = self
            .http
            .get(uri)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                fail(if e.is_timeout() {
                    "timed out".into()
                } else {
                    "the server could not be reached".into()
                })
            })?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(fail(format!(
                "it answered HTTP {}",
                response.status().as_u16()
            )));
        }
        let too_large = || fail(format!("the document exceeds {} bytes", self.max_bytes));
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|_| fail("the response could not be read".into()))?
        {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| fail("the document is not JSON".into()))?;
        validate_jwks(&value).map_err(fail)
    }
}
