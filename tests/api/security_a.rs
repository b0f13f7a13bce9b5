//! Security fixes: client assertions whose times would overflow are refused
//! and a used assertion stays single-use across purges; an unknown client
//! and a client registered for another method get the same answer; the
//! long-lived settings keep no secret.

use chrono::Duration;
use portcullis::store::Store as _;
use reqwest::{RequestBuilder, StatusCode};
use rstest::rstest;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::{
    helpers::{assert_error, basic, Engine, TestApp, ADMIN_TOKEN},
    pki::ClientKey,
    private_key_jwt::token_with,
};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const CC: (&str, &str) = ("grant_type", "client_credentials");

async fn register(app: &TestApp, method: &str, extra: Value) -> (String, Option<String>) {
    let mut body = json!({
        "token_endpoint_auth_method": method,
        "scope": "read",
        "allowed_audiences": ["https://api.example.com"],
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let c = app.register_client(body).await;
    (
        c["client_id"].as_str().unwrap().to_owned(),
        c["client_secret"].as_str().map(str::to_owned),
    )
}

fn assertion_claims(id: &str, aud: &str, iat: i64, exp: i64) -> Value {
    json!({
        "iss": id, "sub": id, "aud": aud, "iat": iat, "exp": exp,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

#[rstest]
#[tokio::test]
async fn assertions_with_overflowing_times_are_refused_and_stay_refused_after_a_purge(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let key = ClientKey::new("k1");
    let jwks = json!({ "jwks": ClientKey::jwks(&[&key]) });
    let (id, _) = register(&app, "private_key_jwt", jwks).await;
    let aud = app.url("/token");
    let now = app.clock.now().timestamp();

    let cases = [
        (
            "iat = i64::MIN, exp = 10^15",
            i64::MIN,
            1_000_000_000_000_000,
        ),
        ("exp = i64::MAX", now, i64::MAX),
        ("iat = i64::MIN, exp = i64::MAX", i64::MIN, i64::MAX),
    ];
    for (case, iat, exp) in cases {
        let assertion = key.sign(&json!({}), &assertion_claims(&id, &aud, iat, exp));
        for attempt in ["first use", "after a purge"] {
            let res = token_with(&app, &assertion).await;
            let case = format!("{case}, {attempt}");
            assert_error(res, StatusCode::UNAUTHORIZED, "invalid_client", &case).await;
            app.state
                .oauth
                .store
                .purge_expired_tokens(app.clock.now())
                .await
                .unwrap();
        }
    }

    // A valid assertion is remembered for as long as it would be accepted:
    // up to exp + clock_skew (60 s), through any purge before then.
    let assertion = key.sign(&json!({}), &assertion_claims(&id, &aud, now, now + 60));
    assert_eq!(token_with(&app, &assertion).await.status(), StatusCode::OK);
    app.clock.advance(Duration::seconds(119));
    let purged = app
        .state
        .oauth
        .store
        .purge_expired_tokens(app.clock.now())
        .await
        .unwrap();
    let res = token_with(&app, &assertion).await;
    let body = assert_error(res, StatusCode::UNAUTHORIZED, "invalid_client", "replay").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("used before"),
        "{body} (purged {purged})"
    );
}

/// What a response shows a caller: status, `WWW-Authenticate`, body.
async fn seen(req: RequestBuilder) -> (StatusCode, Option<String>, String) {
    let res = req.send().await.unwrap();
    let status = res.status();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, challenge, res.text().await.unwrap())
}

#[rstest]
#[tokio::test]
async fn an_unknown_client_and_a_client_of_another_method_get_the_same_answer(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let key = ClientKey::new("k1");
    let (basic_id, basic_secret) = register(&app, "client_secret_basic", json!({})).await;
    let basic_secret = basic_secret.unwrap();
    let (post_id, post_secret) = register(&app, "client_secret_post", json!({})).await;
    let post_secret = post_secret.unwrap();
    let jwks = json!({ "jwks": ClientKey::jwks(&[&key]) });
    let (jwt_id, _) = register(&app, "private_key_jwt", jwks).await;
    let unknown = "no-such-client-0123456789";
    let aud = app.url("/token");
    let now = app.clock.now().timestamp();
    let post = || app.http.post(app.url("/token"));

    let client_id_only = |id: &str| post().form(&[CC, ("client_id", id)]);
    let basic_secret_req = |id: &str, secret: &str| {
        post()
            .header("Authorization", basic(id, secret))
            .form(&[CC])
    };
    let post_secret_req =
        |id: &str, secret: &str| post().form(&[CC, ("client_id", id), ("client_secret", secret)]);
    let assertion_req = |id: &str| {
        let jwt = key.sign(&json!({}), &assertion_claims(id, &aud, now, now + 60));
        post().form(&[
            CC,
            ("client_id", id),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", jwt.as_str()),
        ])
    };

    // (presentation, unknown client, existing client registered for another method)
    let cases = [
        (
            "client_id only (certificate), secret client",
            client_id_only(unknown),
            client_id_only(&basic_id),
        ),
        (
            "client_id only (certificate), private_key_jwt client",
            client_id_only(unknown),
            client_id_only(&jwt_id),
        ),
        (
            "Basic with the right secret of a client_secret_post client",
            basic_secret_req(unknown, &post_secret),
            basic_secret_req(&post_id, &post_secret),
        ),
        (
            "Basic secret to a secretless client",
            basic_secret_req(unknown, "some-guessed-secret"),
            basic_secret_req(&jwt_id, "some-guessed-secret"),
        ),
        (
            "post with the right secret of a client_secret_basic client",
            post_secret_req(unknown, &basic_secret),
            post_secret_req(&basic_id, &basic_secret),
        ),
        (
            "post secret to a secretless client",
            post_secret_req(unknown, "some-guessed-secret"),
            post_secret_req(&jwt_id, "some-guessed-secret"),
        ),
        (
            "assertion, secret client",
            assertion_req(unknown),
            assertion_req(&basic_id),
        ),
    ];
    for (case, unknown_req, existing_req) in cases {
        let a = seen(unknown_req).await;
        let b = seen(existing_req).await;
        assert_eq!(a.0, StatusCode::UNAUTHORIZED, "{case}: {a:?}");
        assert_eq!(a, b, "{case}: unknown vs registered for another method");
    }

    // The clients still authenticate with their own methods.
    assert_eq!(
        seen(basic_secret_req(&basic_id, &basic_secret)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        seen(post_secret_req(&post_id, &post_secret)).await.0,
        StatusCode::OK
    );
    assert_eq!(seen(assertion_req(&jwt_id)).await.0, StatusCode::OK);
}

#[rstest]
#[tokio::test]
async fn the_running_server_keeps_no_admin_token_kek_or_database_url(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    use base64::{engine::general_purpose::STANDARD, Engine as _};
    let kek = STANDARD.encode([7u8; 32]);
    let old_kek = STANDARD.encode([8u8; 32]);
    let app = TestApp::spawn_with(engine, json!({ "kek": kek, "old_keks": [old_kek] })).await;
    let settings = &app.state.settings;
    assert!(settings.admin.admin_tokens.is_empty(), "admin tokens kept");
    assert!(settings.keys.kek.is_none(), "KEK kept");
    assert!(settings.keys.old_keks.is_empty(), "old KEKs kept");
    assert!(
        settings.database.database_url.expose_secret().is_empty(),
        "database URL kept"
    );
    let shown = format!("{settings:?}");
    for secret in [ADMIN_TOKEN, &kek, &old_kek, &app.database_url] {
        assert!(!shown.contains(secret), "{shown}");
    }
    // What they were needed for still works: the admin API, the keys, the store.
    let (id, secret) = app.standard_client().await;
    let token = app.access_token(&id, &secret).await;
    app.verify(&token, "https://api.example.com").await;
}
