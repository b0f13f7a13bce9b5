//! [`ClientView`]: a client as the admin API and the CLI show it (RFC 7591
//! §3.2.1 response members plus Portcullis's own).

use serde::Serialize;

use super::{Client, PlainSecret};

/// The JSON representation of a client.
#[derive(Debug, Serialize)]
pub struct ClientView {
    /// Identifier.
    pub client_id: String,
    /// Present only in the response that created or rotated the secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Registration time, seconds since the epoch.
    pub client_id_issued_at: i64,
    /// 0: the secret does not expire (it is rotated explicitly). Absent for
    /// clients that authenticate without a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Grants.
    pub grant_types: Vec<&'static str>,
    /// Token endpoint auth method.
    pub token_endpoint_auth_method: &'static str,
    /// Inline public JWK set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// URL of the client's JWK set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The algorithm the client's assertions must use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg: Option<String>,
    /// The registered certificate subject (`tls_client_auth_subject_dn`,
    /// `tls_client_auth_san_dns`, …), flattened into the object.
    #[serde(flatten)]
    pub tls_client_auth_subject: std::collections::BTreeMap<&'static str, String>,
    /// Access tokens are bound to the client certificate.
    pub tls_client_certificate_bound_access_tokens: bool,
    /// Allowed scopes, space-separated.
    pub scope: String,
    /// Allowed audiences.
    pub allowed_audiences: Vec<String>,
    /// Default audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_audience: Option<String>,
    /// Access-token lifetime in seconds, when the client sets its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_ttl: Option<u32>,
    /// Whether the client may call the introspection endpoint.
    pub allow_introspection: bool,
    /// Refresh-token idle lifetime, when the client sets its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token_idle_ttl: Option<u32>,
    /// Refresh-token absolute lifetime, when the client sets its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token_absolute_ttl: Option<u32>,
    /// Own rate limit per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_second: Option<u32>,
    /// Own rate-limit burst.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_burst: Option<u32>,
    /// Hourly token quota.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_quota_per_hour: Option<u32>,
    /// Daily token quota.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_quota_per_day: Option<u32>,
    /// Locked after failed authentication until (seconds since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<i64>,
    /// Whether the client may obtain tokens.
    pub enabled: bool,
    /// Last change, seconds since the epoch.
    pub updated_at: i64,
}

impl ClientView {
    /// The view of `client`, with `secret` when it was just generated.
    #[must_use]
    pub fn new(client: &Client, secret: Option<&PlainSecret>) -> Self {
        Self {
            client_id: client.id.to_string(),
            client_secret: secret.map(|s| s.expose().to_owned()),
            client_id_issued_at: client.created_at.timestamp(),
            client_secret_expires_at: client.auth_method.uses_secret().then_some(0),
            client_name: client.name.clone(),
            grant_types: client.grant_types.iter().map(|g| g.as_str()).collect(),
            token_endpoint_auth_method: client.auth_method.as_str(),
            jwks: client.keys.jwks.clone(),
            jwks_uri: client.keys.jwks_uri.clone(),
            token_endpoint_auth_signing_alg: client.keys.signing_alg.clone(),
            tls_client_auth_subject: client
                .keys
                .tls_subject
                .iter()
                .map(|m| (m.metadata_name(), m.value()))
                .collect(),
            tls_client_certificate_bound_access_tokens: client.certificate_bound_access_tokens
                || client.auth_method.uses_certificate(),
            scope: client.scope.to_string(),
            allowed_audiences: client.allowed_audiences.clone(),
            default_audience: client.default_audience.clone(),
            access_token_ttl: client.access_token_ttl,
            allow_introspection: client.allow_introspection,
            refresh_token_idle_ttl: client.refresh_token_idle_ttl,
            refresh_token_absolute_ttl: client.refresh_token_absolute_ttl,
            rate_limit_per_second: client.rate_limit_per_second,
            rate_limit_burst: client.rate_limit_burst,
            token_quota_per_hour: client.token_quota_per_hour,
            token_quota_per_day: client.token_quota_per_day,
            locked_until: client.locked_until.map(|t| t.timestamp()),
            enabled: client.enabled,
            updated_at: client.updated_at.timestamp(),
        }
    }
}
