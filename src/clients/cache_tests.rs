//! Unit tests of [`ClientCache`] against a real SQLite store: what is served
//! from memory, when it is read again, and which credentials are remembered.

use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;

use super::{ClientCache, CACHE_TTL, VERIFIED_PER_CLIENT};
use crate::{
    clients::{Client, ClientId, SecretHash},
    clock::Clock,
    store::{GuardSettings, NewSecret, Storage, Store},
};

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn new_secret(hash: &str, at: DateTime<Utc>) -> NewSecret {
    NewSecret {
        id: uuid::Uuid::new_v4().to_string(),
        hash: SecretHash::from_stored(hash.to_owned()),
        created_at: at,
    }
}

/// A fresh SQLite store (kept alive by the returned directory) with clients `ids`.
async fn store(ids: &[&str]) -> (Storage, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cache.db").display());
    let store = Storage::connect(&SecretString::from(url), 1).await.unwrap();
    for id in ids {
        let client = Client::new(ClientId::parse(id).unwrap(), t(0));
        store
            .create_client(&client, Some(&new_secret(&format!("hash-{id}"), t(0))))
            .await
            .unwrap();
    }
    (store, dir)
}

fn id(s: &str) -> ClientId {
    ClientId::parse(s).unwrap()
}

#[tokio::test]
async fn an_entry_is_served_from_memory_for_the_ttl_only() {
    let (store, _dir) = store(&["a"]).await;
    let cache = ClientCache::new().unwrap();
    assert!(cache.is_empty());
    assert!(cache.get(&store, &id("a"), t(0)).await.unwrap().is_some());
    assert_eq!(cache.len(), 1);
    assert!(!cache.is_empty());
    // Deleted behind the cache's back: still served until the TTL ends.
    store.delete_client(&id("a")).await.unwrap();
    let fresh_until = t(CACHE_TTL - 1);
    assert!(cache
        .get(&store, &id("a"), fresh_until)
        .await
        .unwrap()
        .is_some());
    assert!(cache
        .get(&store, &id("a"), t(CACHE_TTL))
        .await
        .unwrap()
        .is_none());
    assert!(cache.is_empty(), "a client that is gone is forgotten");
}

#[tokio::test]
async fn a_clock_that_went_back_reads_the_client_again() {
    let (store, _dir) = store(&["a"]).await;
    let cache = ClientCache::new().unwrap();
    cache.get(&store, &id("a"), t(10)).await.unwrap();
    store.delete_client(&id("a")).await.unwrap();
    assert!(cache.get(&store, &id("a"), t(9)).await.unwrap().is_none());
}

#[tokio::test]
async fn invalidation_and_staleness_send_the_next_lookup_to_the_store() {
    let (store, _dir) = store(&["a", "b", "c"]).await;
    let cache = ClientCache::new().unwrap();
    for c in ["a", "b", "c"] {
        cache.get(&store, &id(c), t(0)).await.unwrap();
    }
    store.delete_client(&id("a")).await.unwrap();
    cache.invalidate("a");
    assert!(cache.get(&store, &id("a"), t(1)).await.unwrap().is_none());

    store.delete_client(&id("b")).await.unwrap();
    cache.mark_stale();
    assert!(
        cache.get(&store, &id("b"), t(1)).await.unwrap().is_none(),
        "a stale entry is read again"
    );
    assert_eq!(cache.len(), 1, "c, still stale");
    store.delete_client(&id("c")).await.unwrap();
    assert_eq!(cache.reconcile(&store, t(2)).await.unwrap(), 1);
    assert!(cache.is_empty(), "reconciling dropped c");
    assert_eq!(cache.reconcile(&store, t(2)).await.unwrap(), 0);
}

#[tokio::test]
async fn reconcile_rereads_only_stale_entries() {
    let (store, _dir) = store(&["a", "b"]).await;
    let cache = ClientCache::new().unwrap();
    cache.get(&store, &id("a"), t(0)).await.unwrap();
    cache.mark_stale();
    cache.get(&store, &id("b"), t(0)).await.unwrap();
    assert_eq!(cache.reconcile(&store, t(1)).await.unwrap(), 1, "a only");
    assert_eq!(cache.reconcile(&store, t(1)).await.unwrap(), 0);
}

#[tokio::test]
async fn remembered_credentials_are_per_client_and_secret() {
    let (store, _dir) = store(&["a", "b"]).await;
    let cache = ClientCache::new().unwrap();
    let a = cache.get(&store, &id("a"), t(0)).await.unwrap().unwrap();
    let b = cache.get(&store, &id("b"), t(0)).await.unwrap().unwrap();
    assert!(!cache.remembered(&a, &secret("s1"), t(0)), "nothing yet");
    cache.remember(&a, &secret("s1"), t(0));
    assert!(cache.remembered(&a, &secret("s1"), t(1)));
    assert!(!cache.remembered(&a, &secret("s2"), t(1)));
    assert!(!cache.remembered(&b, &secret("s1"), t(1)), "another client");
    // Two requests verified it at once: remembered twice, still remembered.
    cache.remember(&a, &secret("s1"), t(1));
    assert!(cache.remembered(&a, &secret("s1"), t(2)));
}

#[tokio::test]
async fn at_most_a_few_credentials_per_client_are_remembered() {
    let (store, _dir) = store(&["a"]).await;
    let cache = ClientCache::new().unwrap();
    let a = cache.get(&store, &id("a"), t(0)).await.unwrap().unwrap();
    let n = VERIFIED_PER_CLIENT + 1;
    for i in 0..n {
        cache.remember(&a, &secret(&format!("s{i}")), t(0));
    }
    assert!(
        !cache.remembered(&a, &secret("s0"), t(0)),
        "the oldest went"
    );
    for i in 1..n {
        assert!(
            cache.remembered(&a, &secret(&format!("s{i}")), t(0)),
            "s{i}"
        );
    }
}

#[tokio::test]
async fn after_a_rotation_the_old_secret_and_its_memory_end_at_the_grace() {
    let (store, _dir) = store(&["a"]).await;
    let cache = ClientCache::new().unwrap();
    let before = cache.get(&store, &id("a"), t(0)).await.unwrap().unwrap();
    cache.remember(&before, &secret("old"), t(0));
    store
        .rotate_client_secret(&id("a"), &new_secret("hash-new", t(1)), t(100))
        .await
        .unwrap();
    cache.invalidate("a");
    let a = cache.get(&store, &id("a"), t(1)).await.unwrap().unwrap();
    assert!(
        !cache.remembered(&a, &secret("old"), t(1)),
        "forgotten with the entry"
    );
    assert_eq!(a.active_hashes(t(99)).len(), 2);
    assert_eq!(
        a.active_hashes(t(100)),
        [SecretHash::from_stored("hash-new".into())],
        "the old secret ended"
    );
    cache.remember(&a, &secret("old"), t(1));
    assert!(cache.remembered(&a, &secret("old"), t(99)));
    assert!(
        !cache.remembered(&a, &secret("old"), t(100)),
        "remembered no longer than the earliest expiry"
    );
    // From the instant the old secret ends, it no longer bounds the memory.
    cache.remember(&a, &secret("new"), t(100));
    assert!(cache.remembered(&a, &secret("new"), t(10_000)));
    // Past the expiry no expiry applies any more: a credential remembered
    // then is remembered without one.
    let later = cache.get(&store, &id("a"), t(150)).await.unwrap().unwrap();
    cache.remember(&later, &secret("new"), t(150));
    assert!(cache.remembered(&later, &secret("new"), t(10_000)));
}

#[tokio::test]
async fn a_reload_after_the_ttl_keeps_memory_only_while_the_secrets_are_unchanged() {
    let (store, _dir) = store(&["a"]).await;
    let cache = ClientCache::new().unwrap();
    let a = cache.get(&store, &id("a"), t(0)).await.unwrap().unwrap();
    cache.remember(&a, &secret("s"), t(0));
    let reloaded = cache
        .get(&store, &id("a"), t(CACHE_TTL))
        .await
        .unwrap()
        .unwrap();
    assert!(
        cache.remembered(&reloaded, &secret("s"), t(CACHE_TTL)),
        "kept"
    );
    store
        .rotate_client_secret(&id("a"), &new_secret("hash-2", t(40)), t(40))
        .await
        .unwrap();
    let rotated = cache
        .get(&store, &id("a"), t(2 * CACHE_TTL))
        .await
        .unwrap()
        .unwrap();
    assert!(
        !cache.remembered(&rotated, &secret("s"), t(2 * CACHE_TTL)),
        "the secrets changed: forgotten"
    );
}

fn unavailable<T>(r: Result<T, crate::store::StoreError>) -> bool {
    matches!(r, Err(e) if e.is_unavailable())
}

#[tokio::test]
async fn a_full_cache_drops_its_oldest_entry_for_a_new_client_only() {
    let (store, _dir) = store(&["a", "b", "c"]).await;
    let cache = ClientCache::with_capacity(2);
    cache.get(&store, &id("a"), t(0)).await.unwrap();
    cache.get(&store, &id("b"), t(1)).await.unwrap();
    // Reloading a cached client (past its TTL) drops nothing.
    cache.get(&store, &id("a"), t(CACHE_TTL + 2)).await.unwrap();
    assert_eq!(cache.len(), 2);
    assert!(cache.fresh(&id("b"), t(2)).is_some(), "b is kept");
    // A new client drops the oldest load: b (a was reloaded after it).
    cache.get(&store, &id("c"), t(CACHE_TTL + 3)).await.unwrap();
    assert_eq!(cache.len(), 2);
    assert!(cache.fresh(&id("b"), t(CACHE_TTL)).is_none());
    assert!(cache.fresh(&id("a"), t(CACHE_TTL + 3)).is_some());
    assert!(cache.fresh(&id("c"), t(CACHE_TTL + 3)).is_some());
}

#[tokio::test]
async fn a_database_error_that_is_not_an_outage_is_not_served_from_memory() {
    let (store, cache, dir) = outage_store(60).await;
    // The row cannot be read back (a broken column), the database is up.
    let url = format!("sqlite://{}", dir.path().join("outage.db").display());
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE clients SET grant_types = 'not json' WHERE id = 'a'")
        .execute(&raw)
        .await
        .unwrap();
    let err = cache
        .get(&store, &id("a"), t(CACHE_TTL + 1))
        .await
        .err()
        .expect("the broken row is an error");
    assert!(!err.is_unavailable(), "{err:?}");
    assert!(store.health().is_up());
}

/// A SQLite store whose guard opens its breaker at the first lost
/// connection and serves cached clients for `grace` seconds after the last
/// contact, on a manual clock at `t(0)`; with client `a` cached at `t(0)`.
async fn outage_store(grace: i64) -> (Storage, ClientCache, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("outage.db").display());
    let guard = GuardSettings {
        failure_threshold: 1,
        outage_grace: Duration::seconds(grace),
        ..GuardSettings::command()
    };
    let store = Storage::open(&SecretString::from(url), 1, guard, Clock::manual(t(0)))
        .await
        .unwrap();
    let client = Client::new(id("a"), t(0));
    store
        .create_client(&client, Some(&new_secret("hash-a", t(0))))
        .await
        .unwrap();
    store
        .create_client(&Client::new(id("b"), t(0)), None)
        .await
        .unwrap();
    let cache = ClientCache::new().unwrap();
    assert!(cache.get(&store, &id("a"), t(0)).await.unwrap().is_some());
    (store, cache, dir)
}

#[tokio::test]
async fn while_the_database_is_gone_a_cached_client_is_served_within_the_grace_only() {
    let (store, cache, _dir) = outage_store(60).await;
    store.close_sqlite().await;
    // Past the TTL, the reload fails as unreachable: served from memory.
    let a = cache.get(&store, &id("a"), t(CACHE_TTL + 1)).await.unwrap();
    assert_eq!(a.unwrap().client.id, id("a"));
    assert!(
        !store.health().is_up(),
        "the lost connection opened the breaker"
    );
    // Known down now: from memory without asking, up to the grace's end.
    assert!(cache.get(&store, &id("a"), t(60)).await.unwrap().is_some());
    assert!(
        unavailable(cache.get(&store, &id("a"), t(61)).await),
        "beyond the grace"
    );
    assert!(
        unavailable(cache.get(&store, &id("b"), t(1)).await),
        "a client not in the cache cannot be served"
    );
}

#[tokio::test]
async fn with_no_outage_grace_nothing_is_served_from_memory_once_the_database_is_gone() {
    let (store, cache, _dir) = outage_store(0).await;
    store.close_sqlite().await;
    assert!(unavailable(
        cache.get(&store, &id("a"), t(CACHE_TTL + 1)).await
    ));
    assert!(!store.health().is_up());
    assert!(unavailable(cache.get(&store, &id("a"), t(1)).await));
}

#[tokio::test]
async fn a_fresh_entry_is_not_served_while_the_database_is_known_down_beyond_the_grace() {
    let (store, cache, _dir) = outage_store(5).await;
    store.close_sqlite().await;
    assert!(unavailable(cache.get(&store, &id("b"), t(1)).await));
    assert!(!store.health().is_up());
    // Fresh by its TTL, but the database is down and the grace is over.
    assert!(unavailable(cache.get(&store, &id("a"), t(6)).await));
}

#[test]
fn the_debug_form_shows_the_size_only() {
    let cache = ClientCache::new().unwrap();
    assert_eq!(format!("{cache:?}"), "ClientCache { clients: 0, .. }");
}
