//! `private_key_jwt` (RFC 7523): clients authenticate with assertions signed
//! by their own keys (signed here with ring, verified by the server with
//! jsonwebtoken), registered inline or published at a `jwks_uri`.

use portcullis::store::Store as _;
use reqwest::{Method, Response, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};

use crate::{
    helpers::{assert_error, Engine, TestApp},
    pki::{ClientKey, JwksServer},
};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const ISSUER: &str = "https://auth.example.test";

async fn register(app: &TestApp, keys: Value) -> String {
    let mut body = json!({
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": "read write",
        "allowed_audiences": ["https://api.example.com"],
        "allow_introspection": true,
    });
    for (k, v) in keys.as_object().unwrap() {
        body[k] = v.clone();
    }
    let c = app.register_client(body).await;
    assert!(
        c.get("client_secret").is_none(),
        "no secret is generated: {c}"
    );
    assert!(c.get("client_secret_expires_at").is_none(), "{c}");
    assert_eq!(c["token_endpoint_auth_method"], "private_key_jwt");
    c["client_id"].as_str().unwrap().to_owned()
}

async fn post(app: &TestApp, path: &str, form: &[(&str, &str)]) -> Response {
    app.http
        .post(app.url(path))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// `POST /token` (client credentials) authenticated by `assertion` alone.
pub(crate) async fn token_with(app: &TestApp, assertion: &str) -> Response {
    post(
        app,
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ],
    )
    .await
}

fn now(app: &TestApp) -> i64 {
    app.clock.now().timestamp()
}

#[rstest]
#[tokio::test]
async fn an_inline_key_authenticates_at_token_introspection_and_revocation(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let key = ClientKey::new("k1");
    let id = register(&app, json!({ "jwks": ClientKey::jwks(&[&key]) })).await;
    let token_url = app.url("/token");

    // Without client_id: the assertion's sub names the client.
    let res = token_with(&app, &key.assertion(&id, &token_url, now(&app))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    let claims = app.verify(token, "https://api.example.com").await;
    assert_eq!(claims["client_id"], id.as_str());
    assert!(claims.get("cnf").is_none(), "not certificate-bound");

    // With client_id, and the issuer as audience.
    let assertion = key.assertion(&id, &app.state.oauth.issuer, now(&app));
    let res = post(
        &app,
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &assertion),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);

    // Introspection and revocation accept assertions addressed to them.
    for path in ["/introspect", "/revoke"] {
        let assertion = key.assertion(&id, &app.url(path), now(&app));
        let res = post(
            &app,
            path,
            &[
                ("token", token),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &assertion),
            ],
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        if path == "/introspect" {
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["active"], true);
        }
    }
    let assertion = key.assertion(&id, &app.url("/introspect"), now(&app));
    let res = post(
        &app,
        "/introspect",
        &[
            ("token", token),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &assertion),
        ],
    )
    .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["active"], false, "revoked with an assertion");

    // The audit trail tells how the client authenticated.
    let methods = app.audit_details("token_issued").await;
    assert!(!methods.is_empty(), "the tokens above were audited");
    assert!(
        methods.iter().all(|d| d.contains("private_key_jwt")),
        "{methods:?}"
    );
}

#[rstest]
#[tokio::test]
async fn every_bad_assertion_is_refused_with_invalid_client(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let key = ClientKey::new("k1");
    let stranger = ClientKey::new("k1");
    let id = register(&app, json!({ "jwks": ClientKey::jwks(&[&key]) })).await;
    let aud = app.url("/token");
    let t = now(&app);
    let claims = |patch: Value| {
        let mut c = json!({
            "iss": id, "sub": id, "aud": aud, "iat": t, "exp": t + 60,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let unsigned = {
        use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims(json!({})).to_string())
        )
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("alg none", unsigned, "well-formed"),
        (
            "HS256 header",
            key.sign(&json!({"alg": "HS256"}), &claims(json!({}))),
            "alg",
        ),
        (
            "unknown kid",
            key.sign(&json!({"kid": "nope"}), &claims(json!({}))),
            "kid",
        ),
        (
            "signed by another key with the same kid",
            stranger.sign(&json!({}), &claims(json!({}))),
            "signature",
        ),
        (
            "wrong aud",
            key.sign(
                &json!({}),
                &claims(json!({"aud": "https://other.example/token"})),
            ),
            "aud",
        ),
        (
            "expired",
            key.sign(&json!({}), &claims(json!({"iat": t - 400, "exp": t - 300}))),
            "expired",
        ),
        (
            "no exp",
            key.sign(&json!({}), &claims(json!({"exp": null}))),
            "exp",
        ),
        (
            "lives too long",
            key.sign(&json!({}), &claims(json!({"exp": t + 7200}))),
            "longer",
        ),
        (
            "not yet valid",
            key.sign(&json!({}), &claims(json!({"nbf": t + 600, "exp": t + 200}))),
            "nbf",
        ),
        (
            "iss is another client",
            key.sign(&json!({}), &claims(json!({"iss": "someone-else"}))),
            "iss",
        ),
        (
            "no jti",
            key.sign(&json!({}), &claims(json!({"jti": null}))),
            "jti",
        ),
    ];
    for (case, assertion, word) in cases {
        let res = token_with(&app, &assertion).await;
        let body = assert_error(res, StatusCode::UNAUTHORIZED, "invalid_client", case).await;
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains(word), "{case}: {description}");
    }

    // A secret cannot stand in for the key, and both at once are refused.
    let res = app
        .token_basic(&id, "guess", &[("grant_type", "client_credentials")])
        .await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_client", "secret").await;
    let res = app
        .http
        .post(app.url("/token"))
        .header("Authorization", crate::helpers::basic(&id, "x"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &key.assertion(&id, &aud, t)),
        ])
        .send()
        .await
        .unwrap();
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "two methods",
    )
    .await;

    // A client registered for one algorithm refuses the others.
    let ps = register(
        &app,
        json!({ "jwks": ClientKey::jwks(&[&key]), "token_endpoint_auth_signing_alg": "PS256" }),
    )
    .await;
    let res = token_with(&app, &key.assertion(&ps, &aud, t)).await;
    assert_error(
        res,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "registered alg",
    )
    .await;
}

#[rstest]
#[tokio::test]
async fn an_assertion_is_accepted_once_across_servers_sharing_the_database(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let a = TestApp::spawn_with(engine, json!({ "issuer": ISSUER })).await;
    let b = a.replica(json!({ "issuer": ISSUER })).await;
    let key = ClientKey::new("k1");
    let id = register(&a, json!({ "jwks": ClientKey::jwks(&[&key]) })).await;

    let first = key.assertion(&id, &format!("{ISSUER}/token"), now(&a));
    assert_eq!(token_with(&a, &first).await.status(), StatusCode::OK);
    let res = token_with(&a, &first).await;
    let body = assert_error(
        res,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "replay on A",
    )
    .await;
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("used before"));
    let res = token_with(&b, &first).await;
    assert_error(
        res,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "replay on B",
    )
    .await;

    // The other way round, and concurrently: exactly one of many wins.
    let second = key.assertion(&id, ISSUER, now(&a));
    let attempts = (0..6).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        token_with(app, &second)
    });
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );

    // Remembered ids are purged once their assertions have expired.
    let stored = a.column("SELECT jti FROM client_assertion_jtis").await;
    assert_eq!(stored.len(), 2);
    let later = a.clock.now() + chrono::Duration::seconds(3600);
    a.state
        .oauth
        .store
        .purge_expired_tokens(later)
        .await
        .unwrap();
    assert!(a
        .column("SELECT jti FROM client_assertion_jtis")
        .await
        .is_empty());
}

#[rstest]
#[tokio::test]
async fn a_jwks_uri_is_fetched_cached_and_fetched_again_for_a_new_kid(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(
        engine,
        json!({ "jwks_refetch_interval": 1, "jwks_uri_allow_loopback": true }),
    )
    .await;
    let old = ClientKey::new("2026-01");
    let new = ClientKey::new("2026-02");
    let jwks = JwksServer::start(ClientKey::jwks(&[&old])).await;
    let id = register(&app, json!({ "jwks_uri": jwks.url })).await;
    let aud = app.url("/token");

    for _ in 0..3 {
        let res = token_with(&app, &old.assertion(&id, &aud, now(&app))).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(jwks.hits(), 1, "fetched once, then cached");

    // The client rotates: it publishes the new key and signs with it.
    jwks.set(&ClientKey::jwks(&[&old, &new]));
    app.clock.advance(chrono::Duration::seconds(1));
    let res = token_with(&app, &new.assertion(&id, &aud, now(&app))).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "an unknown kid triggers a fetch"
    );
    assert_eq!(jwks.hits(), 2);

    // Made-up kids cannot make the server hammer the client's endpoint.
    for _ in 0..5 {
        let res = token_with(&app, &new.sign(&json!({"kid": "made-up"}), &json!({}))).await;
        assert_error(
            res,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown kid",
        )
        .await;
    }
    assert_eq!(jwks.hits(), 2, "no fetch within the interval");

    // An endpoint that is down or serves garbage: a clear refusal, no 500.
    let broken = register(&app, json!({ "jwks_uri": "http://127.0.0.1:9/jwks.json" })).await;
    let res = token_with(&app, &old.assertion(&broken, &aud, now(&app))).await;
    let body = assert_error(res, StatusCode::UNAUTHORIZED, "invalid_client", "down").await;
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("jwks_uri"));
    let garbage = JwksServer::start(json!({"keys": "no"})).await;
    let id = register(&app, json!({ "jwks_uri": garbage.url })).await;
    let res = token_with(&app, &old.assertion(&id, &aud, now(&app))).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_client", "garbage").await;
}

#[rstest]
#[tokio::test]
async fn secretless_registration_metadata_is_validated(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let key = ClientKey::new("k1");
    let mut private = key.public_jwk();
    private["d"] = json!("AAAA");
    let cases = [
        (
            json!({"token_endpoint_auth_method": "private_key_jwt"}),
            "jwks",
        ),
        (
            json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": ClientKey::jwks(&[&key]), "jwks_uri": "https://x.example/jwks"}),
            "mutually exclusive",
        ),
        (
            json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [private]}}),
            "public keys only",
        ),
        (
            json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://x.example/jwks"}),
            "jwks_uri",
        ),
        (
            json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": ClientKey::jwks(&[&key]), "token_endpoint_auth_signing_alg": "HS256"}),
            "token_endpoint_auth_signing_alg",
        ),
        (json!({"jwks": ClientKey::jwks(&[&key])}), "jwks"),
        (
            json!({"token_endpoint_auth_method": "tls_client_auth"}),
            "exactly one",
        ),
        (
            json!({"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "a.example", "tls_client_auth_san_uri": "spiffe://example.org/a"}),
            "exactly one",
        ),
        (
            json!({"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_ip": "not-an-ip"}),
            "tls_client_auth_san_ip",
        ),
        (
            json!({"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": ""}),
            "tls_client_auth_subject_dn",
        ),
        (
            json!({"tls_client_auth_san_dns": "a.example"}),
            "tls_client_auth",
        ),
        (
            json!({"token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": ClientKey::jwks(&[&key])}),
            "x5c",
        ),
        (
            json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": "not a set"}),
            "jwks",
        ),
    ];
    for (body, word) in cases {
        let res = app
            .admin(Method::POST, "/admin/clients", Some(body.clone()))
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"], "invalid_client_metadata", "{body}");
        let description = err["error_description"].as_str().unwrap();
        assert!(description.contains(word), "{body}: {description}");
    }

    // A secretless client has no secret to rotate; its metadata reads back as registered.
    let id = register(
        &app,
        json!({ "jwks": ClientKey::jwks(&[&key]), "token_endpoint_auth_signing_alg": "ES256" }),
    )
    .await;
    let res = app
        .admin(
            Method::POST,
            &format!("/admin/clients/{id}/secret"),
            Some(json!({})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"], "conflict");
    assert!(err["error_description"]
        .as_str()
        .unwrap()
        .contains("has no secret"));
    let shown: Value = app
        .admin(Method::GET, &format!("/admin/clients/{id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["jwks"], ClientKey::jwks(&[&key]));
    assert_eq!(shown["token_endpoint_auth_signing_alg"], "ES256");
    assert!(shown.get("client_secret").is_none());
}

/// Lockout slows the guessing of secrets; a secretless client has none, so
/// refused assertions — however many — never lock it out.
#[rstest]
#[tokio::test]
async fn refused_assertions_never_lock_a_secretless_client(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(
        engine,
        json!({"lockout_threshold": 3, "lockout_window": 60, "lockout_duration": 600}),
    )
    .await;
    let key = ClientKey::new("k1");
    let intruder = ClientKey::new("k1");
    let id = register(&app, json!({ "jwks": ClientKey::jwks(&[&key]) })).await;
    let token_url = app.url("/token");
    for _ in 0..10 {
        let forged = intruder.assertion(&id, &token_url, now(&app));
        let res = token_with(&app, &forged).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = token_with(&app, &key.assertion(&id, &token_url, now(&app))).await;
    assert_eq!(res.status(), StatusCode::OK, "not locked");
    let shown: Value = app
        .admin(Method::GET, &format!("/admin/clients/{id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert!(shown["locked_until"].is_null(), "{shown}");
    assert!(app.audit_details("client_locked").await.is_empty());
}
