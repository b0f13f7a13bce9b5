//! Signing keys at rest and across restarts; KEK errors.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use portcullis::{clock::Clock, keys::Kek, startup::Application, store::Store};
use rstest::rstest;
use serde_json::json;

use crate::helpers::{fresh_database, test_settings, Engine, TestApp};

#[rstest]
#[tokio::test]
async fn signing_keys_are_sealed_at_rest_and_survive_a_restart(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: a token from the first process.
    let issuer = json!({"issuer": "https://auth.example.test"});
    let app = TestApp::spawn_with(engine, issuer.clone()).await;
    let (id, secret) = app.standard_client().await;
    let token = app.access_token(&id, &secret).await;
    let kid = app.state.oauth.keys.current().kid().to_owned();

    // The private key is stored sealed: not PKCS#8 as is, but it opens with the KEK and the kid.
    let stored = app.state.oauth.store.signing_keys().await.unwrap();
    assert_eq!(stored.len(), 2, "current and next");
    let current = stored.iter().find(|k| k.kid == kid).unwrap();
    let sealed = current.sealed_private_key.clone().unwrap();
    let signing_alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let rng = ring::rand::SystemRandom::new();
    assert!(
        ring::signature::EcdsaKeyPair::from_pkcs8(signing_alg, &sealed, &rng).is_err(),
        "stored in clear"
    );
    let kek =
        Kek::from_base64(&std::fs::read_to_string(app.dir.path().join("kek")).unwrap()).unwrap();
    assert_eq!(current.kek_id.as_deref(), Some(kek.id()));
    let pkcs8 = kek.open(&kid, &sealed).unwrap();
    assert!(ring::signature::EcdsaKeyPair::from_pkcs8(signing_alg, &pkcs8, &rng).is_ok());

    // Act: a second process on the same database and KEK.
    let (url, dir) = (app.database_url.clone(), app.dir);
    let restarted = TestApp::spawn_on(engine, url, dir, issuer).await;

    // Assert: same key, and the earlier token verifies against the new process's JWKS.
    assert_eq!(restarted.state.oauth.keys.current().kid(), kid);
    restarted.verify(&token, "https://api.example.com").await;
}

#[rstest]
#[tokio::test]
async fn a_different_kek_is_refused_at_start_with_a_clear_error(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let other = tempfile::tempdir().unwrap();
    let settings = test_settings(
        &app.database_url,
        &other,
        json!({"kek": STANDARD.encode([9u8; 32])}),
    );

    let err = Application::build(settings, Clock::System)
        .await
        .err()
        .expect("start must fail")
        .to_string();

    assert!(err.contains("sealed under KEK"), "{err}");
    let stored = app.state.oauth.store.signing_keys().await.unwrap();
    assert!(
        stored.iter().any(|k| err.contains(&k.kid)),
        "names the key: {err}"
    );
}

#[rstest]
#[tokio::test]
async fn kek_problems_are_clear_errors_not_panics(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(engine, &dir).await;
    let cases = [
        (json!({"kek": "not base64!"}), "base64"),
        (
            json!({"kek": STANDARD.encode([1u8; 16])}),
            "32 random bytes",
        ),
        (
            json!({"kek_generate": false, "kek_file": dir.path().join("absent")}),
            "does not exist",
        ),
    ];
    for (overrides, needle) in cases {
        let settings = test_settings(&url, &dir, overrides.clone());
        let err = Application::build(settings, Clock::System)
            .await
            .err()
            .expect("start must fail")
            .to_string();
        assert!(err.contains(needle), "{overrides}: {err}");
    }
}

#[test]
fn postgres_never_generates_a_kek_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(
        "postgres://localhost/x",
        &dir,
        json!({"kek_generate": null}),
    );
    assert!(!settings.may_generate_kek());
}
