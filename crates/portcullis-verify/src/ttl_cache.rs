//! [`TtlCache`]: a bounded in-memory map from SHA-256 digests to small
//! values, each with an expiry. Used for DPoP `jti` replay detection (where
//! a full cache refuses new entries: forgetting a `jti` early would let a
//! proof be replayed) and for introspection answers (where the oldest entry
//! is evicted).

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use ring::digest;

/// A SHA-256 digest: keys are hashed so memory per entry is fixed.
pub(crate) type Key = [u8; 32];

/// The SHA-256 digest of `parts`, each length-prefixed.
pub(crate) fn key(parts: &[&[u8]]) -> Key {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

struct Inner<V> {
    map: HashMap<Key, (i64, V)>,
    /// Insertion order, for expiry and eviction.
    order: VecDeque<(i64, Key)>,
}

/// Bounded map with per-entry expiry (seconds since the epoch).
pub(crate) struct TtlCache<V> {
    inner: Mutex<Inner<V>>,
    capacity: usize,
}

impl<V: Copy> TtlCache<V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
            capacity: capacity.max(1),
        }
    }

    /// The live value under `key`.
    pub fn get(&self, key: &Key, now: i64) -> Option<V> {
        let inner = self.inner.lock().ok()?;
        inner
            .map
            .get(key)
            .filter(|(exp, _)| *exp > now)
            .map(|(_, v)| *v)
    }

    /// Stores `value` until `expires`, evicting the oldest entry when full.
    pub fn put(&self, key: Key, value: V, expires: i64, now: i64) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.purge(now);
            if inner.map.len() >= self.capacity {
                inner.evict_oldest();
            }
            inner.insert(key, value, expires);
        }
    }

    /// Stores `value` under `key` only if no live entry exists: `Ok(true)` if
    /// stored, `Ok(false)` if already there, `Err(())` if full of live entries.
    pub fn insert_new(&self, key: Key, value: V, expires: i64, now: i64) -> Result<bool, ()> {
        let mut inner = self.inner.lock().map_err(|_| ())?;
        inner.purge(now);
        if inner.map.get(&key).is_some_and(|(exp, _)| *exp > now) {
            return Ok(false);
        }
        if inner.map.len() >= self.capacity {
            return Err(());
        }
        inner.insert(key, value, expires);
        Ok(true)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.map.len())
    }
}

impl<V> Inner<V> {
    fn insert(&mut self, key: Key, value: V, expires: i64) {
        self.map.insert(key, (expires, value));
        self.order.push_back((expires, key));
    }

    /// Drops expired entries from the front of the insertion order (entries
    /// with a constant lifetime expire in that order; others go by eviction).
    fn purge(&mut self, now: i64) {
        while let Some(&(exp, key)) = self.order.front() {
            if exp > now {
                break;
            }
            self.order.pop_front();
            self.remove_if(key, exp);
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((exp, key)) = self.order.pop_front() {
            if self.remove_if(key, exp) {
                return;
            }
        }
    }

    /// Removes `key` if its entry is the one queued with `exp` (not a newer one).
    fn remove_if(&mut self, key: Key, exp: i64) -> bool {
        if self.map.get(&key).is_some_and(|(e, _)| *e == exp) {
            self.map.remove(&key);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_entries_are_refused_until_they_expire_and_a_full_cache_refuses_new_ones() {
        let cache = TtlCache::new(2);
        let (a, b, c) = (key(&[b"a"]), key(&[b"b"]), key(&[b"c"]));
        assert_eq!(cache.insert_new(a, (), 100, 0), Ok(true));
        assert_eq!(cache.insert_new(a, (), 100, 50), Ok(false), "replay");
        assert_eq!(cache.insert_new(b, (), 110, 50), Ok(true));
        assert_eq!(
            cache.insert_new(c, (), 150, 60),
            Err(()),
            "full of live entries"
        );
        assert_eq!(
            cache.insert_new(c, (), 200, 100),
            Ok(true),
            "a expired at 100"
        );
        assert_eq!(cache.insert_new(a, (), 200, 100), Err(()), "b still live");
        assert_eq!(cache.insert_new(a, (), 210, 110), Ok(true));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_put_evicts_the_oldest_and_get_ignores_expired_entries() {
        let cache = TtlCache::new(2);
        let (a, b, c) = (key(&[b"a"]), key(&[b"b"]), key(&[b"c"]));
        cache.put(a, true, 100, 0);
        cache.put(b, false, 100, 0);
        cache.put(c, true, 100, 0);
        assert_eq!(cache.get(&a, 1), None, "evicted");
        assert_eq!(
            (cache.get(&b, 1), cache.get(&c, 1)),
            (Some(false), Some(true))
        );
        assert_eq!(cache.get(&b, 100), None, "expired");
        // Re-putting a key replaces it; its old queue entry does not evict the new one.
        cache.put(b, true, 300, 150);
        cache.put(a, true, 300, 150);
        assert_eq!(cache.get(&b, 160), Some(true));
        assert_ne!(
            key(&[b"ab", b"c"]),
            key(&[b"a", b"bc"]),
            "parts are delimited"
        );
    }
}
