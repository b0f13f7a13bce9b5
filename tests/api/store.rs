//! The storage contract, written once and run against both real engines.

use chrono::{DateTime, Duration, Utc};
use portcullis::{
    clients::{AuthMethod, Client, ClientId, GrantType, SecretHash},
    clock::Clock,
    keys::{Algorithm, KeyState, StoredKey},
    oauth::scope::ScopeSet,
    store::{NewSecret, Storage, Store, StoreError},
};
use rstest::rstest;
use secrecy::SecretString;

use crate::helpers::{fresh_database, Engine};

fn client(id: &str, now: DateTime<Utc>) -> Client {
    Client {
        name: Some("name".into()),
        grant_types: vec![GrantType::ClientCredentials],
        auth_method: AuthMethod::ClientSecretPost,
        // Stored as one JSON document: every member must round-trip.
        keys: portcullis::clients::KeyMaterial {
            jwks: None,
            jwks_uri: Some("https://keys.example/jwks.json".into()),
            signing_alg: Some("PS256".into()),
            tls_subject: Some(portcullis::certs::SubjectMatcher::SanUri(
                "spiffe://example.org/ns/a/sa/b".into(),
            )),
        },
        certificate_bound_access_tokens: true,
        scope: ScopeSet::parse("a b").unwrap(),
        allowed_audiences: vec!["https://x.example".into()],
        default_audience: Some("https://x.example".into()),
        access_token_ttl: Some(60),
        // Everything else as a client registered `now` with the defaults:
        // enabled, nothing else set.
        ..Client::new(ClientId::parse(id).unwrap(), now)
    }
}

fn secret(tag: &str, now: DateTime<Utc>) -> NewSecret {
    NewSecret {
        id: format!("secret-{tag}"),
        hash: SecretHash::from_stored(format!("hash-{tag}")),
        created_at: now,
    }
}

fn key(kid: &str, state: KeyState, now: DateTime<Utc>) -> StoredKey {
    StoredKey {
        kid: kid.into(),
        alg: Algorithm::Es256,
        state,
        public_jwk: "{}".into(),
        sealed_private_key: Some(vec![1, 2, 3]),
        kek_id: Some("kek".into()),
        created_at: now,
        activated_at: Some(now),
        retired_at: None,
    }
}

/// The hashes of the client's secrets valid at `now`.
async fn active_secrets(store: &impl Store, id: &ClientId, now: DateTime<Utc>) -> Vec<SecretHash> {
    store
        .client_secrets(id, now)
        .await
        .unwrap()
        .into_iter()
        .map(|(h, _)| h)
        .collect()
}

async fn store_contract(store: &impl Store) {
    let now = Clock::System.now();
    store.ping().await.unwrap();

    // Clients round-trip exactly.
    let c = client("alpha", now);
    store
        .create_client(&c, Some(&secret("a1", now)))
        .await
        .unwrap();
    assert_eq!(store.find_client(&c.id).await.unwrap(), Some(c.clone()));
    assert!(store
        .find_client(&ClientId::parse("missing").unwrap())
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        store.create_client(&c, Some(&secret("a2", now))).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        active_secrets(store, &c.id, now).await,
        vec![SecretHash::from_stored("hash-a1".into())]
    );

    // Listing is ordered by id and paged by cursor.
    store
        .create_client(&client("charlie", now), Some(&secret("c1", now)))
        .await
        .unwrap();
    store
        .create_client(&client("bravo", now), Some(&secret("b1", now)))
        .await
        .unwrap();
    let ids = |v: Vec<Client>| v.into_iter().map(|c| c.id.to_string()).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_clients(None, 2).await.unwrap()),
        ["alpha", "bravo"]
    );
    assert_eq!(
        ids(store
            .list_clients(Some(&ClientId::parse("bravo").unwrap()), 2)
            .await
            .unwrap()),
        ["charlie"]
    );

    // Updates replace metadata; a missing client is NotFound.
    let mut changed = c.clone();
    changed.enabled = false;
    changed.scope = ScopeSet::parse("z").unwrap();
    changed.name = None;
    changed.updated_at = now + Duration::seconds(5);
    store.update_client(&changed).await.unwrap();
    assert_eq!(store.find_client(&c.id).await.unwrap(), Some(changed));
    assert!(matches!(
        store.update_client(&client("ghost", now)).await,
        Err(StoreError::NotFound)
    ));

    // Rotation: old secret valid until the grace end, then only the new one.
    let later = now + Duration::seconds(10);
    store
        .rotate_client_secret(&c.id, &secret("a3", later), later + Duration::seconds(100))
        .await
        .unwrap();
    assert_eq!(active_secrets(store, &c.id, later).await.len(), 2);
    assert_eq!(
        active_secrets(store, &c.id, later + Duration::seconds(100)).await,
        vec![SecretHash::from_stored("hash-a3".into())]
    );
    assert!(matches!(
        store
            .rotate_client_secret(&ClientId::parse("ghost").unwrap(), &secret("g", now), now)
            .await,
        Err(StoreError::NotFound)
    ));

    // Scopes of all clients, for the metadata document.
    let mut scopes = store.client_scopes().await.unwrap();
    scopes.sort();
    assert_eq!(scopes, ["a b", "z"]);

    // Delete removes the client and its secrets.
    store.delete_client(&c.id).await.unwrap();
    assert!(store.find_client(&c.id).await.unwrap().is_none());
    assert!(active_secrets(store, &c.id, later).await.is_empty());
    assert!(matches!(
        store.delete_client(&c.id).await,
        Err(StoreError::NotFound)
    ));

    // Signing keys: many may exist, only one may be current.
    store
        .insert_signing_key(&key("k1", KeyState::Current, now))
        .await
        .unwrap();
    store
        .insert_signing_key(&key("k2", KeyState::Next, now + Duration::seconds(1)))
        .await
        .unwrap();
    assert!(matches!(
        store
            .insert_signing_key(&key("k3", KeyState::Current, now))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(
        keys.iter()
            .map(|k| (k.kid.as_str(), k.state))
            .collect::<Vec<_>>(),
        [("k1", KeyState::Current), ("k2", KeyState::Next)]
    );
    assert_eq!(
        keys[0].sealed_private_key.as_deref(),
        Some(&[1u8, 2, 3][..])
    );
    assert_eq!(keys[0].created_at, now);
}

#[rstest]
#[tokio::test]
async fn both_engines_fulfil_the_store_contract(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(engine, &dir).await;
    let store = Storage::connect(&SecretString::from(url.clone()), 2)
        .await
        .unwrap();
    assert_eq!(
        store.engine(),
        if engine == Engine::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );
    store_contract(&store).await;

    // Migrations are idempotent: connecting again applies nothing and loses nothing.
    let again = Storage::connect(&SecretString::from(url), 2).await.unwrap();
    assert_eq!(again.signing_keys().await.unwrap().len(), 2);
}

#[rstest]
#[tokio::test]
async fn an_unreachable_database_is_a_clear_error(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let url = match engine {
        Engine::Sqlite => "sqlite:///proc/portcullis-cannot-exist/x.db".to_owned(),
        Engine::Postgres => "postgres://nobody@127.0.0.1:1/none".to_owned(),
    };
    let err = Storage::connect(&SecretString::from(url), 1)
        .await
        .unwrap_err();
    match engine {
        Engine::Sqlite => assert!(matches!(err, StoreError::Backend(_)), "{err:?}"),
        Engine::Postgres => {
            // Host, port and the cause; not the URL (it may hold a password).
            assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
            let message = err.to_string();
            assert!(
                message.starts_with("could not connect to PostgreSQL at 127.0.0.1:1: ")
                    && message.contains("Connection refused"),
                "{message}"
            );
            assert!(!message.contains("nobody"), "{message}");
            assert!(err.is_unavailable());
        }
    }
}

#[rstest]
#[tokio::test]
async fn client_changes_are_heard_through_the_store_and_a_lost_subscription_is_reported(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    use portcullis::store::ClientChange;
    use sqlx::Connection as _;

    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(engine, &dir).await;
    let store = Storage::connect(&SecretString::from(url.clone()), 3)
        .await
        .unwrap();
    let mut changes = store
        .subscribe_client_changes()
        .expect("both engines announce client changes");
    assert_eq!(next_change(&mut changes).await, ClientChange::Subscribed);
    let id = ClientId::parse("c1").unwrap();
    store.notify_client_changed(&id).await.unwrap();
    assert_eq!(
        next_change(&mut changes).await,
        ClientChange::Changed("c1".into())
    );

    if engine == Engine::Sqlite {
        // Another process (a second store on the same file, as the CLI is)
        // is heard too: SQLite's data_version tells the watcher to look.
        let other = Storage::connect(&SecretString::from(url.clone()), 1)
            .await
            .unwrap();
        other
            .notify_client_changed(&ClientId::parse("c2").unwrap())
            .await
            .unwrap();
        assert_eq!(
            next_change(&mut changes).await,
            ClientChange::Changed("c2".into())
        );
        return;
    }
    // The listening connection dies: the loss is reported, then the
    // subscription is established again (a second later) and notices flow.
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN %'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(terminated, [true]);
    assert_eq!(next_change(&mut changes).await, ClientChange::Lost);
    assert_eq!(next_change(&mut changes).await, ClientChange::Subscribed);
    store
        .notify_client_changed(&ClientId::parse("c2").unwrap())
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut changes).await,
        ClientChange::Changed("c2".into())
    );
}

/// The subscription's next change, within five seconds.
async fn next_change(
    changes: &mut tokio::sync::mpsc::Receiver<portcullis::store::ClientChange>,
) -> portcullis::store::ClientChange {
    tokio::time::timeout(std::time::Duration::from_secs(5), changes.recv())
        .await
        .expect("a change within 5 s")
        .expect("the subscription is still fed")
}
