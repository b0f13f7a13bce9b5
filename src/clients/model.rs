//! The client model and RFC 7591 metadata validation.
//!
//! Standard metadata that does not apply to this server (`redirect_uris`,
//! `response_types`, …) is ignored, as RFC 7591 §2 requires; invalid values
//! of the fields we use are refused with a message naming the field.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::credentials::{
    assertion_algorithm, validate_jwks, validate_jwks_uri, KeyMaterial, ASSERTION_ALGORITHMS,
};
use crate::{certs::SubjectMatcher, oauth::scope::ScopeSet};

/// A client identifier: 1–128 characters of `A–Z a–z 0–9 - . _ ~` (URL-safe,
/// and unchanged by the form-encoding of HTTP Basic credentials).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(String);

impl ClientId {
    /// Validates a client id.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err("client_id must be 1-128 characters of A-Z a-z 0-9 - . _ ~".to_owned())
        }
    }

    /// A new random client id (a UUID).
    #[must_use]
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Grant types a client may be registered for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// RFC 6749 §4.4.
    ClientCredentials,
    /// RFC 6749 §6: refresh tokens, issued with client-credentials tokens.
    RefreshToken,
}

impl GrantType {
    /// The wire value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken => "refresh_token",
        }
    }

    /// Parses a wire value this server supports.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client_credentials" => Some(Self::ClientCredentials),
            "refresh_token" => Some(Self::RefreshToken),
            _ => None,
        }
    }
}

/// Token-endpoint client authentication methods (RFC 7591 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic (RFC 6749 §2.3.1); the RFC 7591 default.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A JWT signed with the client's private key (RFC 7523 §2.2).
    PrivateKeyJwt,
    /// A certificate from a configured CA with a registered subject (RFC 8705 §2.1).
    TlsClientAuth,
    /// A self-signed certificate registered in the client's JWK set (RFC 8705 §2.2).
    SelfSignedTlsClientAuth,
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
            _ => None,
        }
    }
}

/// A registered client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// Identifier.
    pub id: ClientId,
    /// Human-readable name.
    pub name: Option<String>,
    /// Grants the client may use.
    pub grant_types: Vec<GrantType>,
    /// How the client authenticates at the token endpoint.
    pub auth_method: AuthMethod,
    /// Keys and certificate subject of a secretless client.
    pub keys: KeyMaterial,
    /// Access tokens are bound to the client's certificate (RFC 8705 §3) even
    /// when it authenticates otherwise.
    pub certificate_bound_access_tokens: bool,
    /// Scopes the client may be granted (its allow-list).
    pub scope: ScopeSet,
    /// Audiences (RFC 8707 resources) the client may request.
    pub allowed_audiences: Vec<String>,
    /// Audience used when a token request names no `resource`.
    pub default_audience: Option<String>,
    /// Access-token lifetime in seconds (capped by the server maximum).
    pub access_token_ttl: Option<u32>,
    /// Whether the client may call the introspection endpoint.
    pub allow_introspection: bool,
    /// Refresh-token idle lifetime in seconds (capped by the server's).
    pub refresh_token_idle_ttl: Option<u32>,
    /// Refresh-token absolute lifetime in seconds (capped by the server's).
    pub refresh_token_absolute_ttl: Option<u32>,
    /// Access tokens issued before this time are inactive (admin "revoke all").
    pub tokens_revoked_before: Option<DateTime<Utc>>,
    /// Locked after repeated failed authentication, until this time.
    pub locked_until: Option<DateTime<Utc>>,
    /// Own rate limit (token requests per second), instead of the server default.
    pub rate_limit_per_second: Option<u32>,
    /// Own burst for that rate limit.
    pub rate_limit_burst: Option<u32>,
    /// Tokens per UTC hour at most.
    pub token_quota_per_hour: Option<u32>,
    /// Tokens per UTC day at most.
    pub token_quota_per_day: Option<u32>,
    /// Disabled clients cannot obtain tokens.
    pub enabled: bool,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// RFC 7591 client metadata as submitted (create or full update). Unknown
/// members are ignored; `client_secret` is refused (secrets are generated).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct RegistrationRequest {
    /// Requested client id; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Defaults to `["client_credentials"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types: Option<Vec<String>>,
    /// Defaults to `client_secret_basic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// Space-separated allowed scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Allowed audiences (absolute URIs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_audiences: Option<Vec<String>>,
    /// Default audience; must be one of `allowed_audiences`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_audience: Option<String>,
    /// Access-token lifetime in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_ttl: Option<i64>,
    /// May call the introspection endpoint (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_introspection: Option<bool>,
    /// Refresh-token idle lifetime in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_idle_ttl: Option<i64>,
    /// Refresh-token absolute lifetime in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_absolute_ttl: Option<i64>,
    /// Own rate limit, token requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_second: Option<i64>,
    /// Own burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_burst: Option<i64>,
    /// Tokens per UTC hour at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_quota_per_hour: Option<i64>,
    /// Tokens per UTC day at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_quota_per_day: Option<i64>,
    /// Inline JWK set (`private_key_jwt`, `self_signed_tls_client_auth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// URL of the client's JWK set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The algorithm the client's assertions must be signed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg: Option<String>,
    /// RFC 8705 §2.1.2: expected subject DN (RFC 4514).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_subject_dn: Option<String>,
    /// Expected DNS name SAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_dns: Option<String>,
    /// Expected URI SAN (a SPIFFE ID, for example).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_uri: Option<String>,
    /// Expected IP address SAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_ip: Option<String>,
    /// Expected e-mail SAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_email: Option<String>,
    /// Bind access tokens to the client certificate (RFC 8705 §3.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_certificate_bound_access_tokens: Option<bool>,
    /// Present only to be refused with a clear message.
    #[serde(default, skip_serializing)]
    pub client_secret: Option<serde_json::Value>,
}

impl From<&Client> for RegistrationRequest {
    /// The metadata that would register `client` as it is (for partial updates).
    fn from(c: &Client) -> Self {
        Self {
            client_id: Some(c.id.to_string()),
            client_name: c.name.clone(),
            grant_types: Some(
                c.grant_types
                    .iter()
                    .map(|g| g.as_str().to_owned())
                    .collect(),
            ),
            token_endpoint_auth_method: Some(c.auth_method.as_str().to_owned()),
            scope: Some(c.scope.to_string()),
            allowed_audiences: Some(c.allowed_audiences.clone()),
            default_audience: c.default_audience.clone(),
            access_token_ttl: c.access_token_ttl.map(i64::from),
            allow_introspection: Some(c.allow_introspection),
            refresh_token_idle_ttl: c.refresh_token_idle_ttl.map(i64::from),
            refresh_token_absolute_ttl: c.refresh_token_absolute_ttl.map(i64::from),
            rate_limit_per_second: c.rate_limit_per_second.map(i64::from),
            rate_limit_burst: c.rate_limit_burst.map(i64::from),
            token_quota_per_hour: c.token_quota_per_hour.map(i64::from),
            token_quota_per_day: c.token_quota_per_day.map(i64::from),
            jwks: c.keys.jwks.clone(),
            jwks_uri: c.keys.jwks_uri.clone(),
            token_endpoint_auth_signing_alg: c.keys.signing_alg.clone(),
            tls_client_auth_subject_dn: subject(c, "tls_client_auth_subject_dn"),
            tls_client_auth_san_dns: subject(c, "tls_client_auth_san_dns"),
            tls_client_auth_san_uri: subject(c, "tls_client_auth_san_uri"),
            tls_client_auth_san_ip: subject(c, "tls_client_auth_san_ip"),
            tls_client_auth_san_email: subject(c, "tls_client_auth_san_email"),
            tls_client_certificate_bound_access_tokens: Some(c.certificate_bound_access_tokens),
            client_secret: None,
        }
    }
}

/// The client's registered certificate subject, if it is of kind `member`.
fn subject(c: &Client, member: &str) -> Option<String> {
    c.keys
        .tls_subject
        .as_ref()
        .filter(|m| m.metadata_name() == member)
        .map(SubjectMatcher::value)
}

/// Validated metadata, ready to become a [`Client`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientMetadata {
    /// Requested id, if any.
    pub client_id: Option<ClientId>,
    /// Name.
    pub name: Option<String>,
    /// Grants.
    pub grant_types: Vec<GrantType>,
    /// Auth method.
    pub auth_method: AuthMethod,
    /// Keys and certificate subject.
    pub keys: KeyMaterial,
    /// Certificate-bound access tokens.
    pub certificate_bound_access_tokens: bool,
    /// Allowed scopes.
    pub scope: ScopeSet,
    /// Allowed audiences.
    pub allowed_audiences: Vec<String>,
    /// Default audience.
    pub default_audience: Option<String>,
    /// Token lifetime.
    pub access_token_ttl: Option<u32>,
    /// Introspection permission.
    pub allow_introspection: bool,
    /// Refresh-token idle lifetime.
    pub refresh_token_idle_ttl: Option<u32>,
    /// Refresh-token absolute lifetime.
    pub refresh_token_absolute_ttl: Option<u32>,
    /// Rate limit per second.
    pub rate_limit_per_second: Option<u32>,
    /// Rate-limit burst.
    pub rate_limit_burst: Option<u32>,
    /// Hourly token quota.
    pub token_quota_per_hour: Option<u32>,
    /// Daily token quota.
    pub token_quota_per_day: Option<u32>,
}

/// Server ceilings that client metadata is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest access-token lifetime.
    pub access_token_ttl: u32,
    /// Longest refresh-token idle lifetime.
    pub refresh_token_idle_ttl: u32,
    /// Longest refresh-token absolute lifetime.
    pub refresh_token_absolute_ttl: u32,
}

/// The registered `tls_client_auth_*` members, by name.
fn tls_subject_members(r: &RegistrationRequest) -> [(&'static str, Option<&String>); 5] {
    [
        (
            "tls_client_auth_subject_dn",
            r.tls_client_auth_subject_dn.as_ref(),
        ),
        (
            "tls_client_auth_san_dns",
            r.tls_client_auth_san_dns.as_ref(),
        ),
        (
            "tls_client_auth_san_uri",
            r.tls_client_auth_san_uri.as_ref(),
        ),
        ("tls_client_auth_san_ip", r.tls_client_auth_san_ip.as_ref()),
        (
            "tls_client_auth_san_email",
            r.tls_client_auth_san_email.as_ref(),
        ),
    ]
}

/// The requested authentication method (default `client_secret_basic`).
fn auth_method_of(requested: Option<&str>) -> Result<AuthMethod, String> {
    match requested {
        None => Ok(AuthMethod::ClientSecretBasic),
        Some(m) => AuthMethod::parse(m).ok_or_else(|| {
            format!("token_endpoint_auth_method {m:?} is not supported; use client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth or self_signed_tls_client_auth")
        }),
    }
}

/// Validates the key material for `method` (RFC 7523, RFC 8705 §2).
fn key_material(
    r: &RegistrationRequest,
    method: AuthMethod,
) -> Result<(AuthMethod, KeyMaterial), String> {
    let subjects: Vec<(&str, &String)> = tls_subject_members(r)
        .into_iter()
        .filter_map(|(name, v)| v.map(|v| (name, v)))
        .collect();
    let tls_subject = match (method, subjects.as_slice()) {
        (AuthMethod::TlsClientAuth, [(name, value)]) => Some(SubjectMatcher::parse(name, value)?),
        (AuthMethod::TlsClientAuth, _) => {
            return Err("tls_client_auth needs exactly one of tls_client_auth_subject_dn, tls_client_auth_san_dns, tls_client_auth_san_uri, tls_client_auth_san_ip, tls_client_auth_san_email".into())
        }
        (_, []) => None,
        (_, [(name, _), ..]) => {
            return Err(format!("{name} applies only to token_endpoint_auth_method tls_client_auth"))
        }
    };
    let takes_keys = matches!(
        method,
        AuthMethod::PrivateKeyJwt | AuthMethod::SelfSignedTlsClientAuth
    );
    match (&r.jwks, &r.jwks_uri) {
        (Some(_), Some(_)) => {
            return Err("jwks and jwks_uri are mutually exclusive (RFC 7591 §2)".into())
        }
        (None, None) if takes_keys => {
            return Err(format!("{} needs jwks or jwks_uri", method.as_str()))
        }
        (Some(_), _) | (_, Some(_)) if !takes_keys => {
            return Err(
                "jwks and jwks_uri apply only to private_key_jwt and self_signed_tls_client_auth"
                    .into(),
            )
        }
        _ => {}
    }
    if let Some(jwks) = &r.jwks {
        let set = validate_jwks(jwks)?;
        if method == AuthMethod::SelfSignedTlsClientAuth
            && !set.keys.iter().any(|k| {
                k.common.x509_chain.is_some() || k.common.x509_sha256_fingerprint.is_some()
            })
        {
            return Err("self_signed_tls_client_auth needs a key in jwks with x5c or x5t#S256 naming the certificate".into());
        }
    }
    if let Some(uri) = &r.jwks_uri {
        validate_jwks_uri(uri)?;
    }
    let signing_alg = match (&r.token_endpoint_auth_signing_alg, method) {
        (None, _) => None,
        (Some(alg), AuthMethod::PrivateKeyJwt) => {
            assertion_algorithm(alg).ok_or_else(|| {
                format!(
                    "token_endpoint_auth_signing_alg {alg:?} is not supported; use one of {}",
                    ASSERTION_ALGORITHMS.join(", ")
                )
            })?;
            Some(alg.clone())
        }
        (Some(_), _) => {
            return Err("token_endpoint_auth_signing_alg applies only to private_key_jwt".into())
        }
    };
    let material = KeyMaterial {
        jwks: r.jwks.clone(),
        jwks_uri: r.jwks_uri.clone(),
        signing_alg,
        tls_subject,
    };
    Ok((method, material))
}

/// A count in `1..=max`, or an error naming `field`.
fn count(value: Option<i64>, max: u32, field: &str) -> Result<Option<u32>, String> {
    match value {
        None => Ok(None),
        Some(n) if n >= 1 && n <= i64::from(max) => Ok(Some(n as u32)),
        Some(_) => Err(format!("{field} must be between 1 and {max}")),
    }
}

/// A lifetime in `1..=max` seconds, or an error naming `field`.
fn lifetime(value: Option<i64>, max: u32, field: &str) -> Result<Option<u32>, String> {
    match value {
        None => Ok(None),
        Some(t) if t >= 1 && t <= i64::from(max) => Ok(Some(t as u32)),
        Some(_) => Err(format!("{field} must be between 1 and {max} seconds")),
    }
}

impl RegistrationRequest {
    /// Validates the metadata against the server's ceilings.
    pub fn validate(self, limits: &Limits) -> Result<ClientMetadata, String> {
        if self.client_secret.is_some() {
            return Err("client_secret cannot be chosen; the server generates it (rotate it with POST /admin/clients/{client_id}/secret)".into());
        }
        let client_id = self.client_id.as_deref().map(ClientId::parse).transpose()?;
        let keys = key_material(
            &self,
            auth_method_of(self.token_endpoint_auth_method.as_deref())?,
        )?;

        let name = self
            .client_name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        if name
            .as_ref()
            .is_some_and(|n| n.chars().count() > 200 || n.chars().any(char::is_control))
        {
            return Err(
                "client_name must be at most 200 characters without control characters".into(),
            );
        }
        let grant_types = parse_grant_types(self.grant_types)?;
        let auth_method = keys.0;
        let keys = keys.1;
        let scope =
            ScopeSet::parse(self.scope.as_deref().unwrap_or("")).map_err(|e| e.to_string())?;
        let allowed_audiences = parse_audiences(self.allowed_audiences.unwrap_or_default())?;
        let default_audience = match self.default_audience {
            Some(a) if !allowed_audiences.contains(&a) => {
                return Err("default_audience must be one of allowed_audiences".into())
            }
            Some(a) => Some(a),
            None if allowed_audiences.len() == 1 => allowed_audiences.first().cloned(),
            None => None,
        };
        let access_token_ttl = lifetime(
            self.access_token_ttl,
            limits.access_token_ttl,
            "access_token_ttl",
        )?;
        let refresh_token_idle_ttl = lifetime(
            self.refresh_token_idle_ttl,
            limits.refresh_token_idle_ttl,
            "refresh_token_idle_ttl",
        )?;
        let refresh_token_absolute_ttl = lifetime(
            self.refresh_token_absolute_ttl,
            limits.refresh_token_absolute_ttl,
            "refresh_token_absolute_ttl",
        )?;
        if let (Some(idle), Some(absolute)) = (refresh_token_idle_ttl, refresh_token_absolute_ttl) {
            if idle > absolute {
                return Err(
                    "refresh_token_idle_ttl must not exceed refresh_token_absolute_ttl".into(),
                );
            }
        }
        Ok(ClientMetadata {
            client_id,
            name,
            grant_types,
            auth_method,
            keys,
            certificate_bound_access_tokens: self
                .tls_client_certificate_bound_access_tokens
                .unwrap_or(false),
            scope,
            allowed_audiences,
            default_audience,
            access_token_ttl,
            allow_introspection: self.allow_introspection.unwrap_or(false),
            refresh_token_idle_ttl,
            refresh_token_absolute_ttl,
            rate_limit_per_second: match (self.rate_limit_per_second, self.rate_limit_burst) {
                (None, Some(_)) => {
                    return Err("rate_limit_burst needs rate_limit_per_second".into())
                }
                (rate, _) => count(rate, 100_000, "rate_limit_per_second")?,
            },
            rate_limit_burst: count(self.rate_limit_burst, 1_000_000, "rate_limit_burst")?,
            token_quota_per_hour: count(
                self.token_quota_per_hour,
                100_000_000,
                "token_quota_per_hour",
            )?,
            token_quota_per_day: count(
                self.token_quota_per_day,
                1_000_000_000,
                "token_quota_per_day",
            )?,
        })
    }
}

fn parse_grant_types(requested: Option<Vec<String>>) -> Result<Vec<GrantType>, String> {
    let Some(requested) = requested else {
        return Ok(vec![GrantType::ClientCredentials]);
    };
    if requested.is_empty() {
        return Err("grant_types must not be empty".into());
    }
    let mut grants = Vec::new();
    for g in &requested {
        let grant = GrantType::parse(g).ok_or_else(|| {
            format!("grant type {g:?} is not supported; use client_credentials and refresh_token")
        })?;
        if !grants.contains(&grant) {
            grants.push(grant);
        }
    }
    if !grants.contains(&GrantType::ClientCredentials) {
        return Err(
            "grant_types must include client_credentials (refresh tokens are issued with it)"
                .into(),
        );
    }
    Ok(grants)
}

/// Audiences are absolute URIs without a fragment (RFC 8707 §2).
pub fn parse_audiences(list: Vec<String>) -> Result<Vec<String>, String> {
    if list.len() > 100 {
        return Err("allowed_audiences may hold at most 100 entries".into());
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for a in list {
        if !is_absolute_uri(&a) {
            return Err(format!(
                "audience {a:?} is not an absolute URI without a fragment"
            ));
        }
        if !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

/// Whether `s` is an absolute URI without a fragment, at most 2048 bytes.
#[must_use]
pub fn is_absolute_uri(s: &str) -> bool {
    s.len() <= 2048 && !s.contains('#') && url::Url::parse(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        access_token_ttl: 3600,
        refresh_token_idle_ttl: 86_400,
        refresh_token_absolute_ttl: 864_000,
    };

    fn req(json: serde_json::Value) -> Result<ClientMetadata, String> {
        serde_json::from_value::<RegistrationRequest>(json)
            .unwrap()
            .validate(&LIMITS)
    }

    #[test]
    fn minimal_metadata_gets_rfc_7591_defaults() {
        let m = req(serde_json::json!({})).unwrap();
        assert_eq!(m.grant_types, vec![GrantType::ClientCredentials]);
        assert_eq!(m.auth_method, AuthMethod::ClientSecretBasic);
        assert!(m.scope.is_empty());
        assert_eq!(m.client_id, None);
    }

    #[test]
    fn a_single_allowed_audience_becomes_the_default() {
        let m = req(serde_json::json!({"allowed_audiences": ["https://api.example"]})).unwrap();
        assert_eq!(m.default_audience.as_deref(), Some("https://api.example"));
    }

    #[test]
    fn inapplicable_standard_metadata_is_ignored() {
        assert!(req(serde_json::json!({"redirect_uris": ["https://x/cb"], "response_types": [], "logo_uri": 5})).is_ok());
    }

    #[test]
    fn invalid_values_are_refused_with_the_field_named() {
        let cases = [
            (
                serde_json::json!({"grant_types": ["authorization_code"]}),
                "grant type",
            ),
            (serde_json::json!({"grant_types": []}), "grant_types"),
            (
                serde_json::json!({"token_endpoint_auth_method": "none"}),
                "token_endpoint_auth_method",
            ),
            (serde_json::json!({"scope": "a\"b"}), "scope"),
            (
                serde_json::json!({"allowed_audiences": ["not a uri"]}),
                "audience",
            ),
            (
                serde_json::json!({"allowed_audiences": ["https://a#frag"]}),
                "audience",
            ),
            (
                serde_json::json!({"allowed_audiences": ["https://a", "https://b"], "default_audience": "https://c"}),
                "default_audience",
            ),
            (
                serde_json::json!({"access_token_ttl": 0}),
                "access_token_ttl",
            ),
            (
                serde_json::json!({"access_token_ttl": 3601}),
                "access_token_ttl",
            ),
            (serde_json::json!({"client_id": "has space"}), "client_id"),
            (serde_json::json!({"client_id": ""}), "client_id"),
            (
                serde_json::json!({"client_secret": "mine"}),
                "client_secret",
            ),
            (
                serde_json::json!({"client_name": "x".repeat(201)}),
                "client_name",
            ),
        ];
        for (json, field) in cases {
            let err = req(json.clone()).expect_err(&json.to_string());
            assert!(err.contains(field), "{json}: {err}");
        }
    }
}
