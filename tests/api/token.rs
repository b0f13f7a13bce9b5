//! `POST /token`: the client-credentials grant (RFC 6749 §4.4, RFC 9068, RFC 8707).

use reqwest::StatusCode;
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{assert_error, basic, Engine, TestApp};

#[rstest]
#[tokio::test]
async fn basic_auth_yields_an_rfc_9068_token_that_verifies_against_the_jwks(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;

    // Act
    let res = app
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await;

    // Assert
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(
        body["scope"], "read write",
        "omitted scope grants the registered scopes"
    );
    let claims = app
        .verify(
            body["access_token"].as_str().unwrap(),
            "https://api.example.com",
        )
        .await;
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["aud"], "https://api.example.com");
    assert_eq!(claims["scope"], "read write");
    assert_eq!(claims["iss"], app.base.as_str());
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["nbf"].as_i64().unwrap(), iat);
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 300);
    assert_eq!(
        iat,
        app.clock.now().timestamp(),
        "times come from the server clock"
    );
    assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
}

#[rstest]
#[tokio::test]
async fn client_secret_post_works_for_a_client_registered_for_it(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let c = app
        .register_client(json!({"token_endpoint_auth_method": "client_secret_post", "scope": "read", "allowed_audiences": ["https://a.example"]}))
        .await;
    let (id, secret) = (
        c["client_id"].as_str().unwrap(),
        c["client_secret"].as_str().unwrap(),
    );

    let res = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    app.verify(body["access_token"].as_str().unwrap(), "https://a.example")
        .await;

    // The registered method is enforced: Basic is refused for this client.
    let res = app
        .token_basic(id, secret, &[("grant_type", "client_credentials")])
        .await;
    assert_error(
        res,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "basic for a post client",
    )
    .await;
}

#[rstest]
#[tokio::test]
async fn every_issued_token_has_a_unique_jti(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;
    let mut jtis = std::collections::HashSet::new();
    for _ in 0..5 {
        let body = app
            .token(&id, &secret, &[("grant_type", "client_credentials")])
            .await;
        let claims = app
            .verify(
                body["access_token"].as_str().unwrap(),
                "https://api.example.com",
            )
            .await;
        assert!(
            jtis.insert(claims["jti"].as_str().unwrap().to_owned()),
            "jti repeated"
        );
    }
}

#[rstest]
#[tokio::test]
async fn scope_and_resources_narrow_the_token(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;

    let body = app
        .token(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read"),
                ("resource", "https://api.example.com"),
                ("resource", "https://billing.example.com"),
            ],
        )
        .await;

    assert_eq!(body["scope"], "read");
    let claims = app
        .verify(
            body["access_token"].as_str().unwrap(),
            "https://billing.example.com",
        )
        .await;
    assert_eq!(
        claims["aud"],
        json!(["https://api.example.com", "https://billing.example.com"])
    );
    assert_eq!(claims["scope"], "read");
}

#[rstest]
#[tokio::test]
async fn a_client_lifetime_applies_and_is_capped_by_the_server_maximum(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // The client registers 600 s while the server allows it; the server maximum is then lowered to 120 s.
    let app = TestApp::spawn(engine).await;
    let c = app
        .register_client(
            json!({"allowed_audiences": ["https://a.example"], "access_token_ttl": 600}),
        )
        .await;
    let (id, secret) = (
        c["client_id"].as_str().unwrap().to_owned(),
        c["client_secret"].as_str().unwrap().to_owned(),
    );
    let body = app
        .token(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(body["expires_in"], 600);
    assert!(
        body.get("scope").is_none(),
        "no scope member when no scope is granted"
    );

    let dir = app.dir;
    let capped = TestApp::spawn_on(
        engine,
        app.database_url.clone(),
        dir,
        json!({"access_token_ttl": 60, "max_access_token_ttl": 120}),
    )
    .await;
    let body = capped
        .token(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(body["expires_in"], 120);
    let claims = capped
        .verify(body["access_token"].as_str().unwrap(), "https://a.example")
        .await;
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        120
    );
}

#[rstest]
#[tokio::test]
async fn bad_requests_get_the_rfc_6749_error_and_change_nothing(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;
    let auth = basic(&id, &secret);
    let form = Some("application/x-www-form-urlencoded");
    let cc = "grant_type=client_credentials";
    let before = app
        .admin(reqwest::Method::GET, "/admin/clients", None)
        .await
        .text()
        .await
        .unwrap();
    let big = format!("{cc}&pad={}", "x".repeat(20_000));
    let not_b64 = "Basic %%%not-base64%%%".to_owned();
    let no_colon = format!("Basic {}", base64_of(&id));
    let post_creds = format!("{cc}&client_id={id}&client_secret={secret}");

    // (content type, Authorization, body, status, error, why)
    let cases: Vec<(Option<&str>, Option<&str>, String, StatusCode, &str, &str)> = vec![
        (
            Some("text/plain"),
            Some(&auth),
            cc.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "wrong content type",
        ),
        (
            None,
            Some(&auth),
            cc.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "no content type",
        ),
        (
            Some("application/json"),
            Some(&auth),
            r#"{"grant_type":"client_credentials"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "JSON body",
        ),
        (
            form,
            Some(&auth),
            format!("{cc}&{cc}"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "repeated grant_type",
        ),
        (
            form,
            Some(&auth),
            format!("{cc}&scope=read&scope=write"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "repeated scope",
        ),
        (
            form,
            Some(&auth),
            "scope=read".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "missing grant_type",
        ),
        (
            form,
            Some(&auth),
            "grant_type=password".into(),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "unknown grant",
        ),
        (
            form,
            Some(&not_b64),
            cc.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Basic not base64",
        ),
        (
            form,
            Some(&no_colon),
            cc.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Basic without colon",
        ),
        (
            form,
            Some("Bearer abc"),
            cc.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "other auth scheme",
        ),
        (
            form,
            Some(&auth),
            post_creds.clone(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Basic and form credentials",
        ),
        (
            form,
            None,
            cc.into(),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "no credentials",
        ),
        (
            form,
            None,
            format!("{cc}&client_id={id}"),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_id without secret",
        ),
        (
            form,
            Some(&auth),
            format!("{cc}&scope=admin"),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "scope not allowed",
        ),
        (
            form,
            Some(&auth),
            format!("{cc}&scope=read%22"),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "malformed scope",
        ),
        (
            form,
            Some(&auth),
            format!("{cc}&resource=https%3A%2F%2Fevil.example"),
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "resource not allowed",
        ),
        (
            form,
            Some(&auth),
            format!("{cc}&resource=not-a-uri"),
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "resource not absolute",
        ),
        (
            form,
            Some(&auth),
            format!("{cc}&resource=https%3A%2F%2Fapi.example.com%23frag"),
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "resource with fragment",
        ),
        (
            form,
            Some(&auth),
            big,
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "body over the size limit",
        ),
    ];

    for (content_type, authorization, body, status, code, why) in cases {
        let headers: Vec<(&str, &str)> = authorization
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        let res = app.token_raw(content_type, &headers, body).await;
        assert_error(res, status, code, why).await;
    }

    let res = app
        .token_raw(
            form,
            &[("Authorization", auth.as_str())],
            b"grant_type=client\xffcredentials".to_vec(),
        )
        .await;
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "body not UTF-8",
    )
    .await;

    let after = app
        .admin(reqwest::Method::GET, "/admin/clients", None)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(before, after, "bad requests must not change stored data");
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[rstest]
#[tokio::test]
async fn failed_client_authentication_is_401_with_www_authenticate(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;
    let cc = [("grant_type", "client_credentials")];

    for (client, pass, why) in [
        (id.as_str(), "wrong-secret", "wrong secret"),
        ("no-such-client", secret.as_str(), "unknown client"),
        ("not a valid id!", secret.as_str(), "malformed client id"),
    ] {
        let res = app.token_basic(client, pass, &cc).await;
        assert_eq!(
            res.headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Basic realm=\"portcullis\", charset=\"UTF-8\""),
            "{why}"
        );
        let body = assert_error(res, StatusCode::UNAUTHORIZED, "invalid_client", why).await;
        assert_eq!(
            body["error_description"], "client authentication failed",
            "{why}: indistinguishable"
        );
    }

    // client_secret_post with a wrong secret: 401, no Basic challenge required but allowed.
    let res = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert_error(
        res,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "post wrong secret",
    )
    .await;
}

#[rstest]
#[tokio::test]
async fn a_client_without_audience_or_resource_gets_invalid_target(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let c = app.register_client(json!({"scope": "read"})).await;
    let res = app
        .token_basic(
            c["client_id"].as_str().unwrap(),
            c["client_secret"].as_str().unwrap(),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_target",
        "no audience",
    )
    .await;
}

#[rstest]
#[tokio::test]
async fn basic_credentials_are_form_urlencoded_before_base64(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // RFC 6749 §2.3.1: a client id with reserved characters arrives percent-encoded.
    let app = TestApp::spawn(engine).await;
    let c = app
        .register_client(
            json!({"client_id": "svc~pay.v1_a-b", "allowed_audiences": ["https://a.example"]}),
        )
        .await;
    let secret = c["client_secret"].as_str().unwrap();
    let res = app
        .token_raw(
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
            &[("Authorization", &basic("svc%7Epay.v1_a-b", secret))],
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[rstest]
#[tokio::test]
async fn only_post_is_allowed_on_the_token_endpoint(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let res = app
        .http
        .get(app.url("/token?grant_type=client_credentials"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "POST");
    assert_error(
        res,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "GET /token",
    )
    .await;
    let res = app
        .http
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::NOT_FOUND, "not_found", "unknown route").await;
}
