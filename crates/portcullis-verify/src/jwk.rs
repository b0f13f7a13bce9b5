//! JSON Web Keys (RFC 7517/7518, RFC 8037) turned into ring verification
//! keys once, when they are fetched or received, and their RFC 7638
//! thumbprints.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use ring::{
    digest,
    signature::{
        RsaPublicKeyComponents, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
        ECDSA_P384_SHA384_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256,
    },
};
use serde::Deserialize;

/// JWS algorithms the verifier understands (RFC 7518 §3, RFC 8037). `none`
/// and the symmetric `HS*` algorithms are deliberately absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// ECDSA P-256 with SHA-256 (Portcullis' default).
    Es256,
    /// ECDSA P-384 with SHA-384 (seen in DPoP proofs).
    Es384,
    /// Ed25519 (RFC 8037).
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256, keys of 2048 to 8192 bits.
    Rs256,
    /// RSASSA-PSS with SHA-256, keys of 2048 to 8192 bits.
    Ps256,
}

impl Algorithm {
    /// Every algorithm this crate can verify.
    pub const ALL: [Self; 5] = [
        Self::Es256,
        Self::Es384,
        Self::EdDsa,
        Self::Rs256,
        Self::Ps256,
    ];

    /// The `alg` value on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
        }
    }

    /// Parses an `alg` value (exact, case-sensitive as RFC 7515 requires).
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// A JWK as it appears in a JWKS or a DPoP proof header; unknown members are ignored.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct RawJwk {
    pub kty: String,
    pub kid: Option<String>,
    pub alg: Option<String>,
    #[serde(rename = "use")]
    pub use_: Option<String>,
    pub crv: Option<String>,
    pub x: Option<String>,
    pub y: Option<String>,
    pub n: Option<String>,
    pub e: Option<String>,
    // Private members: their presence makes the key unacceptable.
    d: Option<serde::de::IgnoredAny>,
    p: Option<serde::de::IgnoredAny>,
    q: Option<serde::de::IgnoredAny>,
    dp: Option<serde::de::IgnoredAny>,
    dq: Option<serde::de::IgnoredAny>,
    qi: Option<serde::de::IgnoredAny>,
    oth: Option<serde::de::IgnoredAny>,
    k: Option<serde::de::IgnoredAny>,
}

enum Kind {
    P256(UnparsedPublicKey<Vec<u8>>),
    P384(UnparsedPublicKey<Vec<u8>>),
    Ed25519(UnparsedPublicKey<Vec<u8>>),
    Rsa(RsaPublicKeyComponents<Vec<u8>>),
}

/// A public key ready to verify signatures: decoded and checked once.
pub struct PublicKey {
    kind: Kind,
    /// The JWK's own `alg`, which then is the only algorithm it verifies.
    alg: Option<Algorithm>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kty = match self.kind {
            Kind::P256(_) => "EC P-256",
            Kind::P384(_) => "EC P-384",
            Kind::Ed25519(_) => "OKP Ed25519",
            Kind::Rsa(_) => "RSA",
        };
        f.debug_struct("PublicKey")
            .field("kty", &kty)
            .field("alg", &self.alg)
            .finish()
    }
}

fn b64(s: Option<&String>, what: &'static str) -> Result<Vec<u8>, &'static str> {
    s.and_then(|s| URL_SAFE_NO_PAD.decode(s).ok()).ok_or(what)
}

impl RawJwk {
    /// Whether the JWK carries private or symmetric key material.
    pub fn has_private_parts(&self) -> bool {
        self.d.is_some()
            || self.p.is_some()
            || self.q.is_some()
            || self.dp.is_some()
            || self.dq.is_some()
            || self.qi.is_some()
            || self.oth.is_some()
            || self.k.is_some()
    }

    /// The verification key, or why this JWK is unusable.
    pub fn to_public_key(&self) -> Result<PublicKey, &'static str> {
        if self.has_private_parts() || self.kty == "oct" {
            return Err("the JWK holds private or symmetric key material");
        }
        if self.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err("the JWK is not a signature key");
        }
        let alg = match self.alg.as_deref() {
            None => None,
            Some(a) => Some(Algorithm::parse(a).ok_or("the JWK names an unsupported alg")?),
        };
        let point = |len: usize| -> Result<Vec<u8>, &'static str> {
            let (x, y) = (
                b64(self.x.as_ref(), "bad x")?,
                b64(self.y.as_ref(), "bad y")?,
            );
            if x.len() != len || y.len() != len {
                return Err("EC coordinates of the wrong length");
            }
            Ok([&[4u8][..], &x, &y].concat())
        };
        let kind = match (self.kty.as_str(), self.crv.as_deref()) {
            ("EC", Some("P-256")) => {
                Kind::P256(UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point(32)?))
            }
            ("EC", Some("P-384")) => {
                Kind::P384(UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, point(48)?))
            }
            ("OKP", Some("Ed25519")) => {
                let x = b64(self.x.as_ref(), "bad x")?;
                if x.len() != 32 {
                    return Err("Ed25519 key of the wrong length");
                }
                Kind::Ed25519(UnparsedPublicKey::new(&ED25519, x))
            }
            ("RSA", _) => {
                let n = b64(self.n.as_ref(), "bad n")?;
                let e = b64(self.e.as_ref(), "bad e")?;
                if n.len() < 256 || n.len() > 1024 || e.is_empty() || e.len() > 8 {
                    return Err("RSA key of an unsupported size");
                }
                Kind::Rsa(RsaPublicKeyComponents { n, e })
            }
            _ => return Err("unsupported kty/crv"),
        };
        let key = PublicKey { kind, alg };
        if alg.is_some_and(|a| !key.fits(a)) {
            return Err("the JWK's alg does not fit its kty/crv");
        }
        Ok(key)
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url: the hash of the required
    /// members in lexicographic order, without whitespace.
    pub fn thumbprint(&self) -> Result<String, &'static str> {
        let m = |v: &Option<String>| v.clone().ok_or("a required JWK member is missing");
        // The members are base64url or known names, so none needs JSON escaping;
        // anything else is refused rather than hashed in a non-canonical form.
        let canonical = match self.kty.as_str() {
            "EC" => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                m(&self.crv)?,
                m(&self.x)?,
                m(&self.y)?
            ),
            "OKP" => format!(
                r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
                m(&self.crv)?,
                m(&self.x)?
            ),
            "RSA" => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                m(&self.e)?,
                m(&self.n)?
            ),
            _ => return Err("unsupported kty"),
        };
        if canonical.contains('\\') || canonical.matches('"').count() % 2 != 0 {
            return Err("a JWK member is not canonical");
        }
        Ok(URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes())))
    }
}

impl PublicKey {
    /// Whether this key may verify `alg`: the key type fits, and a JWK `alg`, if any, is `alg`.
    #[must_use]
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.alg.is_none_or(|a| a == alg) && self.fits(alg)
    }

    fn fits(&self, alg: Algorithm) -> bool {
        matches!(
            (&self.kind, alg),
            (Kind::P256(_), Algorithm::Es256)
                | (Kind::P384(_), Algorithm::Es384)
                | (Kind::Ed25519(_), Algorithm::EdDsa)
                | (Kind::Rsa(_), Algorithm::Rs256 | Algorithm::Ps256)
        )
    }

    /// Whether `signature` is this key's `alg` signature of `message`.
    #[must_use]
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        if !self.accepts(alg) {
            return false;
        }
        match &self.kind {
            Kind::P256(k) | Kind::P384(k) | Kind::Ed25519(k) => {
                k.verify(message, signature).is_ok()
            }
            Kind::Rsa(k) => {
                let params = if alg == Algorithm::Rs256 {
                    &RSA_PKCS1_2048_8192_SHA256
                } else {
                    &RSA_PSS_2048_8192_SHA256
                };
                k.verify(params, message, signature).is_ok()
            }
        }
    }
}

/// The RFC 7638 SHA-256 thumbprint (base64url) of a public JWK given as JSON.
///
/// ```
/// let jwk = r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
/// let thumbprint = portcullis_verify::jwk_thumbprint(jwk).unwrap();
/// assert_eq!(thumbprint, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
/// ```
pub fn jwk_thumbprint(jwk_json: &str) -> Result<String, crate::VerifyError> {
    let jwk: RawJwk = serde_json::from_str(jwk_json)
        .map_err(|_| crate::VerifyError::invalid_request("the JWK is not valid JSON"))?;
    jwk.thumbprint()
        .map_err(crate::VerifyError::invalid_request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(v: serde_json::Value) -> RawJwk {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rfc_7638_section_3_1_thumbprint() {
        let key = jwk(serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }));
        assert_eq!(
            key.thumbprint().unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert!(key.to_public_key().unwrap().accepts(Algorithm::Rs256));
        assert!(
            !key.to_public_key().unwrap().accepts(Algorithm::Ps256),
            "JWK alg pins it"
        );
    }

    #[test]
    fn rfc_8037_ed25519_thumbprint() {
        // RFC 8037 Appendix A.3.
        let key =
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
        assert_eq!(
            jwk_thumbprint(key).unwrap(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn unusable_jwks_are_refused_with_a_reason() {
        let x = URL_SAFE_NO_PAD.encode([1u8; 32]);
        let cases = [
            (serde_json::json!({"kty": "oct", "k": "AAAA"}), "symmetric"),
            (
                serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": x, "d": x}),
                "private",
            ),
            (
                serde_json::json!({"kty": "EC", "crv": "P-256", "x": x}),
                "no y",
            ),
            (
                serde_json::json!({"kty": "EC", "crv": "P-521", "x": x, "y": x}),
                "curve",
            ),
            (
                serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AQ", "y": "AQ"}),
                "length",
            ),
            (
                serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": x, "alg": "RS256"}),
                "alg vs kty",
            ),
            (
                serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": x, "use": "enc"}),
                "use",
            ),
            (
                serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
                "small RSA",
            ),
            (
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "none"}),
                "alg none",
            ),
        ];
        for (v, why) in cases {
            assert!(jwk(v).to_public_key().is_err(), "{why}");
        }
        let ok = jwk(serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": x}));
        let key = ok.to_public_key().unwrap();
        assert!(key.accepts(Algorithm::Es256));
        assert!(!key.accepts(Algorithm::EdDsa) && !key.accepts(Algorithm::Es384));
    }
}
