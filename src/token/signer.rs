//! JWS compact serialization of access tokens with the pre-parsed current key.
//!
//! jsonwebtoken's `encode` builds a new signer from key bytes on every call;
//! here the ring key pair is parsed once and signs through jsonwebtoken's
//! `jsonwebtoken::crypto::JwtSigner` interface, with the protected header encoded once per key.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use signature::Signer as _;

use super::AccessTokenClaims;
use crate::keys::SigningKey;

/// Signing failed (the key could not produce a signature).
#[derive(Debug, thiserror::Error)]
#[error("the access token could not be signed")]
pub struct SignError;

/// Returns `header.claims.signature`, each part base64url without padding (RFC 7515 §7.1).
pub fn encode(key: &SigningKey, claims: &AccessTokenClaims) -> Result<String, SignError> {
    let claims_json = serde_json::to_vec(claims).map_err(|_| SignError)?;
    let mut token = String::with_capacity(key.header_b64().len() + claims_json.len() * 4 / 3 + 100);
    token.push_str(key.header_b64());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&claims_json, &mut token);
    let signature = key.try_sign(token.as_bytes()).map_err(|_| SignError)?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    Ok(token)
}
