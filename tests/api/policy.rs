//! Rego token policies: allow, deny, narrow, add claims, fail closed, reload.

use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{assert_error, Engine, TestApp};

const MATRIX: &str = include_str!("../../examples/policies/audience-scope-matrix.rego");
const OFFICE: &str = include_str!("../../examples/policies/office-hours-and-network.rego");

async fn app_with_policy(engine: Engine, text: &str, claims: Value) -> TestApp {
    // The policy file lives in the server's own temporary directory, removed with it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.rego");
    std::fs::write(&path, text).unwrap();
    let url = crate::helpers::fresh_database(engine, &dir).await;
    TestApp::spawn_on(
        engine,
        url,
        dir,
        json!({"policy_file": path, "policy_claims": claims}),
    )
    .await
}

fn policy_path(app: &TestApp) -> std::path::PathBuf {
    app.state.settings.tokens.policy_file.clone().unwrap()
}

async fn matrix_client(app: &TestApp) -> (String, String) {
    let c = app
        .register_client(json!({
            "client_name": "payments-team",
            "scope": "billing:read billing:write inventory:read",
            "allowed_audiences": ["https://billing.example.com", "https://inventory.example.com"],
            "default_audience": "https://billing.example.com",
        }))
        .await;
    (
        c["client_id"].as_str().unwrap().to_owned(),
        c["client_secret"].as_str().unwrap().to_owned(),
    )
}

#[rstest]
#[tokio::test]
async fn a_policy_narrows_scopes_and_adds_allow_listed_claims(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = app_with_policy(engine, MATRIX, json!(["team"])).await;
    let (id, secret) = matrix_client(&app).await;

    let body = app
        .token(&id, &secret, &[("grant_type", "client_credentials")])
        .await;

    assert_eq!(
        body["scope"], "billing:read billing:write",
        "inventory:read is not valid for billing"
    );
    let claims = app
        .verify(
            body["access_token"].as_str().unwrap(),
            "https://billing.example.com",
        )
        .await;
    assert_eq!(claims["team"], "payments-team");
    assert_eq!(claims["scope"], "billing:read billing:write");
}

#[rstest]
#[tokio::test]
async fn a_policy_denial_is_access_denied_with_its_reason_in_the_audit_trail(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = app_with_policy(engine, MATRIX, json!(["team"])).await;
    let (id, secret) = matrix_client(&app).await;

    let res = app
        .token_basic(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "inventory:read"),
            ],
        )
        .await;

    let body = assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "access_denied",
        "policy denial",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "no requested scope is valid for the requested audience"
    );
    let events: Value = app
        .admin(
            Method::GET,
            &format!("/admin/audit?client_id={id}&kind=token_denied"),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let event = &events["events"][0];
    assert_eq!(event["reason"], "access_denied");
    assert_eq!(
        event["details"]["error_description"],
        "no requested scope is valid for the requested audience"
    );
}

#[rstest]
#[tokio::test]
async fn the_network_and_time_policy_sees_the_source_address_and_the_clock(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = app_with_policy(engine, OFFICE, json!([])).await;
    let (id, secret) = app.standard_client().await;
    // Move the manual clock to a Wednesday 10:00 UTC, then to Sunday.
    let now = app.clock.now();
    let wednesday = chrono::NaiveDate::from_isoywd_opt(2030, 10, chrono::Weekday::Wed)
        .unwrap()
        .and_hms_opt(10, 0, 0)
        .unwrap()
        .and_utc();
    app.clock.advance(wednesday - now);
    let body = app
        .token(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(body["scope"], "read write", "loopback counts as internal");
    app.clock.advance(chrono::Duration::days(4));
    let res = app
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_error(res, StatusCode::BAD_REQUEST, "access_denied", "Sunday").await;
}

#[rstest]
#[tokio::test]
async fn a_changed_policy_is_reloaded_and_a_broken_one_fails_closed(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = app_with_policy(engine, MATRIX, json!(["team"])).await;
    let (id, secret) = matrix_client(&app).await;
    app.token(&id, &secret, &[("grant_type", "client_credentials")])
        .await;

    std::fs::write(policy_path(&app), "package portcullis\nimport rego.v1\ndecision := {\"allow\": false, \"reason\": \"maintenance window\"}\n").unwrap();
    portcullis::maintenance::fast_tick(app.state.oauth.clone()).await;
    let res = app
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    let body = assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "access_denied",
        "reloaded deny-all",
    )
    .await;
    assert_eq!(body["error_description"], "maintenance window");

    std::fs::write(policy_path(&app), "package portcullis\nthis is { not rego").unwrap();
    portcullis::maintenance::fast_tick(app.state.oauth.clone()).await;
    let res = app
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_error(
        res,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "broken policy",
    )
    .await;

    std::fs::write(policy_path(&app), MATRIX).unwrap();
    portcullis::maintenance::fast_tick(app.state.oauth.clone()).await;
    app.token(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
}

#[rstest]
#[tokio::test]
async fn a_policy_that_does_not_compile_stops_the_start(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.rego");
    std::fs::write(&path, "package portcullis\nnot rego at all {").unwrap();
    let url = crate::helpers::fresh_database(engine, &dir).await;
    let settings = crate::helpers::test_settings(&url, &dir, json!({"policy_file": path}));
    let err = portcullis::startup::Application::build(settings, portcullis::clock::Clock::System)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("does not compile"), "{err}");
}
