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
