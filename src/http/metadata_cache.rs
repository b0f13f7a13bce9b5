//! [`MetadataCache`]: the rendered RFC 8414 metadata document, rebuilt at
//! most every [`METADATA_TTL`] (it lists the
//! algorithms of the published keys). Time comes from the injected clock.

use std::sync::Mutex;

use actix_web::web::Bytes;
use chrono::{DateTime, TimeDelta, Utc};

/// How long a rendered metadata document is served before it is rebuilt.
pub const METADATA_TTL: TimeDelta = TimeDelta::seconds(5);

/// The rendered metadata document and when it was rendered.
#[derive(Debug, Default)]
pub struct MetadataCache(Mutex<Option<(DateTime<Utc>, Bytes)>>);

impl MetadataCache {
    /// The document rendered less than [`METADATA_TTL`] before `now`.
    #[must_use]
    pub fn get(&self, now: DateTime<Utc>) -> Option<Bytes> {
        let cached = self.0.lock().ok()?;
        cached
            .as_ref()
            .filter(|(at, _)| *at <= now && now - *at < METADATA_TTL)
            .map(|(_, body)| body.clone())
    }

    /// Keeps `body`, rendered at `now`.
    pub fn put(&self, now: DateTime<Utc>, body: Bytes) {
        if let Ok(mut cached) = self.0.lock() {
            *cached = Some((now, body));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendered_document_is_served_for_the_ttl_then_rebuilt() {
        let cache = MetadataCache::default();
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert!(cache.get(t0).is_none());
        cache.put(t0, Bytes::from_static(b"{}"));
        assert_eq!(
            cache.get(t0 + TimeDelta::seconds(4)).as_deref(),
            Some(&b"{}"[..])
        );
        assert!(cache.get(t0 + METADATA_TTL).is_none());
        // A clock set back does not serve a document from the future.
        assert!(cache.get(t0 - TimeDelta::seconds(1)).is_none());
    }
}
