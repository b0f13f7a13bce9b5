//! The revoked access tokens in memory: what introspection checks a JWT's
//! `jti` against, without a database read per request.
//!
//! The view is loaded from the database at start-up, takes this process's
//! own revocations at once ([`RevokedJtis::insert`], after the row is
//! written), and is refreshed from the database every [`REFRESH`] (the
//! maintenance task), which is the bound on how long another process's
//! revocation takes to be seen here. A revocation is never undone, so a
//! refresh only adds entries; entries whose token has expired are dropped
//! on every refresh (by the injected clock), so memory holds at most the
//! revoked tokens that are still valid.
//!
//! If refreshing fails for longer than [`STALE`], the view no longer
//! answers ([`RevokedJtis::is_revoked`] returns `None`): introspection then
//! fails with `503` rather than answer from a view that may miss a
//! revocation made elsewhere.

use std::{
    collections::HashMap,
    sync::RwLock,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};

use crate::store::{Store, StoreError};

/// How often the view is refreshed from the database: the longest another
/// process's revocation goes unseen by this one's introspection.
pub const REFRESH: Duration = Duration::from_secs(1);

/// How long the view may go without a successful refresh before it stops
/// answering.
pub const STALE: Duration = Duration::from_secs(10);

#[derive(Default)]
struct State {
    /// `jti` → expiry of the token (Unix seconds).
    jtis: HashMap<String, i64>,
    /// When the database was last read successfully.
    synced: Option<Instant>,
}

/// Revoked, unexpired access-token ids. Cheap to share behind an `Arc`.
#[derive(Default)]
pub struct RevokedJtis {
    state: RwLock<State>,
}

impl RevokedJtis {
    /// A view loaded from `store` (start-up).
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn load(store: &impl Store, now: DateTime<Utc>) -> Result<Self, StoreError> {
        let view = Self::default();
        view.refresh(store, now).await?;
        Ok(view)
    }

    /// Adds what the database holds and drops expired entries.
    ///
    /// # Errors
    /// When the database cannot be read (the view is kept as it was).
    pub async fn refresh(&self, store: &impl Store, now: DateTime<Utc>) -> Result<(), StoreError> {
        let rows = store.live_revoked_access_tokens(now).await?;
        let mut state = self.write();
        for (jti, until) in rows {
            state.jtis.insert(jti, until.timestamp());
        }
        state.synced = Some(Instant::now());
        drop(state);
        self.drop_expired(now);
        Ok(())
    }

    /// Records a revocation made by this process (once it is stored).
    pub fn insert(&self, jti: &str, expires_at: DateTime<Utc>) {
        self.write()
            .jtis
            .insert(jti.to_owned(), expires_at.timestamp());
    }

    /// Whether `jti` is revoked; `None` when the view has not been refreshed
    /// within [`STALE`].
    #[must_use]
    pub fn is_revoked(&self, jti: &str) -> Option<bool> {
        let state = self.read();
        let fresh = state.synced.is_some_and(|t| t.elapsed() <= STALE);
        fresh.then(|| state.jtis.contains_key(jti))
    }

    /// Drops the entries of tokens expired at `now`.
    pub fn drop_expired(&self, now: DateTime<Utc>) {
        let now = now.timestamp();
        self.write().jtis.retain(|_, until| *until > now);
    }

    /// How many entries are held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.read().jtis.len()
    }

    /// Whether none are.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    fn synced() -> RevokedJtis {
        let view = RevokedJtis::default();
        view.write().synced = Some(Instant::now());
        view
    }

    #[test]
    fn an_inserted_jti_is_revoked_and_others_are_not() {
        let view = synced();
        view.insert("a", at(1_000));
        assert_eq!(view.is_revoked("a"), Some(true));
        assert_eq!(view.is_revoked("b"), Some(false));
    }

    #[test]
    fn entries_are_dropped_once_their_token_expires() {
        let view = synced();
        view.insert("a", at(1_000));
        view.insert("b", at(2_000));
        view.drop_expired(at(999));
        assert_eq!(view.len(), 2);
        view.drop_expired(at(1_000));
        assert_eq!(view.len(), 1, "a token is expired at its exp");
        assert_eq!(view.is_revoked("b"), Some(true));
        view.drop_expired(at(5_000));
        assert!(view.is_empty());
    }

    #[test]
    fn a_view_never_loaded_does_not_answer() {
        let view = RevokedJtis::default();
        view.insert("a", at(1_000));
        assert_eq!(view.is_revoked("a"), None);
    }
}
