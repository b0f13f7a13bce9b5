//! RFC 8705 mutual-TLS client authentication, free of web-framework types.
//!
//! The token endpoint hands in the client's certificate chain — from the TLS
//! connection, or from Envoy's `x-forwarded-client-cert` header via
//! [`parse_xfcc`] — as a [`ClientCertificate`], together with the server's clock
//! value. Nothing here reads the system clock.
//!
//! - `tls_client_auth` ([RFC 8705 §2.1]): the chain must lead to one of the
//!   configured [`TrustAnchors`], and the leaf must match the client's registered
//!   [`SubjectMatcher`].
//! - `self_signed_tls_client_auth` ([RFC 8705 §2.2]): the leaf must be named by a
//!   key in the client's registered JWKS ([`jwk_names_certificate`]) and be within
//!   its validity period ([`ClientCertificate::check_validity`]).
//!
//! Either way, [`ClientCertificate::thumbprint`] is the `x5t#S256` value that
//! binds issued tokens to the certificate ([RFC 8705 §3]).
//!
//! [RFC 8705 §2.1]: https://www.rfc-editor.org/rfc/rfc8705#section-2.1
//! [RFC 8705 §2.2]: https://www.rfc-editor.org/rfc/rfc8705#section-2.2
//! [RFC 8705 §3]: https://www.rfc-editor.org/rfc/rfc8705#section-3

mod certificate;
mod dn;
mod subject;
#[cfg(test)]
pub(crate) mod testutil;
mod trust;
mod xfcc;

pub use certificate::{jwk_names_certificate, ClientCertificate};
pub use subject::SubjectMatcher;
pub use trust::TrustAnchors;
pub use xfcc::parse_xfcc;

/// Why a client certificate was refused.
///
/// Display messages are safe to show to the client (OAuth `error_description`):
/// short, and never containing certificate bytes.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CertError {
    /// The certificate (chain) could not be parsed, or none was presented.
    #[error("{0}")]
    Malformed(String),
    /// The certificate (or a certificate in its path) is past its `notAfter`.
    #[error("the client certificate has expired")]
    Expired,
    /// The certificate (or a certificate in its path) is before its `notBefore`.
    #[error("the client certificate is not yet valid")]
    NotYetValid,
    /// The chain does not lead to a configured CA, or is not fit for TLS client
    /// authentication.
    #[error("the client certificate is not trusted: {0}")]
    Untrusted(String),
    /// The `x-forwarded-client-cert` header is malformed or lacks the certificate.
    #[error("invalid x-forwarded-client-cert header: {0}")]
    Xfcc(String),
    /// The CA bundle could not be read or holds no usable certificate
    /// (a startup/configuration error).
    #[error("invalid CA bundle: {0}")]
    Bundle(String),
}
