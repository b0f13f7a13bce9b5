//! [`TokenServer`]: the protocol service behind the OAuth endpoints of
//! [RFC 6749 §3] (token), [RFC 7662] (introspection) and [RFC 7009]
//! (revocation), and what a request brings to it: the [`Caller`] and the
//! [`FormPost`]. The endpoint methods are in [`super::endpoints`]; the
//! grants, client authentication and issuance add their own `impl` blocks.
//!
//! It owns exactly what those endpoints need: store, client cache and
//! credential verifier, signing keys, policy, limits, lockout and quotas,
//! client key sets and CAs, the audit sink, metrics, the issuer and token
//! settings.
//!
//! [RFC 6749 §3]: https://www.rfc-editor.org/rfc/rfc6749#section-3
//! [RFC 7662]: https://www.rfc-editor.org/rfc/rfc7662
//! [RFC 7009]: https://www.rfc-editor.org/rfc/rfc7009

use std::{net::IpAddr, sync::Arc};

use super::{dpop::nonce::Nonces, dpop::DpopHeader, request::FormParams, OAuthError};
use crate::{
    audit::AuditSink,
    certs::{CertError, ClientCertificate, TrustAnchors},
    clients::{jwks::ClientJwks, ClientCache, SecretVerifier},
    clock::Clock,
    config::Settings,
    federation::{Directory, FederationKeys},
    keys::KeySet,
    metrics::Metrics,
    policy::Policy,
    protect::{lockout::Lockout, quota::Quotas, rate_limit::RateLimits, replay::LocalReplays},
    store::Storage,
};
use chrono::{DateTime, Utc};

/// The OAuth protocol service. Cheap to share behind an `Arc`.
pub struct TokenServer {
    /// Storage engine.
    pub store: Storage,
    /// Client registrations and verified credentials in memory.
    pub clients: Arc<ClientCache>,
    /// Bounded argon2 verification.
    pub verifier: SecretVerifier,
    /// Signing keys (the current one signs; all published ones verify).
    pub keys: Arc<KeySet>,
    /// The token policy, when configured.
    pub policy: Option<Arc<Policy>>,
    /// Rate limits (per address, per client, admin).
    pub limits: Arc<RateLimits>,
    /// Failed-authentication counter.
    pub lockout: Arc<Lockout>,
    /// Token quotas.
    pub quotas: Arc<Quotas>,
    /// Access tokens whose signature verified, by their bytes (introspection).
    pub verified: crate::token::VerifiedTokens,
    /// Revoked access tokens not yet expired, in memory (introspection's check).
    pub revoked: Arc<super::revoked::RevokedJtis>,
    /// Assertion and DPoP proof ids accepted while the database was unavailable.
    pub replays: Arc<LocalReplays>,
    /// DPoP server nonces (RFC 9449 §8), keyed from the KEK.
    pub dpop_nonces: Nonces,
    /// Clients' public keys (inline or fetched from their `jwks_uri`).
    pub client_jwks: Arc<ClientJwks>,
    /// CAs that `tls_client_auth` certificates must chain to, when configured.
    pub client_ca: Option<Arc<TrustAnchors>>,
    /// The trusted external issuers (workload identity federation).
    pub federations: Arc<Directory>,
    /// Their public keys.
    pub federation_keys: Arc<FederationKeys>,
    /// The audit trail.
    pub audit: AuditSink,
    /// Request and token metrics.
    pub metrics: Metrics,
    /// The issuer identifier (configured, or derived from the bound address).
    pub issuer: String,
    /// Token lifetimes, assertion rules, lockout settings.
    pub settings: Arc<Settings>,
    /// The time source of background work (requests bring their own `now`).
    pub clock: Clock,
}

/// The OAuth endpoint a form was posted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /token`.
    Token,
    /// `POST /introspect`.
    Introspect,
    /// `POST /revoke`.
    Revoke,
}

impl Endpoint {
    /// The endpoint's path under the issuer (what an assertion's `aud` may name).
    #[must_use]
    pub fn path(self) -> &'static str {
        match self {
            Self::Token => "/token",
            Self::Introspect => "/introspect",
            Self::Revoke => "/revoke",
        }
    }
}

/// Who is calling, as the web layer knows it.
#[derive(Debug)]
pub struct Caller {
    /// The caller's address (behind trusted proxies, the forwarded one).
    pub ip: IpAddr,
    /// The client's TLS certificate: none, one, or one that could not be
    /// used (a refusal only for clients that need one).
    pub certificate: Result<Option<Arc<ClientCertificate>>, CertError>,
    /// The endpoint called.
    pub endpoint: Endpoint,
    /// The request id (also in every log line and audit event of the request).
    pub request_id: Option<String>,
    /// The time, read once per request.
    pub now: DateTime<Utc>,
}

/// A form post as the web layer read it.
pub struct FormPost<'a> {
    /// The raw `Authorization` header, if any.
    pub authorization: Option<&'a [u8]>,
    /// The `DPoP` header (read at the token endpoint only).
    pub dpop: DpopHeader<'a>,
    /// The form, or why it could not be read (content type, size, encoding);
    /// the error is answered after the per-address limit.
    pub form: Result<FormParams, OAuthError>,
}
