//! The key material a secretless client registers (RFC 7591 §2, RFC 7523,
//! RFC 8705): a JWK set inline or by URI, the assertion signing algorithm,
//! and the certificate subject of a `tls_client_auth` client.

use jsonwebtoken::{
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet},
    Algorithm,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::net::IpAddr;

use super::fetch_guard::fetch_allowed;
use crate::certs::SubjectMatcher;

/// Algorithms a client assertion may be signed with (asymmetric only: `none`
/// and the HMAC family are never accepted).
pub const ASSERTION_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// The most keys a registered JWK set may hold.
pub const MAX_JWKS_KEYS: usize = 20;

/// Parses an assertion signing algorithm this server supports.
#[must_use]
pub fn assertion_algorithm(name: &str) -> Option<Algorithm> {
    ASSERTION_ALGORITHMS
        .contains(&name)
        .then(|| name.parse().ok())
        .flatten()
}

/// How a secretless client proves who it is, as registered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMaterial {
    /// An inline JWK set (public keys; for `self_signed_tls_client_auth`
    /// with `x5c` or `x5t#S256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// Where the client publishes its JWK set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The one algorithm the client's assertions must use, when registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_alg: Option<String>,
    /// The certificate subject of a `tls_client_auth` client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_subject: Option<SubjectMatcher>,
}

impl KeyMaterial {
    /// Whether nothing is registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Validates an inline JWK set: `{"keys": [...]}` with 1–20 public,
/// asymmetric keys and distinct `kid`s.
pub fn validate_jwks(value: &Value) -> Result<JwkSet, String> {
    let keys = value
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("jwks must be a JWK set: an object with a \"keys\" array")?;
    if keys.is_empty() || keys.len() > MAX_JWKS_KEYS {
        return Err(format!("jwks must hold 1 to {MAX_JWKS_KEYS} keys"));
    }
    for key in keys {
        const PRIVATE: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];
        if PRIVATE.iter().any(|m| key.get(m).is_some()) {
            return Err("jwks must hold public keys only (a private or symmetric key member was found; remove it and never share it)".into());
        }
    }
    let set: JwkSet = serde_json::from_value(value.clone())
        .map_err(|e| format!("jwks holds a key that is not a valid JWK: {e}"))?;
    let mut kids: Vec<&str> = Vec::new();
    for jwk in &set.keys {
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            return Err("jwks must hold asymmetric public keys only".into());
        }
        if let Some(kid) = jwk.common.key_id.as_deref() {
            if kids.contains(&kid) {
                return Err(format!("jwks has two keys with kid {kid:?}"));
            }
            kids.push(kid);
        }
    }
    Ok(set)
}

/// Validates a `jwks_uri`: an absolute `https` URL without credentials or
/// fragment whose host, when an IP literal, is a public address (see
/// [`fetch_allowed`]). With `allow_loopback` (local development only), also
/// `http` or `https` to a loopback address or `localhost`. Host names are
/// checked again after resolution, at every fetch.
pub fn validate_jwks_uri(uri: &str, allow_loopback: bool) -> Result<(), String> {
    check_fetch_uri(uri, allow_loopback, false)
}

/// Validates a key URL fetched through an administrator's CA bundle (a
/// federation's `ca_bundle`): as [`validate_jwks_uri`], but only `https`
/// (without TLS the bundle would pin nothing), and its host may be a private
/// address, since only a server holding a certificate of that CA can
/// answer. Loopback still needs `allow_loopback`.
pub fn validate_pinned_jwks_uri(uri: &str, allow_loopback: bool) -> Result<(), String> {
    check_fetch_uri(uri, allow_loopback, true)
}

fn check_fetch_uri(uri: &str, allow_loopback: bool, pinned: bool) -> Result<(), String> {
    let url = url::Url::parse(uri).map_err(|_| format!("jwks_uri {uri:?} is not a URL"))?;
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) | None => None,
    };
    let localhost = url
        .host_str()
        .is_some_and(|d| d.eq_ignore_ascii_case("localhost"));
    let loopback =
        localhost || ip.is_some_and(|ip| fetch_allowed(ip, true) && !fetch_allowed(ip, false));
    if loopback && !allow_loopback {
        return Err(format!(
            "jwks_uri {uri:?} points to a loopback address, allowed only with the development setting jwks_uri_allow_loopback"
        ));
    }
    if !pinned && ip.is_some_and(|ip| !fetch_allowed(ip, allow_loopback)) {
        return Err(format!(
            "jwks_uri {uri:?} points to a private, link-local or otherwise non-public address"
        ));
    }
    let ok = uri.len() <= 2048
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
        && (url.scheme() == "https" || (url.scheme() == "http" && loopback && !pinned));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "jwks_uri {uri:?} must be an https URL without credentials or fragment"
        ))
    }
}

/// Whether `jwk` can verify signatures made with `alg` (key type and curve
/// fit, and the key's own `alg` and `use`, when present, allow it).
#[must_use]
pub fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    use Algorithm as A;
    let type_fits = match (&jwk.algorithm, alg) {
        (
            AlgorithmParameters::RSA(_),
            A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512,
        ) => true,
        (AlgorithmParameters::EllipticCurve(p), A::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), A::ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(p), A::EdDSA) => p.curve == EllipticCurve::Ed25519,
        _ => false,
    };
    let alg_fits = jwk
        .common
        .key_algorithm
        .is_none_or(|k| format!("{k:?}") == format!("{alg:?}"));
    let use_fits = !matches!(
        jwk.common.public_key_use,
        Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
    );
    type_fits && alg_fits && use_fits
}

/// Why no key of a set verified a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMiss {
    /// No key carries the `kid` the header names.
    UnknownKey,
    /// No fitting key verified the signature.
    Signature,
}

/// Verifies the signature of `token` with the key `kid` names in `keys`
/// (without `kid`, any key fit for `alg`) and returns its claims, unchecked:
/// `exp`, `nbf` and `aud` are the caller's to check against its own clock.
pub fn verify_with_keys<T: serde::de::DeserializeOwned>(
    token: &str,
    alg: Algorithm,
    kid: Option<&str>,
    keys: &JwkSet,
) -> Result<T, KeyMiss> {
    let candidates: Vec<_> = keys
        .keys
        .iter()
        .filter(|k| kid.is_none_or(|kid| k.common.key_id.as_deref() == Some(kid)))
        .collect();
    if candidates.is_empty() {
        return Err(KeyMiss::UnknownKey);
    }
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    for jwk in candidates.into_iter().filter(|k| key_fits(k, alg)) {
        let Ok(key) = jsonwebtoken::DecodingKey::from_jwk(jwk) else {
            continue;
        };
        if let Ok(data) = jsonwebtoken::decode::<T>(token, &key, &validation) {
            return Ok(data.claims);
        }
    }
    Err(KeyMiss::Signature)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const EC_KEY: &str = r#"{"kty":"EC","crv":"P-256","kid":"a","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    #[test]
    fn public_asymmetric_keys_are_accepted() {
        let key: Value = serde_json::from_str(EC_KEY).unwrap();
        let set = validate_jwks(&json!({ "keys": [key] })).unwrap();
        assert!(key_fits(&set.keys[0], Algorithm::ES256));
        assert!(!key_fits(&set.keys[0], Algorithm::ES384));
        assert!(!key_fits(&set.keys[0], Algorithm::RS256));
    }

    #[test]
    fn private_symmetric_duplicate_and_malformed_sets_are_refused() {
        let key: Value = serde_json::from_str(EC_KEY).unwrap();
        let mut private = key.clone();
        private["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
        let cases = [
            json!([]),
            json!({"keys": []}),
            json!({"keys": [private]}),
            json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
            json!({"keys": [{"kty": "oct"}]}),
            json!({"keys": [key.clone(), key]}),
            json!({"keys": [{"kty": "EC"}]}),
        ];
        for case in cases {
            assert!(validate_jwks(&case).is_err(), "{case}");
        }
    }

    #[test]
    fn jwks_uri_must_be_https_to_a_public_host_or_loopback_in_development() {
        for ok in [
            "https://svc.example/jwks.json",
            "https://93.184.215.14/jwks",
            "https://[2606:4700:4700::1111]/jwks",
        ] {
            assert!(validate_jwks_uri(ok, false).is_ok(), "{ok}");
        }
        for dev in [
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "https://[::1]/jwks",
        ] {
            assert!(validate_jwks_uri(dev, false).is_err(), "{dev}");
            assert!(validate_jwks_uri(dev, true).is_ok(), "{dev}");
        }
        for bad in [
            "http://svc.example/jwks",
            "ftp://x/y",
            "https://u:p@svc.example/",
            "https://svc.example/#f",
            "not a url",
            "https://169.254.169.254/latest/meta-data/",
            "https://10.0.0.1/jwks",
            "https://[fd00:ec2::254]/jwks",
            "https://[::ffff:a9fe:a9fe]/jwks",
            "http://10.0.0.1/jwks",
        ] {
            assert!(validate_jwks_uri(bad, false).is_err(), "{bad}");
            assert!(validate_jwks_uri(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pinned_uri_may_name_a_private_host_but_must_be_https() {
        for private in ["https://10.96.0.1/openid/v1/jwks", "https://[fd00::1]/jwks"] {
            assert!(validate_jwks_uri(private, true).is_err(), "{private}");
            assert!(
                validate_pinned_jwks_uri(private, false).is_ok(),
                "{private}"
            );
        }
        for public in [
            "https://kubernetes.default.svc/openid/v1/jwks",
            "https://93.184.215.14/jwks",
        ] {
            assert!(validate_pinned_jwks_uri(public, false).is_ok(), "{public}");
        }
        for dev in ["https://127.0.0.1:6443/jwks", "https://localhost/jwks"] {
            assert!(validate_pinned_jwks_uri(dev, false).is_err(), "{dev}");
            assert!(validate_pinned_jwks_uri(dev, true).is_ok(), "{dev}");
        }
        for bad in [
            "http://10.96.0.1/jwks",
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "https://u:p@10.96.0.1/",
            "https://10.96.0.1/#f",
            "not a url",
        ] {
            assert!(validate_pinned_jwks_uri(bad, false).is_err(), "{bad}");
            assert!(validate_pinned_jwks_uri(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_asymmetric_algorithms_are_supported() {
        assert_eq!(assertion_algorithm("PS256"), Some(Algorithm::PS256));
        for bad in ["HS256", "none", "ES512", ""] {
            assert_eq!(assertion_algorithm(bad), None);
        }
    }
}
