//! The checks of a DPoP proof at the token endpoint ([RFC 9449 §4.3], points
//! 2–11 but the nonce and the single use of `jti`, which need server state):
//! a compact JWS with `typ: dpop+jwt`, an allowed asymmetric `alg`, a public
//! `jwk` that verifies the signature, `htm` and `htu` of this request, `iat`
//! within the window, and a `jti`. Pure: the time comes in as a parameter.
//!
//! [RFC 9449 §4.3]: https://www.rfc-editor.org/rfc/rfc9449#section-4.3

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde::Deserialize;
use serde_json::Value;

use super::jwk::PublicJwk;

/// The longest proof read (an RSA-4096 `jwk` fits with room to spare).
pub const MAX_PROOF_LEN: usize = 8 * 1024;

/// The longest accepted `jti`.
const MAX_JTI_LEN: usize = 256;

/// Why a proof was refused (`invalid_dpop_proof`); safe to send to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProofError(pub &'static str);

/// What the request the proof comes with looks like, and the server's rules.
#[derive(Debug)]
pub struct Expectations<'a> {
    /// The request method (`POST`).
    pub htm: &'a str,
    /// The URLs this endpoint is reached at, normalized with [`normalize_htu`].
    pub htus: &'a [String],
    /// Allowed `alg` values.
    pub algorithms: &'a [String],
    /// How old (`iat`) a proof may be, in seconds.
    pub max_age: i64,
    /// Tolerated clock difference, in seconds (a proof from slightly in the future).
    pub leeway: i64,
}

/// A proof that passed: its key's thumbprint and what the caller still checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The RFC 7638 thumbprint of the proof's key (`cnf.jkt` of the token).
    pub jkt: String,
    /// The proof's id (single use).
    pub jti: String,
    /// Seconds since the epoch until which a replay must be detected.
    pub remember_until: i64,
    /// The server nonce the proof carries, if any.
    pub nonce: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    typ: Option<String>,
    alg: Option<String>,
    jwk: Option<Value>,
    crit: Option<Value>,
}

#[derive(Deserialize)]
struct Claims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<Value>,
    nonce: Option<String>,
}

/// `uri` as the `htu` comparison sees it ([RFC 9449 §4.3] point 9): scheme and
/// host lowercased, default port dropped, dot segments resolved, no user
/// information, query or fragment. `None` if it is not an absolute `http(s)` URL.
#[must_use]
pub fn normalize_htu(uri: &str) -> Option<String> {
    let mut url = url::Url::parse(uri).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    url.set_username("").ok()?;
    url.set_password(None).ok()?;
    Some(url.into())
}

fn part(text: &str, what: &'static str) -> Result<Vec<u8>, ProofError> {
    URL_SAFE_NO_PAD.decode(text).map_err(|_| ProofError(what))
}

/// The key of a proof whose header follows the rules and whose signature
/// verifies with it, and the proof's payload part.
fn verified_key<'p>(
    proof: &'p str,
    expect: &Expectations<'_>,
) -> Result<(PublicJwk, &'p str), ProofError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofError("the DPoP proof is too long"));
    }
    let mut parts = proof.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofError(
            "the DPoP proof is not a compact JWS (three dot-separated parts)",
        ));
    };
    let header: Header =
        serde_json::from_slice(&part(h, "the DPoP proof's header is not base64url")?).map_err(
            |_| {
                ProofError("the DPoP proof's header is not a JSON object of the JWS header members")
            },
        )?;
    if !header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
    {
        return Err(ProofError("the DPoP proof's typ is not dpop+jwt"));
    }
    if header.crit.is_some() {
        return Err(ProofError(
            "the DPoP proof has a crit header this server does not understand",
        ));
    }
    let alg = header.alg.as_deref().unwrap_or_default();
    if !expect.algorithms.iter().any(|a| a == alg) {
        return Err(ProofError(
            "the DPoP proof's alg is not one of dpop_signing_alg_values_supported",
        ));
    }
    let jwk = PublicJwk::parse(
        header
            .jwk
            .as_ref()
            .ok_or(ProofError("the DPoP proof has no jwk header"))?,
    )
    .map_err(ProofError)?;
    if !jwk.fits(alg) {
        return Err(ProofError("the DPoP proof's alg does not fit its jwk"));
    }
    let signature = part(s, "the DPoP proof's signature is not base64url")?;
    let signed = &proof[..h.len() + 1 + p.len()];
    if !jwk.verifies(alg, signed.as_bytes(), &signature) {
        return Err(ProofError(
            "the DPoP proof's signature does not verify with its jwk",
        ));
    }
    Ok((jwk, p))
}

/// Checks `proof` against the request and the rules, at `now` (seconds since the epoch).
pub fn check(proof: &str, expect: &Expectations<'_>, now: i64) -> Result<Proof, ProofError> {
    let (jwk, p) = verified_key(proof, expect)?;
    let claims: Claims =
        serde_json::from_slice(&part(p, "the DPoP proof's payload is not base64url")?).map_err(
            |_| ProofError("the DPoP proof's payload is not a JSON object of its claims"),
        )?;
    let (Some(jti), Some(htm), Some(htu), Some(iat)) =
        (claims.jti, claims.htm, claims.htu, claims.iat)
    else {
        return Err(ProofError(
            "the DPoP proof lacks one of jti, htm, htu and iat",
        ));
    };
    if htm != expect.htm {
        return Err(ProofError(
            "the DPoP proof's htm is not the request's method",
        ));
    }
    if !normalize_htu(&htu).is_some_and(|u| expect.htus.contains(&u)) {
        return Err(ProofError(
            "the DPoP proof's htu is not this endpoint's URL",
        ));
    }
    let iat = iat
        .as_i64()
        .or_else(|| iat.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
        .ok_or(ProofError("the DPoP proof's iat is not a number"))?;
    if iat > now.saturating_add(expect.leeway)
        || iat
            < now
                .saturating_sub(expect.max_age)
                .saturating_sub(expect.leeway)
    {
        return Err(ProofError(
            "the DPoP proof's iat is outside the accepted window (dpop_proof_max_age)",
        ));
    }
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(ProofError(
            "the DPoP proof's jti is empty or longer than 256 bytes",
        ));
    }
    Ok(Proof {
        jkt: jwk.thumbprint(),
        jti,
        // Usable until its iat leaves the window: remembered that long.
        remember_until: iat
            .saturating_add(expect.max_age)
            .saturating_add(2 * expect.leeway)
            .saturating_add(1),
        nonce: claims.nonce,
    })
}
