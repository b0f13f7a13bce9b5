//! The grant types and token-endpoint authentication methods a client can be
//! registered for, with their RFC 7591 wire values.

use serde::{Deserialize, Serialize};

/// Grant types a client may be registered for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// RFC 6749 §4.4.
    ClientCredentials,
    /// RFC 6749 §6: refresh tokens, issued with client-credentials tokens.
    RefreshToken,
    /// RFC 7523 §2.1: a federated token as the grant.
    JwtBearer,
    /// RFC 8693: token exchange.
    TokenExchange,
}

impl GrantType {
    /// The wire value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken => "refresh_token",
            Self::JwtBearer => "urn:ietf:params:oauth:grant-type:jwt-bearer",
            Self::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
        }
    }

    /// Parses a wire value this server supports.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client_credentials" => Some(Self::ClientCredentials),
            "refresh_token" => Some(Self::RefreshToken),
            "urn:ietf:params:oauth:grant-type:jwt-bearer" => Some(Self::JwtBearer),
            "urn:ietf:params:oauth:grant-type:token-exchange" => Some(Self::TokenExchange),
            _ => None,
        }
    }
}

/// Token-endpoint client authentication methods (RFC 7591 §2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic (RFC 6749 §2.3.1); the RFC 7591 default.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A JWT signed with the client's private key (RFC 7523 §2.2).
    PrivateKeyJwt,
    /// A certificate from a configured CA with a registered subject (RFC 8705 §2.1).
    TlsClientAuth,
    /// A self-signed certificate registered in the client's JWK set (RFC 8705 §2.2).
    SelfSignedTlsClientAuth,
    /// A token of a trusted federation that a mapping rule maps to the client
    /// (RFC 7523 §2.2 assertion, or the §2.1 grant without other
    /// authentication): no secret and no registered keys.
    FederatedJwt,
}

impl AuthMethod {
    /// The wire value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
            Self::FederatedJwt => "federated_jwt",
        }
    }

    /// Whether the client authenticates with a shared secret.
    #[must_use]
    pub fn uses_secret(self) -> bool {
        matches!(self, Self::ClientSecretBasic | Self::ClientSecretPost)
    }

    /// Whether the client authenticates with its TLS client certificate.
    #[must_use]
    pub fn uses_certificate(self) -> bool {
        matches!(self, Self::TlsClientAuth | Self::SelfSignedTlsClientAuth)
    }

    /// Parses a wire value this server supports.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            "private_key_jwt" => Some(Self::PrivateKeyJwt),
            "tls_client_auth" => Some(Self::TlsClientAuth),
            "self_signed_tls_client_auth" => Some(Self::SelfSignedTlsClientAuth),
            "federated_jwt" => Some(Self::FederatedJwt),
            _ => None,
        }
    }
}
