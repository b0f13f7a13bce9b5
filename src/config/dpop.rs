//! DPoP at the token endpoint (RFC 9449): the proof algorithms accepted, how
//! old a proof may be, and server nonces.

use serde::Deserialize;

use super::{de::comma_strings, ConfigError};
use crate::oauth::dpop::ALGORITHMS;

/// DPoP proofs (`dpop_signing_algs`, `dpop_proof_max_age`,
/// `dpop_nonce_required`, `dpop_nonce_lifetime`).
#[derive(Clone, Debug, Deserialize)]
pub struct DpopSettings {
    /// Algorithms DPoP proofs may be signed with (`dpop_signing_alg_values_supported`).
    #[serde(
        default = "defaults::dpop_signing_algs",
        deserialize_with = "comma_strings"
    )]
    pub dpop_signing_algs: Vec<String>,
    /// Oldest accepted proof: seconds its `iat` may lie in the past (plus
    /// `clock_skew`; a proof may be `clock_skew` seconds in the future).
    #[serde(default = "defaults::dpop_proof_max_age")]
    pub dpop_proof_max_age: u64,
    /// Require a server nonce in every proof (RFC 9449 §8): a proof without
    /// a current one gets `use_dpop_nonce` and a `DPoP-Nonce` header.
    #[serde(default)]
    pub dpop_nonce_required: bool,
    /// Seconds of one nonce window; a nonce is accepted in its window and the next.
    #[serde(default = "defaults::dpop_nonce_lifetime")]
    pub dpop_nonce_lifetime: u64,
}

mod defaults {
    use crate::oauth::dpop::ALGORITHMS;

    pub fn dpop_signing_algs() -> Vec<String> {
        ALGORITHMS.iter().map(|a| (*a).to_owned()).collect()
    }
    pub fn dpop_proof_max_age() -> u64 {
        60
    }
    pub fn dpop_nonce_lifetime() -> u64 {
        300
    }
}

impl DpopSettings {
    /// Known algorithms, sane windows.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if let Some(alg) = self
            .dpop_signing_algs
            .iter()
            .find(|a| !ALGORITHMS.contains(&a.as_str()))
        {
            return invalid(format!(
                "dpop_signing_algs: {alg:?} is not supported; use some of {}",
                ALGORITHMS.join(", ")
            ));
        }
        if self.dpop_signing_algs.is_empty() {
            return invalid("dpop_signing_algs must not be empty".into());
        }
        if !(5..=600).contains(&self.dpop_proof_max_age) {
            return invalid("dpop_proof_max_age must be between 5 and 600 seconds".into());
        }
        if !(10..=86_400).contains(&self.dpop_nonce_lifetime) {
            return invalid("dpop_nonce_lifetime must be between 10 and 86400 seconds".into());
        }
        Ok(())
    }
}
