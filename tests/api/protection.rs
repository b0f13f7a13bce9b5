//! Rate limits, quotas, lockout, request limits, request ids and metrics.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration as StdDuration,
};

use chrono::Duration;
use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{assert_error, basic, Engine, TestApp};

const CC: [(&str, &str); 1] = [("grant_type", "client_credentials")];

async fn token_status(
    app: &TestApp,
    id: &str,
    secret: &str,
    xff: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .http
        .post(app.url("/token"))
        .header("Authorization", basic(id, secret))
        .form(&CC);
    if let Some(x) = xff {
        req = req.header("X-Forwarded-For", x);
    }
    req.send().await.unwrap()
}

async fn assert_limited(res: reqwest::Response, why: &str) -> u64 {
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "{why}: Retry-After");
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited", why).await;
    retry
}

#[rstest]
#[tokio::test]
async fn the_per_address_limit_answers_429_and_recovers_after_the_period(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(
        engine,
        json!({"rate_limit_ip_per_second": 1, "rate_limit_ip_burst": 2}),
    )
    .await;
    let (id, secret) = app.standard_client().await;

    assert_eq!(
        token_status(&app, &id, &secret, None).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        token_status(&app, &id, &secret, None).await.status(),
        StatusCode::OK
    );
    assert_limited(
        token_status(&app, &id, &secret, None).await,
        "third request",
    )
    .await;
    let res = app
        .http
        .post(app.url("/introspect"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_limited(res, "introspection shares the address limit").await;

    app.clock.advance(Duration::seconds(1));
    assert_eq!(
        token_status(&app, &id, &secret, None).await.status(),
        StatusCode::OK
    );
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("portcullis_rate_limited_total{limit=\"ip\"} 2"),
        "{metrics}"
    );
}

#[rstest]
#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_trusted_proxies(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let limits = json!({"rate_limit_ip_per_second": 1, "rate_limit_ip_burst": 1});
    let mut trusted = limits.clone();
    trusted["trusted_proxies"] = json!(["127.0.0.0/8"]);
    let behind_proxy = TestApp::spawn_with(engine, trusted).await;
    let (id, secret) = behind_proxy.standard_client().await;
    assert_eq!(
        token_status(&behind_proxy, &id, &secret, Some("203.0.113.1"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        token_status(&behind_proxy, &id, &secret, Some("203.0.113.2, 127.0.0.1"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_limited(
        token_status(&behind_proxy, &id, &secret, Some("203.0.113.1")).await,
        "same forwarded client",
    )
    .await;

    let direct = TestApp::spawn_with(engine, limits).await;
    let (id, secret) = direct.standard_client().await;
    assert_eq!(
        token_status(&direct, &id, &secret, Some("203.0.113.1"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_limited(
        token_status(&direct, &id, &secret, Some("203.0.113.9")).await,
        "spoofed header ignored",
    )
    .await;
}

#[rstest]
#[tokio::test]
async fn clients_are_limited_by_the_default_or_their_own_rate(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(
        engine,
        json!({"rate_limit_client_per_second": 1, "rate_limit_client_burst": 1}),
    )
    .await;
    let (id, secret) = app.standard_client().await;
    let fast = app
        .register_client(json!({"allowed_audiences": ["https://a.example"], "rate_limit_per_second": 3, "rate_limit_burst": 3}))
        .await;
    let (fast_id, fast_secret) = (
        fast["client_id"].as_str().unwrap(),
        fast["client_secret"].as_str().unwrap(),
    );

    assert_eq!(
        token_status(&app, &id, &secret, None).await.status(),
        StatusCode::OK
    );
    assert_limited(
        token_status(&app, &id, &secret, None).await,
        "default client rate",
    )
    .await;
    for _ in 0..3 {
        assert_eq!(
            token_status(&app, fast_id, fast_secret, None)
                .await
                .status(),
            StatusCode::OK
        );
    }
    assert_limited(
        token_status(&app, fast_id, fast_secret, None).await,
        "own rate",
    )
    .await;
    // Wrong secrets for a client id never use up the client's rate (the
    // per-address limit is what slows them), and unknown ids get 401.
    app.clock.advance(Duration::seconds(1));
    for _ in 0..5 {
        assert_eq!(
            token_status(&app, &id, "wrong", None).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            token_status(&app, "ghost", "x", None).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        token_status(&app, &id, &secret, None).await.status(),
        StatusCode::OK
    );
}

#[rstest]
#[tokio::test]
async fn the_daily_token_quota_holds_until_the_next_utc_day(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: the server's default is 2 tokens a day; one client has its own 3.
    let app = TestApp::spawn_with(engine, json!({"token_quota_per_day": 2})).await;
    let (id, secret) = app.standard_client().await;
    let own = app
        .register_client(
            json!({"allowed_audiences": ["https://a.example"], "token_quota_per_day": 3}),
        )
        .await;
    let (own_id, own_secret) = (
        own["client_id"].as_str().unwrap().to_owned(),
        own["client_secret"].as_str().unwrap().to_owned(),
    );
    // Start the day at 01:00 UTC, so the hours below stay within it.
    let now = app.clock.now();
    let day = now.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    app.clock
        .advance(day + Duration::days(1) + Duration::hours(1) - now);

    // Act and assert
    for (client, secret, quota) in [(&id, &secret, 2), (&own_id, &own_secret, 3)] {
        for i in 0..quota {
            let res = token_status(&app, client, secret, None).await;
            assert_eq!(res.status(), StatusCode::OK, "token {i} of {quota}");
        }
        let retry = assert_limited(
            token_status(&app, client, secret, None).await,
            "daily quota",
        )
        .await;
        assert_eq!(retry, 23 * 3600, "Retry-After: until the next UTC day");
    }
    // Hours later the same day: still refused (no hourly quota hides it).
    app.clock
        .advance(Duration::hours(22) + Duration::minutes(59));
    assert_limited(token_status(&app, &id, &secret, None).await, "same day").await;
    // The next UTC day: a fresh quota.
    app.clock.advance(Duration::minutes(1));
    for (client, secret) in [(&id, &secret), (&own_id, &own_secret)] {
        assert_eq!(
            token_status(&app, client, secret, None).await.status(),
            StatusCode::OK,
            "a new day"
        );
    }
}

#[rstest]
#[tokio::test]
async fn token_quotas_hold_per_hour_across_replicas(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let a = TestApp::spawn_with(engine, json!({"metrics_client_labels": true})).await;
    let c = a
        .register_client(
            json!({"allowed_audiences": ["https://a.example"], "token_quota_per_hour": 3}),
        )
        .await;
    let (id, secret) = (
        c["client_id"].as_str().unwrap().to_owned(),
        c["client_secret"].as_str().unwrap().to_owned(),
    );
    let b = a.replica(json!({})).await;

    assert_eq!(
        token_status(&a, &id, &secret, None).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        token_status(&a, &id, &secret, None).await.status(),
        StatusCode::OK
    );
    portcullis::maintenance::fast_tick(a.state.oauth.clone()).await;
    // Replica B reads the shared count before its first token for the client.
    assert_eq!(
        token_status(&b, &id, &secret, None).await.status(),
        StatusCode::OK
    );
    let retry = assert_limited(
        token_status(&b, &id, &secret, None).await,
        "hourly quota on B",
    )
    .await;
    portcullis::maintenance::fast_tick(b.state.oauth.clone()).await;
    portcullis::maintenance::fast_tick(a.state.oauth.clone()).await;
    assert_limited(
        token_status(&a, &id, &secret, None).await,
        "hourly quota on A",
    )
    .await;
    assert!(retry <= 3600);

    let shown: Value = a
        .admin(Method::GET, &format!("/admin/clients/{id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["token_quota_per_hour"], 3);
    let metrics = a
        .http
        .get(a.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "portcullis_client_tokens_in_quota_window{{client_id=\"{id}\",period=\"hour\"}} 3"
        )),
        "{metrics}"
    );

    a.clock
        .advance(Duration::seconds(i64::try_from(retry).unwrap()));
    assert_eq!(
        token_status(&a, &id, &secret, None).await.status(),
        StatusCode::OK,
        "the next hour"
    );
}

#[rstest]
#[tokio::test]
async fn unknown_and_known_client_ids_cost_the_same_hash_work_to_reject(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Counted rather than timed: a wall-clock comparison is noise on a loaded
    // machine. Each rejection runs exactly one SHA-256 check, whether the
    // client exists (its generated secret's hash) or not (the dummy hash).
    let app = TestApp::spawn(engine).await;
    let (id, _) = app.standard_client().await;
    let verifications = |text: String| -> f64 {
        text.lines()
            .find_map(|l| {
                l.strip_prefix("portcullis_secret_verifications_total{scheme=\"sha256\"} ")
            })
            // No sample before the first check.
            .map_or(0.0, |v| v.parse().unwrap())
    };
    let mut seen = verifications(app.metrics_text().await);
    for client in [id.as_str(), "no-such-client", id.as_str(), "no-such-client"] {
        let res = token_status(&app, client, "wrong", None).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{client}");
        let now = verifications(app.metrics_text().await);
        assert_eq!(now - seen, 1.0, "one hash check for {client}");
        seen = now;
    }
}

#[rstest]
#[tokio::test]
async fn failed_authentications_are_answered_after_the_delay_without_holding_up_others(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    const DELAY: StdDuration = StdDuration::from_millis(1500);
    let app = TestApp::spawn_with(engine, json!({ "auth_failure_delay_ms": 1500 })).await;
    let (id, secret) = app.standard_client().await;
    let token = app.access_token(&id, &secret).await;
    // Wrong secrets for a known and an unknown client, on every endpoint
    // that authenticates clients, started together with one right secret.
    let failures: Vec<_> = [
        (
            "/token",
            id.clone(),
            vec![("grant_type", "client_credentials")],
        ),
        (
            "/token",
            "no-such-client".to_owned(),
            vec![("grant_type", "client_credentials")],
        ),
        ("/introspect", id.clone(), vec![("token", token.as_str())]),
        ("/revoke", id.clone(), vec![("token", token.as_str())]),
    ]
    .into_iter()
    .map(|(path, client, form)| {
        let req = app
            .http
            .post(app.url(path))
            .header("Authorization", basic(&client, "wrong-secret"))
            .form(&form);
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let res = req.send().await.unwrap();
            (path, started.elapsed(), res)
        })
    })
    .collect();
    let right = token_status(&app, &id, &secret, None).await;
    assert_eq!(right.status(), StatusCode::OK);
    assert!(
        failures.iter().all(|f| !f.is_finished()),
        "the right secret is answered while the failures still wait"
    );
    for failure in failures {
        let (path, took, res) = failure.await.unwrap();
        assert!(took >= DELAY, "{path}: answered after {took:?}");
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_client", path).await;
    }
    // The failed revocation left the token active.
    let rs = app
        .register_client(json!({
            "allowed_audiences": ["https://api.example.com"],
            "allow_introspection": true,
        }))
        .await;
    let (rs_id, rs_secret) = (
        rs["client_id"].as_str().unwrap(),
        rs["client_secret"].as_str().unwrap(),
    );
    assert_eq!(
        app.introspect(rs_id, rs_secret, &token).await["active"],
        true
    );
}

fn raw_request(port: u16, request: &[u8], wait: StdDuration) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(StdDuration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    std::thread::sleep(wait);
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

#[rstest]
#[tokio::test]
async fn oversized_headers_and_slow_clients_get_a_4xx_not_a_hang(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(engine, json!({"request_timeout": 1})).await;
    let port: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();

    let many: String = (0..200).map(|i| format!("X-Filler-{i}: {i}\r\n")).collect();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n");
    let answer = tokio::task::spawn_blocking(move || {
        raw_request(port, request.as_bytes(), StdDuration::ZERO)
    })
    .await
    .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 431") || answer.starts_with("HTTP/1.1 400"),
        "too many headers: {answer}"
    );

    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(20_000)
    );
    let answer =
        tokio::task::spawn_blocking(move || raw_request(port, huge.as_bytes(), StdDuration::ZERO))
            .await
            .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "oversized header: {answer:.80}"
    );
    assert!(answer.contains("\"error\":\"invalid_request\""), "{answer}");

    // A client that stops in the middle of its request head is answered 408 and
    // dropped (the reader gives up after 10 s, so a hang leaves no answer).
    let answer = tokio::task::spawn_blocking(move || {
        raw_request(
            port,
            b"POST /token HTTP/1.1\r\nHost: x\r\n",
            StdDuration::ZERO,
        )
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "slow client: {answer}");
}

#[rstest]
#[tokio::test]
async fn request_ids_are_accepted_or_generated_echoed_and_audited(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;
    let res = app
        .http
        .post(app.url("/token"))
        .header("Authorization", basic(&id, &secret))
        .header("X-Request-Id", "trace-abc-123")
        .form(&CC)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-abc-123");
    let generated = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert!(uuid::Uuid::parse_str(generated.headers()["x-request-id"].to_str().unwrap()).is_ok());
    let bad = app
        .http
        .get(app.url("/healthz"))
        .header("X-Request-Id", "x".repeat(200))
        .send()
        .await
        .unwrap();
    assert_ne!(
        bad.headers()["x-request-id"].to_str().unwrap().len(),
        200,
        "an oversized id is replaced"
    );

    let events: Value = app
        .admin(Method::GET, "/admin/audit?kind=token_issued", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["events"][0]["request_id"], "trace-abc-123");
}

/// Parses Prometheus text: every sample line is `name{labels} value`.
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("malformed sample line {l:?}"));
            (
                name.to_owned(),
                value
                    .parse::<f64>()
                    .unwrap_or_else(|_| panic!("bad value in {l:?}")),
            )
        })
        .collect()
}

#[rstest]
#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_count_what_happened(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;
    for _ in 0..3 {
        token_status(&app, &id, &secret, None).await;
    }
    token_status(&app, &id, "wrong", None).await;

    let res = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = res.text().await.unwrap();
    assert!(text.trim_end().ends_with("# EOF"));
    let samples = samples(&text);
    let value = |name: &str| {
        samples
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
    };
    assert_eq!(
        value("portcullis_tokens_issued_total{grant=\"client_credentials\"}"),
        3.0
    );
    assert_eq!(
        value("portcullis_tokens_denied_total{reason=\"invalid_client\"}"),
        1.0
    );
    assert_eq!(
        value("portcullis_http_requests_total{endpoint=\"/token\",method=\"POST\",status=\"200\"}"),
        3.0
    );
    assert_eq!(
        value("portcullis_http_request_duration_seconds_count{endpoint=\"/token\"}"),
        4.0
    );
    assert_eq!(value("portcullis_signing_keys{state=\"current\"}"), 1.0);
    assert!(value("portcullis_db_pool_connections{state=\"open\"}") >= 1.0);
    // Generated secrets: one SHA-256 check per request, never a slow hash.
    assert_eq!(
        value("portcullis_secret_verifications_total{scheme=\"sha256\"}"),
        4.0
    );
    assert!(!text.contains("scheme=\"argon2id\""), "{text}");
}

#[rstest]
#[tokio::test]
async fn the_admin_api_can_live_on_its_own_listener(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(engine, json!({"admin_listen": "127.0.0.1:0"})).await;
    let admin_base = format!("http://127.0.0.1:{}", app.admin_port.unwrap());
    let res = app
        .http
        .get(app.url("/admin/clients"))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_error(
        res,
        StatusCode::NOT_FOUND,
        "not_found",
        "admin route on the public listener",
    )
    .await;
    assert_eq!(
        app.http
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    let res = app
        .http
        .get(format!("{admin_base}/admin/clients"))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        app.http
            .get(format!("{admin_base}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.http
            .get(format!("{admin_base}/token"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.http
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[rstest]
#[tokio::test]
async fn the_admin_api_is_rate_limited_per_address(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(
        engine,
        json!({"rate_limit_admin_per_second": 1, "rate_limit_admin_burst": 2}),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(
            app.admin(Method::GET, "/admin/clients", None)
                .await
                .status(),
            StatusCode::OK
        );
    }
    assert_limited(
        app.admin(Method::GET, "/admin/clients", None).await,
        "admin",
    )
    .await;
}
