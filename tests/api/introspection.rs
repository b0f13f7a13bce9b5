//! Token introspection (RFC 7662).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use chrono::Duration;
use reqwest::StatusCode;
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{assert_error, Engine, TestApp};

const CC: [(&str, &str); 1] = [("grant_type", "client_credentials")];

#[rstest]
#[tokio::test]
async fn an_active_access_token_is_described_in_full(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (rs, rs_secret) = app.refresh_client(json!({})).await;
    let (id, secret) = app.standard_client().await;
    let token = app.access_token(&id, &secret).await;
    let claims = app.verify(&token, "https://api.example.com").await;

    let (status, body) = app
        .form_post(
            "/introspect",
            &rs,
            &rs_secret,
            &[("token", &token), ("token_type_hint", "access_token")],
        )
        .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "active": true,
            "scope": "read write",
            "client_id": id,
            "sub": id,
            "aud": "https://api.example.com",
            "iss": app.base,
            "exp": claims["exp"],
            "iat": claims["iat"],
            "nbf": claims["nbf"],
            "jti": claims["jti"],
            "token_type": "Bearer",
        })
    );
    // The hint is a hint: without it, or with the wrong one, the answer is the same.
    assert_eq!(app.introspect(&rs, &rs_secret, &token).await, body);
    let (_, hinted) = app
        .form_post(
            "/introspect",
            &rs,
            &rs_secret,
            &[("token", &token), ("token_type_hint", "refresh_token")],
        )
        .await;
    assert_eq!(hinted, body);
}

#[rstest]
#[tokio::test]
async fn an_active_refresh_token_is_described_until_it_is_used(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.refresh_client(json!({})).await;
    let body = app.token(&id, &secret, &CC).await;
    let token = body["refresh_token"].as_str().unwrap();

    let answer = app.introspect(&id, &secret, token).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "refresh_token");
    assert_eq!(answer["client_id"], id.as_str());
    assert_eq!(answer["scope"], "read write");
    assert_eq!(answer["aud"], "https://api.example.com");
    assert_eq!(
        answer["exp"],
        app.clock.now().timestamp() + 86_400,
        "idle expiry"
    );

    app.token_basic(
        &id,
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await;
    assert_eq!(
        app.introspect(&id, &secret, token).await,
        json!({"active": false}),
        "consumed"
    );
}

#[rstest]
#[tokio::test]
async fn anything_but_an_active_token_is_just_inactive(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange
    let app = TestApp::spawn(engine).await;
    let other = TestApp::spawn(engine).await;
    let (rs, rs_secret) = app.refresh_client(json!({})).await;
    let (id, secret) = app.standard_client().await;
    let token = app.access_token(&id, &secret).await;
    let parts: Vec<&str> = token.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let none_header = URL_SAFE_NO_PAD
        .encode(json!({"alg": "none", "typ": "at+jwt", "kid": header["kid"]}).to_string());
    let hs_header = URL_SAFE_NO_PAD
        .encode(json!({"alg": "HS256", "typ": "at+jwt", "kid": header["kid"]}).to_string());
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["scope"] = json!("read write admin");
    let forged_claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let (oid, osecret) = other.standard_client().await;
    let foreign = other.access_token(&oid, &osecret).await;

    let cases: Vec<(String, &str)> = vec![
        (
            format!("{}.{}.{}", parts[0], forged_claims, parts[2]),
            "tampered claims",
        ),
        (format!("{none_header}.{}.", parts[1]), "alg none"),
        (
            format!("{hs_header}.{}.{}", parts[1], parts[2]),
            "algorithm swapped",
        ),
        (
            format!("{}.{}.{}", parts[0], parts[1], "AAAA"),
            "bad signature",
        ),
        (foreign, "another server's token"),
        ("garbage".into(), "garbage"),
        ("a.b.c".into(), "three garbage parts"),
        ("x".repeat(9000), "oversized"),
        ("é\u{0}".into(), "control characters"),
    ];

    // Act / Assert
    for (candidate, why) in cases {
        let (status, body) = app
            .form_post("/introspect", &rs, &rs_secret, &[("token", &candidate)])
            .await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({"active": false})),
            "{why}"
        );
    }
    assert_eq!(
        app.introspect(&rs, &rs_secret, &token).await["active"],
        true,
        "the genuine token is active"
    );
    app.clock.advance(Duration::seconds(300));
    assert_eq!(
        app.introspect(&rs, &rs_secret, &token).await,
        json!({"active": false}),
        "expired"
    );
}

#[rstest]
#[tokio::test]
async fn only_authenticated_clients_with_the_permission_may_introspect(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;
    let token = app.access_token(&id, &secret).await;

    let (status, body) = app
        .form_post("/introspect", &id, &secret, &[("token", &token)])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "unauthorized_client");
    let (status, body) = app
        .form_post("/introspect", &id, "wrong-secret", &[("token", &token)])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );

    let (rs, rs_secret) = app.refresh_client(json!({})).await;
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "missing token"),
        (vec![("token", "a"), ("token", "b")], "repeated token"),
        (
            vec![
                ("token", "a"),
                ("token_type_hint", "x"),
                ("token_type_hint", "y"),
            ],
            "repeated hint",
        ),
    ];
    for (form, why) in cases {
        let res = app
            .http
            .post(app.url("/introspect"))
            .header("Authorization", crate::helpers::basic(&rs, &rs_secret))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_error(res, StatusCode::BAD_REQUEST, "invalid_request", why).await;
    }
    let res = app
        .http
        .post(app.url("/introspect"))
        .header("Authorization", crate::helpers::basic(&rs, &rs_secret))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::BAD_REQUEST, "invalid_request", "JSON body").await;
    let meta = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        meta["introspection_endpoint"],
        format!("{}/introspect", app.base)
    );
    assert_eq!(
        meta["introspection_endpoint_auth_methods_supported"],
        json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "federated_jwt"
        ])
    );
}
