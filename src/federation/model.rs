//! [`Federation`]: a trusted external token issuer, as an administrator
//! registers it (RFC 7591-style JSON, [`FederationRequest`]) and as it is
//! stored, validated once here. Where its keys come from ([`KeySource`]:
//! OIDC discovery, a `jwks_uri`, or an inline JWKS), what a token must carry
//! for this server (`audiences`, `allowed_algs`, `max_token_age`), and the
//! [`super::rules`] mapping a verified token to a Portcullis client.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rules::Rule;
use crate::clients::credentials::{validate_jwks, validate_jwks_uri, validate_pinned_jwks_uri};
use crate::clients::whole::WholeNumber;

/// Algorithms a federation may allow: asymmetric signatures only (`none`
/// and the HMAC family never verify a token signed by someone else's key).
pub const SIGNING_ALGS: [&str; 10] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "ES512",
];

/// The default `allowed_algs`: what Kubernetes, SPIRE and GitHub sign with.
const DEFAULT_ALGS: [&str; 2] = ["RS256", "ES256"];
/// The default and the bounds of `max_token_age`, in seconds.
const DEFAULT_MAX_AGE: u64 = 3600;
const MAX_AGE_RANGE: std::ops::RangeInclusive<u64> = 30..=86_400;
/// Most rules, audiences, and bytes of a CA bundle or Rego module.
const MAX_RULES: usize = 200;
const MAX_AUDIENCES: usize = 20;
const MAX_TEXT_BYTES: usize = 64 * 1024;

/// Where a federation's public keys come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum KeySource {
    /// `{issuer}/.well-known/openid-configuration` names the `jwks_uri`.
    Discovery,
    /// An explicit `jwks_uri`.
    JwksUri(String),
    /// An inline JWK set (what `kubectl get --raw /openid/v1/jwks` prints).
    Jwks(Value),
}

/// A validated, stored federation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Federation {
    /// Identifier (`[A-Za-z0-9._-]`, 1 to 64 characters).
    pub id: String,
    /// The `iss` its tokens carry; unique among federations.
    pub issuer: String,
    /// Free text for operators.
    pub description: Option<String>,
    /// Where the keys come from.
    pub keys: KeySource,
    /// PEM CA certificates trusted (alone) when fetching its documents.
    pub ca_bundle: Option<String>,
    /// A token must name one of these in `aud`.
    pub audiences: Vec<String>,
    /// Accepted `alg` values.
    pub allowed_algs: Vec<String>,
    /// Oldest accepted token, in seconds since its `iat`.
    pub max_token_age: u64,
    /// Mapping rules, tried in order.
    pub rules: Vec<Rule>,
    /// A Rego module deciding the client when no rule matches.
    pub rego: Option<String>,
    /// Whether its tokens are accepted.
    pub enabled: bool,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A federation as submitted to the admin API or the CLI. Unknown members
/// are refused, so a typo never silently widens trust.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FederationRequest {
    /// Requested id; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation_id: Option<String>,
    /// The issuer (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Explicit key set URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Inline key set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// PEM CA bundle for fetching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// Audiences (required, at least one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
    /// Allowed algorithms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_algs: Option<Vec<String>>,
    /// Maximum token age in seconds (`3600` or `3600.0`, as JSON Schema counts integers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_token_age: Option<WholeNumber>,
    /// Mapping rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,
    /// Rego module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rego: Option<String>,
    /// Enabled (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// The settings a federation is validated against.
#[derive(Clone, Copy, Debug, Default)]
pub struct FederationLimits {
    /// Whether key URLs may point to loopback (development only).
    pub allow_loopback: bool,
}

fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn plain_text(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)
}

impl FederationRequest {
    /// Validates the request into a federation registered (or updated) at
    /// `now`; `id` is the generated id used when none was requested.
    pub fn validate(
        self,
        id: String,
        limits: FederationLimits,
        now: DateTime<Utc>,
    ) -> Result<Federation, String> {
        let id = self.federation_id.unwrap_or(id);
        if !is_id(&id) {
            return Err("federation_id must be 1 to 64 letters, digits, '.', '_' or '-'".into());
        }
        let issuer = self.issuer.ok_or("issuer is required")?;
        if !plain_text(&issuer, 512) {
            return Err("issuer must be 1 to 512 characters without control characters".into());
        }
        let description = self.description.filter(|d| !d.is_empty());
        if description.as_deref().is_some_and(|d| !plain_text(d, 500)) {
            return Err(
                "description must be at most 500 characters without control characters".into(),
            );
        }
        let ca_bundle = self.ca_bundle.filter(|c| !c.trim().is_empty());
        if let Some(pem) = &ca_bundle {
            check_ca_bundle(pem)?;
        }
        let keys = key_source(
            &issuer,
            self.jwks_uri,
            self.jwks,
            limits,
            ca_bundle.is_some(),
        )?;
        let audiences = self.audiences.unwrap_or_default();
        if audiences.is_empty() || audiences.len() > MAX_AUDIENCES {
            return Err(format!(
                "audiences must list 1 to {MAX_AUDIENCES} values a token must carry in aud for this server"
            ));
        }
        if audiences.iter().any(|a| !plain_text(a, 512)) {
            return Err(
                "each audience must be 1 to 512 characters without control characters".into(),
            );
        }
        let allowed_algs = match self.allowed_algs {
            None => DEFAULT_ALGS.map(str::to_owned).to_vec(),
            Some(algs) if algs.is_empty() => return Err("allowed_algs must not be empty".into()),
            Some(algs) => {
                if let Some(bad) = algs.iter().find(|a| !SIGNING_ALGS.contains(&a.as_str())) {
                    return Err(format!(
                        "allowed_algs: {bad:?} is not an asymmetric signature algorithm this server verifies ({})",
                        SIGNING_ALGS.join(", ")
                    ));
                }
                algs
            }
        };
        let max_token_age = self
            .max_token_age
            .map_or(DEFAULT_MAX_AGE, |n| u64::try_from(n.0).unwrap_or(0));
        if !MAX_AGE_RANGE.contains(&max_token_age) {
            return Err(format!(
                "max_token_age must be between {} and {} seconds",
                MAX_AGE_RANGE.start(),
                MAX_AGE_RANGE.end()
            ));
        }
        let rules = self.rules.unwrap_or_default();
        if rules.len() > MAX_RULES {
            return Err(format!("rules: at most {MAX_RULES}"));
        }
        for (i, rule) in rules.iter().enumerate() {
            rule.validate().map_err(|e| format!("rules[{i}]: {e}"))?;
        }
        let rego = self.rego.filter(|r| !r.trim().is_empty());
        if let Some(text) = &rego {
            if text.len() > MAX_TEXT_BYTES {
                return Err(format!("rego must be at most {MAX_TEXT_BYTES} bytes"));
            }
            super::rego::compile(&id, text)?;
        }
        if rules.is_empty() && rego.is_none() {
            return Err(
                "a federation needs rules or a rego module mapping its tokens to clients".into(),
            );
        }
        Ok(Federation {
            id,
            issuer,
            description,
            keys,
            ca_bundle,
            audiences,
            allowed_algs,
            max_token_age,
            rules,
            rego,
            enabled: self.enabled.unwrap_or(true),
            created_at: now,
            updated_at: now,
        })
    }
}

/// Where the federation's keys come from; `pinned` when a CA bundle pins
/// the fetches (which may then reach private addresses, over https only).
fn key_source(
    issuer: &str,
    jwks_uri: Option<String>,
    jwks: Option<Value>,
    limits: FederationLimits,
    pinned: bool,
) -> Result<KeySource, String> {
    let check = |uri: &str| {
        if pinned {
            validate_pinned_jwks_uri(uri, limits.allow_loopback)
        } else {
            validate_jwks_uri(uri, limits.allow_loopback)
        }
    };
    match (jwks_uri, jwks) {
        (Some(_), Some(_)) => Err("give jwks_uri or jwks, not both".into()),
        (Some(uri), None) => {
            check(&uri)?;
            Ok(KeySource::JwksUri(uri))
        }
        (None, Some(set)) => {
            validate_jwks(&set)?;
            Ok(KeySource::Jwks(set))
        }
        (None, None) => {
            // Discovery needs an issuer that is a URL the server may fetch.
            check(&discovery_url(issuer)).map_err(|_| {
                "without jwks_uri or jwks the keys are discovered at {issuer}/.well-known/openid-configuration: the issuer must then be an https URL of a public host, or of a private one with a ca_bundle".to_owned()
            })?;
            Ok(KeySource::Discovery)
        }
    }
}

/// The OIDC discovery document of `issuer`.
#[must_use]
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

fn check_ca_bundle(pem: &str) -> Result<(), String> {
    if pem.len() > MAX_TEXT_BYTES {
        return Err(format!("ca_bundle must be at most {MAX_TEXT_BYTES} bytes"));
    }
    let bad = || "ca_bundle is not a PEM bundle of X.509 certificates".to_owned();
    let mut count = 0;
    for pem in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let pem = pem.map_err(|_| bad())?;
        if pem.label != "CERTIFICATE" {
            return Err(bad());
        }
        pem.parse_x509().map_err(|_| bad())?;
        count += 1;
    }
    if count == 0 {
        return Err("ca_bundle holds no certificate".into());
    }
    Ok(())
}

impl Federation {
    /// The request that would register this federation as it is (the view
    /// the admin API and CLI show, and the base of a partial change).
    #[must_use]
    pub fn to_request(&self) -> FederationRequest {
        let (jwks_uri, jwks) = match &self.keys {
            KeySource::Discovery => (None, None),
            KeySource::JwksUri(u) => (Some(u.clone()), None),
            KeySource::Jwks(j) => (None, Some(j.clone())),
        };
        FederationRequest {
            federation_id: Some(self.id.clone()),
            issuer: Some(self.issuer.clone()),
            description: self.description.clone(),
            jwks_uri,
            jwks,
            ca_bundle: self.ca_bundle.clone(),
            audiences: Some(self.audiences.clone()),
            allowed_algs: Some(self.allowed_algs.clone()),
            max_token_age: Some(WholeNumber(
                i64::try_from(self.max_token_age).unwrap_or(i64::MAX),
            )),
            rules: Some(self.rules.clone()),
            rego: self.rego.clone(),
            enabled: Some(self.enabled),
        }
    }

    /// The admin API and CLI JSON: the request members plus the server's own.
    #[must_use]
    pub fn view(&self) -> Value {
        let mut view = serde_json::to_value(self.to_request()).unwrap_or(Value::Null);
        if let Some(obj) = view.as_object_mut() {
            obj.insert(
                "key_source".into(),
                match self.keys {
                    KeySource::Discovery => "discovery",
                    KeySource::JwksUri(_) => "jwks_uri",
                    KeySource::Jwks(_) => "jwks",
                }
                .into(),
            );
            obj.insert("created_at".into(), self.created_at.timestamp().into());
            obj.insert("updated_at".into(), self.updated_at.timestamp().into());
        }
        view
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn request(extra: &Value) -> FederationRequest {
        let mut base = json!({
            "issuer": "https://kubernetes.example.com",
            "audiences": ["https://portcullis.example.com"],
            "rules": [{"client_id": "payments", "sub": "system:serviceaccount:pay:api"}],
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        serde_json::from_value(base).unwrap()
    }

    fn check(extra: &Value) -> Result<Federation, String> {
        request(extra).validate("gen".into(), FederationLimits::default(), now())
    }

    #[test]
    fn defaults_are_discovery_rs256_es256_and_one_hour() {
        let f = check(&json!({})).unwrap();
        assert_eq!(f.id, "gen");
        assert_eq!(f.keys, KeySource::Discovery);
        assert_eq!(f.allowed_algs, ["RS256", "ES256"]);
        assert_eq!(f.max_token_age, 3600);
        assert!(f.enabled);
        let round = f
            .to_request()
            .validate("x".into(), FederationLimits::default(), now());
        assert_eq!(round.unwrap(), f, "the view registers the same federation");
    }

    #[test]
    fn each_bad_member_is_named() {
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]});
        let cases = [
            (json!({"issuer": null}), "issuer"),
            (json!({"issuer": "a\nb"}), "issuer"),
            (json!({"federation_id": "a b"}), "federation_id"),
            (json!({"audiences": []}), "audiences"),
            (json!({"audiences": null}), "audiences"),
            (json!({"allowed_algs": ["HS256"]}), "HS256"),
            (json!({"allowed_algs": ["none"]}), "none"),
            (json!({"allowed_algs": []}), "allowed_algs"),
            (json!({"max_token_age": 5}), "max_token_age"),
            (json!({"max_token_age": 1_000_000}), "max_token_age"),
            (json!({"rules": []}), "rules or a rego"),
            (json!({"rules": [{"client_id": "x"}]}), "rules[0]"),
            (
                json!({"jwks_uri": "https://a.example/j", "jwks": jwks}),
                "not both",
            ),
            (json!({"jwks_uri": "https://10.0.0.1/jwks"}), "jwks_uri"),
            (
                json!({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
                "jwks",
            ),
            (json!({"issuer": "system:k8s"}), "discovered"),
            (json!({"issuer": "http://127.0.0.1:1"}), "discovered"),
            (json!({"ca_bundle": "not pem"}), "ca_bundle"),
            (json!({"rego": "package broken\nallow {"}), "rego"),
        ];
        for (extra, word) in cases {
            let err = check(&extra).expect_err(&extra.to_string());
            assert!(err.contains(word), "{extra}: {err}");
        }
        assert!(check(&json!({"jwks": jwks, "issuer": "system:k8s"})).is_ok());
    }

    #[test]
    fn unknown_members_are_refused() {
        let err =
            serde_json::from_value::<FederationRequest>(json!({"issuer": "x", "audience": "y"}))
                .unwrap_err();
        assert!(err.to_string().contains("audience"), "{err}");
    }
}
