//! DPoP at the token endpoint ([RFC 9449]): a `DPoP` proof header binds the
//! access token to the proof's key (`cnf.jkt`, [RFC 7638] thumbprint; §6) and
//! the token type becomes `DPoP` (§5). The proof is checked ([`proof`]), its
//! nonce when the server requires one ([`nonce`], §8), and its `jti` is
//! recorded once in the database shared by every replica (§11.1), or, while
//! the database is unreachable, in this process's bounded replay set.
//!
//! Sending no `DPoP` header costs nothing: the check returns at once unless
//! the client is registered with `dpop_bound_access_tokens` (§5.2), which
//! makes the proof required. A token is bound one way: a client whose tokens
//! are bound to its certificate (RFC 8705) sending a proof is refused.
//!
//! [RFC 9449]: https://www.rfc-editor.org/rfc/rfc9449
//! [RFC 7638]: https://www.rfc-editor.org/rfc/rfc7638

pub mod jwk;
pub mod nonce;
pub mod proof;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};

use super::{OAuthError, TokenServer};
use crate::clients::Client;

/// The signature algorithms of proofs this server can check.
pub const ALGORITHMS: [&str; 4] = ["ES256", "EdDSA", "RS256", "PS256"];

/// The `DPoP` request header as the web layer found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpopHeader<'a> {
    /// No `DPoP` header.
    Absent,
    /// One `DPoP` header, its raw value.
    One(&'a [u8]),
    /// More than one (§4.3 point 1: refused).
    Repeated,
}

fn invalid(reason: &'static str) -> OAuthError {
    tracing::info!(reason, "DPoP proof refused");
    OAuthError::InvalidDpopProof(reason)
}

impl TokenServer {
    /// The URLs a proof's `htu` may name for the token endpoint: under the
    /// issuer and under the mTLS alias base, normalized.
    fn token_endpoint_htus(&self) -> Vec<String> {
        std::iter::once(self.issuer.as_str())
            .chain(self.settings.listeners.mtls_endpoint_base.as_deref())
            .filter_map(|base| proof::normalize_htu(&format!("{base}/token")))
            .collect()
    }

    /// The thumbprint of the key a token request proves possession of, or
    /// `None` without a `DPoP` header from a client that needs none.
    pub(super) async fn dpop_key(
        &self,
        client: &Client,
        header: DpopHeader<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, OAuthError> {
        let text = match header {
            DpopHeader::Absent if !client.dpop_bound_access_tokens => return Ok(None),
            DpopHeader::Absent => {
                return Err(invalid(
                    "this client's access tokens are DPoP-bound (dpop_bound_access_tokens): send a DPoP proof",
                ))
            }
            DpopHeader::Repeated => return Err(invalid("the request has more than one DPoP header")),
            DpopHeader::One(bytes) => std::str::from_utf8(bytes)
                .map_err(|_| invalid("the DPoP header is not a compact JWS"))?,
        };
        let settings = &self.settings.dpop;
        let htus = self.token_endpoint_htus();
        let expect = proof::Expectations {
            htm: "POST",
            htus: &htus,
            algorithms: &settings.dpop_signing_algs,
            max_age: i64::try_from(settings.dpop_proof_max_age).unwrap_or(i64::MAX),
            leeway: i64::try_from(self.settings.tokens.clock_skew).unwrap_or(0),
        };
        let proof = proof::check(text, &expect, now.timestamp()).map_err(|e| invalid(e.0))?;
        if settings.dpop_nonce_required
            && !proof
                .nonce
                .as_deref()
                .is_some_and(|n| self.dpop_nonces.is_valid(n, now.timestamp()))
        {
            tracing::info!("DPoP proof without a current server nonce: use_dpop_nonce");
            return Err(OAuthError::UseDpopNonce(
                self.dpop_nonces.issue(now.timestamp()),
            ));
        }
        let Some(until) =
            DateTime::from_timestamp(proof.remember_until, 0).filter(|until| *until > now)
        else {
            return Err(invalid("the DPoP proof's iat is out of range"));
        };
        // One table with the client assertions' ids, in a namespace of its own.
        let id = format!("dpop:{}:{}", proof.jkt, proof.jti);
        if !self.record_jti(client, &id, until, now).await? {
            tracing::warn!(jti = %proof.jti, "DPoP proof replayed");
            return Err(invalid(
                "the DPoP proof was used before (its jti is single-use)",
            ));
        }
        Ok(Some(proof.jkt))
    }

    /// A fresh nonce for the response to a DPoP request, when nonces are required.
    #[must_use]
    pub fn next_dpop_nonce(&self, now: DateTime<Utc>) -> Option<String> {
        self.settings
            .dpop
            .dpop_nonce_required
            .then(|| self.dpop_nonces.issue(now.timestamp()))
    }
}
