//! DPoP proofs at a resource server (RFC 9449 §4.3 checks, §7.1 `ath`,
//! §9 server nonces) and the `htu` comparison (§4.3 point 9: without query
//! and fragment, after RFC 3986 §6.2.2–6.2.3 normalization).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use ring::{digest, hmac, rand::SecureRandom as _};
use serde::Deserialize;

use crate::{
    config::{DpopConfig, NonceConfig},
    jws::{Compact, Header},
    ttl_cache::{key, TtlCache},
    VerifyError,
};

/// The RFC 9449 `ath` of an access token: base64url(SHA-256(token)).
///
/// ```
/// assert_eq!(portcullis_verify::ath("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
/// ```
#[must_use]
pub fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, access_token.as_bytes()))
}

/// `uri` normalized for the `htu` comparison: scheme and host lowercased,
/// default port dropped, dot segments resolved, an empty path made `/`,
/// percent-encoding case unified, query and fragment removed. `None` if
/// `uri` is not an absolute `http(s)` URI.
///
/// ```
/// use portcullis_verify::normalize_htu;
/// assert_eq!(
///     normalize_htu("HTTPS://API.Example.com:443/a/../b?x=1#f").as_deref(),
///     Some("https://api.example.com/b")
/// );
/// ```
#[must_use]
pub fn normalize_htu(uri: &str) -> Option<String> {
    let mut url = url::Url::parse(uri).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Some(unify_percent_case(url.as_str()))
}

/// Uppercases the hex digits of percent-encodings (RFC 3986 §6.2.2.1).
fn unify_percent_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = 0;
    for c in s.chars() {
        if rest > 0 {
            out.push(c.to_ascii_uppercase());
            rest -= 1;
        } else {
            if c == '%' {
                rest = 2;
            }
            out.push(c);
        }
    }
    out
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// What one request presents for a DPoP check.
pub(crate) struct ProofInput<'a> {
    pub proof: &'a str,
    pub method: &'a str,
    /// The request URI, normalized with [`normalize_htu`].
    pub htu: &'a str,
    pub access_token: &'a str,
    /// `cnf.jkt` of the access token.
    pub jkt: &'a str,
    pub now: i64,
    pub leeway: i64,
}

/// DPoP state: settings, the `jti` replay cache and the nonce key.
pub(crate) struct DpopChecker {
    cfg: DpopConfig,
    replay: TtlCache<()>,
    nonces: Option<Nonces>,
}

impl DpopChecker {
    pub fn new(cfg: DpopConfig) -> Self {
        Self {
            replay: TtlCache::new(cfg.replay_capacity),
            nonces: cfg.nonce.as_ref().map(Nonces::new),
            cfg,
        }
    }

    pub fn config(&self) -> &DpopConfig {
        &self.cfg
    }

    /// A fresh server nonce, when nonces are on.
    pub fn nonce(&self, now: i64) -> Option<String> {
        self.nonces.as_ref().map(|n| n.issue(now))
    }

    /// Checks `input.proof` (RFC 9449 §4.3) and records its `jti`.
    pub fn check(&self, input: &ProofInput<'_>) -> Result<(), VerifyError> {
        let bad = VerifyError::invalid_dpop_proof;
        let jws =
            Compact::split(input.proof).map_err(|_| bad("the DPoP proof is not a compact JWS"))?;
        let header_bytes = jws.header_bytes().map_err(bad)?;
        let header = Header::parse(&header_bytes).map_err(bad)?;
        if !header.typ_is("dpop+jwt") {
            return Err(bad("the DPoP proof's typ is not dpop+jwt"));
        }
        let alg = header
            .algorithm(&self.cfg.algorithms)
            .map_err(|_| bad("the DPoP proof's alg is not allowed"))?;
        let jwk = header
            .jwk
            .as_ref()
            .ok_or_else(|| bad("the DPoP proof has no jwk header"))?;
        if jwk.has_private_parts() {
            return Err(bad("the DPoP proof's jwk holds a private key"));
        }
        let public_key = jwk.to_public_key().map_err(bad)?;
        if !jws.verify(&public_key, alg) {
            return Err(bad("the DPoP proof's signature does not verify"));
        }
        let claims: ProofClaims = serde_json::from_slice(&jws.payload_bytes().map_err(bad)?)
            .map_err(|_| bad("the DPoP proof lacks jti, htm, htu or iat"))?;
        if claims.htm != input.method {
            return Err(bad(
                "the DPoP proof's htm does not match the request method",
            ));
        }
        if normalize_htu(&claims.htu).as_deref() != Some(input.htu) {
            return Err(bad("the DPoP proof's htu does not match the request URI"));
        }
        let now = input.now;
        if claims.iat > now + input.leeway || claims.iat < now - self.cfg.max_age - input.leeway {
            return Err(bad("the DPoP proof's iat is outside the accepted window"));
        }
        if claims.ath.as_deref() != Some(ath(input.access_token).as_str()) {
            return Err(bad("the DPoP proof's ath does not match the access token"));
        }
        if jwk.thumbprint().map_err(bad)? != input.jkt {
            // The token is bound to another key: the token, not the proof, is the problem.
            return Err(VerifyError::invalid_token(
                "the access token is bound to another DPoP key",
            )
            .in_dpop());
        }
        if let Some(nonces) = &self.nonces {
            if !claims
                .nonce
                .as_deref()
                .is_some_and(|n| nonces.is_valid(n, now))
            {
                return Err(VerifyError::use_dpop_nonce(nonces.issue(now)));
            }
        }
        if claims.jti.is_empty() || claims.jti.len() > 256 {
            return Err(bad("the DPoP proof's jti is empty or too long"));
        }
        // A proof is usable until its iat leaves the window; remember it that long.
        let until = claims.iat + self.cfg.max_age + 2 * input.leeway + 1;
        match self.replay.insert_new(
            key(&[input.jkt.as_bytes(), claims.jti.as_bytes()]),
            (),
            until,
            now,
        ) {
            Ok(true) => Ok(()),
            Ok(false) => Err(bad("the DPoP proof was already used")),
            Err(()) => Err(VerifyError::unavailable("too many recent DPoP proofs")),
        }
    }
}

/// Stateless nonces: `base64url(window ‖ HMAC-SHA256(key, window))`.
struct Nonces {
    key: hmac::Key,
    window: i64,
}

impl Nonces {
    fn new(cfg: &NonceConfig) -> Self {
        let secret = cfg.secret.clone().unwrap_or_else(|| {
            let mut s = vec![0u8; 32];
            // Without randomness the nonce key is all zeros: nonces are then
            // forgeable but still unique per window; ring's RNG does not fail on supported platforms.
            let _ = ring::rand::SystemRandom::new().fill(&mut s);
            s
        });
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            window: cfg.window.max(1),
        }
    }

    fn encode(&self, window: i64) -> String {
        let tag = hmac::sign(&self.key, &window.to_be_bytes());
        URL_SAFE_NO_PAD.encode([&window.to_be_bytes()[..], tag.as_ref()].concat())
    }

    fn issue(&self, now: i64) -> String {
        self.encode(now.div_euclid(self.window))
    }

    fn is_valid(&self, nonce: &str, now: i64) -> bool {
        let current = now.div_euclid(self.window);
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let (Some(window), Some(tag)) = (bytes.get(..8), bytes.get(8..)) else {
            return false;
        };
        let window = i64::from_be_bytes(window.try_into().unwrap_or_default());
        (window == current || window == current - 1)
            && hmac::verify(&self.key, &window.to_be_bytes(), tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_ignores_query_fragment_case_default_port_and_dot_segments() {
        let same = [
            (
                "https://api.example.com/r",
                "https://api.example.com/r?q=1#x",
            ),
            ("https://api.example.com/r", "HTTPS://API.EXAMPLE.COM:443/r"),
            ("http://api.example.com/", "http://api.example.com:80"),
            (
                "https://api.example.com/a/b",
                "https://api.example.com/a/./c/../b",
            ),
            (
                "https://api.example.com/%7Ea",
                "https://api.example.com/%7ea",
            ),
            (
                "https://api.example.com/r",
                "https://user:pw@api.example.com/r",
            ),
        ];
        for (a, b) in same {
            assert_eq!(normalize_htu(a), normalize_htu(b), "{a} vs {b}");
        }
        let different = [
            ("https://api.example.com/r", "http://api.example.com/r"),
            (
                "https://api.example.com/r",
                "https://api.example.com:8443/r",
            ),
            ("https://api.example.com/r", "https://api.example.com/R"),
            ("https://api.example.com/r", "https://api.example.org/r"),
        ];
        for (a, b) in different {
            assert_ne!(normalize_htu(a), normalize_htu(b), "{a} vs {b}");
        }
        for bad in ["/relative", "ftp://x/y", "not a uri", "urn:x:y"] {
            assert_eq!(normalize_htu(bad), None, "{bad}");
        }
    }

    #[test]
    fn ath_is_the_base64url_sha256_of_the_token() {
        // RFC 9449 §7.1 example token and its ath.
        assert_eq!(
            ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn nonces_are_good_for_their_window_and_the_next_and_cannot_be_made_up() {
        let nonces = Nonces::new(&NonceConfig {
            window: 60,
            secret: Some(vec![7; 32]),
        });
        let n = nonces.issue(1_000);
        assert!(nonces.is_valid(&n, 1_000) && nonces.is_valid(&n, 1_079));
        assert!(!nonces.is_valid(&n, 1_080 + 60), "two windows later");
        let other = Nonces::new(&NonceConfig {
            window: 60,
            secret: Some(vec![8; 32]),
        });
        assert!(!nonces.is_valid(&other.issue(1_000), 1_000), "another key");
        assert!(!nonces.is_valid("", 1_000));
    }
}
