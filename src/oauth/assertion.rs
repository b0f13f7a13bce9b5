//! `private_key_jwt` client assertions (RFC 7523 §3, RFC 7521 §4.2): the
//! signature against the client's registered keys, then the claims against the
//! server's rules. The single use of `jti` is the caller's (it needs the store).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use jsonwebtoken::{jwk::JwkSet, Algorithm};
use serde::Deserialize;

use crate::{
    clients::credentials::{verify_with_keys, KeyMiss},
    token::Audience,
};

/// `client_assertion_type` of a JWT client assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest accepted `jti`.
const MAX_JTI_LEN: usize = 256;

/// The claims this server reads from a client assertion.
#[derive(Debug, Deserialize)]
pub struct AssertionClaims {
    /// Must be the client id.
    pub iss: Option<String>,
    /// Must be the client id.
    pub sub: Option<String>,
    /// Must name this server.
    pub aud: Option<Audience>,
    /// Required.
    pub exp: Option<i64>,
    /// Optional; bounds the lifetime when present.
    pub iat: Option<i64>,
    /// Optional.
    pub nbf: Option<i64>,
    /// Required: the assertion is accepted once.
    pub jti: Option<String>,
}

/// What the server expects of an assertion.
#[derive(Debug)]
pub struct Expectations<'a> {
    /// The client the assertion must be issued by and about.
    pub client_id: &'a str,
    /// Accepted `aud` values: the issuer and the endpoint URLs.
    pub audiences: &'a [String],
    /// Longest lifetime in seconds.
    pub max_lifetime: i64,
    /// Tolerated clock difference in seconds.
    pub leeway: i64,
}

/// An assertion whose claims passed: its id and how long to remember it.
#[derive(Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The `jti`.
    pub jti: String,
    /// Until when a replay must be detected (seconds since the epoch).
    pub remember_until: i64,
}

/// Why an assertion was refused. Each message is safe to return to the client.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// Not a compact JWS, or its header cannot be read.
    #[error("client_assertion is not a well-formed signed JWT")]
    Malformed,
    /// `alg` is absent from the allow-list (`none` and HMAC never are allowed).
    #[error("the client_assertion's alg is not allowed")]
    Algorithm,
    /// No registered key has the header's `kid`.
    #[error("the client_assertion's kid names none of the client's registered keys")]
    UnknownKey,
    /// No registered key verifies the signature.
    #[error("the client_assertion's signature does not verify with the client's registered keys")]
    Signature,
    /// A claim breaks the rules.
    #[error("{0}")]
    Claims(&'static str),
}

/// The assertion's `alg` and `kid`, read before the key is chosen.
pub fn header(assertion: &str) -> Result<(Algorithm, Option<String>), AssertionError> {
    // An unknown alg (`none`, say) fails to parse and is refused here.
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| AssertionError::Malformed)?;
    Ok((header.alg, header.kid))
}

/// The unverified `sub` (or `iss`) of an assertion: only to find which
/// client's keys to verify it with, when the request names no `client_id`.
#[must_use]
pub fn claimed_client(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: AssertionClaims = serde_json::from_slice(&bytes).ok()?;
    claims.sub.or(claims.iss)
}

/// Verifies the signature with the key the header names (or, without `kid`,
/// any registered key fit for `alg`) and returns the claims, unchecked.
pub fn verify_signature(
    assertion: &str,
    alg: Algorithm,
    kid: Option<&str>,
    keys: &JwkSet,
) -> Result<AssertionClaims, AssertionError> {
    // The claims are checked by `check_claims` against the server's clock.
    verify_with_keys(assertion, alg, kid, keys).map_err(|miss| match miss {
        KeyMiss::UnknownKey => AssertionError::UnknownKey,
        KeyMiss::Signature => AssertionError::Signature,
    })
}

/// Checks the claims of a verified assertion at `now` (seconds since the epoch).
pub fn check_claims(
    claims: AssertionClaims,
    expect: &Expectations<'_>,
    now: i64,
) -> Result<Accepted, AssertionError> {
    let bad = |m| Err(AssertionError::Claims(m));
    if claims.iss.as_deref() != Some(expect.client_id) {
        return bad("the client_assertion's iss must be the client_id");
    }
    if claims.sub.as_deref() != Some(expect.client_id) {
        return bad("the client_assertion's sub must be the client_id");
    }
    let aud_ok = match &claims.aud {
        Some(Audience::One(a)) => expect.audiences.contains(a),
        Some(Audience::Many(list)) => list.iter().any(|a| expect.audiences.contains(a)),
        None => false,
    };
    if !aud_ok {
        return bad(
            "the client_assertion's aud must be this server's issuer or token endpoint URL",
        );
    }
    let Some(exp) = claims.exp else {
        return bad("the client_assertion must have exp");
    };
    // Every sum below is checked: the times come from the client, and a
    // wrapped sum would turn a never-expiring assertion into an accepted one.
    let window = TimeWindow::new(expect, now).ok_or(AssertionError::Claims(
        "the client_assertion's times are out of range",
    ))?;
    if exp <= window.expired_before {
        return bad("the client_assertion has expired");
    }
    if exp > window.latest {
        return bad("the client_assertion lives longer than the server accepts (exp is too far in the future)");
    }
    if let Some(nbf) = claims.nbf {
        if nbf > window.valid_until {
            return bad("the client_assertion is not valid yet (nbf)");
        }
        if nbf > exp {
            return bad("the client_assertion's nbf is after its exp");
        }
    }
    if let Some(iat) = claims.iat {
        if iat > window.valid_until {
            return bad("the client_assertion was issued in the future (iat)");
        }
        if iat < window.earliest {
            return bad("the client_assertion was issued too long ago (iat)");
        }
    }
    let start = claims.iat.unwrap_or(now).min(now);
    if exp
        .checked_sub(start)
        .is_none_or(|lifetime| lifetime > expect.max_lifetime)
    {
        return bad("the client_assertion lives longer than the server accepts (exp - iat)");
    }
    let jti = match claims.jti {
        Some(j) if !j.is_empty() && j.len() <= MAX_JTI_LEN => j,
        _ => return bad("the client_assertion must have a jti of 1 to 256 characters"),
    };
    let Some(remember_until) = exp.checked_add(expect.leeway) else {
        return bad("the client_assertion's exp is out of range");
    };
    Ok(Accepted {
        jti,
        remember_until,
    })
}

/// The instants an assertion's times are checked against, all computed with
/// checked arithmetic from the server's clock and settings.
struct TimeWindow {
    /// `exp` at or before this has expired (`now - leeway`).
    expired_before: i64,
    /// `nbf` and `iat` may not be later (`now + leeway`).
    valid_until: i64,
    /// The oldest acceptable `iat` (`now - max_lifetime - leeway`).
    earliest: i64,
    /// The latest acceptable `exp` (`now + max_lifetime + leeway`).
    latest: i64,
}

impl TimeWindow {
    fn new(expect: &Expectations<'_>, now: i64) -> Option<Self> {
        if expect.leeway < 0 || expect.max_lifetime < 0 {
            return None;
        }
        let reach = expect.max_lifetime.checked_add(expect.leeway)?;
        Some(Self {
            expired_before: now.checked_sub(expect.leeway)?,
            valid_until: now.checked_add(expect.leeway)?,
            earliest: now.checked_sub(reach)?,
            latest: now.checked_add(reach)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn expect() -> Expectations<'static> {
        static AUD: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
            vec![
                "https://as.example".to_owned(),
                "https://as.example/token".to_owned(),
            ]
        });
        Expectations {
            client_id: "svc",
            audiences: &AUD,
            max_lifetime: 300,
            leeway: 30,
        }
    }

    fn claims(json: &serde_json::Value) -> AssertionClaims {
        let mut base = serde_json::json!({
            "iss": "svc", "sub": "svc", "aud": "https://as.example/token",
            "exp": NOW + 60, "iat": NOW, "jti": "j1",
        });
        for (k, v) in json.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        serde_json::from_value(base).unwrap()
    }

    fn check(json: &serde_json::Value) -> Result<Accepted, AssertionError> {
        check_claims(claims(json), &expect(), NOW)
    }

    #[test]
    fn a_good_assertion_is_remembered_until_it_expires() {
        assert_eq!(
            check(&serde_json::json!({})),
            Ok(Accepted {
                jti: "j1".into(),
                remember_until: NOW + 90
            })
        );
        assert!(
            check(&serde_json::json!({"aud": ["https://other", "https://as.example"]})).is_ok()
        );
        assert!(
            check(&serde_json::json!({"iat": null, "exp": NOW + 300})).is_ok(),
            "iat is optional"
        );
        assert!(
            check(&serde_json::json!({"exp": NOW - 10})).is_ok(),
            "leeway"
        );
    }

    #[test]
    fn each_broken_rule_is_named() {
        let cases = [
            (serde_json::json!({"iss": "other"}), "iss"),
            (serde_json::json!({"sub": null}), "sub"),
            (serde_json::json!({"aud": "https://elsewhere"}), "aud"),
            (serde_json::json!({"aud": null}), "aud"),
            (serde_json::json!({"exp": null}), "exp"),
            (serde_json::json!({"exp": NOW - 31}), "expired"),
            (serde_json::json!({"nbf": NOW + 31}), "nbf"),
            (serde_json::json!({"iat": NOW + 31, "exp": NOW + 90}), "iat"),
            (serde_json::json!({"exp": NOW + 301}), "longer"),
            (serde_json::json!({"iat": null, "exp": NOW + 301}), "longer"),
            (serde_json::json!({"jti": null}), "jti"),
            (serde_json::json!({"jti": ""}), "jti"),
            (serde_json::json!({"jti": "x".repeat(257)}), "jti"),
        ];
        for (json, word) in cases {
            let err = check(&json).expect_err(&json.to_string());
            assert!(err.to_string().contains(word), "{json}: {err}");
        }
    }

    #[test]
    fn times_that_would_overflow_are_refused_not_wrapped() {
        let far = 1_000_000_000_000_000_i64;
        let cases = [
            serde_json::json!({"iat": i64::MIN, "exp": far}),
            serde_json::json!({"iat": i64::MIN, "exp": NOW + 60}),
            serde_json::json!({"iat": i64::MIN, "exp": i64::MAX}),
            serde_json::json!({"exp": i64::MAX}),
            serde_json::json!({"iat": null, "exp": i64::MAX}),
            serde_json::json!({"exp": i64::MIN}),
            serde_json::json!({"iat": i64::MAX, "exp": i64::MAX}),
            serde_json::json!({"exp": far}),
        ];
        for json in cases {
            assert!(check(&json).is_err(), "{json} must be refused");
        }
    }

    #[test]
    fn iat_far_in_the_past_is_refused_even_within_the_lifetime() {
        // exp - iat is within max_lifetime, but the assertion is long dead.
        let iat = NOW - 1_000_000_000;
        assert!(check(&serde_json::json!({"iat": iat, "exp": iat + 100})).is_err());
        let err = check(&serde_json::json!({"iat": NOW - 331, "exp": NOW + 10})).unwrap_err();
        assert!(err.to_string().contains("iat"), "{err}");
        // The oldest iat still usable: now - max_lifetime - leeway, exp within leeway.
        assert!(check(&serde_json::json!({"iat": NOW - 320, "exp": NOW - 20})).is_ok());
    }

    #[test]
    fn odd_nbf_values_are_harmless_or_refused() {
        assert!(check(&serde_json::json!({"nbf": i64::MAX})).is_err());
        assert!(check(&serde_json::json!({"nbf": i64::MIN})).is_ok());
        let err = check(&serde_json::json!({"nbf": NOW + 20, "exp": NOW + 10})).unwrap_err();
        assert!(err.to_string().contains("nbf"), "{err}");
    }

    #[test]
    fn whatever_the_times_an_accepted_assertion_is_remembered_until_its_exp() {
        let values = [
            i64::MIN,
            i64::MIN + 1,
            -1,
            0,
            NOW - 1_000_000,
            NOW - 331,
            NOW - 300,
            NOW - 30,
            NOW,
            NOW + 30,
            NOW + 300,
            NOW + 331,
            1_000_000_000_000_000,
            i64::MAX - 1,
            i64::MAX,
        ];
        let mut accepted = 0;
        for &iat in &values {
            for &exp in &values {
                for nbf in [None, Some(iat), Some(exp)] {
                    let json = serde_json::json!({"iat": iat, "exp": exp, "nbf": nbf});
                    let Ok(ok) = check(&json) else { continue };
                    accepted += 1;
                    assert!((NOW - 30..=NOW + 330).contains(&exp), "{json}");
                    assert!((NOW - 330..=NOW + 30).contains(&iat), "{json}");
                    assert_eq!(ok.remember_until, exp + 30, "{json}");
                    assert!(
                        chrono::DateTime::from_timestamp(ok.remember_until, 0).is_some(),
                        "{json}"
                    );
                }
            }
        }
        assert!(accepted > 0);
    }

    #[test]
    fn unsigned_and_malformed_assertions_are_refused_before_any_key_is_tried() {
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"sub":"svc"}"#)
        );
        assert_eq!(header(&none), Err(AssertionError::Malformed));
        assert_eq!(header("not-a-jwt"), Err(AssertionError::Malformed));
        assert_eq!(claimed_client(&none).as_deref(), Some("svc"));
        assert_eq!(claimed_client("a.%%%.c"), None);
    }
}
