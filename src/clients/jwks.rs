//! [`ClientJwks`]: a client's registered public keys, inline or fetched from
//! its `jwks_uri` with a timeout, a size limit and a cache, and fetched again
//! (at most every `jwks_refetch_interval`) when an unknown `kid` appears.
//! Fetches connect only to public addresses, checked after resolution
//! ([`super::fetch_guard`]), through no proxy. While the endpoint fails, the
//! last set is used for at most `jwks_stale_max` past its lifetime. Ages are
//! measured on the injected [`Clock`], so tests move time by hand.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize as _;

use super::{credentials::validate_jwks, fetch_guard::GuardedResolver, Client};
use crate::{clock::Clock, config::Settings};

/// Why a client's keys are unavailable. Messages are safe to return to the
/// client: they never say what the `jwks_uri` answered (that goes to the log
/// only, or the caller could probe internal endpoints through the server).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// The client registered no keys.
    #[error("the client has no registered keys (jwks or jwks_uri)")]
    NoKeys,
    /// The `jwks_uri` could not be fetched or did not hold a valid key set;
    /// the detail is for the log, not the caller.
    #[error("the client's keys could not be fetched from its jwks_uri")]
    Fetch(String),
    /// The stored inline set is invalid (it was validated at registration).
    #[error("the client's registered jwks is invalid")]
    Invalid,
}

/// One client's fetched set.
struct Fetched {
    uri: String,
    keys: Arc<JwkSet>,
    at: DateTime<Utc>,
}

/// How a fetch reaches its server: the shared client (public addresses
/// only), or one trusting a federation's CA bundle.
#[derive(Clone, Debug, Default)]
pub struct Via {
    http: Option<reqwest::Client>,
    private_ok: bool,
}

/// Fetches and caches clients' key sets.
pub struct ClientJwks {
    http: reqwest::Client,
    timeout: Duration,
    max_bytes: usize,
    ttl: TimeDelta,
    stale_max: TimeDelta,
    refetch_interval: TimeDelta,
    allow_loopback: bool,
    clock: Clock,
    fetched: Mutex<HashMap<String, Fetched>>,
    attempts: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl std::fmt::Debug for ClientJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientJwks")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl ClientJwks {
    /// A fetcher with the limits of `settings`, measuring ages on `clock`.
    pub fn new(settings: &Settings, clock: Clock) -> anyhow::Result<Self> {
        let secs = |s: u64| {
            i64::try_from(s)
                .ok()
                .and_then(TimeDelta::try_seconds)
                .unwrap_or(TimeDelta::MAX)
        };
        let auth = &settings.client_auth;
        // Every host name is resolved by the guard, which lets only public
        // addresses through; no proxy, or the guard would check the proxy.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(auth.jwks_fetch_timeout))
            .connect_timeout(Duration::from_secs(auth.jwks_fetch_timeout))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(GuardedResolver::new(auth.jwks_uri_allow_loopback))
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            timeout: Duration::from_secs(auth.jwks_fetch_timeout),
            max_bytes: auth.jwks_fetch_max_bytes,
            ttl: secs(auth.jwks_cache_ttl),
            stale_max: secs(auth.jwks_stale_max),
            refetch_interval: secs(auth.jwks_refetch_interval),
            allow_loopback: auth.jwks_uri_allow_loopback,
            clock,
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
        self.fetched_keys(client.id.as_str(), uri, want_kid).await
    }

    /// The keys of client `id` published at `uri`: cached, or fetched.
    async fn fetched_keys(
        &self,
        id: &str,
        uri: &str,
        want_kid: Option<&str>,
    ) -> Result<Arc<JwkSet>, JwksError> {
        self.fetched_keys_via(&Via::default(), id, uri, want_kid)
            .await
    }

    /// The keys published at `uri` for the cache entry `id` (a client id, or
    /// a namespaced id of another key owner such as a federation), with the
    /// same cache, stale-set and re-fetch rules as clients' keys, fetched
    /// through `via`.
    pub async fn fetched_keys_via(
        &self,
        via: &Via,
        id: &str,
        uri: &str,
        want_kid: Option<&str>,
    ) -> Result<Arc<JwkSet>, JwksError> {
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
        match self.fetch(via, uri).await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                self.lock_fetched().insert(
                    id.to_owned(),
                    Fetched {
                        uri: uri.to_owned(),
                        keys: Arc::clone(&keys),
                        at: self.clock.now(),
                    },
                );
                Ok(keys)
            }
            Err(e) => {
                let JwksError::Fetch(detail) = &e else {
                    return Err(e);
                };
                tracing::warn!(client_id = id, jwks_uri = uri, error = %detail, "client jwks_uri fetch failed");
                // A stale set still beats none while the client's endpoint is
                // down, for at most `jwks_stale_max`.
                cached.map(|(keys, _)| keys).ok_or(e)
            }
        }
    }

    fn lock_fetched(&self) -> std::sync::MutexGuard<'_, HashMap<String, Fetched>> {
        self.fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached set for `id` fetched from `uri`, and whether it is fresh;
    /// none once it is older than its lifetime plus `jwks_stale_max`.
    fn cached(&self, id: &str, uri: &str) -> Option<(Arc<JwkSet>, bool)> {
        let mut fetched = self.lock_fetched();
        let f = fetched.get(id).filter(|f| f.uri == uri)?;
        let age = self.clock.now() - f.at;
        if age
            >= self
                .ttl
                .checked_add(&self.stale_max)
                .unwrap_or(TimeDelta::MAX)
        {
            fetched.remove(id);
            return None;
        }
        Some((Arc::clone(&f.keys), age < self.ttl))
    }

    /// Records an attempt if none happened within the re-fetch interval.
    fn may_attempt(&self, id: &str) -> bool {
        let mut attempts = self
            .attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = self.clock.now();
        if attempts
            .get(id)
            .is_some_and(|t| now - *t < self.refetch_interval)
        {
            return false;
        }
        if attempts.len() > 100_000 {
            attempts.retain(|_, t| now - *t < self.refetch_interval);
        }
        attempts.insert(id.to_owned(), now);
        true
    }

    /// Fetches and validates the set at `uri`; the error's detail is for the log.
    async fn fetch(&self, via: &Via, uri: &str) -> Result<JwkSet, JwksError> {
        let value = self.fetch_json(via, uri).await?;
        validate_jwks(&value).map_err(JwksError::Fetch)
    }

    /// An HTTP client for fetches that trust `ca_pem` (and only it), with the
    /// limits of the key fetcher. With a private CA the server answering
    /// must hold a certificate from it, so private addresses (an in-cluster
    /// API server) are allowed; loopback only as for other fetches.
    pub fn via_ca(&self, ca_pem: &str) -> Result<Via, JwksError> {
        let fail = |m: &str| JwksError::Fetch(m.to_owned());
        let certs = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes())
            .map_err(|_| fail("the CA bundle is not PEM"))?;
        let mut builder = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tls_built_in_root_certs(false)
            .dns_resolver(GuardedResolver::trusting_private(self.allow_loopback))
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")));
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
        Ok(Via {
            http: Some(
                builder
                    .build()
                    .map_err(|_| fail("the HTTP client could not be built"))?,
            ),
            private_ok: true,
        })
    }

    /// Fetches the JSON document at `uri` (any JSON, at most the size limit);
    /// the error's detail is for the log.
    pub async fn fetch_json(&self, via: &Via, uri: &str) -> Result<serde_json::Value, JwksError> {
        let fail = |m: String| JwksError::Fetch(m);
        let url = reqwest::Url::parse(uri).map_err(|_| fail("not a URL".into()))?;
        // Literal addresses never reach the resolver: check them here.
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        let refused = |ip: std::net::IpAddr| {
            let private_ok = via.private_ok && !ip.is_loopback();
            !private_ok && !super::fetch_guard::fetch_allowed(ip, self.allow_loopback)
        };
        if literal.is_some_and(refused) {
            return Err(fail("the address is not a public one".into()));
        }
        // A CA bundle pins nothing without TLS.
        if via.private_ok && url.scheme() != "https" {
            return Err(fail("a fetch pinned to a CA bundle must use https".into()));
        }
        if url.scheme() != "https" && !self.allow_loopback {
            return Err(fail(
                "plain http is allowed only with jwks_uri_allow_loopback".into(),
            ));
        }
        let mut response = via
            .http
            .as_ref()
            .unwrap_or(&self.http)
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                fail(if e.is_timeout() {
                    "timed out".into()
                } else {
                    format!("the server could not be reached: {}", error_chain(&e))
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
        serde_json::from_slice(&body).map_err(|_| fail("the document is not JSON".into()))
    }
}

/// `e` and its sources, for the log.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use figment::{providers::Serialized, Figment};
    use serde_json::{json, Value};
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
        task::JoinHandle,
    };

    use super::*;

    /// An EC P-256 public key (RFC 7517 appendix A.1) published as `kid`.
    fn key(kid: &str) -> Value {
        json!({
            "kty": "EC",
            "crv": "P-256",
            "kid": kid,
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        })
    }

    fn kids(set: &JwkSet) -> Vec<&str> {
        set.keys
            .iter()
            .filter_map(|k| k.common.key_id.as_deref())
            .collect()
    }

    /// A `jwks_uri` on 127.0.0.1 that counts its fetches.
    struct Endpoint {
        uri: String,
        body: Arc<Mutex<String>>,
        hits: Arc<AtomicUsize>,
        server: JoinHandle<()>,
    }

    impl Endpoint {
        async fn start(kids: &[&str]) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let uri = format!(
                "http://127.0.0.1:{}/jwks.json",
                listener.local_addr().unwrap().port()
            );
            let body = Arc::new(Mutex::new(String::new()));
            let hits = Arc::new(AtomicUsize::new(0));
            let (b, h) = (Arc::clone(&body), Arc::clone(&hits));
            let server = tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let body = b.lock().unwrap().clone();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                }
            });
            let endpoint = Self {
                uri,
                body,
                hits,
                server,
            };
            endpoint.publish(kids);
            endpoint
        }

        fn publish(&self, kids: &[&str]) {
            let keys: Vec<Value> = kids.iter().map(|k| key(k)).collect();
            *self.body.lock().unwrap() = json!({ "keys": keys }).to_string();
        }

        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }

        /// Closes the listening socket: fetches are refused from now on.
        async fn stop(self) {
            self.server.abort();
            let _ = self.server.await;
        }
    }

    fn fetcher(ttl: u64, refetch_interval: u64, clock: &Clock) -> ClientJwks {
        let figment = Figment::new()
            .merge(Serialized::default("jwks_cache_ttl", ttl))
            .merge(Serialized::default(
                "jwks_refetch_interval",
                refetch_interval,
            ))
            .merge(Serialized::default("jwks_stale_max", 120))
            .merge(Serialized::default("jwks_uri_allow_loopback", true));
        let settings = Settings::from_figment(&figment).unwrap();
        ClientJwks::new(&settings, clock.clone()).unwrap()
    }

    fn manual_clock() -> Clock {
        Clock::manual(DateTime::from_timestamp(1_700_000_000, 0).unwrap())
    }

    #[tokio::test]
    async fn a_set_is_reused_within_its_lifetime_then_fetched_again_and_kept_while_the_endpoint_is_down(
    ) {
        let clock = manual_clock();
        let jwks = fetcher(60, 10, &clock);
        let endpoint = Endpoint::start(&["a"]).await;
        let uri = endpoint.uri.clone();

        let keys = jwks.fetched_keys("c", &uri, None).await.unwrap();
        assert_eq!(kids(&keys), ["a"]);
        assert_eq!(endpoint.hits(), 1);

        // The client publishes another set; within the lifetime the cached one is used.
        endpoint.publish(&["b"]);
        clock.advance(chrono::Duration::seconds(59));
        let keys = jwks.fetched_keys("c", &uri, None).await.unwrap();
        assert_eq!(kids(&keys), ["a"], "cached");
        assert_eq!(endpoint.hits(), 1);

        // Once it expires, the set is fetched again.
        clock.advance(chrono::Duration::seconds(1));
        let keys = jwks.fetched_keys("c", &uri, None).await.unwrap();
        assert_eq!(kids(&keys), ["b"], "fetched again at expiry");
        assert_eq!(endpoint.hits(), 2);

        // The endpoint goes down: after expiry the stale set still serves.
        endpoint.stop().await;
        clock.advance(chrono::Duration::seconds(61));
        let keys = jwks.fetched_keys("c", &uri, None).await.unwrap();
        assert_eq!(
            kids(&keys),
            ["b"],
            "stale set kept while the endpoint is down"
        );
        // ...but only for jwks_stale_max past its lifetime.
        clock.advance(chrono::Duration::seconds(119));
        let err = jwks.fetched_keys("c", &uri, None).await.unwrap_err();
        assert!(matches!(err, JwksError::Fetch(_)), "{err:?}");

        // Without any set, a down endpoint is an error, retried only after the interval.
        let err = jwks.fetched_keys("d", &uri, None).await.unwrap_err();
        assert!(matches!(err, JwksError::Fetch(_)), "{err:?}");
        let err = jwks.fetched_keys("d", &uri, None).await.unwrap_err();
        assert_eq!(
            err,
            JwksError::Fetch("the last fetch failed moments ago; retrying shortly".into())
        );
        assert_eq!(
            err.to_string(),
            "the client's keys could not be fetched from its jwks_uri",
            "the caller learns nothing about the endpoint"
        );
    }

    #[tokio::test]
    async fn an_unknown_kid_fetches_again_at_most_once_per_refetch_interval() {
        let clock = manual_clock();
        let jwks = fetcher(300, 10, &clock);
        let endpoint = Endpoint::start(&["a"]).await;
        let uri = endpoint.uri.clone();

        let keys = jwks.fetched_keys("c", &uri, Some("a")).await.unwrap();
        assert_eq!(kids(&keys), ["a"]);
        assert_eq!(endpoint.hits(), 1);

        // The client rotates. Within the interval of the last fetch, the new
        // kid gets the cached set (which lacks it), without a fetch.
        endpoint.publish(&["a", "b"]);
        clock.advance(chrono::Duration::seconds(9));
        let keys = jwks.fetched_keys("c", &uri, Some("b")).await.unwrap();
        assert_eq!(kids(&keys), ["a"]);
        assert_eq!(endpoint.hits(), 1, "no fetch within the interval");

        clock.advance(chrono::Duration::seconds(1));
        let keys = jwks.fetched_keys("c", &uri, Some("b")).await.unwrap();
        assert_eq!(kids(&keys), ["a", "b"], "fetched once the interval passed");
        assert_eq!(endpoint.hits(), 2);

        // Made-up kids cause one fetch per interval, however many arrive.
        for _ in 0..5 {
            jwks.fetched_keys("c", &uri, Some("made-up")).await.unwrap();
        }
        assert_eq!(endpoint.hits(), 2);
        clock.advance(chrono::Duration::seconds(10));
        for _ in 0..5 {
            jwks.fetched_keys("c", &uri, Some("made-up")).await.unwrap();
        }
        assert_eq!(endpoint.hits(), 3);
        // A known kid in a fresh set needs no fetch at all.
        jwks.fetched_keys("c", &uri, Some("b")).await.unwrap();
        assert_eq!(endpoint.hits(), 3);
    }
}
