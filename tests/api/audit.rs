//! The audit trail: what is recorded, filtering, and tamper evidence.

use std::process::Command;

use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{assert_error, Engine, TestApp};

fn verify_cli(app: &TestApp) -> (bool, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "verify"])
        .env_remove("DATABASE_URL")
        // The test command exports it for the Python tools; the server would refuse an unknown PORTCULLIS_ key.
        .env("PORTCULLIS_DATABASE_URL", &app.database_url)
        .env("PORTCULLIS_LOG_LEVEL", "error")
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.success(),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn events(app: &TestApp, query: &str) -> Vec<Value> {
    let res = app
        .admin(Method::GET, &format!("/admin/audit?{query}"), None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.unwrap()["events"]
        .as_array()
        .unwrap()
        .clone()
}

#[rstest]
#[tokio::test]
async fn admin_changes_and_token_outcomes_form_one_verifiable_chain(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange / Act
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;
    app.admin(
        Method::PUT,
        &format!("/admin/clients/{id}"),
        Some(json!({"scope": "read", "allowed_audiences": ["https://api.example.com"]})),
    )
    .await;
    let rotated: Value = app
        .admin(
            Method::POST,
            &format!("/admin/clients/{id}/secret"),
            Some(json!({"grace_period": 60})),
        )
        .await
        .json()
        .await
        .unwrap();
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    app.token(&id, &new_secret, &[("grant_type", "client_credentials")])
        .await;
    app.token_basic(&id, "wrong", &[("grant_type", "client_credentials")])
        .await;
    app.token_basic(
        &id,
        &new_secret,
        &[("grant_type", "client_credentials"), ("scope", "write")],
    )
    .await;

    // Assert: the client's history, in order, with before/after and never a secret.
    let mine = events(&app, &format!("client_id={id}")).await;
    let kinds: Vec<&str> = mine.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "client_created",
            "client_updated",
            "client_secret_rotated",
            "token_issued",
            "token_denied",
            "token_denied"
        ]
    );
    assert_eq!(mine[1]["details"]["before"]["scope"], "read write");
    assert_eq!(mine[1]["details"]["after"]["scope"], "read");
    assert!(mine[0]["actor"].as_str().unwrap().starts_with("admin:"));
    assert_eq!(mine[3]["actor"], format!("client:{id}"));
    assert_eq!(mine[4]["reason"], "invalid_client");
    assert_eq!(mine[5]["reason"], "invalid_scope");
    let all = serde_json::to_string(&events(&app, "").await).unwrap();
    for s in [&secret, &new_secret] {
        assert!(
            !all.contains(s.as_str()),
            "a secret reached the audit trail"
        );
    }
    for pair in mine.windows(2) {
        assert!(pair[0]["id"].as_i64() < pair[1]["id"].as_i64());
    }
    let (ok, report, _) = verify_cli(&app);
    assert!(ok, "{report}");
    assert_eq!(report["intact"], true);
    assert!(report["events"].as_i64().unwrap() >= 6);
}

#[rstest]
#[tokio::test]
async fn an_edited_or_deleted_event_makes_audit_verify_fail_at_that_event(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;
    for _ in 0..4 {
        app.access_token(&id, &secret).await;
    }
    app.state.oauth.audit.flush().await;
    assert!(verify_cli(&app).0);

    app.column("UPDATE audit_events SET reason = 'nothing to see' WHERE id = 3 RETURNING reason")
        .await;
    let (ok, report, stderr) = verify_cli(&app);
    assert!(!ok);
    assert_eq!(report["first_broken"]["id"], 3, "{report}");
    assert!(stderr.contains("event 3"), "{stderr}");

    let other = TestApp::spawn(engine).await;
    let (id, secret) = other.standard_client().await;
    for _ in 0..4 {
        other.access_token(&id, &secret).await;
    }
    other.state.oauth.audit.flush().await;
    other
        .column("DELETE FROM audit_events WHERE id = 4 RETURNING CAST(id AS TEXT)")
        .await;
    let (ok, report, _) = verify_cli(&other);
    assert!(!ok);
    assert_eq!(report["first_broken"]["id"], 4, "{report}");
}

/// Kinds and client ids are numbered in one table (`audit_names`): a trail
/// that has seen tens of thousands of client ids still stores an event of a
/// kind it has not seen before. (PostgreSQL's `kind` column was a `SMALLINT`
/// until migration 0015: the first new kind past id 32,767 stopped the audit
/// apply for good, and the journal filled up behind it.)
#[rstest]
#[tokio::test]
async fn a_new_event_kind_after_40000_client_ids_is_stored(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: a trail whose names table already holds 40,000 client ids.
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;
    app.access_token(&id, &secret).await;
    app.state.oauth.audit.flush().await;
    let max: i64 = app
        .column("SELECT CAST(MAX(id) AS TEXT) FROM audit_names")
        .await[0]
        .parse()
        .unwrap();
    let (from, to) = (max + 1, max + 40_000);
    let fill = if app.database_url.starts_with("sqlite") {
        format!(
            "WITH RECURSIVE g(n) AS (SELECT {from} UNION ALL SELECT n + 1 FROM g WHERE n < {to}) \
             INSERT INTO audit_names (id, name) SELECT n, 'bulk-client-' || n FROM g \
             RETURNING CAST(id AS TEXT)"
        )
    } else {
        format!(
            "INSERT INTO audit_names (id, name) SELECT n, 'bulk-client-' || n \
             FROM generate_series({from}::bigint, {to}::bigint) AS n RETURNING CAST(id AS TEXT)"
        )
    };
    assert_eq!(app.column(&fill).await.len(), 40_000);

    // Act: an admin change records the trail's first `client_deleted` event.
    let res = app
        .admin(Method::DELETE, &format!("/admin/clients/{id}"), None)
        .await;
    assert!(res.status().is_success(), "{}", res.status());
    let applied = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        app.state.oauth.audit.flush(),
    )
    .await;

    // Assert: applied, numbered past 32,767, listed, and the chain verifies.
    assert!(
        applied.is_ok(),
        "{engine}: the audit apply did not catch up"
    );
    let kind_id: i64 = app
        .column("SELECT CAST(id AS TEXT) FROM audit_names WHERE name = 'client_deleted'")
        .await[0]
        .parse()
        .unwrap();
    assert!(kind_id > to, "{kind_id}");
    let deleted = events(&app, "kind=client_deleted").await;
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0]["client_id"], json!(id));
    let (ok, report, stderr) = verify_cli(&app);
    assert!(ok, "{report} {stderr}");
}

#[rstest]
#[tokio::test]
async fn the_audit_api_filters_and_pages(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;
    let start = app.clock.now();
    for _ in 0..3 {
        app.access_token(&id, &secret).await;
    }
    app.clock.advance(chrono::Duration::seconds(10));
    app.access_token(&id, &secret).await;

    let issued = events(&app, "kind=token_issued").await;
    assert_eq!(issued.len(), 4);
    let page: Value = app
        .admin(Method::GET, "/admin/audit?kind=token_issued&limit=3", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 3);
    let next = page["next_after"].as_i64().unwrap();
    assert_eq!(
        events(&app, &format!("kind=token_issued&after={next}"))
            .await
            .len(),
        1
    );
    let since = (start + chrono::Duration::seconds(5)).timestamp();
    assert_eq!(
        events(&app, &format!("kind=token_issued&since={since}"))
            .await
            .len(),
        1
    );
    let until = (start + chrono::Duration::seconds(5)).to_rfc3339();
    assert_eq!(
        events(
            &app,
            &format!("kind=token_issued&until={}", urlencode(&until))
        )
        .await
        .len(),
        3
    );

    for (query, why) in [
        ("limit=0", "limit"),
        ("since=yesterday", "since"),
        ("bogus=1", "unknown parameter"),
    ] {
        let res = app
            .admin(Method::GET, &format!("/admin/audit?{query}"), None)
            .await;
        assert_error(res, StatusCode::BAD_REQUEST, "invalid_request", why).await;
    }
    let res = app.http.get(app.url("/admin/audit")).send().await.unwrap();
    assert_error(
        res,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "no admin token",
    )
    .await;
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
