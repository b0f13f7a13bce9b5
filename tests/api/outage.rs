//! Static stability: the server on its own PostgreSQL cluster, which the
//! tests stop and start. Known clients keep getting tokens from memory
//! through the outage (within `outage_grace`); everything that needs the
//! database fails fast with `503 temporarily_unavailable` and `Retry-After`,
//! and works again after recovery.
//!
//! Latency is measured per request and asserted against the database
//! deadline (500 ms), not a wall-clock budget: failing fast means not
//! waiting for the database, which holds however loaded the machine running
//! the suite is.

// Request counts here are thousands: far below f64's exact integer range.
#![allow(clippy::cast_precision_loss)]

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, AtomicU8, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use portcullis::{audit::AuditFilter, store::Store};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::{
    helpers::{Engine, TestApp},
    journal::jti_of,
    pg_cluster::PgCluster,
};

/// Phases of the fault test; a request counts for a phase only if it
/// started and ended within it.
const BEFORE: u8 = 0;
const OUTAGE: u8 = 1;
const RECOVERING: u8 = 2;
const AFTER: u8 = 3;

async fn app_on(pg: &PgCluster, overrides: Value) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    TestApp::spawn_on(Engine::Postgres, pg.url(), dir, overrides).await
}

async fn readyz(app: &TestApp) -> (StatusCode, Value) {
    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    (res.status(), res.json().await.unwrap())
}

/// Polls `/readyz` until its status is `want`; panics after `within`.
pub(crate) async fn wait_for_readiness(
    app: &TestApp,
    want: &str,
    within: Duration,
) -> (StatusCode, Value) {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = readyz(app).await;
        if body["status"] == want {
            return (status, body);
        }
        assert!(
            Instant::now() < deadline,
            "/readyz did not report {want} within {within:?}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One sample of a Prometheus metric without labels.
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.metrics_text().await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// Asserts the fail-fast answer: 503, `temporarily_unavailable`, `Retry-After`.
async fn assert_unavailable(res: Response, case: &str) {
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{case}");
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{case}: Retry-After is seconds"));
    assert!(retry >= 1, "{case}: Retry-After {retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{case}: {body}");
}

/// A request's outcome: phase at start and end, status, latency, and
/// whether a 503 was the documented one.
struct Sample {
    phases: (u8, u8),
    status: u16,
    millis: f64,
    well_formed: bool,
    /// The `jti` of the access token it received, if any.
    jti: Option<String>,
}

impl Sample {
    fn in_phase(&self, phase: u8) -> bool {
        self.phases == (phase, phase)
    }
}

async fn timed(phase: &AtomicU8, request: impl std::future::Future<Output = Response>) -> Sample {
    let start_phase = phase.load(Ordering::SeqCst);
    let start = Instant::now();
    let res = request.await;
    let status = res.status().as_u16();
    let retry_after = res.headers().contains_key("retry-after");
    let body: Value = res.json().await.unwrap_or(Value::Null);
    let millis = start.elapsed().as_secs_f64() * 1000.0;
    Sample {
        phases: (start_phase, phase.load(Ordering::SeqCst)),
        status,
        millis,
        well_formed: status != 503 || (retry_after && body["error"] == "temporarily_unavailable"),
        jti: body["access_token"].as_str().map(jti_of),
    }
}

fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_keep_flowing_through_a_database_outage_and_the_rest_fails_fast() {
    // Arrange: four known clients (client_secret_basic) that just got
    // tokens, and a refresh-token client holding a refresh token.
    let pg = PgCluster::start();
    let app = Arc::new(app_on(&pg, json!({ "database_timeout_ms": 500 })).await);
    let mut known = Vec::new();
    for _ in 0..4 {
        let (id, secret) = app.standard_client().await;
        app.access_token(&id, &secret).await;
        known.push((id, secret));
    }
    let (rid, rsecret) = app.refresh_client(json!({})).await;
    let first = app
        .token(&rid, &rsecret, &[("grant_type", "client_credentials")])
        .await;
    let refresh = first["refresh_token"].as_str().unwrap().to_owned();
    let phase = Arc::new(AtomicU8::new(BEFORE));
    let stop = Arc::new(AtomicBool::new(false));

    // Continuous traffic of the known clients, throughout.
    let workers: Vec<_> = known
        .into_iter()
        .map(|(id, secret)| {
            let (app, phase, stop) = (Arc::clone(&app), Arc::clone(&phase), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let form = [("grant_type", "client_credentials")];
                    samples.push(timed(&phase, app.token_basic(&id, &secret, &form)).await);
                    // Paced: a steady stream, not a load test.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                samples
            })
        })
        .collect();
    // Requests that need the database: an unknown client, a refresh-token
    // exchange, an admin registration, in turn.
    let needy = {
        let (app, phase, stop) = (Arc::clone(&app), Arc::clone(&phase), Arc::clone(&stop));
        let (rid, rsecret, refresh) = (rid.clone(), rsecret.clone(), refresh.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut turn = 0_usize;
            while !stop.load(Ordering::SeqCst) {
                if phase.load(Ordering::SeqCst) != OUTAGE {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                let sample = match turn % 3 {
                    0 => {
                        let form = [("grant_type", "client_credentials")];
                        timed(&phase, app.token_basic("never-registered", "nope", &form)).await
                    }
                    1 => {
                        let form = [("grant_type", "refresh_token"), ("refresh_token", &refresh)];
                        timed(&phase, app.token_basic(&rid, &rsecret, &form)).await
                    }
                    _ => {
                        let body = json!({ "client_name": "during-outage", "scope": "read" });
                        let request = app.admin(Method::POST, "/admin/clients", Some(body));
                        timed(&phase, request).await
                    }
                };
                samples.push((turn % 3, sample));
                turn += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            samples
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Act: stop PostgreSQL for at least ten seconds.
    tokio::task::block_in_place(|| pg.stop());
    let outage = Instant::now();
    phase.store(OUTAGE, Ordering::SeqCst);
    let (status, body) = wait_for_readiness(&app, "degraded", Duration::from_secs(10)).await;
    assert_eq!(status, StatusCode::OK, "degraded is still ready: {body}");
    assert_eq!(body["database"], "unreachable", "{body}");
    let grace_left = body["outage_grace_remaining"].as_i64().unwrap();
    assert!((290..=300).contains(&grace_left), "{body}");
    assert_eq!(metric(&app, "portcullis_database_up").await, 0.0);
    assert_eq!(metric(&app, "portcullis_database_breaker_state").await, 2.0);
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "/healthz stays up");
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(outage.elapsed())).await;
    phase.store(RECOVERING, Ordering::SeqCst);
    let outage_seconds = outage.elapsed().as_secs_f64();
    tokio::task::block_in_place(|| pg.start_again());
    let (status, _) = wait_for_readiness(&app, "ready", Duration::from_secs(30)).await;
    assert_eq!(status, StatusCode::OK);
    phase.store(AFTER, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let mut samples = Vec::new();
    for w in workers {
        samples.extend(w.await.unwrap());
    }
    let needy = needy.await.unwrap();
    assert!(
        !app.metrics_text().await.contains("scheme=\"argon2id\""),
        "generated secrets never cost a slow hash, through the outage either"
    );

    // Assert: known clients were served through the outage.
    let during: Vec<&Sample> = samples.iter().filter(|s| s.in_phase(OUTAGE)).collect();
    let served = during.iter().filter(|s| s.status == 200).count();
    let ratio = served as f64 / during.len() as f64;
    let known_p99 = percentile(during.iter().map(|s| s.millis).collect(), 99.0);
    eprintln!(
        "outage of {outage_seconds:.1} s: known clients {served}/{} served ({:.2} %), p99 {known_p99:.1} ms",
        during.len(),
        ratio * 100.0
    );
    assert!(during.len() >= 100, "too little traffic: {}", during.len());
    assert!(ratio >= 0.99, "known clients served {ratio}");
    assert!(
        during.iter().all(|s| s.well_formed),
        "a failure that is not 503 temporarily_unavailable with Retry-After"
    );
    let after: Vec<&Sample> = samples.iter().filter(|s| s.in_phase(AFTER)).collect();
    assert!(!after.is_empty() && after.iter().all(|s| s.status == 200));

    // Assert: what needs the database failed at once, with the documented answer.
    let failing: Vec<&(usize, Sample)> = needy.iter().filter(|(_, s)| s.in_phase(OUTAGE)).collect();
    for kind in 0..3 {
        assert!(
            failing.iter().filter(|(k, _)| *k == kind).count() >= 10,
            "too few requests of kind {kind}"
        );
    }
    for (kind, s) in &failing {
        assert_eq!(s.status, 503, "request kind {kind} during the outage");
        assert!(
            s.well_formed,
            "request kind {kind}: Retry-After and temporarily_unavailable"
        );
    }
    let millis: Vec<f64> = failing.iter().map(|(_, s)| s.millis).collect();
    let (p50, p99) = (
        percentile(millis.clone(), 50.0),
        percentile(millis.clone(), 99.0),
    );
    let max = millis.iter().copied().fold(0.0, f64::max);
    let mut slowest: Vec<(usize, f64)> = failing.iter().map(|(k, s)| (*k, s.millis)).collect();
    slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
    slowest.truncate(5);
    eprintln!("slowest failing requests (kind, ms): {slowest:.1?}");
    eprintln!(
        "failing requests during the outage: {} (p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms)",
        millis.len()
    );
    // Failing fast means not waiting for the database: a request that
    // waited would take the whole 500 ms deadline. Only the requests before
    // the breaker opened may (it opens after five failures); the rest answer
    // from the open breaker in milliseconds, however loaded the machine.
    let waited = millis.iter().filter(|&&ms| ms >= 500.0).count();
    assert!(
        waited <= 5 + millis.len() / 100,
        "{waited} of {} failing requests took the database deadline (p99 {p99:.1} ms)",
        millis.len()
    );
    assert!(max <= 1000.0, "slowest failing request {max} ms");
    let degraded = metric(&app, "portcullis_tokens_issued_degraded_total").await;
    eprintln!("tokens issued from memory: {degraded}");
    assert!(degraded >= served as f64 * 0.9, "{degraded} vs {served}");

    // Assert: after recovery, the database-backed work works again.
    let (status, body) = app
        .form_post(
            "/token",
            &rid,
            &rsecret,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "refresh after recovery: {body}");
    let (id, secret) = app.standard_client().await;
    app.access_token(&id, &secret).await;
    assert_eq!(metric(&app, "portcullis_database_up").await, 1.0);
    let (status, body) = readyz(&app).await;
    assert_eq!((status, &body["status"]), (StatusCode::OK, &json!("ready")));

    // Assert: every token handed out — before, during and after the outage —
    // has its `token_issued` event in the chain, and the chain verifies.
    let handed_out: HashSet<String> = samples
        .iter()
        .chain(needy.iter().map(|(_, s)| s))
        .filter_map(|s| s.jti.clone())
        .collect();
    app.state.oauth.audit.flush().await;
    let mut recorded = HashSet::new();
    let mut after_id = 0;
    loop {
        let page = app
            .state
            .oauth
            .store
            .audit_events(&AuditFilter {
                kind: Some("token_issued".into()),
                after_id,
                limit: 1000,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after_id = last.id;
        recorded.extend(
            page.iter()
                .filter_map(|e| e.details["jti"].as_str().map(str::to_owned)),
        );
    }
    let missing = handed_out.difference(&recorded).count();
    eprintln!(
        "tokens handed out: {}, token_issued events: {}, handed out without an event: {missing}",
        handed_out.len(),
        recorded.len()
    );
    assert_eq!(missing, 0, "tokens handed out without a token_issued event");
    let report = portcullis::audit::verify_store(&app.state.oauth.store)
        .await
        .unwrap();
    assert!(report.intact, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_outage_grace_known_clients_are_refused_too() {
    // Arrange
    let pg = PgCluster::start();
    let app = app_on(
        &pg,
        json!({ "outage_grace": 60, "database_breaker_threshold": 2, "database_timeout_ms": 500 }),
    )
    .await;
    let (id, secret) = app.standard_client().await;
    app.access_token(&id, &secret).await;
    let (rid, rsecret) = app.refresh_client(json!({})).await;
    let token = app.access_token(&rid, &rsecret).await;
    tokio::task::block_in_place(|| pg.stop());
    wait_for_readiness(&app, "degraded", Duration::from_secs(15)).await;
    app.access_token(&id, &secret).await;
    // What needs the database by nature fails fast meanwhile.
    for (path, case) in [("/introspect", "introspection"), ("/revoke", "revocation")] {
        let res = app
            .http
            .post(app.url(path))
            .header("Authorization", crate::helpers::basic(&rid, &rsecret))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_unavailable(res, case).await;
    }
    let res = app
        .admin(Method::POST, "/admin/keys/rotate", Some(json!({})))
        .await;
    assert_unavailable(res, "key rotation").await;
    let res = app.admin(Method::GET, "/admin/clients", None).await;
    assert_unavailable(res, "client list").await;
    let res = app.admin(Method::GET, "/admin/audit", None).await;
    assert_unavailable(res, "audit trail").await;
    let kid = app.state.oauth.keys.current().kid().to_owned();
    assert!(
        app.jwks().await.find(&kid).is_some(),
        "the signing key stays in memory and published"
    );

    // Act: the clock passes the grace.
    app.clock.advance(chrono::Duration::seconds(61));
    let res = app
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await;

    // Assert
    assert_unavailable(res, "known client beyond the grace").await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(body["outage_grace_remaining"], 0, "{body}");
    tokio::task::block_in_place(|| pg.start_again());
    wait_for_readiness(&app, "ready", Duration::from_secs(30)).await;
    app.access_token(&id, &secret).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_outage_grace_the_server_fails_closed() {
    // Arrange
    let pg = PgCluster::start();
    let app = app_on(
        &pg,
        json!({ "outage_grace": 0, "database_breaker_threshold": 2, "database_timeout_ms": 500 }),
    )
    .await;
    let (id, secret) = app.standard_client().await;
    app.access_token(&id, &secret).await;

    // Act
    tokio::task::block_in_place(|| pg.stop());
    let (status, _) = wait_for_readiness(&app, "unavailable", Duration::from_secs(15)).await;
    let res = app
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await;

    // Assert
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_unavailable(res, "known client, no grace").await;
    tokio::task::block_in_place(|| pg.start_again());
    wait_for_readiness(&app, "ready", Duration::from_secs(30)).await;
    app.access_token(&id, &secret).await;
}
