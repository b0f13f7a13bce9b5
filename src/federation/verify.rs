//! Verifying a token issued by a federation ([RFC 7523 §3] rules for a JWT
//! used as an authorization grant or client assertion): an `alg` the
//! federation allows (never `none` or HMAC), a key of its set that fits the
//! algorithm, the signature, `iss`, an `aud` the federation requires, `exp`,
//! `nbf`, and an age within `max_token_age` (from `iat`, else `nbf`, else
//! the remaining lifetime). Pure: the keys and `now` come in.
//!
//! [RFC 7523 §3]: https://www.rfc-editor.org/rfc/rfc7523#section-3

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use jsonwebtoken::{jwk::JwkSet, Algorithm};
use serde_json::{Map, Value};

use super::Federation;
use crate::clients::credentials::{verify_with_keys, KeyMiss};

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a federated token was refused. Messages are safe to return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FederatedTokenError {
    /// Not a compact JWS with readable header and claims.
    #[error("the token is not a well-formed signed JWT")]
    Malformed,
    /// No federation has this `iss`.
    #[error("the token's issuer is not a trusted federation")]
    UnknownIssuer,
    /// The federation is disabled.
    #[error("the token's issuer is a federation that is disabled")]
    Disabled,
    /// The `alg` is not allowed.
    #[error("the token's alg is not allowed by its federation")]
    Algorithm,
    /// No key of the federation has the `kid`.
    #[error("the token's kid names no key of its issuer")]
    UnknownKey,
    /// The issuer's keys could not be had.
    #[error("the token's issuer keys are unavailable")]
    KeysUnavailable,
    /// No key verifies the signature.
    #[error("the token's signature does not verify with its issuer's keys")]
    Signature,
    /// A claim breaks the rules.
    #[error("{0}")]
    Claims(&'static str),
    /// No rule maps it to a client.
    #[error("the token matches no mapping rule of its federation")]
    NoMapping,
    /// The mapped client does not exist or is disabled.
    #[error("the token maps to a client that does not exist or is disabled")]
    NoClient,
    /// The database could not be asked about the mapped client.
    #[error("the client registry is temporarily unavailable")]
    Unavailable,
}

/// The header and claims read before the signature is checked.
#[derive(Debug)]
pub struct Unverified {
    /// The header's `alg` as written.
    pub alg: String,
    /// The header's `kid`.
    pub kid: Option<String>,
    /// The claims' `iss`.
    pub iss: Option<String>,
}

/// Reads the header and `iss` of `token` without trusting them.
pub fn peek(token: &str) -> Result<Unverified, FederatedTokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(FederatedTokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(FederatedTokenError::Malformed);
    };
    let json = |s: &str| -> Result<Map<String, Value>, FederatedTokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| FederatedTokenError::Malformed)?;
        serde_json::from_slice(&bytes).map_err(|_| FederatedTokenError::Malformed)
    };
    let (header, claims) = (json(h)?, json(c)?);
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(FederatedTokenError::Malformed)?
        .to_owned();
    Ok(Unverified {
        alg,
        kid: header.get("kid").and_then(Value::as_str).map(str::to_owned),
        iss: claims.get("iss").and_then(Value::as_str).map(str::to_owned),
    })
}

/// The algorithm of `head` if `federation` allows it.
pub fn allowed_alg(
    federation: &Federation,
    head: &Unverified,
) -> Result<Algorithm, FederatedTokenError> {
    if !federation.allowed_algs.contains(&head.alg) {
        return Err(FederatedTokenError::Algorithm);
    }
    let alg: Algorithm = head
        .alg
        .parse()
        .map_err(|_| FederatedTokenError::Algorithm)?;
    // Defence in depth: a stored federation never allows HMAC.
    if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
        return Err(FederatedTokenError::Algorithm);
    }
    Ok(alg)
}

/// Verifies the signature with the key `kid` names (without `kid`, any key
/// fit for `alg`) and returns the claims, unchecked.
pub fn verify_signature(
    token: &str,
    alg: Algorithm,
    kid: Option<&str>,
    keys: &JwkSet,
) -> Result<Map<String, Value>, FederatedTokenError> {
    verify_with_keys(token, alg, kid, keys).map_err(|miss| match miss {
        KeyMiss::UnknownKey => FederatedTokenError::UnknownKey,
        KeyMiss::Signature => FederatedTokenError::Signature,
    })
}

/// Checks verified claims against the federation at `now` (seconds), with
/// `leeway` seconds of clock difference.
pub fn check_claims(
    federation: &Federation,
    claims: &Map<String, Value>,
    now: i64,
    leeway: i64,
) -> Result<(), FederatedTokenError> {
    let bad = |m| Err(FederatedTokenError::Claims(m));
    if claims.get("iss").and_then(Value::as_str) != Some(federation.issuer.as_str()) {
        return bad("the token's iss is not its federation's issuer");
    }
    if claims
        .get("sub")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return bad("the token has no sub");
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => federation.audiences.contains(a),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| federation.audiences.iter().any(|f| f == a)),
        _ => false,
    };
    if !aud_ok {
        return bad(
            "the token's aud names none of the audiences its federation requires for this server",
        );
    }
    let time = |name: &str| claims.get(name).map(|v| v.as_i64().ok_or(()));
    let (Some(Ok(exp)), iat, nbf) = (time("exp"), time("iat"), time("nbf")) else {
        return bad("the token must have a numeric exp");
    };
    let (Ok(iat), Ok(nbf)) = (iat.transpose(), nbf.transpose()) else {
        return bad("the token's iat and nbf must be numeric");
    };
    let max_age = i64::try_from(federation.max_token_age).unwrap_or(i64::MAX);
    let (Some(expired_before), Some(valid_until), Some(oldest)) = (
        now.checked_sub(leeway),
        now.checked_add(leeway),
        now.checked_sub(max_age.saturating_add(leeway)),
    ) else {
        return bad("the token's times are out of range");
    };
    if exp <= expired_before {
        return bad("the token has expired");
    }
    if nbf.is_some_and(|n| n > valid_until) {
        return bad("the token is not valid yet (nbf)");
    }
    if iat.is_some_and(|i| i > valid_until) {
        return bad("the token was issued in the future (iat)");
    }
    let too_old = match iat.or(nbf) {
        Some(start) => start < oldest,
        None => exp.saturating_sub(now) > max_age,
    };
    if too_old {
        return bad("the token is older than its federation's max_token_age");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use serde_json::json;

    use super::*;
    use crate::federation::{FederationLimits, FederationRequest};

    const NOW: i64 = 1_800_000_000;

    fn federation() -> Federation {
        serde_json::from_value::<FederationRequest>(json!({
            "issuer": "https://k8s.example.com",
            "audiences": ["https://as.example"],
            "max_token_age": 600,
            "rules": [{"client_id": "c", "sub_pattern": "*"}],
        }))
        .unwrap()
        .validate(
            "f".into(),
            FederationLimits::default(),
            DateTime::from_timestamp(NOW, 0).unwrap(),
        )
        .unwrap()
    }

    fn check(extra: &Value) -> Result<(), FederatedTokenError> {
        let mut c = json!({"iss": "https://k8s.example.com", "sub": "system:serviceaccount:a:b",
            "aud": ["https://as.example"], "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 3590});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        check_claims(&federation(), c.as_object().unwrap(), NOW, 30)
    }

    #[test]
    fn a_kubernetes_shaped_token_passes_and_each_broken_rule_is_named() {
        assert_eq!(check(&json!({})), Ok(()));
        assert_eq!(check(&json!({"aud": "https://as.example"})), Ok(()));
        let cases = [
            (json!({"iss": "https://other"}), "iss"),
            (json!({"sub": null}), "sub"),
            (json!({"sub": ""}), "sub"),
            (json!({"aud": "https://elsewhere"}), "aud"),
            (json!({"aud": null}), "aud"),
            (json!({"exp": null}), "exp"),
            (json!({"exp": "soon"}), "exp"),
            (json!({"exp": NOW - 31}), "expired"),
            (json!({"nbf": NOW + 31}), "nbf"),
            (json!({"iat": NOW + 31}), "future"),
            (json!({"iat": NOW - 631}), "max_token_age"),
            (
                json!({"iat": null, "nbf": null, "exp": NOW + 700}),
                "max_token_age",
            ),
            (json!({"iat": "x"}), "numeric"),
            (json!({"exp": i64::MIN}), "expired"),
        ];
        for (extra, word) in cases {
            let err = check(&extra).expect_err(&extra.to_string());
            assert!(err.to_string().contains(word), "{extra}: {err}");
        }
        assert_eq!(
            check(&json!({"iat": i64::MIN, "nbf": null}))
                .unwrap_err()
                .to_string(),
            "the token is older than its federation's max_token_age"
        );
    }

    #[test]
    fn none_hmac_and_unlisted_algorithms_are_refused_before_any_key() {
        let f = federation();
        let head = |alg: &str| Unverified {
            alg: alg.into(),
            kid: None,
            iss: None,
        };
        assert!(allowed_alg(&f, &head("RS256")).is_ok());
        for alg in ["none", "HS256", "PS512", "ES384"] {
            assert_eq!(
                allowed_alg(&f, &head(alg)),
                Err(FederatedTokenError::Algorithm),
                "{alg}"
            );
        }
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"iss":"https://k8s.example.com"}"#)
        );
        let p = peek(&none).unwrap();
        assert_eq!(
            (p.alg.as_str(), p.iss.as_deref()),
            ("none", Some("https://k8s.example.com"))
        );
        assert_eq!(peek("a.b").unwrap_err(), FederatedTokenError::Malformed);
        assert_eq!(
            peek(&"a".repeat(MAX_TOKEN_LEN + 1)).unwrap_err(),
            FederatedTokenError::Malformed
        );
    }
}
