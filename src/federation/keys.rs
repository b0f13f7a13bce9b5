//! A federation's public keys, through the client-JWKS machinery
//! ([`ClientJwks`]): inline sets are parsed; `jwks_uri` sets, and those
//! found by OIDC discovery, are fetched with its timeout and size limit,
//! cached for `jwks_cache_ttl`, fetched again at most every
//! `jwks_refetch_interval` when an unknown `kid` appears, and — while the
//! issuer is slow or down — served stale for at most `jwks_stale_max`.
//! The discovery document is cached the same way (its `jwks_uri` is kept
//! while discovery fails, within the same bound). With a `ca_bundle` the
//! fetches trust that CA alone.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize as _;

use super::{discovery_url, Federation, KeySource};
use crate::{
    clients::{
        credentials::{validate_jwks_uri, validate_pinned_jwks_uri},
        jwks::{ClientJwks, JwksError, Via},
    },
    clock::Clock,
    config::Settings,
};

/// Fetches and caches federations' key sets.
pub struct FederationKeys {
    jwks: Arc<ClientJwks>,
    clock: Clock,
    ttl: TimeDelta,
    stale_max: TimeDelta,
    allow_loopback: bool,
    discovered: Mutex<HashMap<String, (String, DateTime<Utc>)>>,
}

impl std::fmt::Debug for FederationKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederationKeys").finish_non_exhaustive()
    }
}

fn secs(s: u64) -> TimeDelta {
    i64::try_from(s)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .unwrap_or(TimeDelta::MAX)
}

impl FederationKeys {
    /// Key sets fetched by `jwks` (the server's client key fetcher).
    #[must_use]
    pub fn new(jwks: Arc<ClientJwks>, settings: &Settings, clock: Clock) -> Self {
        let auth = &settings.client_auth;
        Self {
            jwks,
            clock,
            ttl: secs(auth.jwks_cache_ttl),
            stale_max: secs(auth.jwks_stale_max),
            allow_loopback: auth.jwks_uri_allow_loopback,
            discovered: Mutex::default(),
        }
    }

    /// The federation's keys; `want_kid` triggers a re-fetch when missing
    /// (rate-limited). Error details are for the log.
    pub async fn keys(
        &self,
        federation: &Federation,
        want_kid: Option<&str>,
    ) -> Result<Arc<JwkSet>, JwksError> {
        let via = match &federation.ca_bundle {
            Some(pem) => self.jwks.via_ca(pem)?,
            None => Via::default(),
        };
        let uri = match &federation.keys {
            KeySource::Jwks(set) => {
                return JwkSet::deserialize(set)
                    .map(Arc::new)
                    .map_err(|_| JwksError::Invalid)
            }
            KeySource::JwksUri(uri) => uri.clone(),
            KeySource::Discovery => self.discover(federation, &via).await?,
        };
        let cache_id = format!("federation:{}", federation.id);
        self.jwks
            .fetched_keys_via(&via, &cache_id, &uri, want_kid)
            .await
    }

    /// The `jwks_uri` of the issuer's discovery document: cached, fetched,
    /// or — while discovery fails — the last one, within the stale bound.
    async fn discover(&self, federation: &Federation, via: &Via) -> Result<String, JwksError> {
        let now = self.clock.now();
        let cached = self
            .lock()
            .get(&federation.id)
            .filter(|(_, at)| {
                now - *at
                    < self
                        .ttl
                        .checked_add(&self.stale_max)
                        .unwrap_or(TimeDelta::MAX)
            })
            .cloned();
        if let Some((uri, at)) = &cached {
            if now - *at < self.ttl {
                return Ok(uri.clone());
            }
        }
        match self.fetch_discovery(federation, via).await {
            Ok(uri) => {
                self.lock()
                    .insert(federation.id.clone(), (uri.clone(), now));
                Ok(uri)
            }
            Err(e) => {
                tracing::warn!(federation = %federation.id, error = ?e, "federation discovery failed");
                cached.map(|(uri, _)| uri).ok_or(e)
            }
        }
    }

    async fn fetch_discovery(
        &self,
        federation: &Federation,
        via: &Via,
    ) -> Result<String, JwksError> {
        let doc = self
            .jwks
            .fetch_json(via, &discovery_url(&federation.issuer))
            .await?;
        let fail = |m: &str| JwksError::Fetch(format!("discovery document: {m}"));
        // OpenID Connect Discovery §4.3: the document must name the issuer.
        if doc.get("issuer").and_then(serde_json::Value::as_str) != Some(federation.issuer.as_str())
        {
            return Err(fail("its issuer is not the federation's issuer"));
        }
        let uri = doc
            .get("jwks_uri")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| fail("no jwks_uri"))?;
        if federation.ca_bundle.is_some() {
            validate_pinned_jwks_uri(uri, self.allow_loopback)
        } else {
            validate_jwks_uri(uri, self.allow_loopback)
        }
        .map_err(|e| fail(&e))?;
        Ok(uri.to_owned())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, DateTime<Utc>)>> {
        self.discovered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
