//! Verification of Portcullis access tokens (for introspection and
//! revocation): compact JWS, `typ: at+jwt`, a `kid` published in our JWKS,
//! the `alg` that key is for (so `none` or a swapped algorithm never passes),
//! the signature, our issuer, and the validity window, whose times must be
//! representable and in order (no arithmetic on them can wrap).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::AccessTokenClaims;
use crate::keys::KeySet;

/// Longest token accepted, in bytes.
const MAX_TOKEN_LEN: usize = 8192;

/// Why a token is not a valid Portcullis access token.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a compact JWS, or not one of ours in shape.
    #[error("malformed token")]
    Malformed,
    /// The `kid` is not published (unknown, removed, or another issuer's).
    #[error("unknown key")]
    UnknownKey,
    /// The signature does not verify, or `alg` is not the key's algorithm.
    #[error("bad signature")]
    BadSignature,
    /// `iss` is not this server.
    #[error("foreign issuer")]
    ForeignIssuer,
    /// Outside `nbf`..`exp`.
    #[error("expired or not yet valid")]
    Expired,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
}

/// Verifies `token`. With `check_time` false an expired token still verifies
/// (revocation of an expired token is a no-op, not an error).
pub fn verify(
    keys: &KeySet,
    issuer: &str,
    token: &str,
    now: DateTime<Utc>,
    check_time: bool,
) -> Result<AccessTokenClaims, VerifyError> {
    verify_with_kid(keys, issuer, token, now, check_time).map(|(_, claims)| claims)
}

/// [`verify`], also giving the id of the key that signed the token.
pub(super) fn verify_with_kid(
    keys: &KeySet,
    issuer: &str,
    token: &str,
    now: DateTime<Utc>,
    check_time: bool,
) -> Result<(String, AccessTokenClaims), VerifyError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(VerifyError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let decode = |s: &str| {
        URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| VerifyError::Malformed)
    };
    let header: Header =
        serde_json::from_slice(&decode(header_b64)?).map_err(|_| VerifyError::Malformed)?;
    if header.typ.as_deref() != Some("at+jwt") {
        return Err(VerifyError::Malformed);
    }
    let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
    let key = keys.verifying_key(&kid).ok_or(VerifyError::UnknownKey)?;
    if header.alg != key.alg().as_str() {
        return Err(VerifyError::BadSignature);
    }
    let signed_len = header_b64.len() + 1 + claims_b64.len();
    if !key.verify(&token.as_bytes()[..signed_len], &decode(sig_b64)?) {
        return Err(VerifyError::BadSignature);
    }
    let claims: AccessTokenClaims =
        serde_json::from_slice(&decode(claims_b64)?).map_err(|_| VerifyError::Malformed)?;
    if claims.iss != issuer {
        return Err(VerifyError::ForeignIssuer);
    }
    check_times(&claims, now.timestamp(), check_time)?;
    Ok((kid, claims))
}

/// The time rules of a signed token, without arithmetic that could wrap:
/// `iat`, `nbf` and `exp` must be instants chrono can represent (so whoever
/// stores `exp`, such as the revocation list, never has to fall back to
/// another time), in order (`iat` ≤ `exp`, `nbf` ≤ `exp`), and `exp - iat`
/// must fit the `u32` lifetime this server issues with. With `check_time`,
/// `now` must also lie in `nbf`..`exp`.
pub(super) fn check_times(
    claims: &AccessTokenClaims,
    now: i64,
    check_time: bool,
) -> Result<(), VerifyError> {
    let representable = |t: i64| DateTime::<Utc>::from_timestamp(t, 0).is_some();
    let ordered = claims.iat <= claims.exp && claims.nbf <= claims.exp;
    let lifetime_fits = claims
        .exp
        .checked_sub(claims.iat)
        .is_some_and(|l| u32::try_from(l).is_ok());
    if ![claims.iat, claims.nbf, claims.exp]
        .into_iter()
        .all(representable)
        || !ordered
        || !lifetime_fits
    {
        return Err(VerifyError::Malformed);
    }
    if check_time && (now >= claims.exp || now < claims.nbf) {
        return Err(VerifyError::Expired);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const NOW: i64 = 1_800_000_000;

    pub(crate) fn claims(iat: i64, nbf: i64, exp: i64) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://as.example".into(),
            sub: "svc".into(),
            aud: super::super::Audience::One("https://api.example".into()),
            exp,
            iat,
            nbf,
            jti: "j".into(),
            client_id: "svc".into(),
            scope: None,
            extra: serde_json::Map::new(),
        }
    }

    pub(crate) fn at(t: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(t, 0).unwrap()
    }

    /// A key set whose current key is ES256, with an EdDSA key published next.
    pub(crate) fn key_set() -> KeySet {
        use crate::keys::{generate, Algorithm, Kek, KekRing, KeyState, StoredKey};
        let kek = Kek::from_bytes(&[7; 32]).unwrap();
        let stored = |alg, state| {
            let g = generate(alg).unwrap();
            StoredKey {
                kid: g.kid.clone(),
                alg,
                state,
                public_jwk: serde_json::to_string(&g.public_jwk).unwrap(),
                sealed_private_key: Some(kek.seal(&g.kid, &g.pkcs8).unwrap()),
                kek_id: Some(kek.id().to_owned()),
                created_at: at(NOW),
                activated_at: None,
                retired_at: None,
            }
        };
        let keys = [
            stored(Algorithm::Es256, KeyState::Current),
            stored(Algorithm::EdDsa, KeyState::Next),
        ];
        KeySet::new(KeySet::snapshot(&keys, &KekRing::single(kek), None).unwrap())
    }

    pub(crate) const ISS: &str = "https://as.example";

    fn b64_json(value: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    #[test]
    fn a_signed_token_verifies_for_our_issuer_in_its_window() {
        let keys = key_set();
        let c = claims(NOW, NOW, NOW + 300);
        let token = crate::token::encode(&keys.current(), &c).unwrap();
        assert_eq!(verify(&keys, ISS, &token, at(NOW), true), Ok(c.clone()));
        assert_eq!(
            verify(&keys, "https://other.example", &token, at(NOW), true),
            Err(VerifyError::ForeignIssuer)
        );
        assert_eq!(
            verify(&keys, ISS, &token, at(NOW + 300), true),
            Err(VerifyError::Expired)
        );
        assert_eq!(verify(&keys, ISS, &token, at(NOW + 300), false), Ok(c));
    }

    #[test]
    fn altered_headers_claims_and_signatures_are_refused() {
        let keys = key_set();
        let token = crate::token::encode(&keys.current(), &claims(NOW, NOW, NOW + 300)).unwrap();
        let mut parts = token.split('.');
        let (header_b64, claims_b64, sig_b64) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).unwrap()).unwrap();
        let with_header = |change: &dyn Fn(&mut serde_json::Value)| {
            let mut h = header.clone();
            change(&mut h);
            format!("{}.{claims_b64}.{sig_b64}", b64_json(&h))
        };
        let next_kid = keys.next_kid().unwrap();
        let cases: Vec<(String, VerifyError)> = vec![
            (
                with_header(&|h| h["typ"] = "JWT".into()),
                VerifyError::Malformed,
            ),
            (
                with_header(&|h| {
                    h.as_object_mut().unwrap().remove("typ");
                }),
                VerifyError::Malformed,
            ),
            (
                with_header(&|h| h["kid"] = "unknown".into()),
                VerifyError::UnknownKey,
            ),
            (
                with_header(&|h| {
                    h.as_object_mut().unwrap().remove("kid");
                }),
                VerifyError::UnknownKey,
            ),
            // The EdDSA key's id with the ES256 algorithm, and `none`.
            (
                with_header(&|h| h["kid"] = next_kid.clone().into()),
                VerifyError::BadSignature,
            ),
            (
                with_header(&|h| h["alg"] = "none".into()),
                VerifyError::BadSignature,
            ),
            (
                with_header(&|h| h["alg"] = "EdDSA".into()),
                VerifyError::BadSignature,
            ),
            (
                format!(
                    "{header_b64}.{}.{sig_b64}",
                    b64_json(&serde_json::to_value(claims(NOW, NOW, NOW + 3000)).unwrap())
                ),
                VerifyError::BadSignature,
            ),
            (
                format!(
                    "{header_b64}.{claims_b64}.{}{}",
                    if sig_b64.starts_with('A') { "B" } else { "A" },
                    &sig_b64[1..]
                ),
                VerifyError::BadSignature,
            ),
            (format!("{header_b64}.{claims_b64}"), VerifyError::Malformed),
            (format!("{token}.{sig_b64}"), VerifyError::Malformed),
            (
                format!("{header_b64}.{claims_b64}.{sig_b64}="),
                VerifyError::Malformed,
            ),
            (
                format!("{header_b64}.{claims_b64}x.{sig_b64}"),
                VerifyError::BadSignature,
            ),
        ];
        for (bad, why) in cases {
            assert_eq!(verify(&keys, ISS, &bad, at(NOW), true), Err(why), "{bad}");
        }
    }

    #[test]
    fn tokens_longer_than_8192_bytes_are_malformed() {
        let keys = key_set();
        let padded = |n: usize| {
            let mut c = claims(NOW, NOW, NOW + 300);
            c.extra.insert("pad".into(), "x".repeat(n).into());
            crate::token::encode(&keys.current(), &c).unwrap()
        };
        let longest = (5000..6500)
            .map(padded)
            .filter(|t| t.len() <= MAX_TOKEN_LEN)
            .max_by_key(String::len)
            .unwrap();
        assert_eq!(longest.len(), MAX_TOKEN_LEN, "a token of exactly the limit");
        assert!(verify(&keys, ISS, &longest, at(NOW), true).is_ok());
        let longer = (5000..6500)
            .map(padded)
            .find(|t| t.len() > MAX_TOKEN_LEN)
            .unwrap();
        assert_eq!(
            verify(&keys, ISS, &longer, at(NOW), true),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn a_token_in_its_window_passes_and_outside_it_has_expired() {
        let c = claims(NOW, NOW, NOW + 300);
        assert_eq!(check_times(&c, NOW, true), Ok(()));
        assert_eq!(check_times(&c, NOW + 300, true), Err(VerifyError::Expired));
        assert_eq!(check_times(&c, NOW - 1, true), Err(VerifyError::Expired));
        assert_eq!(check_times(&c, NOW + 300, false), Ok(()), "revocation");
        let instant = claims(NOW, NOW, NOW);
        assert_eq!(check_times(&instant, NOW, false), Ok(()), "iat = nbf = exp");
        assert_eq!(
            check_times(&instant, NOW, true),
            Err(VerifyError::Expired),
            "an instant token is never in its window"
        );
    }

    #[test]
    fn times_out_of_range_or_out_of_order_are_malformed_even_unchecked() {
        let cases = [
            claims(i64::MIN, i64::MIN, 1_000_000_000_000_000),
            claims(NOW, NOW, i64::MAX),
            claims(i64::MIN, NOW, NOW + 300),
            claims(NOW, i64::MIN, NOW + 300),
            claims(NOW + 301, NOW, NOW + 300),
            claims(NOW, NOW + 301, NOW + 300),
            claims(NOW, NOW, NOW + i64::from(u32::MAX) + 1),
        ];
        for c in cases {
            for check_time in [true, false] {
                assert_eq!(
                    check_times(&c, NOW, check_time),
                    Err(VerifyError::Malformed),
                    "{c:?}"
                );
            }
        }
    }
}
