//! The verified-credential and client cache: never stale where it matters.

use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{Engine, TestApp};

const CC: [(&str, &str); 1] = [("grant_type", "client_credentials")];

async fn status(app: &TestApp, id: &str, secret: &str) -> StatusCode {
    app.token_basic(id, secret, &CC).await.status()
}

#[rstest]
#[tokio::test]
async fn a_rotated_or_disabled_client_is_refused_at_once_despite_the_cache(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;
    for _ in 0..3 {
        assert_eq!(
            status(&app, &id, &secret).await,
            StatusCode::OK,
            "cached after the first"
        );
    }

    let rotated: Value = app
        .admin(Method::POST, &format!("/admin/clients/{id}/secret"), None)
        .await
        .json()
        .await
        .unwrap();
    let new = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(
        status(&app, &id, &secret).await,
        StatusCode::UNAUTHORIZED,
        "old secret, right after rotation"
    );
    assert_eq!(status(&app, &id, &new).await, StatusCode::OK);

    app.admin(Method::POST, &format!("/admin/clients/{id}/disable"), None)
        .await;
    assert_eq!(
        status(&app, &id, &new).await,
        StatusCode::UNAUTHORIZED,
        "disabled, right away"
    );
    app.admin(Method::POST, &format!("/admin/clients/{id}/enable"), None)
        .await;
    assert_eq!(status(&app, &id, &new).await, StatusCode::OK);
    app.admin(Method::DELETE, &format!("/admin/clients/{id}"), None)
        .await;
    assert_eq!(
        status(&app, &id, &new).await,
        StatusCode::UNAUTHORIZED,
        "deleted, right away"
    );
}

#[rstest]
#[tokio::test]
async fn a_grace_period_ends_for_cached_credentials_too(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, old) = app.standard_client().await;
    let rotated: Value = app
        .admin(
            Method::POST,
            &format!("/admin/clients/{id}/secret"),
            Some(json!({"grace_period": 10})),
        )
        .await
        .json()
        .await
        .unwrap();
    let new = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(status(&app, &id, &old).await, StatusCode::OK);
    assert_eq!(status(&app, &id, &old).await, StatusCode::OK, "remembered");
    app.clock.advance(chrono::Duration::seconds(10));
    assert_eq!(
        status(&app, &id, &old).await,
        StatusCode::UNAUTHORIZED,
        "the remembered credential expired with the grace"
    );
    assert_eq!(status(&app, &id, &new).await, StatusCode::OK);
}

#[rstest]
#[tokio::test]
async fn a_second_server_on_the_same_database_drops_its_cache_on_changes(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let a = TestApp::spawn(engine).await;
    let b = a.replica(json!({})).await;
    let (id, secret) = a.standard_client().await;
    assert_eq!(status(&b, &id, &secret).await, StatusCode::OK);
    assert_eq!(
        status(&b, &id, &secret).await,
        StatusCode::OK,
        "B has the client and the credential cached"
    );

    // A disables the client; B hears of it within milliseconds (NOTIFY on
    // PostgreSQL, the client_changes rows SQLite's data_version points to).
    a.admin(Method::POST, &format!("/admin/clients/{id}/disable"), None)
        .await;
    assert!(
        eventually(|| async { status(&b, &id, &secret).await == StatusCode::UNAUTHORIZED }).await,
        "B still accepts a disabled client"
    );

    a.admin(Method::POST, &format!("/admin/clients/{id}/enable"), None)
        .await;
    assert!(eventually(|| async { status(&b, &id, &secret).await == StatusCode::OK }).await);
    let rotated: Value = a
        .admin(Method::POST, &format!("/admin/clients/{id}/secret"), None)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        eventually(|| async { status(&b, &id, &secret).await == StatusCode::UNAUTHORIZED }).await,
        "B still accepts the rotated secret"
    );
    assert_eq!(
        status(&b, &id, rotated["client_secret"].as_str().unwrap()).await,
        StatusCode::OK
    );
}

/// The CLI is another process: a change it makes reaches a running server
/// at once (README: "stops at once"), on SQLite as on PostgreSQL.
#[rstest]
#[tokio::test]
async fn a_cli_change_reaches_a_running_server_at_once(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;
    assert_eq!(status(&app, &id, &secret).await, StatusCode::OK);
    assert_eq!(status(&app, &id, &secret).await, StatusCode::OK, "cached");
    // The CLI runs on a blocking thread: this test's runtime also runs the
    // server, which must keep serving (and applying its audit journal, under
    // the lock the CLI's own audit write waits for) meanwhile.
    let dir = app.dir.path().to_owned();
    let url = app.database_url.clone();
    let cli = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let (dir, url) = (dir.clone(), url.clone());
        async move {
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
                    .args(&args)
                    .current_dir(dir)
                    .env_remove("DATABASE_URL")
                    .env("PORTCULLIS_DATABASE_URL", url)
                    .env("PORTCULLIS_LOG_LEVEL", "warn")
                    .output()
                    .expect("run portcullis")
            })
            .await
            .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice::<Value>(&out.stdout).expect("JSON")
        }
    };
    cli(&["client", "disable", &id]).await;
    assert!(
        eventually(|| async { status(&app, &id, &secret).await == StatusCode::UNAUTHORIZED }).await,
        "the server still accepts a client the CLI disabled"
    );
    cli(&["client", "enable", &id]).await;
    assert!(eventually(|| async { status(&app, &id, &secret).await == StatusCode::OK }).await);
    let rotated = cli(&["client", "rotate-secret", &id]).await;
    // The CLI ends the old secret at its own now (the system clock, read
    // after the server's manual clock started): bring the server's clock past it.
    let cli_now = portcullis::clock::Clock::System.now();
    if app.clock.now() <= cli_now {
        app.clock
            .advance(cli_now - app.clock.now() + chrono::Duration::seconds(1));
    }
    assert!(
        eventually(|| async { status(&app, &id, &secret).await == StatusCode::UNAUTHORIZED }).await,
        "the secret the CLI replaced still works"
    );
    assert_eq!(
        status(&app, &id, rotated["client_secret"].as_str().unwrap()).await,
        StatusCode::OK
    );
}

/// Polls `check` until it holds (the notice travels asynchronously). The
/// 30 s bound only stops a broken build from hanging: no timing is asserted,
/// and a loaded machine may take seconds.
async fn eventually<F, Fut>(check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..600 {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}
