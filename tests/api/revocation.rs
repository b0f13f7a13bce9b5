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
