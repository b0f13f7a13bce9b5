//! The refresh-token grant: rotation, reuse detection, races, narrowing, expiry.

use chrono::Duration;
use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{assert_error, Engine, TestApp};

const CC: [(&str, &str); 1] = [("grant_type", "client_credentials")];

async fn refresh(
    app: &TestApp,
    id: &str,
    secret: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    form.extend_from_slice(extra);
    app.token_basic(id, secret, &form).await
}

async fn refreshed(
    app: &TestApp,
    id: &str,
    secret: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> Value {
    let res = refresh(app, id, secret, token, extra).await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "refresh failed: {body}");
    body
}

fn rt(body: &Value) -> String {
    body["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned()
}

#[rstest]
#[tokio::test]
async fn refresh_tokens_go_only_to_clients_registered_for_them_and_are_stored_hashed(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (plain_id, plain_secret) = app.standard_client().await;
    assert!(app
        .token(&plain_id, &plain_secret, &CC)
        .await
        .get("refresh_token")
        .is_none());

    let (id, secret) = app.refresh_client(json!({})).await;
    let body = app.token(&id, &secret, &CC).await;
    let token = rt(&body);
    assert_eq!(token.len(), 43, "256 random bits, base64url");

    let stored = app.column("SELECT token_hash FROM refresh_tokens").await;
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], token);
    assert_eq!(stored[0].len(), 64, "hex SHA-256");
    let meta = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        meta["grant_types_supported"],
        json!([
            "client_credentials",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
}

#[rstest]
#[tokio::test]
async fn a_refresh_rotates_and_reusing_the_old_token_revokes_the_family(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.refresh_client(json!({})).await;
    let first = rt(&app.token(&id, &secret, &CC).await);

    // Act: a normal rotation.
    let body = refreshed(&app, &id, &secret, &first, &[]).await;
    let second = rt(&body);
    assert_ne!(second, first);
    assert_eq!(body["scope"], "read write");
    app.verify(
        body["access_token"].as_str().unwrap(),
        "https://api.example.com",
    )
    .await;

    // Act: the rotated token comes back (stolen, or replayed).
    let res = refresh(&app, &id, &secret, &first, &[]).await;

    // Assert: refused, and the newest token of the family is dead too.
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "reused token",
    )
    .await;
    let res = refresh(&app, &id, &secret, &second, &[]).await;
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "family revoked after reuse",
    )
    .await;
    let reasons = app
        .column("SELECT revoked_reason FROM refresh_families")
        .await;
    assert_eq!(reasons, ["reuse"]);
    let family = app.column("SELECT id FROM refresh_families").await;

    // A new grant starts a new, working family.
    let fresh = rt(&app.token(&id, &secret, &CC).await);
    refreshed(&app, &id, &secret, &fresh, &[]).await;
    assert_eq!(
        app.audit_details("refresh_token_reuse").await,
        [json!({ "family_id": family[0] }).to_string()],
        "one audit event, for the reuse only"
    );
}

#[rstest]
#[tokio::test]
async fn of_many_concurrent_refreshes_of_one_token_exactly_one_succeeds(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(
        engine,
        json!({"workers": 4, "argon2_concurrency": 4, "database_max_connections": 8}),
    )
    .await;
    let (id, secret) = app.refresh_client(json!({})).await;
    let token = rt(&app.token(&id, &secret, &CC).await);

    let attempts = (0..12).map(|_| refresh(&app, &id, &secret, &token, &[]));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(reqwest::Response::status)
        .collect();

    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{ok} concurrent refreshes succeeded: {statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST),
        "{statuses:?}"
    );
    let consumed = app
        .column("SELECT token_hash FROM refresh_tokens WHERE consumed_at IS NOT NULL")
        .await;
    assert_eq!(consumed.len(), 1, "the token was consumed exactly once");
}

#[rstest]
#[tokio::test]
async fn a_refresh_may_narrow_the_scope_and_audience_but_never_widen_them(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.refresh_client(json!({})).await;
    let token = rt(&app
        .token(
            &id,
            &secret,
            &[("grant_type", "client_credentials"), ("scope", "read")],
        )
        .await);

    let res = refresh(&app, &id, &secret, &token, &[("scope", "read write")]).await;
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_scope",
        "wider than the grant",
    )
    .await;
    let res = refresh(
        &app,
        &id,
        &secret,
        &token,
        &[("resource", "https://billing.example.com")],
    )
    .await;
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_target",
        "audience outside the grant",
    )
    .await;

    // Refused attempts did not consume the token.
    let both = [
        ("grant_type", "client_credentials"),
        ("resource", "https://api.example.com"),
        ("resource", "https://billing.example.com"),
    ];
    let full = app.token(&id, &secret, &both).await;
    let body = refreshed(
        &app,
        &id,
        &secret,
        &rt(&full),
        &[
            ("scope", "write"),
            ("resource", "https://billing.example.com"),
        ],
    )
    .await;
    assert_eq!(body["scope"], "write");
    let claims = app
        .verify(
            body["access_token"].as_str().unwrap(),
            "https://billing.example.com",
        )
        .await;
    assert_eq!(claims["aud"], "https://billing.example.com");
    // The successor keeps the grant's full scope (RFC 6749 §6).
    let again = refreshed(&app, &id, &secret, &rt(&body), &[]).await;
    assert_eq!(again["scope"], "read write");
    refreshed(&app, &id, &secret, &token, &[]).await;
}

#[rstest]
#[tokio::test]
async fn another_clients_refresh_token_is_an_invalid_grant(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (a, a_secret) = app.refresh_client(json!({})).await;
    let (b, b_secret) = app.refresh_client(json!({})).await;
    let token = rt(&app.token(&a, &a_secret, &CC).await);

    let res = refresh(&app, &b, &b_secret, &token, &[]).await;
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "other client's token",
    )
    .await;
    refreshed(&app, &a, &a_secret, &token, &[]).await;
}

#[rstest]
#[tokio::test]
async fn refresh_tokens_expire_when_idle_and_at_their_absolute_limit(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app
        .refresh_client(json!({"refresh_token_idle_ttl": 100, "refresh_token_absolute_ttl": 250}))
        .await;

    // Idle: unused for 100 s, it expires.
    let idle = rt(&app.token(&id, &secret, &CC).await);
    app.clock.advance(Duration::seconds(100));
    assert_error(
        refresh(&app, &id, &secret, &idle, &[]).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "idle",
    )
    .await;

    // Absolute: used every 90 s, the family still ends 250 s after the grant.
    let mut token = rt(&app.token(&id, &secret, &CC).await);
    for _ in 0..2 {
        app.clock.advance(Duration::seconds(90));
        token = rt(&refreshed(&app, &id, &secret, &token, &[]).await);
    }
    app.clock.advance(Duration::seconds(70));
    assert_error(
        refresh(&app, &id, &secret, &token, &[]).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "absolute",
    )
    .await;
}

#[rstest]
#[tokio::test]
async fn bad_refresh_requests_get_clear_errors(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.refresh_client(json!({})).await;
    let (plain, plain_secret) = app.standard_client().await;
    let cases: Vec<(&str, &str, Vec<(&str, &str)>, StatusCode, &str, &str)> = vec![
        (
            &id,
            &secret,
            vec![("grant_type", "refresh_token")],
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "missing refresh_token",
        ),
        (
            &id,
            &secret,
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "garbage"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown token",
        ),
        (
            &id,
            &secret,
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "a"),
                ("refresh_token", "b"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "repeated token",
        ),
        (
            &plain,
            &plain_secret,
            vec![("grant_type", "refresh_token"), ("refresh_token", "x")],
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "client without the grant",
        ),
        (
            &id,
            "wrong",
            vec![("grant_type", "refresh_token"), ("refresh_token", "x")],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "wrong secret",
        ),
    ];
    for (client, pass, form, status, code, why) in cases {
        assert_error(
            app.token_basic(client, pass, &form).await,
            status,
            code,
            why,
        )
        .await;
    }
    let res = app
        .admin(
            Method::POST,
            "/admin/clients",
            Some(json!({"grant_types": ["refresh_token"]})),
        )
        .await;
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
        "refresh without client_credentials",
    )
    .await;
    let res = app
        .admin(
            Method::POST,
            "/admin/clients",
            Some(json!({"refresh_token_idle_ttl": 500, "refresh_token_absolute_ttl": 100})),
        )
        .await;
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
        "idle beyond absolute",
    )
    .await;
}
