//! Audit export for SIEMs: JSON lines that verify on their own, a file
//! export that resumes without duplicates or gaps, `portcullis audit export`.

use std::{fs, io::Write, path::Path, process::Command};

use portcullis::{
    audit::{export::FileExport, verify_archive, AuditEvent},
    store::Store,
};
use rstest::rstest;
use serde_json::{json, Value};

use crate::{
    audit_retention::verify_cli,
    helpers::{Engine, TestApp},
};

fn ids(path: &Path) -> Vec<i64> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

fn export_cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "export"])
        .args(args)
        .env_remove("DATABASE_URL")
        // The test command exports it for the Python tools; the server would refuse an unknown PORTCULLIS_ key.
        .env("PORTCULLIS_DATABASE_URL", &app.database_url)
        .env("PORTCULLIS_LOG_LEVEL", "error")
        .output()
        .unwrap()
}

#[rstest]
#[tokio::test]
async fn the_export_file_verifies_and_a_tampered_line_is_found(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: a server exporting to a file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let app = TestApp::spawn_with(engine, json!({ "audit_export": path })).await;
    let (id, secret) = app.standard_client().await;
    for _ in 0..5 {
        app.access_token(&id, &secret).await;
    }
    app.token_basic(&id, "wrong", &[("grant_type", "client_credentials")])
        .await;
    app.state.oauth.audit.flush().await;

    // Act: the exporter writes what was committed (it looks every second).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !path.exists() || ids(&path).len() < 7 {
        assert!(
            std::time::Instant::now() < deadline,
            "the exporter wrote nothing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Assert: every event once, as stored, and the archive verifies.
    assert_eq!(ids(&path), (1..=7).collect::<Vec<_>>());
    let lines: Vec<Value> = fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[6]["kind"], "token_denied");
    assert_eq!(lines[6]["reason"], "invalid_client");
    assert_eq!(lines[1]["actor"], format!("client:{id}"));
    assert_eq!(lines[1]["prev_hash"], lines[0]["hash"]);
    assert!(lines[1]["request_id"].is_string());
    let (ok, report, stderr) = verify_cli(&app, &["--file", path.to_str().unwrap()]);
    assert!(ok, "{report} {stderr}");
    assert_eq!(
        (report["events"].as_i64(), report["last_id"].as_i64()),
        (Some(7), Some(7))
    );

    // `portcullis audit export` writes the same lines.
    let copy = dir.path().join("copy.jsonl");
    let out = export_cli(&app, &["--output", copy.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read_to_string(&copy).unwrap(),
        fs::read_to_string(&path).unwrap()
    );
    let out = export_cli(&app, &["--output", copy.to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "an existing file is never overwritten"
    );
    let out = export_cli(&app, &["--after", "5"]);
    let tail = String::from_utf8(out.stdout).unwrap();
    assert_eq!(tail.lines().count(), 2, "{tail}");
    let tail_file = dir.path().join("tail.jsonl");
    fs::write(&tail_file, &tail).unwrap();
    let (ok, report, _) = verify_cli(&app, &["--file", tail_file.to_str().unwrap()]);
    assert!(ok, "a later part verifies from its first line: {report}");
    assert_eq!(report["start"]["after_id"], 5);

    // A line edited in the archive breaks it there.
    let tampered = fs::read_to_string(&path)
        .unwrap()
        .replace("\"reason\":\"invalid_client\"", "\"reason\":null");
    let bad = dir.path().join("tampered.jsonl");
    fs::write(&bad, tampered).unwrap();
    let (ok, report, stderr) = verify_cli(&app, &["--file", bad.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(report["first_broken"]["id"], 7, "{report}");
    assert!(stderr.contains("event 7"), "{stderr}");
}

#[rstest]
#[tokio::test]
async fn the_file_export_resumes_after_a_crash_or_rotation_without_duplicates_or_gaps(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let store = &app.state.oauth.store;
    let now = app.clock.now();
    let append = |n: usize| async move {
        let events: Vec<AuditEvent> = (0..n)
            .map(|i| AuditEvent::new("client_updated", "cli", now).details(json!({ "i": i })))
            .collect();
        store.append_audit_events(&events, None).await.unwrap();
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");

    // A first run exports 5 events.
    append(5).await;
    let mut export = FileExport::open(&path).unwrap();
    assert_eq!(export.pump(store).await.unwrap(), 5);
    drop(export);

    // It crashed after writing 5 lines but before saving the cursor past 2,
    // in the middle of a sixth line.
    fs::write(dir.path().join("audit.jsonl.cursor"), "2").unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"id\":6,\"occurred")
        .unwrap();
    append(3).await;
    let mut export = FileExport::open(&path).unwrap();
    assert_eq!(export.cursor(), 5);
    assert_eq!(export.pump(store).await.unwrap(), 3);
    assert_eq!(ids(&path), (1..=8).collect::<Vec<_>>());
    drop(export);

    // The file was rotated away: the next one starts after the cursor.
    let rotated = dir.path().join("audit.jsonl.1");
    fs::rename(&path, &rotated).unwrap();
    append(2).await;
    let mut export = FileExport::open(&path).unwrap();
    assert_eq!(export.pump(store).await.unwrap(), 2);
    assert_eq!(ids(&path), [9, 10]);

    // Each file verifies on its own, the second from the first one's end.
    for file in [&rotated, &path] {
        let report =
            verify_archive(std::io::BufReader::new(fs::File::open(file).unwrap())).unwrap();
        assert!(report.intact, "{report:?}");
    }
    let whole = [fs::read(&rotated).unwrap(), fs::read(&path).unwrap()].concat();
    let report = verify_archive(whole.as_slice()).unwrap();
    assert!(report.intact && report.events == 10, "{report:?}");
}
