//! Interoperability of DPoP (RFC 9449) with an independent implementation:
//! the README's Python client (`examples/python/dpop_client.py`, joserfc)
//! obtains a DPoP-bound token from the real server — answering its nonce
//! challenge — and calls a resource server protected by `portcullis-verify`'s
//! actix-web middleware, which accepts the Python-made proof.
//!
//! The Python environment comes from `scripts/test.sh`, which exports
//! `TEST_PYTHON`.

use std::process::Command;

use actix_web::{web, App, HttpResponse, HttpServer};
use portcullis_verify::{
    actix::Verify, Clock, DpopConfig, NonceConfig, VerifiedToken, Verifier, VerifierConfig,
};
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{Engine, TestApp};

const API: &str = "https://api.example.com";

/// The interpreter with joserfc, or a failure that says how to get it.
fn python() -> String {
    std::env::var("TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "TEST_PYTHON is not set: run the suite through scripts/test.sh, \
             which prepares the Python environment (joserfc) and exports it"
        )
    })
}

/// A resource server on a free port: `GET /orders` behind the verifier's
/// actix middleware, DPoP (with nonces) on, on the authorization server's clock.
fn resource_server(app: &TestApp) -> (String, actix_web::dev::ServerHandle) {
    let mut cfg = VerifierConfig::new(app.state.oauth.issuer.clone(), API);
    cfg.clock = Clock::manual(app.clock.now().timestamp());
    let mut dpop = DpopConfig::default();
    dpop.nonce = Some(NonceConfig::default());
    cfg.dpop = Some(dpop);
    let verifier = Verifier::new(cfg).unwrap();
    let server = HttpServer::new(move || {
        App::new().service(
            web::scope("/orders")
                .wrap(Verify::new(verifier.clone()))
                .route(
                    "",
                    web::get().to(|token: web::ReqData<VerifiedToken>| async move {
                        HttpResponse::Ok().json(json!({"client_id": token.claims().client_id}))
                    }),
                ),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}/orders"), handle)
}

#[rstest]
#[tokio::test]
async fn a_python_joserfc_client_gets_dpop_tokens_and_the_verifier_accepts_its_proofs(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: the server requires nonces; so does the resource server.
    let python = python();
    let app = TestApp::spawn_with(engine, json!({"dpop_nonce_required": true})).await;
    let (id, secret) = app.standard_client().await;
    let (resource, handle) = resource_server(&app);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/python/dpop_client.py"
    );
    let issuer = app.state.oauth.issuer.clone();
    let now = app.clock.now().timestamp().to_string();

    // Act: the README's client, as a user would run it.
    let output = tokio::task::spawn_blocking({
        let (id, resource) = (id.clone(), resource.clone());
        move || {
            Command::new(python)
                .args([script, &issuer, &id, &resource])
                .env("PORTCULLIS_CLIENT_SECRET", secret)
                .env("DPOP_CLIENT_NOW", now)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    handle.stop(true).await;

    // Assert
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "client failed: {stdout}\n{stderr}");
    let result: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["token_type"], "DPoP", "{result}");
    assert_eq!(result["resource_status"], 200, "{result}");
    assert_eq!(result["resource"], json!({"client_id": id}), "{result}");
    let claims = app
        .verify(result["access_token"].as_str().unwrap(), API)
        .await;
    assert_eq!(
        claims["cnf"]["jkt"], result["jkt"],
        "joserfc's thumbprint is the server's"
    );
    // The nonce challenge was met: one refusal, then the token.
    let denied = app.audit_details("token_denied").await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(denied[0].contains("nonce"), "{denied:?}");
}

#[test]
fn the_readme_shows_exactly_the_python_client_the_test_runs() {
    let script = include_str!("../../examples/python/dpop_client.py");
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains(&format!("```python\n{script}```")),
        "README's Python DPoP client differs from examples/python/dpop_client.py"
    );
}
