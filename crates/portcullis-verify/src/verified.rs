//! [`VerifiedToken`]: what a request that passed verification carries on.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::{claims::AccessTokenClaims, request::Scheme};

/// A token that passed every check, with its claims. Cheap to clone (shared).
#[derive(Clone)]
pub struct VerifiedToken(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub claims: AccessTokenClaims,
    /// The decoded payload, for custom claims.
    pub payload: Vec<u8>,
    pub scheme: Scheme,
}

impl VerifiedToken {
    /// The typed claims.
    #[must_use]
    pub fn claims(&self) -> &AccessTokenClaims {
        &self.0.claims
    }

    /// How the token was presented.
    #[must_use]
    pub fn scheme(&self) -> Scheme {
        self.0.scheme
    }

    /// The claims deserialized into the caller's own type (custom claims included).
    pub fn custom<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.0.payload)
    }

    /// Every claim as a JSON map.
    #[must_use]
    pub fn claims_map(&self) -> serde_json::Map<String, serde_json::Value> {
        self.custom().unwrap_or_default()
    }
}

impl std::fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedToken")
            .field("scheme", &self.0.scheme)
            .field("claims", &self.0.claims)
            .finish_non_exhaustive()
    }
}
