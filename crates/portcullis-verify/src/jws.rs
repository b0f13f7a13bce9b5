//! Compact JWS (RFC 7515 §7.1) taken apart without copying: the three
//! base64url segments, the protected header, and the signature check.

use std::borrow::Cow;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde::Deserialize;

use crate::jwk::{Algorithm, PublicKey, RawJwk};

/// Longest accepted compact JWS, in bytes.
pub(crate) const MAX_JWS_LEN: usize = 16 * 1024;

/// The three segments of a compact JWS.
pub(crate) struct Compact<'t> {
    header: &'t str,
    payload: &'t str,
    signature: &'t str,
    signing_input: &'t str,
}

/// The JOSE header members the verifier reads.
#[derive(Deserialize)]
pub(crate) struct Header<'a> {
    #[serde(borrow)]
    pub alg: Cow<'a, str>,
    #[serde(borrow, default)]
    pub typ: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub kid: Option<Cow<'a, str>>,
    #[serde(default)]
    pub jwk: Option<RawJwk>,
    #[serde(default)]
    pub crit: Option<serde::de::IgnoredAny>,
}

impl<'t> Compact<'t> {
    /// Splits `jws` into its segments; refuses anything but three base64url parts.
    pub fn split(jws: &'t str) -> Result<Self, &'static str> {
        if jws.len() > MAX_JWS_LEN {
            return Err("the token is too long");
        }
        let mut parts = jws.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("the token is not a compact JWS");
        };
        if header.is_empty() || payload.is_empty() || signature.is_empty() {
            return Err("the token has an empty segment");
        }
        Ok(Self {
            header,
            payload,
            signature,
            signing_input: &jws[..header.len() + 1 + payload.len()],
        })
    }

    /// The decoded protected header bytes.
    pub fn header_bytes(&self) -> Result<Vec<u8>, &'static str> {
        URL_SAFE_NO_PAD
            .decode(self.header)
            .map_err(|_| "the JOSE header is not base64url")
    }

    /// The decoded payload bytes.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, &'static str> {
        URL_SAFE_NO_PAD
            .decode(self.payload)
            .map_err(|_| "the payload is not base64url")
    }

    /// Whether the signature is `key`'s `alg` signature of the signing input.
    pub fn verify(&self, key: &PublicKey, alg: Algorithm) -> bool {
        // RSA signatures reach 1024 bytes; ES256, the common case, fits on the stack.
        let mut buf = [0u8; 1024];
        match URL_SAFE_NO_PAD.decode_slice(self.signature, &mut buf) {
            Ok(n) => key.verify(alg, self.signing_input.as_bytes(), &buf[..n]),
            Err(_) => false,
        }
    }
}

impl Header<'_> {
    /// Parses the header; `crit` (extensions we do not understand) is refused.
    pub fn parse(bytes: &[u8]) -> Result<Header<'_>, &'static str> {
        let header: Header<'_> =
            serde_json::from_slice(bytes).map_err(|_| "the JOSE header is not a JSON object")?;
        if header.crit.is_some() {
            return Err("the JOSE header has critical extensions");
        }
        Ok(header)
    }

    /// The `alg` if it is in `allowed` (never `none`).
    pub fn algorithm(&self, allowed: &[Algorithm]) -> Result<Algorithm, &'static str> {
        Algorithm::parse(&self.alg)
            .filter(|a| allowed.contains(a))
            .ok_or("the signing algorithm is not allowed")
    }

    /// Whether `typ` is the media type `expected` (`xyz+jwt`), compared
    /// case-insensitively, with or without the `application/` prefix (RFC 7515 §4.1.9).
    pub fn typ_is(&self, expected: &str) -> bool {
        self.typ.as_deref().is_some_and(|t| {
            let t = match (t.get(..12), t.get(12..)) {
                (Some(prefix), Some(rest)) if prefix.eq_ignore_ascii_case("application/") => rest,
                _ => t,
            };
            t.eq_ignore_ascii_case(expected)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(json: &str) -> Vec<u8> {
        json.as_bytes().to_vec()
    }

    #[test]
    fn only_three_nonempty_segments_make_a_jws() {
        for bad in ["", "a.b", "a.b.c.d", "a..c", ".b.c", "a.b."] {
            assert!(Compact::split(bad).is_err(), "{bad:?}");
        }
        assert!(Compact::split(&"a".repeat(MAX_JWS_LEN + 1)).is_err());
        let ok = Compact::split("aGk.cGF5.c2ln").unwrap();
        assert_eq!(ok.signing_input, "aGk.cGF5");
        assert_eq!(ok.payload_bytes().unwrap(), b"pay");
    }

    #[test]
    fn typ_is_compared_case_insensitively_with_or_without_the_application_prefix() {
        for (typ, ok) in [
            ("at+jwt", true),
            ("AT+JWT", true),
            ("application/at+jwt", true),
            ("Application/At+Jwt", true),
            ("JWT", false),
            ("application/jwt", false),
            ("at+jwt ", false),
            ("xapplication/at+jwt", false),
            ("application\u{e9}at+jwt", false),
        ] {
            let bytes = header(&format!(r#"{{"alg":"ES256","typ":"{typ}"}}"#));
            assert_eq!(Header::parse(&bytes).unwrap().typ_is("at+jwt"), ok, "{typ}");
        }
        let bytes = header(r#"{"alg":"ES256"}"#);
        assert!(
            !Header::parse(&bytes).unwrap().typ_is("at+jwt"),
            "missing typ"
        );
    }

    #[test]
    fn none_symmetric_and_unlisted_algorithms_are_refused() {
        let allowed = [Algorithm::Es256, Algorithm::EdDsa];
        for (alg, ok) in [
            ("ES256", true),
            ("EdDSA", true),
            ("none", false),
            ("None", false),
            ("HS256", false),
            ("RS256", false),
            ("es256", false),
        ] {
            let bytes = header(&format!(r#"{{"alg":"{alg}"}}"#));
            assert_eq!(
                Header::parse(&bytes).unwrap().algorithm(&allowed).is_ok(),
                ok,
                "{alg}"
            );
        }
        let crit = header(r#"{"alg":"ES256","crit":["exp"],"exp":1}"#);
        assert!(Header::parse(&crit).is_err());
        assert!(Header::parse(b"[1]").is_err());
    }
}
