//! Token revocation (RFC 7009).

use chrono::Duration;
use portcullis::store::Store;
use reqwest::StatusCode;
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{Engine, TestApp};

const CC: [(&str, &str); 1] = [("grant_type", "client_credentials")];

#[rstest]
#[tokio::test]
async fn a_revoked_access_token_is_inactive_until_its_revocation_is_purged(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.refresh_client(json!({})).await;
    let token = app.access_token(&id, &secret).await;

    let (status, body) = app
        .form_post(
            "/revoke",
            &id,
            &secret,
            &[("token", &token), ("token_type_hint", "access_token")],
        )
        .await;

    assert_eq!((status, body), (StatusCode::OK, Value::Null));
    assert_eq!(
        app.introspect(&id, &secret, &token).await,
        json!({"active": false})
    );
    assert_eq!(
        app.form_post("/revoke", &id, &secret, &[("token", &token)])
            .await
            .0,
        StatusCode::OK,
        "idempotent"
    );
    assert_eq!(
        app.column("SELECT jti FROM revoked_access_tokens")
            .await
            .len(),
        1
    );

    // Once the token would have expired, the deny-list entry is purged.
    app.clock.advance(Duration::seconds(299));
    assert_eq!(
        app.state
            .oauth
            .store
            .purge_expired_tokens(app.clock.now())
            .await
            .unwrap(),
        0
    );
    app.clock.advance(Duration::seconds(1));
    assert_eq!(
        app.state
            .oauth
            .store
            .purge_expired_tokens(app.clock.now())
            .await
            .unwrap(),
        1
    );
    assert!(app
        .column("SELECT jti FROM revoked_access_tokens")
        .await
        .is_empty());
}

#[rstest]
#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.refresh_client(json!({})).await;
    let first = app.token(&id, &secret, &CC).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .token_basic(
            &id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", &first)],
        )
        .await;
    let second = res.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Revoking the already-rotated token still ends the family, so the newest one dies.
    let (status, _) = app
        .form_post(
            "/revoke",
            &id,
            &secret,
            &[("token", &first), ("token_type_hint", "refresh_token")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let res = app
        .token_basic(
            &id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", &second)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert_eq!(
        app.introspect(&id, &secret, &second).await,
        json!({"active": false})
    );
}

#[rstest]
#[tokio::test]
async fn unknown_tokens_are_fine_and_other_clients_tokens_are_refused(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (a, a_secret) = app.refresh_client(json!({})).await;
    let (b, b_secret) = app.refresh_client(json!({})).await;
    let body = app.token(&a, &a_secret, &CC).await;

    for t in ["never-issued", "a.b.c", "", "x"] {
        let (status, _) = app
            .form_post("/revoke", &b, &b_secret, &[("token", t)])
            .await;
        let expected = if t.is_empty() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        assert_eq!(status, expected, "{t:?}");
    }
    for kind in ["access_token", "refresh_token"] {
        let token = body[kind].as_str().unwrap();
        let (status, answer) = app
            .form_post("/revoke", &b, &b_secret, &[("token", token)])
            .await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("unauthorized_client")),
            "{kind}"
        );
        assert_eq!(
            app.introspect(&a, &a_secret, token).await["active"],
            true,
            "{kind} is untouched"
        );
    }
    let (status, answer) = app
        .form_post("/revoke", &a, "wrong", &[("token", "x")])
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let meta = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(meta["revocation_endpoint"], format!("{}/revoke", app.base));
}

/// Polls `check` until it holds. The bound only stops a broken build from
/// hanging: no timing is asserted (the view refreshes every second, and a
/// loaded machine may take longer).
async fn eventually<F, Fut>(check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..600 {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// Servers sharing a database behind one name accept each other's tokens.
fn shared_issuer() -> Value {
    json!({ "issuer": "https://auth.example.com" })
}

#[rstest]
#[tokio::test]
async fn a_revocation_by_another_server_reaches_introspection_from_memory(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let a = TestApp::spawn_with(engine, shared_issuer()).await;
    let b = a.replica(shared_issuer()).await;
    let (id, secret) = a.refresh_client(json!({})).await;
    let token = a.access_token(&id, &secret).await;
    assert_eq!(a.introspect(&id, &secret, &token).await["active"], true);

    // B revokes it; A's view learns of it by its next refresh.
    let (status, _) = b
        .form_post("/revoke", &id, &secret, &[("token", &token)])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        b.introspect(&id, &secret, &token).await,
        json!({"active": false}),
        "the revoking server's own view has it at once"
    );
    assert!(
        eventually(|| async { a.introspect(&id, &secret, &token).await["active"] == false }).await,
        "A still says the revoked token is active"
    );
    assert_eq!(a.state.oauth.revoked.len(), 1);
}

#[rstest]
#[tokio::test]
async fn a_revoked_token_stays_inactive_for_a_server_started_later(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let a = TestApp::spawn_with(engine, shared_issuer()).await;
    let (id, secret) = a.refresh_client(json!({})).await;
    let token = a.access_token(&id, &secret).await;
    let other = a.access_token(&id, &secret).await;
    a.form_post("/revoke", &id, &secret, &[("token", &token)])
        .await;

    // A server started afterwards (a restart) loads the view before serving.
    let restarted = a.replica(shared_issuer()).await;

    assert_eq!(restarted.state.oauth.revoked.len(), 1);
    assert_eq!(
        restarted.introspect(&id, &secret, &token).await,
        json!({"active": false})
    );
    assert_eq!(
        restarted.introspect(&id, &secret, &other).await["active"],
        true
    );
}

#[rstest]
#[tokio::test]
async fn the_view_drops_revocations_of_expired_tokens(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.refresh_client(json!({})).await;
    let token = app.access_token(&id, &secret).await;
    app.form_post("/revoke", &id, &secret, &[("token", &token)])
        .await;
    assert_eq!(app.state.oauth.revoked.len(), 1);

    // Still valid for one more second: the entry stays through refreshes.
    app.clock.advance(Duration::seconds(299));
    portcullis::maintenance::refresh_revoked(app.state.oauth.clone()).await;
    assert_eq!(app.state.oauth.revoked.len(), 1);
    assert_eq!(
        app.introspect(&id, &secret, &token).await,
        json!({"active": false})
    );

    // Expired: the next refresh drops it (the row is still in the database).
    app.clock.advance(Duration::seconds(1));
    assert!(
        eventually(|| async { app.state.oauth.revoked.is_empty() }).await,
        "the entry of an expired token is kept"
    );
    assert_eq!(
        app.column("SELECT jti FROM revoked_access_tokens")
            .await
            .len(),
        1
    );
    assert_eq!(
        app.introspect(&id, &secret, &token).await,
        json!({"active": false}),
        "expired"
    );
}
