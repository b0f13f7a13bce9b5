//! Client authentication without a shared secret: signed client assertions
//! (`private_key_jwt`), the client JWK sets fetched for them, and the CAs
//! that `tls_client_auth` certificates chain to.

use std::path::PathBuf;

use serde::Deserialize;

use super::{de::comma_strings, ConfigError};
use crate::clients::credentials::{assertion_algorithm, ASSERTION_ALGORITHMS};

/// Secretless client authentication (`assertion_*`, `jwks_fetch_*`,
/// `jwks_cache_ttl`, `jwks_refetch_interval`, `jwks_stale_max`,
/// `jwks_uri_allow_loopback`, `tls_client_ca_file`).
#[derive(Clone, Debug, Deserialize)]
pub struct ClientAuthSettings {
    /// Algorithms client assertions (`private_key_jwt`) may be signed with.
    #[serde(
        default = "defaults::assertion_signing_algs",
        deserialize_with = "comma_strings"
    )]
    pub assertion_signing_algs: Vec<String>,
    /// Longest accepted client-assertion lifetime (`exp` − `iat`), in seconds.
    #[serde(default = "defaults::assertion_max_lifetime")]
    pub assertion_max_lifetime: u64,
    /// Timeout of one `jwks_uri` fetch, in seconds.
    #[serde(default = "defaults::jwks_fetch_timeout")]
    pub jwks_fetch_timeout: u64,
    /// Largest accepted `jwks_uri` document, in bytes.
    #[serde(default = "defaults::jwks_fetch_max_bytes")]
    pub jwks_fetch_max_bytes: usize,
    /// Seconds a fetched client JWK set is used before it is fetched again.
    #[serde(default = "defaults::jwks_cache_ttl")]
    pub jwks_cache_ttl: u64,
    /// Least seconds between two fetches of one `jwks_uri` when an unknown
    /// `kid` appears (a flood of made-up kids cannot hammer the client).
    #[serde(default = "defaults::jwks_refetch_interval")]
    pub jwks_refetch_interval: u64,
    /// Seconds a fetched set may still be used past `jwks_cache_ttl` while
    /// the client's `jwks_uri` cannot be fetched; then the client is refused
    /// until a fetch succeeds (a key the client removed does not live on).
    #[serde(default = "defaults::jwks_stale_max")]
    pub jwks_stale_max: u64,
    /// Development only: let a `jwks_uri` point to a loopback address (also
    /// over plain `http`). Private, link-local and metadata addresses stay refused.
    #[serde(default)]
    pub jwks_uri_allow_loopback: bool,
    /// PEM CA bundle that `tls_client_auth` client certificates must chain to.
    #[serde(default)]
    pub tls_client_ca_file: Option<PathBuf>,
}

mod defaults {
    use crate::clients::credentials::ASSERTION_ALGORITHMS;

    pub fn assertion_signing_algs() -> Vec<String> {
        ASSERTION_ALGORITHMS
            .iter()
            .map(|a| (*a).to_owned())
            .collect()
    }
    pub fn assertion_max_lifetime() -> u64 {
        // One hour, like Okta and Authlib's default assertions: the jti
        // replay store keeps each id until its exp, whatever the lifetime.
        3600
    }
    pub fn jwks_fetch_timeout() -> u64 {
        5
    }
    pub fn jwks_fetch_max_bytes() -> usize {
        64 * 1024
    }
    pub fn jwks_cache_ttl() -> u64 {
        300
    }
    pub fn jwks_refetch_interval() -> u64 {
        10
    }
    pub fn jwks_stale_max() -> u64 {
        3600
    }
}

impl ClientAuthSettings {
    /// The CA file present; assertion and JWKS-fetch limits sane.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if let Some(path) = &self.tls_client_ca_file {
            if !path.exists() {
                return invalid(format!("{} does not exist", path.display()));
            }
        }
        if let Some(alg) = self
            .assertion_signing_algs
            .iter()
            .find(|a| assertion_algorithm(a).is_none())
        {
            return invalid(format!(
                "assertion_signing_algs: {alg:?} is not supported; use some of {}",
                ASSERTION_ALGORITHMS.join(", ")
            ));
        }
        if self.assertion_signing_algs.is_empty() {
            return invalid("assertion_signing_algs must not be empty".into());
        }
        if !(10..=3600).contains(&self.assertion_max_lifetime) {
            return invalid("assertion_max_lifetime must be between 10 and 3600 seconds".into());
        }
        if !(1..=60).contains(&self.jwks_fetch_timeout) {
            return invalid("jwks_fetch_timeout must be between 1 and 60 seconds".into());
        }
        if !(1024..=1024 * 1024).contains(&self.jwks_fetch_max_bytes) {
            return invalid("jwks_fetch_max_bytes must be between 1024 and 1048576".into());
        }
        if self.jwks_cache_ttl == 0 || self.jwks_refetch_interval > self.jwks_cache_ttl {
            return invalid(
                "jwks_cache_ttl must be at least 1 and not below jwks_refetch_interval".into(),
            );
        }
        if self.jwks_stale_max > 7 * 24 * 3600 {
            return invalid("jwks_stale_max must not exceed 604800 seconds (one week)".into());
        }
        Ok(())
    }
}
