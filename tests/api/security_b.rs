//! The public JWKS and metrics under abuse: a flood of user agents from one
//! address stays one consumer (bounded table, the safety signal keeps its
//! meaning), the JWKS is rate-limited per address, and `/metrics` neither
//! names clients by default nor reads the database per scrape.

use chrono::Duration;
use futures_util::{stream, StreamExt};
use portcullis::{
    keys::consumers::{ConsumerLimits, Sighting},
    store::Store,
};
use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{assert_error, basic, Engine, TestApp};

async fn keys(app: &TestApp) -> Value {
    let res = app.admin(Method::GET, "/admin/keys", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

async fn rotate_safely(app: &TestApp) -> reqwest::Response {
    app.admin(
        Method::POST,
        "/admin/keys/rotate",
        Some(json!({"safe": true})),
    )
    .await
}

async fn scrape(app: &TestApp) -> String {
    let res = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.text().await.unwrap()
}

async fn fetch_jwks(app: &TestApp, user_agent: &str) -> reqwest::Response {
    app.http
        .get(app.url("/.well-known/jwks.json"))
        .header("User-Agent", user_agent)
        .send()
        .await
        .unwrap()
}

#[rstest]
#[tokio::test]
async fn a_flood_of_user_agents_from_one_address_stays_one_consumer(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(
        engine,
        json!({
            "key_rotation_interval": 7200,
            "key_prepublish": 3600,
            "jwks_max_age": 300,
            "rate_limit_jwks_per_second": 0,
        }),
    )
    .await;

    // 20,000 distinct user agents from one address.
    let statuses: Vec<StatusCode> = stream::iter(0..20_000)
        .map(|i| {
            let app = &app;
            async move { fetch_jwks(app, &format!("flood/{i}")).await.status() }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));

    // The table holds one consumer for that address, not 20,000.
    let listed = keys(&app).await;
    assert_eq!(listed["consumers_seen_last_day"], 1, "{listed}");
    let stored = app
        .state
        .oauth
        .store
        .jwks_consumers_since(app.clock.now() - Duration::days(30))
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        (stored[0].address.as_str(), stored[0].user_agent.as_str()),
        ("127.0.0.1", "*")
    );

    // A scrape reads the figures from memory: consumers written to the store
    // behind the server's back show only after the next key check.
    assert!(scrape(&app)
        .await
        .contains("portcullis_jwks_consumers_seen 1\n"));
    let now = app.clock.now();
    let others: Vec<Sighting> = (1..=3)
        .map(|i| Sighting {
            address: format!("198.51.100.{i}"),
            group: format!("198.51.100.{i}"),
            user_agent: "envoy".into(),
            etag: stored[0].etag.clone(),
            kids: stored[0].kids.clone(),
            // Old enough to leave the 24-hour window before the rotations below.
            seen_at: now - Duration::hours(23),
        })
        .collect();
    app.state
        .oauth
        .store
        .record_jwks_consumers(
            &others,
            now - Duration::days(7),
            ConsumerLimits {
                per_address: 16,
                total: 10_000,
            },
        )
        .await
        .unwrap();
    for _ in 0..3 {
        let metrics = scrape(&app).await;
        assert!(
            metrics.contains("portcullis_jwks_consumers_seen 1\n"),
            "{metrics}"
        );
    }
    app.state.key_manager.tick(now).await.unwrap();
    assert!(scrape(&app)
        .await
        .contains("portcullis_jwks_consumers_seen 4\n"));

    // The safety signal: once the next key is old enough the rotation is safe.
    app.clock.advance(Duration::seconds(3600));
    assert_eq!(rotate_safely(&app).await.status(), StatusCode::OK);

    // A new next key appears; the flooding address counts as one consumer
    // that has not fetched it yet (not thousands) ...
    app.clock.advance(Duration::seconds(3600));
    let listed = keys(&app).await;
    let lagging = listed["consumers_missing_next_key"].as_array().unwrap();
    assert_eq!(lagging.len(), 1, "{listed}");
    assert_eq!(lagging[0]["address"], "127.0.0.1");
    assert_eq!(lagging[0]["user_agent"], "*");

    // ... whose state is its latest fetch: when the verifier on that address
    // refreshes, the flood no longer blocks a safe rotation.
    assert_eq!(
        fetch_jwks(&app, "envoy/1.31").await.status(),
        StatusCode::OK
    );
    let res = rotate_safely(&app).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    let stored = app
        .state
        .oauth
        .store
        .jwks_consumers_since(app.clock.now() - Duration::days(30))
        .await
        .unwrap();
    assert!(stored.len() <= 4, "{stored:?}");
}

#[rstest]
#[tokio::test]
async fn the_jwks_is_rate_limited_per_address(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(
        engine,
        json!({"rate_limit_jwks_per_second": 1, "rate_limit_jwks_burst": 2}),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(fetch_jwks(&app, "envoy").await.status(), StatusCode::OK);
    }
    let res = fetch_jwks(&app, "envoy").await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let body = assert_error(
        res,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "third JWKS request",
    )
    .await;
    assert!(body["error_description"].as_str().unwrap().contains("jwks"));
    app.clock.advance(Duration::seconds(1));
    assert_eq!(fetch_jwks(&app, "envoy").await.status(), StatusCode::OK);
    assert!(scrape(&app)
        .await
        .contains("portcullis_rate_limited_total{limit=\"jwks\"} 1\n"));
}

#[rstest]
#[tokio::test]
async fn metrics_name_clients_only_when_asked(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
    #[values(false, true)] client_labels: bool,
) {
    // The default, or the opt-in.
    let settings = if client_labels {
        json!({"metrics_client_labels": true})
    } else {
        json!({})
    };
    let app = TestApp::spawn_with(engine, settings).await;
    let c = app
        .register_client(json!({
            "allowed_audiences": ["https://a.example"],
            "token_quota_per_hour": 5,
        }))
        .await;
    let (id, secret) = (
        c["client_id"].as_str().unwrap(),
        c["client_secret"].as_str().unwrap(),
    );
    for _ in 0..2 {
        let res = app
            .http
            .post(app.url("/token"))
            .header("Authorization", basic(id, secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let metrics = scrape(&app).await;
    if client_labels {
        assert!(
            metrics.contains(&format!(
                "portcullis_client_tokens_in_quota_window{{client_id=\"{id}\",period=\"hour\"}} 2\n"
            )),
            "{metrics}"
        );
    } else {
        assert!(!metrics.contains("client_id"), "{metrics}");
        assert!(!metrics.contains(id), "{metrics}");
        assert!(
            metrics.contains("portcullis_client_tokens_in_quota_window{period=\"hour\"} 2\n"),
            "{metrics}"
        );
    }
}

#[rstest]
#[tokio::test]
async fn the_store_bounds_consumers_per_address_and_in_total(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let store = &app.state.oauth.store;
    let now = app.clock.now();
    let limits = ConsumerLimits {
        per_address: 3,
        total: 5,
    };
    let sighting = |address: &str, group: &str, ua: &str, kids: &str, secs: i64| Sighting {
        address: address.into(),
        group: group.into(),
        user_agent: ua.into(),
        etag: format!("\"{kids}\""),
        kids: kids.into(),
        seen_at: now + Duration::seconds(secs),
    };
    let week_ago = now - Duration::days(7);
    let all = || store.jwks_consumers_since(now - Duration::days(1));

    // Flushes from different replicas each stay within the per-address share;
    // together they exceed it, and the group folds into its latest fetch.
    let group = "2001:db8:0:1::/64";
    for flush in 0..3 {
        let batch: Vec<Sighting> = (0..3)
            .map(|i| {
                let address = format!("2001:db8:0:1::{flush}{i}");
                sighting(&address, group, "envoy", "k1", flush)
            })
            .collect();
        store
            .record_jwks_consumers(&batch, week_ago, limits)
            .await
            .unwrap();
    }
    let seen = all().await.unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].address.as_str(), seen[0].user_agent.as_str()),
        (group, "*")
    );
    assert_eq!(seen[0].seen_at, now + Duration::seconds(2));
    // A later fetch by any address of the group updates the folded consumer.
    let refetch = sighting("2001:db8:0:1::99", group, "curl", "k1 k2", 10);
    store
        .record_jwks_consumers(&[refetch], week_ago, limits)
        .await
        .unwrap();
    let seen = all().await.unwrap();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].has_kid("k2"));

    // New consumers stop at the total; known ones are still updated.
    let batch: Vec<Sighting> = (1..=10)
        .map(|i| {
            let address = format!("192.0.2.{i}");
            sighting(&address, &address, "envoy", "k1", 1)
        })
        .collect();
    let refused = store
        .record_jwks_consumers(&batch, week_ago, limits)
        .await
        .unwrap();
    assert_eq!((all().await.unwrap().len(), refused), (5, 6));
    let known = sighting("192.0.2.1", "192.0.2.1", "envoy", "k1 k2", 20);
    let refused = store
        .record_jwks_consumers(&[known], week_ago, limits)
        .await
        .unwrap();
    assert_eq!(refused, 0);
    assert!(all()
        .await
        .unwrap()
        .iter()
        .any(|s| s.address == "192.0.2.1" && s.has_kid("k2")));
}
