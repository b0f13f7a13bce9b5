//! Migration 0009 keeps every audit event written in the old format: a
//! database at migration 0007 with old rows, migrated by the server, reads
//! back the same events and verifies as before.

use std::{path::Path, str::FromStr};

use chrono::{DateTime, Utc};
use portcullis::{
    audit::{
        chain::{self, AuditRecord},
        verify_store, AuditFilter,
    },
    store::Store,
};
use rstest::rstest;
use serde_json::json;

use crate::helpers::{fresh_database, Engine, TestApp};

/// Applies this engine's migrations before 0008 to `url`.
async fn migrate_to_0007(engine: Engine, url: &str, dir: &Path) {
    let name = if engine == Engine::Sqlite {
        "sqlite"
    } else {
        "postgres"
    };
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(name);
    let old = dir.join("old-migrations");
    std::fs::create_dir_all(&old).unwrap();
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        if file.as_str() < "0008" {
            std::fs::copy(&path, old.join(file)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(old.as_path()).await.unwrap();
    if engine == Engine::Sqlite {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .unwrap()
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        migrator.run(&pool).await.unwrap();
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        migrator.run(&pool).await.unwrap();
    }
}

/// Events as the old code chained them; the last one was edited by hand
/// (its hashes are not even hex), which must stay visible.
fn old_records() -> Vec<AuditRecord> {
    let t = DateTime::<Utc>::from_timestamp_micros(1_790_000_000_123_456).unwrap();
    let rows = [
        (
            "client_created",
            "admin:1a2b3c4d",
            Some("c1"),
            Some("0b5e6a1c-4c2f-4d1e-9f3a-8e2b7c6d5a41"),
            None,
            json!({"after": {"scope": "read"}}),
        ),
        (
            "token_issued",
            "client:c1",
            Some("c1"),
            Some("custom-request-id"),
            None,
            json!({"auth_method": "client_secret_basic", "expires_in": 300, "grant_type": "client_credentials", "jti": "1b5e6a1c-4c2f-4d1e-9f3a-8e2b7c6d5a41", "refresh_token_issued": false, "scope": "read"}),
        ),
        (
            "token_denied",
            "client:c1",
            Some("c1"),
            None,
            Some("invalid_client"),
            json!({}),
        ),
        (
            "key_rotated",
            "system",
            None,
            Some("0123456789abcde"),
            None,
            json!({"current": "k1", "removed": [], "ratio": 0.5, "delta": -3}),
        ),
        (
            "client_updated",
            "client:c2",
            Some("c1"),
            None,
            None,
            json!({"n": 1}),
        ),
    ];
    let mut prev = chain::GENESIS.to_owned();
    let mut out = Vec::new();
    for (i, (kind, actor, client, request, reason, details)) in rows.into_iter().enumerate() {
        let mut r = AuditRecord {
            id: i64::try_from(i).unwrap() + 1,
            occurred_at: t,
            kind: kind.into(),
            actor: actor.into(),
            client_id: client.map(Into::into),
            request_id: request.map(Into::into),
            reason: reason.map(Into::into),
            details,
            prev_hash: prev.clone(),
            hash: String::new(),
        };
        r.hash = chain::link(&r, &prev);
        prev.clone_from(&r.hash);
        out.push(r);
    }
    out[4].prev_hash = "edited-by-hand".into();
    out[4].hash = "x".repeat(31);
    out
}

async fn insert_old_rows(engine: Engine, url: &str, records: &[AuditRecord]) {
    const INSERT: &str = "INSERT INTO audit_events (id, occurred_at, kind, actor, client_id, request_id, reason, details, prev_hash, hash) \
                          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    for r in records {
        macro_rules! bind_rest {
            ($q:expr) => {
                $q.bind(r.kind.clone())
                    .bind(r.actor.clone())
                    .bind(r.client_id.clone())
                    .bind(r.request_id.clone())
                    .bind(r.reason.clone())
                    .bind(r.details.to_string())
                    .bind(r.prev_hash.clone())
                    .bind(r.hash.clone())
            };
        }
        if engine == Engine::Sqlite {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            let q = sqlx::query(INSERT)
                .bind(r.id)
                .bind(r.occurred_at.timestamp_micros());
            bind_rest!(q).execute(&pool).await.unwrap();
        } else {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let q = sqlx::query(INSERT).bind(r.id).bind(r.occurred_at);
            bind_rest!(q).execute(&pool).await.unwrap();
        }
    }
}

#[rstest]
#[tokio::test]
async fn old_audit_rows_survive_the_compact_format_and_still_verify(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: a database at 0007 with events in the old format.
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(engine, &dir).await;
    migrate_to_0007(engine, &url, dir.path()).await;
    let old = old_records();
    insert_old_rows(engine, &url, &old).await;

    // Act: the server starts on it (applying 0009) and records more.
    let app = TestApp::spawn_on(engine, url, dir, json!({})).await;
    let store = &app.state.oauth.store;
    let read = store
        .audit_events(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let (id, secret) = app.standard_client().await;
    app.access_token(&id, &secret).await;
    app.state.oauth.audit.flush().await;

    // Assert: every field of every old event as it was, the hand-edited
    // one included; the chain verifies up to it and breaks there, as before.
    assert_eq!(read, old);
    let report = verify_store(store).await.unwrap();
    assert_eq!(
        report.first_broken.map(|b| b.id),
        Some(5),
        "{:?}",
        report.start
    );
    let filter = AuditFilter {
        after_id: 5,
        limit: 10,
        ..AuditFilter::default()
    };
    let new = store.audit_events(&filter).await.unwrap();
    assert_eq!(new.len(), 2);
    assert_eq!(
        new[0].prev_hash, old[4].hash,
        "the chain continues from the last old row"
    );
    assert!(chain::verify(&new, (5, &old[4].hash)).is_ok());
    let by_client = store
        .audit_events(&AuditFilter {
            client_id: Some("c1".into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(by_client.len(), 4);
}
