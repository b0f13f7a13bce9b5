//! RFC 8414 metadata and the JWKS.

use reqwest::StatusCode;
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{Engine, TestApp};

/// Client-assertion algorithms allowed by default.
const ASSERTION_ALGS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

#[rstest]
#[tokio::test]
async fn metadata_is_served_at_both_well_known_paths(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    app.standard_client().await;

    let oauth: Value = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    let oidc: Value = app.get_json("/.well-known/openid-configuration").await;

    assert_eq!(oauth, oidc);
    let issuer = app.base.as_str();
    assert_eq!(
        oauth,
        json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "registration_endpoint": format!("{issuer}/admin/clients"),
            "introspection_endpoint": format!("{issuer}/introspect"),
            "revocation_endpoint": format!("{issuer}/revoke"),
            "response_types_supported": [],
            "grant_types_supported": [
                "client_credentials",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "federated_jwt"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "federated_jwt"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "federated_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
            "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
            "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
            "tls_client_certificate_bound_access_tokens": false,
            "dpop_signing_alg_values_supported": ["ES256", "EdDSA", "RS256", "PS256"],
            "access_token_signing_alg_values_supported": ["ES256"],
        })
    );
}

#[rstest]
#[tokio::test]
async fn the_configured_issuer_is_used_everywhere(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(engine, json!({"issuer": "https://auth.example.com"})).await;
    let meta: Value = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(meta["issuer"], "https://auth.example.com");
    assert_eq!(
        meta["jwks_uri"],
        "https://auth.example.com/.well-known/jwks.json"
    );
}

#[rstest]
#[tokio::test]
async fn the_jwks_is_public_only_cacheable_and_supports_conditional_requests(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;

    let res = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "public, max-age=300");
    assert_eq!(res.headers()["content-type"], "application/json");
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "the current key and the published next key");
    let kids: Vec<&str> = keys.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(kids.contains(&app.state.oauth.keys.current().kid()));
    for key in keys {
        let key = key.as_object().unwrap();
        for member in ["kty", "crv", "x", "y", "kid", "use", "alg"] {
            assert!(key.contains_key(member), "JWK member {member}");
        }
        assert_eq!(key.len(), 7, "only public members: {key:?}");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["alg"], "ES256");
    }

    let res = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(res.headers()["etag"], etag.as_str());
    let res = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .header("If-None-Match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[rstest]
#[tokio::test]
async fn eddsa_keys_sign_tokens_that_verify_against_the_jwks(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(engine, json!({"signing_alg": "EdDSA"})).await;
    let (id, secret) = app.standard_client().await;
    let body = app
        .token(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(token).unwrap().alg,
        jsonwebtoken::Algorithm::EdDSA
    );
    app.verify(token, "https://api.example.com").await;
    let jwks: Value = app.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    assert!(jwks["keys"][0].get("d").is_none());
}

#[rstest]
#[tokio::test]
async fn a_tampered_token_is_refused_by_the_server_and_by_its_published_key(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.refresh_client(json!({})).await;
    let token = app.access_token(&id, &secret).await;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].replacen('e', "f", 1);
    let tampered = parts.join(".");
    assert_ne!(tampered, token);

    // The server: introspection answers inactive, with nothing else.
    assert_eq!(app.introspect(&id, &secret, &token).await["active"], true);
    assert_eq!(
        app.introspect(&id, &secret, &tampered).await,
        json!({"active": false})
    );

    // The published key of the token's kid (not whichever key is listed first)
    // verifies the token and refuses the tampered one. Times are the manual
    // clock's, checked by `TestApp::verify`, not the wall clock's.
    app.verify(&token, "https://api.example.com").await;
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    let jwks = app.jwks().await;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&["https://api.example.com"]);
    validation.validate_exp = false;
    assert!(jsonwebtoken::decode::<Value>(&token, &key, &validation).is_ok());
    assert!(jsonwebtoken::decode::<Value>(&tampered, &key, &validation).is_err());
}

/// The registered scopes stay private: `scopes_supported` lists only the
/// scopes the operator made public (`public_scopes`), and is absent without.
#[rstest]
#[tokio::test]
async fn scopes_supported_lists_only_public_scopes(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    app.standard_client().await;
    let meta: Value = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert!(meta.get("scopes_supported").is_none(), "{meta}");

    let app = TestApp::spawn_with(engine, json!({"public_scopes": "write,orders:read"})).await;
    app.standard_client().await;
    let meta: Value = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(meta["scopes_supported"], json!(["orders:read", "write"]));
}
