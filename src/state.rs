//! [`AppState`]: what every request handler can reach.

use std::sync::Arc;

use crate::{
    audit::AuditSink,
    certs::TrustAnchors,
    clients::{jwks::ClientJwks, ClientCache, Registry, SecretVerifier},
    clock::Clock,
    config::Settings,
    http::admin::auth::AdminTokens,
    keys::{KeyManager, KeySet},
    metrics::Metrics,
    policy::Policy,
    protect::{client_ip::TrustedProxies, lockout::Lockout, quota::Quotas, rate_limit::RateLimits},
    store::Storage,
};

/// Shared, cheaply clonable server state.
#[derive(Clone)]
pub struct AppState {
    /// Storage engine.
    pub store: Storage,
    /// Client registry operations.
    pub registry: Registry,
    /// Signing keys and the JWKS.
    pub keys: Arc<KeySet>,
    /// The signing-key lifecycle.
    pub key_manager: Arc<KeyManager>,
    /// The time source.
    pub clock: Clock,
    /// Settings.
    pub settings: Arc<Settings>,
    /// The issuer identifier (configured, or derived from the bound address).
    pub issuer: String,
    /// Bounded argon2 verification.
    pub verifier: SecretVerifier,
    /// Hashes of the admin bearer tokens.
    pub admin_tokens: Arc<AdminTokens>,
    /// The rendered metadata document.
    pub metadata: Arc<crate::http::discovery::MetadataCache>,
    /// Client registrations and verified credentials in memory.
    pub clients: Arc<ClientCache>,
    /// Request and token metrics.
    pub metrics: Metrics,
    /// The audit trail.
    pub audit: AuditSink,
    /// Rate limits.
    pub limits: Arc<RateLimits>,
    /// Failed-authentication counter.
    pub lockout: Arc<Lockout>,
    /// Token quotas.
    pub quotas: Arc<Quotas>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub proxies: Arc<TrustedProxies>,
    /// The token policy, when configured.
    pub policy: Option<Arc<Policy>>,
    /// Clients' public keys (inline or fetched from their `jwks_uri`).
    pub client_jwks: Arc<ClientJwks>,
    /// CAs that `tls_client_auth` certificates must chain to, when configured.
    pub client_ca: Option<Arc<TrustAnchors>>,
}

impl AppState {
    /// The `aud` values a client assertion sent to `endpoint` (a path such as
    /// `/token`) may carry: the issuer, and the token endpoint's and the called
    /// endpoint's URLs under the issuer and the mTLS alias base.
    #[must_use]
    pub fn assertion_audiences(&self, endpoint: &str) -> Vec<String> {
        let mut out = vec![self.issuer.clone()];
        let bases = std::iter::once(self.issuer.as_str())
            .chain(self.settings.listeners.mtls_endpoint_base.as_deref());
        for base in bases {
            for path in ["/token", endpoint] {
                let url = format!("{base}{path}");
                if !out.contains(&url) {
                    out.push(url);
                }
            }
        }
        out
    }
}
