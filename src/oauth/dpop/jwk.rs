//! The public key a DPoP proof carries in its `jwk` header ([RFC 9449 §4.2]):
//! read strictly (public members only, [RFC 7517 §4], [RFC 7518 §6]), checked
//! against the proof's `alg`, and its [RFC 7638] SHA-256 thumbprint — the
//! `jkt` a bound token's `cnf` names. Signatures are checked with `ring`.
//!
//! [RFC 9449 §4.2]: https://www.rfc-editor.org/rfc/rfc9449#section-4.2
//! [RFC 7517 §4]: https://www.rfc-editor.org/rfc/rfc7517#section-4
//! [RFC 7518 §6]: https://www.rfc-editor.org/rfc/rfc7518#section-6
//! [RFC 7638]: https://www.rfc-editor.org/rfc/rfc7638

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use ring::{
    digest,
    signature::{self, RsaPublicKeyComponents, UnparsedPublicKey},
};
use serde_json::{Map, Value};

/// Members that only a private (or symmetric) key has.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The smallest RSA modulus accepted, in bits (RFC 7518 §3.3, §3.5).
const MIN_RSA_BITS: usize = 2048;

/// A public key from a proof's `jwk` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicJwk {
    /// `kty: EC`, `crv: P-256` (ES256).
    P256 {
        /// `x`, base64url as sent.
        x: String,
        /// `y`, base64url as sent.
        y: String,
        /// The uncompressed point `0x04 ‖ x ‖ y`.
        point: Vec<u8>,
    },
    /// `kty: OKP`, `crv: Ed25519` (`EdDSA`).
    Ed25519 {
        /// `x`, base64url as sent.
        x: String,
        /// The 32-byte public key.
        key: Vec<u8>,
    },
    /// `kty: RSA` (RS256, PS256).
    Rsa {
        /// `n`, base64url as sent.
        n: String,
        /// `e`, base64url as sent.
        e: String,
        /// Decoded modulus.
        modulus: Vec<u8>,
        /// Decoded exponent.
        exponent: Vec<u8>,
    },
}

fn member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<&'a str, &'static str> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or("the DPoP proof's jwk lacks a member its kty requires")
}

fn decode(text: &str) -> Result<Vec<u8>, &'static str> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| "the DPoP proof's jwk has a member that is not base64url")
}

impl PublicJwk {
    /// Reads a `jwk` header value: an EC P-256, OKP Ed25519 or RSA public key.
    pub fn parse(value: &Value) -> Result<Self, &'static str> {
        let jwk = value
            .as_object()
            .ok_or("the DPoP proof's jwk header is not a JSON object")?;
        if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
            return Err("the DPoP proof's jwk holds a private or symmetric key");
        }
        match (member(jwk, "kty")?, jwk.get("crv").and_then(Value::as_str)) {
            ("EC", Some("P-256")) => {
                let (x, y) = (member(jwk, "x")?, member(jwk, "y")?);
                let (xb, yb) = (decode(x)?, decode(y)?);
                if xb.len() != 32 || yb.len() != 32 {
                    return Err("the DPoP proof's P-256 jwk has coordinates of the wrong length");
                }
                let point = [&[4u8][..], &xb, &yb].concat();
                Ok(Self::P256 {
                    x: x.to_owned(),
                    y: y.to_owned(),
                    point,
                })
            }
            ("OKP", Some("Ed25519")) => {
                let x = member(jwk, "x")?;
                let key = decode(x)?;
                if key.len() != 32 {
                    return Err("the DPoP proof's Ed25519 jwk has a key of the wrong length");
                }
                Ok(Self::Ed25519 {
                    x: x.to_owned(),
                    key,
                })
            }
            ("RSA", _) => {
                let (n, e) = (member(jwk, "n")?, member(jwk, "e")?);
                let (modulus, exponent) = (decode(n)?, decode(e)?);
                let significant = modulus.iter().skip_while(|b| **b == 0).count();
                if significant * 8 < MIN_RSA_BITS {
                    return Err("the DPoP proof's RSA jwk is shorter than 2048 bits");
                }
                Ok(Self::Rsa {
                    n: n.to_owned(),
                    e: e.to_owned(),
                    modulus,
                    exponent,
                })
            }
            _ => Err("the DPoP proof's jwk is not an EC P-256, OKP Ed25519 or RSA public key"),
        }
    }

    /// Whether `alg` is the algorithm of this key type.
    #[must_use]
    pub fn fits(&self, alg: &str) -> bool {
        matches!(
            (self, alg),
            (Self::P256 { .. }, "ES256")
                | (Self::Ed25519 { .. }, "EdDSA")
                | (Self::Rsa { .. }, "RS256" | "PS256")
        )
    }

    /// Whether `sig` is this key's `alg` signature of `message`; false for an
    /// `alg` the key does not fit.
    #[must_use]
    pub fn verifies(&self, alg: &str, message: &[u8], sig: &[u8]) -> bool {
        match (self, alg) {
            (Self::P256 { point, .. }, "ES256") => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            (Self::Ed25519 { key, .. }, "EdDSA") => {
                UnparsedPublicKey::new(&signature::ED25519, key)
                    .verify(message, sig)
                    .is_ok()
            }
            (
                Self::Rsa {
                    modulus, exponent, ..
                },
                "RS256" | "PS256",
            ) => {
                let params = if alg == "RS256" {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                } else {
                    &signature::RSA_PSS_2048_8192_SHA256
                };
                RsaPublicKeyComponents {
                    n: modulus,
                    e: exponent,
                }
                .verify(params, message, sig)
                .is_ok()
            }
            _ => false,
        }
    }

    /// The RFC 7638 JWK SHA-256 thumbprint, base64url: the hash of the
    /// required members in lexicographic order, without whitespace.
    #[must_use]
    pub fn thumbprint(&self) -> String {
        // serde_json escapes the values; the members are in the RFC's order.
        let canonical = match self {
            Self::P256 { x, y, .. } => {
                format!(r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#, q(x), q(y))
            }
            Self::Ed25519 { x, .. } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":{}}}"#, q(x)),
            Self::Rsa { n, e, .. } => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, q(e), q(n)),
        };
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
    }
}

/// `s` as a JSON string.
fn q(s: &str) -> String {
    Value::from(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn thumbprint_of_the_rfc_7638_example_key() {
        // RFC 7638 §3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let key = PublicJwk::parse(&jwk).unwrap();
        assert_eq!(
            key.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert!(key.fits("RS256") && key.fits("PS256") && !key.fits("ES256"));
    }

    #[test]
    fn thumbprint_of_an_ed25519_key_matches_rfc_8037() {
        // RFC 8037 Appendix A.3.
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let key = PublicJwk::parse(&jwk).unwrap();
        assert_eq!(
            key.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn bad_keys_are_refused_with_a_reason() {
        let x = URL_SAFE_NO_PAD.encode([1u8; 32]);
        let cases = [
            (json!("a string"), "not a JSON object"),
            (
                json!({"kty": "EC", "crv": "P-256", "x": x, "y": x, "d": x}),
                "private",
            ),
            (
                json!({"kty": "oct", "k": "c2VjcmV0"}),
                "private or symmetric",
            ),
            (
                json!({"kty": "EC", "crv": "P-384", "x": x, "y": x}),
                "not an EC P-256",
            ),
            (
                json!({"kty": "EC", "crv": "P-256", "x": x}),
                "lacks a member",
            ),
            (
                json!({"kty": "EC", "crv": "P-256", "x": "!!", "y": x}),
                "not base64url",
            ),
            (
                json!({"kty": "EC", "crv": "P-256", "x": "AQ", "y": x}),
                "wrong length",
            ),
            (
                json!({"kty": "OKP", "crv": "X25519", "x": x}),
                "not an EC P-256",
            ),
            (json!({"kty": "RSA", "n": x, "e": "AQAB"}), "2048 bits"),
            (json!({"crv": "P-256", "x": x, "y": x}), "lacks a member"),
        ];
        for (jwk, why) in cases {
            let err = PublicJwk::parse(&jwk).expect_err(why);
            assert!(err.contains(why), "{jwk}: {err}");
        }
    }

    #[test]
    fn a_signature_verifies_only_with_its_algorithm_and_message() {
        use ring::signature::{Ed25519KeyPair, KeyPair as _};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let key = PublicJwk::parse(&json!({"kty": "OKP", "crv": "Ed25519", "x": x})).unwrap();
        let sig = pair.sign(b"message");
        assert!(key.verifies("EdDSA", b"message", sig.as_ref()));
        assert!(!key.verifies("EdDSA", b"massage", sig.as_ref()));
        assert!(!key.verifies("ES256", b"message", sig.as_ref()));
    }
}
