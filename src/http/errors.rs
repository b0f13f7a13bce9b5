//! How errors become HTTP responses, in one place.
//!
//! Policy: every error body is JSON `{"error", "error_description"}`. OAuth
//! endpoints use the RFC 6749 §5.2 codes ([`OAuthError`]) and always carry
//! `Cache-Control: no-store` and `Pragma: no-cache`; `invalid_client` after an
//! HTTP Basic attempt carries `WWW-Authenticate: Basic`. The admin API uses
//! RFC 7591 `invalid_client_metadata` for bad registrations and RFC 6750
//! `invalid_token` (with `WWW-Authenticate: Bearer`) for bad admin tokens, and
//! `rate_limited` (429 with `Retry-After`) on either API when a limit is hit,
//! `rotation_unsafe` (409) for a refused safe key rotation ([`ApiError`]). A
//! body not received within `request_timeout` is `408 invalid_request` on
//! either API (the connection is closed). A 5xx body only says `server_error`; its cause chain is
//! logged once, here. Descriptions never contain secrets.
//!
//! An unreachable database is never a 500: on either API it is
//! `503 temporarily_unavailable` with `Retry-After` (the OAuth endpoints
//! through [`OAuthError::Unavailable`], the admin API when an internal
//! error's cause chain holds an unreachable-database store error), answered
//! at once while the circuit breaker is open.

use actix_web::{
    http::{header, StatusCode},
    HttpResponse, HttpResponseBuilder, ResponseError,
};
use serde::Serialize;

use crate::{
    clients::RegistryError,
    federation::FederationError,
    oauth::{error::UNAVAILABLE_RETRY_AFTER, OAuthError},
    store::StoreError,
};

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

/// A JSON error response with the given status, code and description.
#[must_use]
pub fn json_error(status: StatusCode, code: &str, description: &str) -> HttpResponse {
    finish(error_builder(status), code, description)
}

/// `503 temporarily_unavailable` with `description`, for a document that
/// cannot be built now; the cause is logged here, once.
pub fn unavailable(description: &str, cause: &dyn std::fmt::Debug) -> HttpResponse {
    tracing::error!(error.cause_chain = ?cause, "{description}");
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        description,
    )
}

fn error_builder(status: StatusCode) -> HttpResponseBuilder {
    let mut builder = HttpResponse::build(status);
    builder.insert_header((header::CACHE_CONTROL, "no-store"));
    builder.insert_header((header::PRAGMA, "no-cache"));
    builder
}

fn finish(mut builder: HttpResponseBuilder, code: &str, description: &str) -> HttpResponse {
    builder.json(ErrorBody {
        error: code,
        error_description: description,
    })
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::BAD_REQUEST)
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Server(cause) = self {
            tracing::error!(error.cause_chain = ?cause, "token endpoint failed");
        }
        if let Self::Unavailable(cause) = self {
            tracing::warn!(error.cause_chain = ?cause, "database unavailable: request refused");
        }
        let mut builder = error_builder(self.status_code());
        if matches!(
            self,
            Self::InvalidClient {
                basic_attempted: true,
                ..
            }
        ) {
            builder.insert_header((
                header::WWW_AUTHENTICATE,
                "Basic realm=\"portcullis\", charset=\"UTF-8\"",
            ));
        }
        if let Self::RateLimited(limited) = self {
            builder.insert_header((header::RETRY_AFTER, limited.retry_after.to_string()));
        }
        if let Self::UseDpopNonce(nonce) = self {
            builder.insert_header(("DPoP-Nonce", nonce.as_str()));
        }
        if let Self::AuditUnavailable = self {
            builder.insert_header((header::RETRY_AFTER, "1"));
        }
        if matches!(self, Self::Unavailable(_)) {
            builder.insert_header((header::RETRY_AFTER, UNAVAILABLE_RETRY_AFTER.to_string()));
        }
        finish(builder, self.code(), &self.to_string())
    }
}

/// Errors of the admin REST API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or wrong admin bearer token.
    #[error("a valid admin bearer token is required")]
    Unauthorized,
    /// No such client (or route).
    #[error("{0}")]
    NotFound(&'static str),
    /// The client id is taken.
    #[error("a client with this client_id already exists")]
    Conflict,
    /// The client's registration does not allow the operation (409 `conflict`).
    #[error("{0}")]
    StateConflict(String),
    /// The federation id or issuer is taken.
    #[error("a federation with this federation_id or issuer already exists")]
    FederationConflict,
    /// Invalid client metadata (RFC 7591 §3.2.2).
    #[error("{0}")]
    InvalidClientMetadata(String),
    /// Malformed request outside the metadata (query parameters, body framing).
    #[error("{0}")]
    InvalidRequest(String),
    /// A manual rotation with `safe` was refused.
    #[error("{0}")]
    RotationUnsafe(String),
    /// The body is not `application/json`.
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// The body exceeds the limit.
    #[error("request body exceeds {0} bytes")]
    BodyTooLarge(usize),
    /// The body did not arrive within `request_timeout` (408; the connection is closed).
    #[error("the request body was not received within {0} s")]
    BodyTimeout(u64),
    /// An admin rate limit refused the request (429 with `Retry-After`).
    #[error("too many admin requests; retry after {} s", .0.retry_after)]
    RateLimited(crate::protect::Limited),
    /// A server-side failure; logged, not shown.
    #[error("the server could not complete the request")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// An internal error caused by an unreachable database, or by an audit
    /// journal that refuses events (answered 503).
    fn database_unavailable(&self) -> bool {
        matches!(self, Self::Internal(e) if StoreError::unavailable_in(e.as_ref())
            || e.chain().any(<dyn std::error::Error>::is::<crate::audit::AuditUnavailable>))
    }

    fn code(&self) -> &'static str {
        if self.database_unavailable() {
            return "temporarily_unavailable";
        }
        match self {
            Self::Unauthorized => "invalid_token",
            Self::NotFound(_) => "not_found",
            Self::Conflict | Self::StateConflict(_) | Self::FederationConflict => "conflict",
            Self::RotationUnsafe(_) => "rotation_unsafe",
            Self::InvalidClientMetadata(_) => "invalid_client_metadata",
            Self::InvalidRequest(_)
            | Self::UnsupportedMediaType
            | Self::BodyTooLarge(_)
            | Self::BodyTimeout(_) => "invalid_request",
            Self::RateLimited(_) => "rate_limited",
            Self::Internal(_) => "server_error",
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::InvalidMetadata(m) => Self::InvalidClientMetadata(m),
            RegistryError::NotFound => Self::NotFound("no client with this client_id"),
            RegistryError::Conflict => Self::Conflict,
            RegistryError::StateConflict(m) => Self::StateConflict(m),
            RegistryError::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<FederationError> for ApiError {
    fn from(e: FederationError) -> Self {
        match e {
            FederationError::Invalid(m) => Self::InvalidRequest(m),
            FederationError::NotFound => Self::NotFound("no federation with this federation_id"),
            FederationError::Conflict => Self::FederationConflict,
            FederationError::Internal(e) => Self::Internal(e),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        if self.database_unavailable() {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict
            | Self::StateConflict(_)
            | Self::FederationConflict
            | Self::RotationUnsafe(_) => StatusCode::CONFLICT,
            Self::InvalidClientMetadata(_) | Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let unavailable = self.database_unavailable();
        match self {
            Self::Internal(cause) if unavailable => {
                tracing::warn!(error.cause_chain = ?cause, "database unavailable: admin request refused");
            }
            Self::Internal(cause) => {
                tracing::error!(error.cause_chain = ?cause, "admin request failed");
            }
            _ => {}
        }
        let mut builder = error_builder(self.status_code());
        if unavailable {
            builder.insert_header((header::RETRY_AFTER, UNAVAILABLE_RETRY_AFTER.to_string()));
            return finish(
                builder,
                self.code(),
                "the database is temporarily unavailable; retry later",
            );
        }
        if let Self::RateLimited(limited) = self {
            builder.insert_header((header::RETRY_AFTER, limited.retry_after.to_string()));
        }
        if matches!(self, Self::BodyTimeout(_)) {
            builder.force_close();
        }
        if matches!(self, Self::Unauthorized) {
            builder.insert_header((
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"portcullis-admin\", error=\"invalid_token\"",
            ));
        }
        finish(builder, self.code(), &self.to_string())
    }
}
