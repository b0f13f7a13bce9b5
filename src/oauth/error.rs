//! [`OAuthError`]: the RFC 6749 §5.2 error vocabulary (plus RFC 8707's
//! `invalid_target` and RFC 9449's `invalid_dpop_proof` and `use_dpop_nonce`). `code()` is the exact wire string; `Display` is the
//! `error_description`, which never contains a secret.
//!
//! A database that cannot be reached is [`OAuthError::Unavailable`]
//! (`503 temporarily_unavailable` with `Retry-After`), never a 500:
//! [`OAuthError::server`] recognises it in any cause chain.

use crate::store::StoreError;

/// Seconds a client is asked to wait (`Retry-After`) while the database is unavailable.
pub const UNAVAILABLE_RETRY_AFTER: u64 = 5;

/// An error answered by the token endpoint.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// Missing, repeated or malformed parameter; wrong content type; oversized body.
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// The body exceeds the configured limit (`invalid_request`, status 413).
    #[error("request body exceeds {0} bytes")]
    BodyTooLarge(usize),
    /// Client authentication failed ([RFC 6749 §5.2](https://www.rfc-editor.org/rfc/rfc6749#section-5.2)).
    #[error("{description}")]
    InvalidClient {
        /// Whether the client tried HTTP Basic (then `WWW-Authenticate` is sent).
        basic_attempted: bool,
        /// Safe description.
        description: &'static str,
    },
    /// A secretless client's proof (assertion or certificate) was refused;
    /// the description says why (nothing secret is in an assertion or a
    /// certificate, and the client needs the reason to fix its setup).
    #[error("{0}")]
    ProofRefused(String),
    /// The client may not use this grant type, or act on this token.
    #[error("{0}")]
    UnauthorizedClient(&'static str),
    /// The authenticated client lacks the permission for this endpoint (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// The refresh token is invalid, expired, revoked, reused or another client's.
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// The grant type is unknown to this server.
    #[error(
        "grant_type is not supported; this server supports client_credentials, refresh_token, urn:ietf:params:oauth:grant-type:jwt-bearer and urn:ietf:params:oauth:grant-type:token-exchange"
    )]
    UnsupportedGrantType,
    /// The DPoP proof is missing, malformed, invalid or replayed
    /// ([RFC 9449 §5](https://www.rfc-editor.org/rfc/rfc9449#section-5)); the
    /// description says why (a proof holds nothing secret).
    #[error("{0}")]
    InvalidDpopProof(&'static str),
    /// The DPoP proof lacks a current server nonce; the nonce to use goes in
    /// the `DPoP-Nonce` header ([RFC 9449 §8](https://www.rfc-editor.org/rfc/rfc9449#section-8)).
    #[error(
        "the authorization server requires a nonce in the DPoP proof: use the DPoP-Nonce header's"
    )]
    UseDpopNonce(String),
    /// A requested scope is malformed or outside the client's allow-list.
    #[error("{0}")]
    InvalidScope(&'static str),
    /// A requested resource is malformed or not allowed ([RFC 8707 §2](https://www.rfc-editor.org/rfc/rfc8707#section-2)).
    #[error("{0}")]
    InvalidTarget(&'static str),
    /// A rate limit or quota refused the request (429 with `Retry-After`).
    #[error("too many requests ({}); retry after {} s", .0.limit, .0.retry_after)]
    RateLimited(crate::protect::Limited),
    /// The token policy denied the request (the reason is the policy's).
    #[error("{0}")]
    AccessDenied(String),
    /// The token policy could not be evaluated: fail closed (503).
    #[error("the token policy is unavailable; no tokens are issued until it is fixed")]
    PolicyUnavailable,
    /// The audit journal cannot make the request's event durable (full or
    /// unwritable): fail closed (503 with `Retry-After`).
    #[error("the audit trail cannot record this request; no tokens are issued until it can")]
    AuditUnavailable,
    /// The database cannot be reached and the request needs it (503 with
    /// `Retry-After`); the cause is logged, not sent.
    #[error("the service is temporarily unavailable; retry later")]
    Unavailable(#[source] anyhow::Error),
    /// Something failed on the server; the cause is logged, not sent.
    #[error("the server could not complete the request")]
    Server(#[source] anyhow::Error),
}

impl OAuthError {
    /// The `error` code on the wire.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) | Self::BodyTooLarge(_) => "invalid_request",
            Self::InvalidClient { .. } | Self::ProofRefused(_) => "invalid_client",
            Self::UnauthorizedClient(_) | Self::Forbidden(_) => "unauthorized_client",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::InvalidTarget(_) => "invalid_target",
            Self::InvalidDpopProof(_) => "invalid_dpop_proof",
            Self::UseDpopNonce(_) => "use_dpop_nonce",
            Self::RateLimited(_) => "rate_limited",
            Self::AccessDenied(_) => "access_denied",
            Self::PolicyUnavailable | Self::AuditUnavailable | Self::Unavailable(_) => {
                "temporarily_unavailable"
            }
            Self::Server(_) => "server_error",
        }
    }

    /// The HTTP status (RFC 6749 §5.2: 400, or 401 for `invalid_client`).
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidClient { .. } | Self::ProofRefused(_) => 401,
            Self::BodyTooLarge(_) => 413,
            Self::Forbidden(_) => 403,
            Self::RateLimited(_) => 429,
            Self::PolicyUnavailable | Self::AuditUnavailable | Self::Unavailable(_) => 503,
            Self::Server(_) => 500,
            _ => 400,
        }
    }

    /// The generic authentication failure, identical for unknown client,
    /// wrong secret and expired secret so none of them can be told apart.
    #[must_use]
    pub fn authentication_failed(basic_attempted: bool) -> Self {
        Self::InvalidClient {
            basic_attempted,
            description: "client authentication failed",
        }
    }

    /// A server-side failure; the cause is logged, never sent. An
    /// unreachable database anywhere in its cause chain makes it
    /// [`OAuthError::Unavailable`].
    pub fn server(e: impl Into<anyhow::Error>) -> Self {
        let e = e.into();
        if StoreError::unavailable_in(e.as_ref()) {
            Self::Unavailable(e)
        } else {
            Self::Server(e)
        }
    }
}
