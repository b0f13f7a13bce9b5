//! Audit retention: old events removed behind a checkpoint that `audit
//! verify` starts from, in chunks, without forking the chain.

use std::{process::Command, sync::Arc};

use chrono::Duration;
use portcullis::{
    audit::{retention, verify_store, AuditEvent},
    maintenance,
    store::{AuditStore, Store},
};
use reqwest::Method;
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{Engine, TestApp};

const DAY: i64 = 86_400;

/// `portcullis audit verify` (with extra arguments) as a user runs it.
pub fn verify_cli(app: &TestApp, args: &[&str]) -> (bool, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "verify"])
        .args(args)
        .env_remove("DATABASE_URL")
        // The test command exports it for the Python tools; the server would refuse an unknown PORTCULLIS_ key.
        .env("PORTCULLIS_DATABASE_URL", &app.database_url)
        .env("PORTCULLIS_LOG_LEVEL", "error")
        .output()
        .unwrap();
    (
        out.status.success(),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A server keeping audit events a day, with a client that got `old` tokens
/// two days ago and `new` tokens now; returns the client id.
async fn trail_with_old_events(engine: Engine, old: usize, new: usize) -> (TestApp, String) {
    let app = TestApp::spawn_with(engine, json!({ "audit_retention": DAY })).await;
    let (id, secret) = app.standard_client().await;
    for _ in 0..old {
        app.access_token(&id, &secret).await;
    }
    app.clock.advance(Duration::days(2));
    for _ in 0..new {
        app.access_token(&id, &secret).await;
    }
    app.state.oauth.audit.flush().await;
    (app, id)
}

async fn kept_ids(app: &TestApp) -> Vec<i64> {
    let res = app
        .admin(Method::GET, "/admin/audit?limit=1000", None)
        .await;
    let body: Value = res.json().await.unwrap();
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

#[rstest]
#[tokio::test]
async fn retention_removes_old_events_and_verify_starts_from_the_checkpoint(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: client_created and 5 tokens two days old, then 3 new tokens.
    let (app, _) = trail_with_old_events(engine, 5, 3).await;

    // Act: the background task's retention run.
    maintenance::audit_retention_tick(Arc::clone(&app.state.oauth), i64::MAX).await;

    // Assert: the 6 old events are gone, the 3 new ones kept and verified
    // from the checkpoint, which the report names.
    assert_eq!(kept_ids(&app).await, [7, 8, 9]);
    let (ok, report, stderr) = verify_cli(&app, &[]);
    assert!(ok, "{report} {stderr}");
    assert_eq!(report["events"], 3, "{report}");
    assert_eq!(report["start"]["after_id"], 6, "{report}");
    let checkpoint = &report["checkpoint"];
    assert_eq!(checkpoint["last_id"], 6, "{report}");
    assert_eq!(checkpoint["removed"], 6, "{report}");
    assert_eq!(checkpoint["last_hash"], report["start"]["hash"]);
    assert!(checkpoint["cut_at"].is_string() && checkpoint["hash"].is_string());

    // Tampering inside the kept part is still found.
    app.column("UPDATE audit_events SET reason = 'nothing to see' WHERE id = 8 RETURNING reason")
        .await;
    let (ok, report, stderr) = verify_cli(&app, &[]);
    assert!(!ok);
    assert_eq!(report["first_broken"]["id"], 8, "{report}");
    assert!(stderr.contains("event 8"), "{stderr}");
}

#[rstest]
#[tokio::test]
async fn removing_the_earliest_kept_events_or_forging_the_checkpoint_is_found(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let (app, _) = trail_with_old_events(engine, 3, 3).await;
    maintenance::audit_retention_tick(Arc::clone(&app.state.oauth), i64::MAX).await;
    assert!(verify_cli(&app, &[]).0);

    // A gap between the checkpoint and the first kept event.
    app.column("DELETE FROM audit_events WHERE id = 5 RETURNING CAST(id AS TEXT)")
        .await;
    let (ok, report, _) = verify_cli(&app, &[]);
    assert!(!ok);
    assert_eq!(report["first_broken"]["id"], 5, "{report}");
    assert_eq!(report["first_broken"]["reason"], "event missing (deleted)");

    // Moving the checkpoint over the gap is a forged checkpoint.
    app.column("UPDATE audit_checkpoints SET last_id = 5 RETURNING CAST(last_id AS TEXT)")
        .await;
    let (ok, report, stderr) = verify_cli(&app, &[]);
    assert!(!ok, "{report}");
    assert_eq!(report["broken_checkpoint"]["id"], 1, "{report}");
    assert!(stderr.contains("checkpoint 1"), "{stderr}");
}

#[rstest]
#[tokio::test]
async fn retention_removes_many_events_in_chunks_while_events_are_appended(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: 12 000 events two days old.
    let app = TestApp::spawn(engine).await;
    let store = &app.state.oauth.store;
    let old = app.clock.now() - Duration::days(2);
    let events: Vec<AuditEvent> = (0..12_000)
        .map(|i| {
            AuditEvent::new("token_issued", "client:c", old)
                .client("c")
                .details(json!({ "n": i }))
        })
        .collect();
    for batch in events.chunks(500) {
        store.append_audit_events(batch, None).await.unwrap();
    }
    let now = app.clock.now();

    // Act: the export has written up to 11 000; cut in chunks of 1000 while
    // another writer appends.
    let appending = async {
        for i in 0..20 {
            let e = AuditEvent::new("client_updated", "cli", now).details(json!({ "i": i }));
            store.append_audit_events(&[e], None).await.unwrap();
        }
    };
    let (purged, ()) = tokio::join!(
        retention::purge(store, DAY.unsigned_abs(), 11_000, 1000, now),
        appending
    );

    // Assert: eleven chunks, eleven chained checkpoints, nothing past the
    // export's cursor removed, the trail intact from the last checkpoint.
    let purged = purged.unwrap();
    assert_eq!(purged.removed, 11_000);
    let checkpoints = store.audit_checkpoints().await.unwrap();
    assert_eq!(checkpoints.len(), 11);
    assert_eq!(
        (checkpoints[10].last_id, checkpoints[10].removed),
        (11_000, 11_000)
    );
    let report = verify_store(store).await.unwrap();
    assert!(report.intact, "{report:?}");
    assert_eq!((report.events, report.last_id), (1020, 12_020));

    // Everything old goes once exported; appending continues the chain.
    retention::purge(store, DAY.unsigned_abs(), i64::MAX, 1000, now)
        .await
        .unwrap();
    store
        .append_audit_events(&[AuditEvent::new("keys_rewrapped", "cli", now)], None)
        .await
        .unwrap();
    let report = verify_store(store).await.unwrap();
    assert!(report.intact, "{report:?}");
    assert_eq!(report.checkpoint.unwrap().last_id, 12_000);
    assert_eq!((report.events, report.last_id), (21, 12_021));
}

#[rstest]
#[tokio::test]
async fn a_fully_removed_trail_continues_from_its_checkpoint(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let (app, id) = trail_with_old_events(engine, 2, 0).await;
    app.clock.advance(Duration::days(2));
    maintenance::audit_retention_tick(Arc::clone(&app.state.oauth), i64::MAX).await;
    assert!(kept_ids(&app).await.is_empty());

    app.admin(Method::DELETE, &format!("/admin/clients/{id}"), None)
        .await;
    app.state.oauth.audit.flush().await;

    assert_eq!(kept_ids(&app).await, [4], "ids continue after the cut");
    let (ok, report, _) = verify_cli(&app, &[]);
    assert!(ok, "{report}");
    assert_eq!(report["checkpoint"]["last_id"], 3);
}
