//! `/healthz` and `/readyz`.

use rstest::rstest;
use serde_json::Value;

use crate::helpers::{Engine, TestApp};

#[rstest]
#[tokio::test]
async fn health_and_readiness_report_ok(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "ok");

    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["signing_key"], app.state.oauth.keys.current().kid());
}

#[rstest]
#[tokio::test]
async fn a_draining_server_is_not_ready_but_alive(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    app.state
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "draining");
    assert_eq!(body["database"], "ok");
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}
