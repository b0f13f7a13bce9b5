//! The audit journal as a server uses it: a token leaves only once its
//! event is durable; a journal that cannot take events stops issuance
//! (503) until it can; a journal that cannot be opened stops start-up.

use std::{collections::HashSet, time::Duration};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use portcullis::{clock::Clock, startup::Application};
use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};
use sqlx::{Connection, Executor};

use crate::helpers::{assert_describes, fresh_database, test_settings, Engine, TestApp};

/// The PostgreSQL advisory lock that serializes audit appends ("portaudt").
const AUDIT_LOCK: i64 = 0x706f_7274_6175_6474;

/// The `jti` of an access token (its payload, not verified: the test only names it).
pub fn jti_of(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("a JWS");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["jti"].as_str().expect("jti").to_owned()
}

/// The `jti` of every `token_issued` event in the database (repeats kept).
pub fn issued_jtis(details: &[String]) -> Vec<String> {
    details
        .iter()
        .map(|d| {
            let v: Value = serde_json::from_str(d).unwrap();
            v["jti"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Holds the database's audit-write lock (SQLite's write lock, or the
/// PostgreSQL advisory lock of the audit chain) until dropped or released,
/// so the server cannot apply its journal.
enum DbLock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl DbLock {
    async fn take(url: &str) -> Self {
        if url.starts_with("sqlite") {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            conn.execute("BEGIN IMMEDIATE").await.unwrap();
            Self::Sqlite(conn)
        } else {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(AUDIT_LOCK)
                .execute(&mut conn)
                .await
                .unwrap();
            Self::Postgres(conn)
        }
    }

    async fn release(self) {
        match self {
            Self::Sqlite(mut c) => {
                c.execute("ROLLBACK").await.unwrap();
                c.close().await.unwrap();
            }
            Self::Postgres(mut c) => {
                sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(AUDIT_LOCK)
                    .execute(&mut c)
                    .await
                    .unwrap();
                c.close().await.unwrap();
            }
        }
    }
}

#[rstest]
#[tokio::test]
async fn a_full_journal_stops_issuance_until_applied_events_free_it(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // A journal of a few events; every batch goes to a segment of its own.
    let app = TestApp::spawn_with(engine, json!({ "audit_journal_max_bytes": 4000 })).await;
    let (id, secret) = app.standard_client().await;
    let form = [("grant_type", "client_credentials")];
    let mut received = Vec::new();

    // The database cannot take audit events: the journal fills, deterministically.
    let lock = DbLock::take(&app.database_url).await;
    let refused = loop {
        assert!(received.len() < 50, "the journal never filled");
        let res = app.token_basic(&id, &secret, &form).await;
        if res.status() == StatusCode::OK {
            let body: Value = res.json().await.unwrap();
            received.push(jti_of(body["access_token"].as_str().unwrap()));
            continue;
        }
        break res;
    };
    assert!(
        !received.is_empty(),
        "tokens were issued while there was room"
    );
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let body = crate::helpers::assert_error(
        refused,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "full journal",
    )
    .await;
    assert_describes(&body, "audit");
    let m = app.metrics_text().await;
    assert!(m.contains("portcullis_audit_journal_writable 0"), "{m}");
    assert!(
        !m.contains("portcullis_audit_journal_pending_events 0\n"),
        "{m}"
    );
    assert_eq!(
        app.token_basic(&id, &secret, &form).await.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "still full"
    );
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(
        (&ready["status"], &ready["audit_journal"]),
        (&json!("unavailable"), &json!("refusing")),
        "{ready}"
    );
    // An admin change is refused before it is made: no change goes unaudited.
    let res = app
        .admin(
            Method::POST,
            "/admin/clients",
            Some(json!({ "client_id": "made-while-full", "scope": "read" })),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    let res = app
        .admin(Method::GET, "/admin/clients/made-while-full", None)
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "not created");

    // The database is back: the journal is applied, its segments deleted, and issuance resumes.
    lock.release().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let res = app.token_basic(&id, &secret, &form).await;
        if res.status() == StatusCode::OK {
            let body: Value = res.json().await.unwrap();
            received.push(jti_of(body["access_token"].as_str().unwrap()));
            break;
        }
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            std::time::Instant::now() < deadline,
            "issuance never resumed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.state.oauth.audit.flush().await;
    let m = app.metrics_text().await;
    assert!(m.contains("portcullis_audit_journal_writable 1"), "{m}");
    assert!(
        m.contains("portcullis_audit_journal_pending_events 0"),
        "{m}"
    );

    let stored = issued_jtis(&app.audit_details("token_issued").await);
    assert_eq!(
        stored, received,
        "every token sent, and only those, in order"
    );
}

#[rstest]
#[tokio::test]
async fn an_unusable_journal_directory_stops_start_up_naming_it(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(engine, &dir).await;
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let journal = file.join("journal");
    let settings = test_settings(&url, &dir, json!({ "audit_journal_dir": journal }));
    let err = Application::build(settings, Clock::System)
        .await
        .err()
        .expect("start must fail");
    let message = format!("{err:#}");
    assert!(message.contains("audit_journal_dir"), "{message}");
    assert!(
        message.contains(&journal.display().to_string()),
        "{message}"
    );
}

#[rstest]
#[tokio::test]
async fn a_second_server_on_the_same_journal_is_refused(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let journal = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(engine, json!({ "audit_journal_dir": journal.path() })).await;
    let settings = test_settings(
        &app.database_url,
        &app.dir,
        json!({ "audit_journal_dir": journal.path() }),
    );
    let err = Application::build(settings, Clock::System)
        .await
        .err()
        .expect("start must fail");
    assert!(
        format!("{err:#}").contains("locked by another process"),
        "{err:#}"
    );
}

#[rstest]
#[tokio::test]
async fn the_answer_waits_for_the_journal_and_the_trail_stays_in_order(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;
    // Concurrent requests share group commits; each answer's event is already durable.
    let requests = (0..40).map(|_| {
        let app = &app;
        let (id, secret) = (&id, &secret);
        async move {
            let body = app
                .token(id, secret, &[("grant_type", "client_credentials")])
                .await;
            jti_of(body["access_token"].as_str().unwrap())
        }
    });
    let received: HashSet<String> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .collect();
    let durable = app.state.oauth.audit.gauges();
    assert!(durable.writable);
    app.state.oauth.audit.flush().await;
    let stored = issued_jtis(&app.audit_details("token_issued").await);
    assert_eq!(stored.len(), 40, "no event twice");
    assert_eq!(stored.into_iter().collect::<HashSet<_>>(), received);
    let m = app.metrics_text().await;
    assert!(
        m.contains("portcullis_audit_journal_sync_seconds_count"),
        "{m}"
    );
    assert!(
        m.contains("portcullis_audit_journal_synced_events_total"),
        "{m}"
    );
}

#[rstest]
#[tokio::test]
async fn journaled_events_are_appended_once_however_often_they_are_replayed(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    use portcullis::{
        audit::{AuditEvent, AuditFilter},
        store::{JournalCursor, Storage, Store},
    };
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(engine, &dir).await;
    let store = Storage::connect(&secrecy::SecretString::from(url.clone()), 2)
        .await
        .unwrap();
    let now = Clock::System.now();
    let event =
        |n: i64| AuditEvent::new("token_issued", "client:a", now).details(json!({ "n": n }));
    let batch = |seqs: &[i64]| seqs.iter().map(|n| event(*n)).collect::<Vec<_>>();
    let append = |journal: &'static str, seqs: &'static [i64]| {
        let store = store.clone();
        async move {
            let cursor = JournalCursor {
                journal_id: journal,
                seqs,
            };
            store
                .append_audit_events(&batch(seqs), Some(cursor))
                .await
                .unwrap();
        }
    };
    append("journal-a", &[1, 2, 3]).await;
    append("journal-a", &[1, 2, 3]).await; // a replay after a crash
    append("journal-a", &[2, 3, 4, 5]).await; // partly applied
    append("journal-b", &[1, 2]).await; // another server's journal
    store
        .append_audit_events(&[event(100)], None)
        .await
        .unwrap(); // the CLI
    append("journal-a", &[5, 7]).await; // a gap (numbers of refused events)

    let stored: Vec<i64> = store
        .audit_events(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|r| r.details["n"].as_i64().unwrap())
        .collect();
    assert_eq!(stored, [1, 2, 3, 4, 5, 1, 2, 100, 7]);
    let cursors = crate::crash::column_of(
        &url,
        "SELECT journal_id || ':' || CAST(applied_seq AS TEXT) FROM audit_journal_cursors ORDER BY journal_id",
    )
    .await;
    assert_eq!(cursors, ["journal-a:7", "journal-b:2"]);
}
