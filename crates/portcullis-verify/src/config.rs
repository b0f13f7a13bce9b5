//! [`VerifierConfig`]: what a resource server accepts. Every setting has a
//! default fit for Portcullis; only the issuer and the audience are required.

use std::time::Duration;

use crate::{clock::Clock, jwk::Algorithm};

/// How to verify access tokens. Build with [`VerifierConfig::new`], adjust
/// fields, then [`Verifier::new`](crate::Verifier::new).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VerifierConfig {
    /// The issuer identifier, compared exactly with `iss` and with the metadata's `issuer`.
    pub issuer: String,
    /// This resource server's identifier: `aud` must contain it.
    pub audience: String,
    /// Algorithms accepted for access tokens (default: ES256, EdDSA, RS256, PS256;
    /// `none` and `HS*` are never accepted).
    pub algorithms: Vec<Algorithm>,
    /// Allowed clock difference for `exp`, `nbf` and `iat`, in seconds (default 60).
    pub leeway: i64,
    /// Scopes every request needs (default none; per route with [`Requirements`](crate::Requirements)).
    pub required_scopes: Vec<String>,
    /// `realm` of the `WWW-Authenticate` challenges, if any.
    pub realm: Option<String>,
    /// URL of this resource's RFC 9728 metadata, advertised as `resource_metadata` in challenges.
    pub resource_metadata_url: Option<String>,
    /// Where keys come from and how long they are kept.
    pub jwks: JwksConfig,
    /// DPoP (RFC 9449) acceptance; `None` refuses DPoP-bound tokens.
    pub dpop: Option<DpopConfig>,
    /// Token introspection (RFC 7662) for routes that must see revocation at once.
    pub introspection: Option<IntrospectionConfig>,
    /// Origin (`https://api.example.com`) to complete a request URI that is only a
    /// path, for the DPoP `htu` check; middleware otherwise uses the `Host` header.
    pub public_origin: Option<String>,
    /// Read the client certificate from Envoy's `x-forwarded-client-cert` in the
    /// middleware. Only for a proxy that strips the header from clients (default false).
    pub trust_forwarded_client_cert: bool,
    /// The time source (default: the system clock).
    pub clock: Clock,
}

impl VerifierConfig {
    /// Defaults for tokens of `issuer` meant for `audience`.
    #[must_use]
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            algorithms: vec![
                Algorithm::Es256,
                Algorithm::EdDsa,
                Algorithm::Rs256,
                Algorithm::Ps256,
            ],
            leeway: 60,
            required_scopes: Vec::new(),
            realm: None,
            resource_metadata_url: None,
            jwks: JwksConfig::default(),
            dpop: None,
            introspection: None,
            public_origin: None,
            trust_forwarded_client_cert: false,
            clock: Clock::System,
        }
    }
}

/// The JWKS cache (keys from the issuer's `jwks_uri`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct JwksConfig {
    /// The JWKS URL; default: `jwks_uri` from the issuer's RFC 8414 metadata.
    pub jwks_uri: Option<String>,
    /// Lifetime when the response has no `Cache-Control: max-age`, seconds (default 300).
    pub default_ttl: i64,
    /// Bounds applied to the server's `max-age`, seconds (default 30 and 86 400).
    pub min_ttl: i64,
    /// See [`min_ttl`](Self::min_ttl).
    pub max_ttl: i64,
    /// Share of the lifetime after which a request triggers a background
    /// refresh (default 0.8), so keys are renewed before they expire.
    pub refresh_ahead: f64,
    /// Least seconds between two fetches caused by unknown `kid`s or failures (default 30).
    pub refetch_interval: i64,
    /// Seconds keys may still be used past their lifetime while the issuer
    /// cannot be reached (default 3 600); then requests get `503`.
    pub max_stale: i64,
    /// Timeout of one fetch (default 5 s).
    pub fetch_timeout: Duration,
    /// Largest accepted JWKS or metadata document, bytes (default 256 KiB).
    pub max_bytes: usize,
    /// Most keys kept from one JWKS (default 64).
    pub max_keys: usize,
}

impl Default for JwksConfig {
    fn default() -> Self {
        Self {
            jwks_uri: None,
            default_ttl: 300,
            min_ttl: 30,
            max_ttl: 86_400,
            refresh_ahead: 0.8,
            refetch_interval: 30,
            max_stale: 3_600,
            fetch_timeout: Duration::from_secs(5),
            max_bytes: 256 * 1024,
            max_keys: 64,
        }
    }
}

/// DPoP proof checks (RFC 9449 §4.3, §7.1).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DpopConfig {
    /// Accepted proof algorithms (default ES256, ES384, EdDSA, RS256, PS256).
    pub algorithms: Vec<Algorithm>,
    /// How old a proof's `iat` may be, seconds (default 60); `leeway` applies on top.
    pub max_age: i64,
    /// Refuse plain Bearer tokens: every token must be DPoP-bound (default false).
    pub required: bool,
    /// Most proof `jti`s remembered for replay detection (default 100 000);
    /// beyond it new proofs are refused until old ones age out.
    pub replay_capacity: usize,
    /// Server-provided nonces (RFC 9449 §9); `None` (default) asks for none.
    pub nonce: Option<NonceConfig>,
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self {
            algorithms: Algorithm::ALL.to_vec(),
            max_age: 60,
            required: false,
            replay_capacity: 100_000,
            nonce: None,
        }
    }
}

/// Stateless server nonces: an HMAC of the current time window.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NonceConfig {
    /// Length of a nonce window, seconds (default 60); a nonce is good for this window and the next.
    pub window: i64,
    /// HMAC key shared by the replicas of the resource server (at least 32
    /// bytes); `None` draws a random one (nonces then work on this replica only).
    pub secret: Option<Vec<u8>>,
}

impl Default for NonceConfig {
    fn default() -> Self {
        Self {
            window: 60,
            secret: None,
        }
    }
}

/// Introspection of tokens (RFC 7662) as a resource-server client.
#[derive(Clone)]
#[non_exhaustive]
pub struct IntrospectionConfig {
    /// Endpoint; default: `introspection_endpoint` from the issuer's metadata.
    pub endpoint: Option<String>,
    /// The resource server's client id at the issuer.
    pub client_id: String,
    /// Its client secret (sent with HTTP Basic, RFC 6749 §2.3.1).
    pub client_secret: String,
    /// How long an `active: true` answer is reused, seconds (default 10; never past `exp`).
    pub positive_ttl: i64,
    /// How long an `active: false` answer is reused, seconds (default 60).
    pub negative_ttl: i64,
    /// Most answers cached (default 10 000).
    pub max_entries: usize,
    /// Apply to every request (default false: only where [`Requirements::introspect`](crate::Requirements::introspect) asks).
    pub always: bool,
}

impl IntrospectionConfig {
    /// Introspection as client `client_id` with `client_secret`.
    #[must_use]
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            endpoint: None,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            positive_ttl: 10,
            negative_ttl: 60,
            max_entries: 10_000,
            always: false,
        }
    }
}

impl std::fmt::Debug for IntrospectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionConfig")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("positive_ttl", &self.positive_ttl)
            .field("negative_ttl", &self.negative_ttl)
            .finish_non_exhaustive()
    }
}
