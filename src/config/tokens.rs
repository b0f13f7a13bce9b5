//! Tokens: access- and refresh-token lifetimes, how long verifiers may cache
//! the JWKS, the clock skew they tolerate, and the issuance policy.

use std::path::PathBuf;

use serde::Deserialize;

use super::{de::comma_strings, ConfigError};

/// What issued tokens look like and how long they live (`*_token_*ttl`,
/// `jwks_max_age`, `clock_skew`, `policy_*`).
#[derive(Clone, Debug, Deserialize)]
pub struct TokenSettings {
    /// Access-token lifetime in seconds for clients that do not set their own.
    #[serde(default = "defaults::access_token_ttl")]
    pub access_token_ttl: u32,
    /// Upper bound in seconds for any client's access-token lifetime.
    #[serde(default = "defaults::max_access_token_ttl")]
    pub max_access_token_ttl: u32,
    /// Refresh-token idle lifetime in seconds (unused this long, it expires).
    #[serde(default = "defaults::refresh_token_idle_ttl")]
    pub refresh_token_idle_ttl: u32,
    /// Refresh-token absolute lifetime in seconds (from the original grant).
    #[serde(default = "defaults::refresh_token_absolute_ttl")]
    pub refresh_token_absolute_ttl: u32,
    /// `Cache-Control: max-age` of the JWKS and metadata documents, in seconds.
    #[serde(default = "defaults::jwks_max_age")]
    pub jwks_max_age: u32,
    /// Clock skew tolerated by verifiers, in seconds (extends retired-key retention).
    #[serde(default = "defaults::clock_skew")]
    pub clock_skew: u64,
    /// Optional Rego policy evaluated at token issuance.
    #[serde(default)]
    pub policy_file: Option<PathBuf>,
    /// Claims a policy may add to access tokens.
    #[serde(default, deserialize_with = "comma_strings")]
    pub policy_claims: Vec<String>,
    /// Milliseconds one policy evaluation may run; a longer one is stopped
    /// and the request refused (`503`, fail closed).
    #[serde(default = "defaults::policy_timeout_ms")]
    pub policy_timeout_ms: u64,
    /// Scopes listed as `scopes_supported` in the public metadata document
    /// (RFC 8414 lets a server advertise only some): none by default, so
    /// the metadata does not reveal what clients are registered for.
    #[serde(default, deserialize_with = "comma_strings")]
    pub public_scopes: Vec<String>,
}

mod defaults {
    pub fn access_token_ttl() -> u32 {
        300
    }
    pub fn max_access_token_ttl() -> u32 {
        3600
    }
    pub fn refresh_token_idle_ttl() -> u32 {
        24 * 3600
    }
    pub fn refresh_token_absolute_ttl() -> u32 {
        30 * 24 * 3600
    }
    pub fn jwks_max_age() -> u32 {
        300
    }
    pub fn clock_skew() -> u64 {
        60
    }
    pub fn policy_timeout_ms() -> u64 {
        500
    }
}

impl TokenSettings {
    /// Lifetimes positive, ordered and bounded; the policy file present.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if crate::oauth::scope::ScopeSet::parse(&self.public_scopes.join(" ")).is_err() {
            return invalid("public_scopes must be scope tokens (RFC 6749 §3.3: printable ASCII without space, \" or \\)");
        }
        if self.access_token_ttl == 0 || self.max_access_token_ttl == 0 {
            return invalid("access_token_ttl and max_access_token_ttl must be at least 1 second");
        }
        if self.access_token_ttl > self.max_access_token_ttl {
            return invalid("access_token_ttl must not exceed max_access_token_ttl");
        }
        if self.max_access_token_ttl > 86_400 {
            return invalid("max_access_token_ttl must not exceed 86400 seconds (one day)");
        }
        if self.refresh_token_idle_ttl == 0
            || self.refresh_token_idle_ttl > self.refresh_token_absolute_ttl
        {
            return invalid(
                "refresh_token_idle_ttl must be at least 1 and not exceed refresh_token_absolute_ttl",
            );
        }
        if self.refresh_token_absolute_ttl > 365 * 24 * 3600 {
            return invalid(
                "refresh_token_absolute_ttl must not exceed 31536000 seconds (one year)",
            );
        }
        if self.clock_skew > 3600 {
            return invalid("clock_skew must not exceed 3600 seconds");
        }
        if !(10..=10_000).contains(&self.policy_timeout_ms) {
            return invalid("policy_timeout_ms must be between 10 and 10000");
        }
        if let Some(path) = &self.policy_file {
            if !path.exists() {
                return Err(ConfigError::Invalid(format!(
                    "policy_file {} does not exist",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// The ceilings client metadata is checked against, with whether a
    /// `jwks_uri` may point to loopback (`jwks_uri_allow_loopback`).
    #[must_use]
    pub fn client_limits(&self, jwks_uri_allow_loopback: bool) -> crate::clients::Limits {
        crate::clients::Limits {
            access_token_ttl: self.max_access_token_ttl,
            refresh_token_idle_ttl: self.refresh_token_idle_ttl,
            refresh_token_absolute_ttl: self.refresh_token_absolute_ttl,
            jwks_uri_allow_loopback,
        }
    }

    /// How long a retired key stays published: every token it signed has expired by then.
    #[must_use]
    pub fn retired_key_retention(&self) -> u64 {
        u64::from(self.max_access_token_ttl) + self.clock_skew
    }
}
