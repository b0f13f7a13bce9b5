//! Verification of Portcullis access tokens (for introspection and
//! revocation): compact JWS, `typ: at+jwt`, a `kid` published in our JWKS,
//! the `alg` that key is for (so `none` or a swapped algorithm never passes),
//! the signature, our issuer, and the validity window.

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
    let key = header
        .kid
        .as_deref()
        .and_then(|kid| keys.verifying_key(kid))
        .ok_or(VerifyError::UnknownKey)?;
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
    let t = now.timestamp();
    if check_time && (t >= claims.exp || t < claims.nbf) {
        return Err(VerifyError::Expired);
    }
    Ok(claims)
}
