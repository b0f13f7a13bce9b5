//! Tokens whose signature already verified, remembered by their exact bytes
//! so that introspecting the same token again skips the signature (an ES256
//! verification is most of an introspection's cost, and resource servers
//! introspect one token many times in its life), as Envoy's JWT filter
//! caches verified tokens.
//!
//! Only the signature is remembered. Every answer from memory still checks
//! that the token's key is published now (a removed key ends its tokens at
//! once) and the validity window at the request's `now`; revocation and the
//! owning client are checked by the caller as for any token. A token that
//! failed is never remembered, and a token that differs in any byte is a
//! different key, so nothing unverified can be answered from here.
//!
//! Bounded by two generations of at most `capacity` tokens: when the current
//! one is full it becomes the previous one (whose tokens are dropped), and a
//! token found in the previous generation moves to the current one — an
//! approximate least-recently-used order at a constant cost per lookup.
//! Keys are hashed with the standard library's randomly keyed `SipHash`, so
//! presented tokens cannot be chosen to collide.

use std::{collections::HashMap, sync::Arc, sync::Mutex};

use chrono::{DateTime, Utc};

use super::{
    verify::{check_times, verify_with_kid},
    AccessTokenClaims, VerifyError,
};
use crate::keys::KeySet;

/// Tokens per generation in the server's cache (about 1 KiB each).
pub const CAPACITY: usize = 4096;

/// A verified token: the key that signed it and its claims.
struct Verified {
    kid: Box<str>,
    claims: AccessTokenClaims,
}

#[derive(Default)]
struct Generations {
    current: HashMap<Box<str>, Arc<Verified>>,
    previous: HashMap<Box<str>, Arc<Verified>>,
}

/// The cache of verified tokens. Cheap to share behind an `Arc`.
pub struct VerifiedTokens {
    capacity: usize,
    generations: Mutex<Generations>,
}

impl VerifiedTokens {
    /// A cache of at most `2 × capacity` tokens; `0` remembers nothing.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            generations: Mutex::new(Generations::default()),
        }
    }

    /// [`fn@super::verify`], answered from memory for a token whose signature
    /// verified before (with the checks of the module documentation).
    pub fn verify(
        &self,
        keys: &KeySet,
        issuer: &str,
        token: &str,
        now: DateTime<Utc>,
        check_time: bool,
    ) -> Result<AccessTokenClaims, VerifyError> {
        if let Some(known) = self.lookup(token) {
            if keys.verifying_key(&known.kid).is_none() {
                return Err(VerifyError::UnknownKey);
            }
            check_times(&known.claims, now.timestamp(), check_time)?;
            return Ok(known.claims.clone());
        }
        let (kid, claims) = verify_with_kid(keys, issuer, token, now, check_time)?;
        if self.capacity > 0 {
            self.remember(
                token,
                Verified {
                    kid: kid.into(),
                    claims: claims.clone(),
                },
            );
        }
        Ok(claims)
    }

    /// Tokens held (both generations).
    #[must_use]
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.current.len() + g.previous.len()
    }

    /// Whether nothing is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lookup(&self, token: &str) -> Option<Arc<Verified>> {
        let mut g = self.lock();
        if let Some(v) = g.current.get(token) {
            return Some(Arc::clone(v));
        }
        let (key, v) = g.previous.remove_entry(token)?;
        self.insert(&mut g, key, Arc::clone(&v));
        Some(v)
    }

    fn remember(&self, token: &str, verified: Verified) {
        let mut g = self.lock();
        self.insert(&mut g, token.into(), Arc::new(verified));
    }

    fn insert(&self, g: &mut Generations, token: Box<str>, verified: Arc<Verified>) {
        if g.current.len() >= self.capacity {
            g.previous = std::mem::take(&mut g.current);
        }
        g.current.insert(token, verified);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // Nothing panics while the lock is held; a poisoned map is still consistent.
        self.generations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::verify::tests::{at, claims, key_set, ISS, NOW};

    fn sign(keys: &KeySet, exp: i64) -> String {
        crate::token::encode(&keys.current(), &claims(NOW, NOW, exp)).unwrap()
    }

    #[test]
    fn a_verified_token_is_answered_from_memory_with_its_window_checked_again() {
        let keys = key_set();
        let cache = VerifiedTokens::new(8);
        let token = sign(&keys, NOW + 300);
        let fresh = cache.verify(&keys, ISS, &token, at(NOW), true).unwrap();
        assert_eq!(cache.len(), 1);
        assert_eq!(
            cache.verify(&keys, ISS, &token, at(NOW + 10), true),
            Ok(fresh.clone())
        );
        assert_eq!(cache.len(), 1, "found, not added again");
        assert_eq!(
            cache.verify(&keys, ISS, &token, at(NOW + 300), true),
            Err(VerifyError::Expired)
        );
        assert_eq!(
            cache.verify(&keys, ISS, &token, at(NOW - 1), true),
            Err(VerifyError::Expired)
        );
        assert_eq!(
            cache.verify(&keys, ISS, &token, at(NOW + 300), false),
            Ok(fresh)
        );
    }

    #[test]
    fn a_token_whose_key_is_no_longer_published_is_refused_from_memory() {
        let keys = key_set();
        let cache = VerifiedTokens::new(8);
        let token = sign(&keys, NOW + 300);
        assert!(cache.verify(&keys, ISS, &token, at(NOW), true).is_ok());
        // The same bytes against a key set without that key (as after its removal).
        let other = key_set();
        assert_eq!(
            cache.verify(&other, ISS, &token, at(NOW), true),
            Err(VerifyError::UnknownKey)
        );
        assert_eq!(
            crate::token::verify(&other, ISS, &token, at(NOW), true),
            Err(VerifyError::UnknownKey),
            "as without the cache"
        );
    }

    #[test]
    fn failures_are_not_remembered_and_a_changed_byte_is_verified_afresh() {
        let keys = key_set();
        let cache = VerifiedTokens::new(8);
        let token = sign(&keys, NOW + 300);
        assert!(cache.verify(&keys, ISS, &token, at(NOW), true).is_ok());
        let (signed, sig) = token.rsplit_once('.').unwrap();
        let flipped = format!(
            "{signed}.{}{}",
            if sig.starts_with('A') { "B" } else { "A" },
            &sig[1..]
        );
        assert_eq!(
            cache.verify(&keys, ISS, &flipped, at(NOW), true),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            cache.verify(
                &keys,
                "https://other.example",
                &sign(&keys, NOW + 60),
                at(NOW),
                true
            ),
            Err(VerifyError::ForeignIssuer)
        );
        let expired = sign(&keys, NOW + 1);
        assert_eq!(
            cache.verify(&keys, ISS, &expired, at(NOW + 1), true),
            Err(VerifyError::Expired)
        );
        assert_eq!(cache.len(), 1, "only the good token is held");
        assert_eq!(
            cache.verify(&keys, ISS, &flipped, at(NOW), true),
            Err(VerifyError::BadSignature),
            "and a failure stays a failure"
        );
    }

    #[test]
    fn two_generations_bound_the_cache_and_a_used_token_survives_a_turn() {
        let keys = key_set();
        let cache = VerifiedTokens::new(3);
        let tokens: Vec<String> = (1..=7).map(|i| sign(&keys, NOW + 300 + i)).collect();
        for t in &tokens[..3] {
            cache.verify(&keys, ISS, t, at(NOW), true).unwrap();
        }
        assert_eq!(cache.len(), 3);
        // The fourth turns the generation: the first three become the previous one.
        cache.verify(&keys, ISS, &tokens[3], at(NOW), true).unwrap();
        assert_eq!(cache.len(), 4);
        // Using the first moves it to the current generation.
        cache.verify(&keys, ISS, &tokens[0], at(NOW), true).unwrap();
        assert_eq!(cache.len(), 4);
        for t in &tokens[4..] {
            cache.verify(&keys, ISS, t, at(NOW), true).unwrap();
        }
        assert!(cache.len() <= 6, "at most two generations: {}", cache.len());
        let g = cache.lock();
        assert!(
            g.previous.contains_key(tokens[0].as_str())
                || g.current.contains_key(tokens[0].as_str())
        );
        assert!(
            !g.previous.contains_key(tokens[1].as_str())
                && !g.current.contains_key(tokens[1].as_str())
        );
    }

    #[test]
    fn a_zero_capacity_cache_remembers_nothing() {
        let keys = key_set();
        let cache = VerifiedTokens::new(0);
        let token = sign(&keys, NOW + 300);
        assert!(cache.verify(&keys, ISS, &token, at(NOW), true).is_ok());
        assert!(cache.is_empty());
    }
}
