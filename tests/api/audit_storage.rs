//! Database bytes per issued token: the audit trail's share of storage,
//! indexes included, on both engines.

use rstest::rstest;

use crate::helpers::{Engine, TestApp};

/// Tokens issued for the measurement.
const TOKENS: usize = 2000;

/// Bytes the audit tables (rows, indexes, dictionaries, checkpoints) take:
/// SQLite's `dbstat` pages, PostgreSQL's `pg_total_relation_size`. On
/// PostgreSQL the tables are vacuumed first, so that the free-space and
/// visibility maps exist at both ends of a measurement whether or not
/// autovacuum has reached the table yet (it creates them: 32 KiB that would
/// otherwise land on the tokens at random).
async fn audit_bytes(app: &TestApp) -> i64 {
    if !app.database_url.starts_with("sqlite") {
        let pool = sqlx::PgPool::connect(&app.database_url)
            .await
            .expect("connect PostgreSQL");
        sqlx::query("VACUUM").execute(&pool).await.expect("VACUUM");
        pool.close().await;
    }
    let sql = if app.database_url.starts_with("sqlite") {
        "SELECT CAST(COALESCE(SUM(pgsize), 0) AS TEXT) FROM dbstat WHERE name IN \
         (SELECT name FROM sqlite_master WHERE tbl_name LIKE 'audit%')"
    } else {
        "SELECT COALESCE(SUM(pg_total_relation_size(oid)), 0)::text FROM pg_class \
         WHERE relkind = 'r' AND relname LIKE 'audit%'"
    };
    app.column(sql).await[0].parse().unwrap()
}

#[rstest]
#[tokio::test]
async fn an_issued_token_costs_at_most_200_bytes_of_audit_storage(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: a client, its first token (caches warm), the audit trail flushed.
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;
    app.access_token(&id, &secret).await;
    app.state.oauth.audit.flush().await;
    let before = audit_bytes(&app).await;

    // Act: issue tokens a millisecond apart, as a busy server would.
    for _ in 0..TOKENS {
        app.clock.advance(chrono::Duration::milliseconds(1));
        app.access_token(&id, &secret).await;
    }
    app.state.oauth.audit.flush().await;
    let after = audit_bytes(&app).await;

    // Assert
    #[allow(clippy::cast_precision_loss)]
    let per_token = (after - before) as f64 / TOKENS as f64;
    eprintln!("{engine}: {per_token:.1} audit bytes per issued token ({before} -> {after} bytes)");
    assert!(
        per_token <= 200.0,
        "{engine}: {per_token:.1} bytes per token"
    );
}
