//! RFC 7591 metadata validation: a [`RegistrationRequest`] becomes the
//! [`ClientMetadata`] a client is registered with, or an error naming the
//! field.
//!
//! Standard metadata that does not apply to this server (`redirect_uris`,
//! `response_types`, …) is ignored, as RFC 7591 §2 requires; invalid values
//! of the fields we use are refused with a message naming the field.

use super::{
    credentials::{
        assertion_algorithm, validate_jwks, validate_jwks_uri, KeyMaterial, ASSERTION_ALGORITHMS,
    },
    model::{ClientMetadata, RegistrationRequest},
    whole::WholeNumber,
    AuthMethod, ClientId, GrantType,
};
use crate::{certs::SubjectMatcher, oauth::scope::ScopeSet};

/// Server ceilings that client metadata is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest access-token lifetime.
    pub access_token_ttl: u32,
    /// Longest refresh-token idle lifetime.
    pub refresh_token_idle_ttl: u32,
    /// Longest refresh-token absolute lifetime.
    pub refresh_token_absolute_ttl: u32,
    /// Whether a `jwks_uri` may point to a loopback address (development only).
    pub jwks_uri_allow_loopback: bool,
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
            format!("token_endpoint_auth_method {m:?} is not supported; use client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth, self_signed_tls_client_auth or federated_jwt")
        }),
    }
}

/// Validates the key material for `method` (RFC 7523, RFC 8705 §2).
fn key_material(
    r: &RegistrationRequest,
    method: AuthMethod,
    limits: &Limits,
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
        validate_jwks_uri(uri, limits.jwks_uri_allow_loopback)?;
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
fn count(value: Option<WholeNumber>, max: u32, field: &str) -> Result<Option<u32>, String> {
    match value.map(|n| n.0) {
        None => Ok(None),
        Some(n) if n >= 1 && n <= i64::from(max) => Ok(Some(n as u32)),
        Some(_) => Err(format!("{field} must be between 1 and {max}")),
    }
}

/// A lifetime in `1..=max` seconds, or an error naming `field`.
fn lifetime(value: Option<WholeNumber>, max: u32, field: &str) -> Result<Option<u32>, String> {
    match value.map(|n| n.0) {
        None => Ok(None),
        Some(t) if t >= 1 && t <= i64::from(max) => Ok(Some(t as u32)),
        Some(_) => Err(format!("{field} must be between 1 and {max} seconds")),
    }
}

impl RegistrationRequest {
    /// Validates the metadata against the server's ceilings. Checks run in
    /// this order, so a request with several errors always reports the same
    /// one. Every [`ClientMetadata`] field is set here: a field added to the
    /// table in `clients::fields` does not compile until it is validated.
    pub fn validate(self, limits: &Limits) -> Result<ClientMetadata, String> {
        if self.client_secret.is_some() {
            return Err("client_secret cannot be chosen; the server generates it (rotate it with POST /admin/clients/{client_id}/secret)".into());
        }
        let client_id = self.client_id.as_deref().map(ClientId::parse).transpose()?;
        let keys = key_material(
            &self,
            auth_method_of(self.token_endpoint_auth_method.as_deref())?,
            limits,
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
        let certificate_bound_access_tokens = self
            .tls_client_certificate_bound_access_tokens
            .unwrap_or(false);
        let dpop_bound_access_tokens = self.dpop_bound_access_tokens.unwrap_or(false);
        // A token is bound one way: to the certificate or to a DPoP key.
        if dpop_bound_access_tokens
            && (certificate_bound_access_tokens || auth_method.uses_certificate())
        {
            return Err("dpop_bound_access_tokens cannot be combined with certificate-bound tokens (tls_client_certificate_bound_access_tokens or a tls_client_auth method): a token is bound one way".into());
        }
        Ok(ClientMetadata {
            client_id,
            name,
            grant_types,
            auth_method,
            keys,
            certificate_bound_access_tokens,
            dpop_bound_access_tokens,
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
            format!("grant type {g:?} is not supported; use client_credentials, refresh_token, urn:ietf:params:oauth:grant-type:jwt-bearer or urn:ietf:params:oauth:grant-type:token-exchange")
        })?;
        if !grants.contains(&grant) {
            grants.push(grant);
        }
    }
    if grants.contains(&GrantType::RefreshToken) && !grants.contains(&GrantType::ClientCredentials)
    {
        return Err(
            "grant_types must include client_credentials with refresh_token (refresh tokens are issued with it)"
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

/// The default settings' ceilings, for unit tests.
#[cfg(test)]
pub(crate) const TEST_LIMITS: Limits = Limits {
    access_token_ttl: 3600,
    refresh_token_idle_ttl: 86_400,
    refresh_token_absolute_ttl: 864_000,
    jwks_uri_allow_loopback: false,
};

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = TEST_LIMITS;

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
