//! The signing-key lifecycle over HTTP: scheduled and manual rotation seen by
//! a verifier that caches the JWKS exactly as `Cache-Control` allows,
//! retention, replicas, algorithms, and the rotation safety signal.

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{jwk::JwkSet, DecodingKey, Validation};
use portcullis::store::Store;
use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{assert_error, Engine, TestApp};

/// Lifecycle settings compressed to hours so a test can run many rotations.
fn fast_rotation() -> Value {
    json!({
        "key_rotation_interval": 7200,
        "key_prepublish": 3600,
        "jwks_max_age": 300,
        "access_token_ttl": 300,
        "max_access_token_ttl": 600,
        "clock_skew": 60,
        "key_refresh_interval": 0,
    })
}

/// A resource server's verifier: it refetches the JWKS only when its cached
/// copy is `max-age` old (the `Cache-Control` the server sent), and never on an
/// unknown `kid` (as Envoy and Istio behave).
struct CachingVerifier {
    /// The cached set, when it was fetched, and its `max-age`.
    jwks: Option<(JwkSet, DateTime<Utc>, i64)>,
    fetches: usize,
}

impl CachingVerifier {
    fn new() -> Self {
        Self {
            jwks: None,
            fetches: 0,
        }
    }

    /// When the cached set was fetched.
    fn fetched_at(&self) -> Option<DateTime<Utc>> {
        self.jwks.as_ref().map(|(_, at, _)| *at)
    }

    async fn verify(
        &mut self,
        app: &TestApp,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, String> {
        let stale = self
            .jwks
            .as_ref()
            .is_none_or(|(_, at, max_age)| (now - *at).num_seconds() >= *max_age);
        if stale {
            let res = app
                .http
                .get(app.url("/.well-known/jwks.json"))
                .send()
                .await
                .unwrap();
            let max_age = res.headers()["cache-control"]
                .to_str()
                .unwrap()
                .split("max-age=")
                .nth(1)
                .and_then(|v| v.parse::<i64>().ok())
                .expect("max-age");
            self.jwks = Some((res.json().await.unwrap(), now, max_age));
            self.fetches += 1;
        }
        let (jwks, _, _) = self.jwks.as_ref().unwrap();
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        let kid = header.kid.ok_or("no kid")?;
        let jwk = jwks
            .find(&kid)
            .ok_or_else(|| format!("kid {kid} not in the cached JWKS"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
        let mut validation = Validation::new(header.alg);
        // Time claims are checked against the simulated clock below.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| e.to_string())?
            .claims;
        let (nbf, exp) = (
            claims["nbf"].as_i64().unwrap(),
            claims["exp"].as_i64().unwrap(),
        );
        if now.timestamp() < nbf || now.timestamp() >= exp {
            return Err("outside its validity".into());
        }
        Ok(claims)
    }
}

/// A simulation of one token client and one caching verifier in steps of
/// [`STEP`] seconds of the manual clock: the scheduled key check runs, a
/// token is issued, and every token issued so far that has not expired is
/// verified against the verifier's cached JWKS.
struct Simulation {
    verifier: CachingVerifier,
    /// Tokens not yet expired, with their expiry (Unix seconds).
    live: Vec<(String, i64)>,
    /// Each signing key in the order it started signing, with the time of its
    /// first token.
    signing: Vec<(String, DateTime<Utc>)>,
    /// Tokens of a newly signing key verified against a JWKS cached before
    /// that key started signing: the case the pre-publication rule is for.
    verified_across_rotation: usize,
    verified: usize,
    failures: Vec<String>,
}

/// Not a divisor of `jwks_max_age` (300 s), so the verifier's cache ages
/// differ from one rotation to the next.
const STEP: i64 = 70;

impl Simulation {
    fn new() -> Self {
        Self {
            verifier: CachingVerifier::new(),
            live: Vec::new(),
            signing: Vec::new(),
            verified_across_rotation: 0,
            verified: 0,
            failures: Vec::new(),
        }
    }

    async fn step(&mut self, app: &TestApp, id: &str, secret: &str) {
        let now = app.clock.now();
        app.state.key_manager.tick(now).await.unwrap();
        let token = app.access_token(id, secret).await;
        let kid = kid_of(&token);
        if self.signing.last().is_none_or(|(k, _)| *k != kid) {
            self.signing.push((kid, now));
        }
        self.live.push((token, now.timestamp() + 300));
        self.live.retain(|(_, exp)| *exp > now.timestamp());
        for (token, _) in &self.live {
            let started = self
                .signing
                .iter()
                .find(|(k, _)| *k == kid_of(token))
                .map(|(_, at)| *at);
            match self.verifier.verify(app, token, now).await {
                Ok(_) => {
                    self.verified += 1;
                    if self.signing.len() > 1 && self.verifier.fetched_at() < started {
                        self.verified_across_rotation += 1;
                    }
                }
                Err(e) => self.failures.push(format!("{now}: {e}")),
            }
        }
        app.clock.advance(Duration::seconds(STEP));
    }
}

async fn keys(app: &TestApp) -> Value {
    let res = app.admin(Method::GET, "/admin/keys", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

async fn rotate(app: &TestApp, body: Value) -> reqwest::Response {
    app.admin(Method::POST, "/admin/keys/rotate", Some(body))
        .await
}

fn kid_in(keys: &Value, state: &str) -> String {
    keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == state)
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[rstest]
#[tokio::test]
async fn tokens_keep_verifying_across_scheduled_and_manual_rotations(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange
    let app = TestApp::spawn_with(engine, fast_rotation()).await;
    let (id, secret) = app.standard_client().await;
    let mut sim = Simulation::new();
    let steps = 10 * 3600 / STEP;
    let mut manual = 0;

    // Act: 10 simulated hours: scheduled rotations every 2 hours, and a manual
    // one in the 4th and 8th hour, once the next key is old enough.
    for step in 0..steps {
        if [4 * 3600 / STEP, 8 * 3600 / STEP].contains(&step) {
            let res = rotate(&app, json!({"safe": true})).await;
            assert_eq!(
                res.status(),
                StatusCode::OK,
                "manual rotation at step {step}: {}",
                res.text().await.unwrap()
            );
            manual += 1;
        }
        sim.step(&app, &id, &secret).await;
    }

    // Assert
    assert!(
        sim.failures.is_empty(),
        "verification failures: {:?}",
        sim.failures
    );
    assert_eq!(manual, 2);
    assert!(
        sim.signing.len() >= 5,
        "at least four rotations, got {:?}",
        sim.signing
    );
    // The verifier cached: it fetched once per max-age (300 s = 5 steps of 70 s).
    assert_eq!(
        sim.verifier.fetches,
        usize::try_from((steps + 4) / 5).unwrap()
    );
    assert!(
        sim.verified_across_rotation >= 3,
        "new keys' tokens verified against a JWKS cached before they signed ({} of {} tokens)",
        sim.verified_across_rotation,
        sim.verified
    );
}

#[rstest]
#[tokio::test]
async fn a_next_key_published_late_signs_only_after_key_prepublish(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: the current key is due to rotate at 7200 s; at 7070 s a restart
    // with a new algorithm publishes a new next key, 130 s before the rotation
    // would be due by the interval alone.
    let es256 = TestApp::spawn_with(engine, fast_rotation()).await;
    let start = es256.clock.now();
    let (id, secret) = es256.standard_client().await;
    let mut sim = Simulation::new();
    let restart_step = 7070 / STEP;
    for _ in 0..restart_step {
        sim.step(&es256, &id, &secret).await;
    }
    let mut eddsa = fast_rotation();
    eddsa["signing_alg"] = json!("EdDSA");
    let app = es256.replica(eddsa).await;
    let published = app.clock.now();
    assert_eq!(published - start, Duration::seconds(7070));

    // Act: three more simulated hours on the restarted server.
    for _ in 0..3 * 3600 / STEP {
        sim.step(&app, &id, &secret).await;
    }

    // Assert: the new key signed only once published for key_prepublish
    // (3600 s), so no verifier with a cached JWKS ever missed it.
    assert!(
        sim.failures.is_empty(),
        "verification failures: {:?}",
        sim.failures
    );
    let (kid, first) = sim.signing.last().unwrap().clone();
    assert_eq!(kid, kid_in(&keys(&app).await, "current"));
    assert_eq!(
        jsonwebtoken::decode_header(&app.access_token(&id, &secret).await)
            .unwrap()
            .alg,
        jsonwebtoken::Algorithm::EdDSA
    );
    assert_eq!(sim.signing.len(), 2, "{:?}", sim.signing);
    assert!(
        first >= published + Duration::seconds(3600)
            && first < published + Duration::seconds(3600 + STEP),
        "the EdDSA key signs from the first check after {}, not at {first}",
        published + Duration::seconds(3600)
    );
}

#[rstest]
#[tokio::test]
async fn retired_keys_disappear_with_their_private_material_after_retention(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(engine, fast_rotation()).await;
    let before = keys(&app).await;
    let old = kid_in(&before, "current");

    app.clock.advance(Duration::seconds(3600));
    let res = rotate(&app, json!({})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["rotated"], true);
    assert_eq!(report["current"], kid_in(&before, "next"));
    assert_eq!(report["warnings"], json!([]));

    // Retired: still published, private part already destroyed.
    let stored = app.state.oauth.store.signing_keys().await.unwrap();
    let retired = stored.iter().find(|k| k.kid == old).unwrap();
    assert!(retired.sealed_private_key.is_none() && retired.kek_id.is_none());
    let jwks = app.get_json("/.well-known/jwks.json").await;
    assert!(jwks.to_string().contains(&old));
    let listed = keys(&app).await;
    let entry = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == old.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["state"], "retired");
    assert!(entry["removal_at"].is_string());

    // After max token lifetime + skew (600 + 60 s) it is gone everywhere.
    app.clock.advance(Duration::seconds(659));
    app.state.key_manager.tick(app.clock.now()).await.unwrap();
    assert!(
        app.get_json("/.well-known/jwks.json")
            .await
            .to_string()
            .contains(&old),
        "not before"
    );
    app.clock.advance(Duration::seconds(1));
    app.state.key_manager.tick(app.clock.now()).await.unwrap();
    assert!(!app
        .get_json("/.well-known/jwks.json")
        .await
        .to_string()
        .contains(&old));
    assert!(app
        .state
        .oauth
        .store
        .signing_keys()
        .await
        .unwrap()
        .iter()
        .all(|k| k.kid != old));
}

#[rstest]
#[tokio::test]
async fn two_replicas_due_at_the_same_moment_create_exactly_one_key(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let a = TestApp::spawn_with(engine, fast_rotation()).await;
    let b = a.replica(fast_rotation()).await;
    assert_eq!(
        a.state.oauth.store.signing_keys().await.unwrap().len(),
        2,
        "the second start adds nothing"
    );

    let due = a.clock.now() + Duration::seconds(7200);
    let (ra, rb) = tokio::join!(a.state.key_manager.tick(due), b.state.key_manager.tick(due));
    ra.unwrap();
    rb.unwrap();

    let stored = a.state.oauth.store.signing_keys().await.unwrap();
    let count = |s: &str| stored.iter().filter(|k| k.state.as_str() == s).count();
    assert_eq!(
        (count("retired"), count("current"), count("next")),
        (1, 1, 1),
        "{stored:?}"
    );
    assert_eq!(
        a.state.oauth.keys.current().kid(),
        b.state.oauth.keys.current().kid(),
        "both replicas sign with the new key"
    );
}

#[rstest]
#[tokio::test]
async fn a_replica_picks_up_another_replicas_rotation_at_its_next_key_check(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let a = TestApp::spawn_with(engine, fast_rotation()).await;
    let mut settings = fast_rotation();
    settings["key_refresh_interval"] = json!(1);
    let b = a.replica(settings).await;
    let (id, secret) = a.standard_client().await;

    a.clock.advance(Duration::seconds(3600));
    assert_eq!(rotate(&a, json!({})).await.status(), StatusCode::OK);
    let new_kid = a.state.oauth.keys.current().kid().to_owned();

    // B keeps signing with the old (still published) key until its next check
    // (every second). No timing is asserted: the 30 s bound only stops a
    // broken build from hanging.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while b.state.oauth.keys.current().kid() != new_kid {
        assert!(
            std::time::Instant::now() < deadline,
            "replica B did not pick up the rotation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(kid_of(&b.access_token(&id, &secret).await), new_kid);
}

#[rstest]
#[tokio::test]
async fn the_safety_signal_names_consumers_that_have_not_fetched_the_next_key(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(engine, fast_rotation()).await;
    let fetch = |ua: &'static str| {
        app.http
            .get(app.url("/.well-known/jwks.json"))
            .header("User-Agent", ua)
            .send()
    };

    // A next key published for less than key_prepublish: a safe rotation is refused.
    let res = rotate(&app, json!({"safe": true})).await;
    let body = assert_error(
        res,
        StatusCode::CONFLICT,
        "rotation_unsafe",
        "young next key",
    )
    .await;
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("key_prepublish"));

    // Envoy fetches the JWKS (it holds the next key); the rotation is safe.
    fetch("envoy/1.31").await.unwrap();
    app.clock.advance(Duration::seconds(3600));
    assert_eq!(
        rotate(&app, json!({"safe": true})).await.status(),
        StatusCode::OK
    );

    // A new next key is published; Envoy has not fetched it. Once it is old enough,
    // a safe rotation is refused and says who would break.
    app.clock.advance(Duration::seconds(3600));
    let listed = keys(&app).await;
    assert_eq!(listed["consumers_seen_last_day"], 1);
    assert_eq!(
        listed["consumers_missing_next_key"][0]["user_agent"],
        "envoy/1.31"
    );
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("portcullis_jwks_consumers_missing_next_key 1"),
        "{metrics}"
    );
    let res = rotate(&app, json!({"safe": true})).await;
    let body = assert_error(
        res,
        StatusCode::CONFLICT,
        "rotation_unsafe",
        "lagging consumer",
    )
    .await;
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("envoy/1.31"));

    // Without `safe` it proceeds, with the same warning in the report.
    let etag_holder = fetch("envoy/1.31").await.unwrap();
    assert_eq!(etag_holder.status(), StatusCode::OK);
    let res = rotate(&app, json!({"safe": true})).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "after envoy refreshed, the rotation is safe"
    );
    app.clock.advance(Duration::seconds(3600));
    let report: Value = rotate(&app, json!({})).await.json().await.unwrap();
    assert_eq!(report["rotated"], true);
    assert!(
        report["warnings"][0]
            .as_str()
            .unwrap()
            .contains("envoy/1.31"),
        "{report}"
    );

    for (body, why) in [
        (json!({"bogus": true}), "unknown member"),
        (json!({"safe": "yes"}), "wrong type"),
    ] {
        assert_error(
            rotate(&app, body).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            why,
        )
        .await;
    }
    let res = app
        .http
        .post(app.url("/admin/keys/rotate"))
        .send()
        .await
        .unwrap();
    assert_error(
        res,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "no admin token",
    )
    .await;
}

#[rstest]
#[tokio::test]
async fn a_compromised_key_leaves_the_jwks_at_once(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(engine, fast_rotation()).await;
    let (id, secret) = app.standard_client().await;
    let (rs, rs_secret) = app.refresh_client(json!({})).await;
    let leaked_token = app.access_token(&id, &secret).await;
    let leaked = kid_of(&leaked_token);
    // Introspected once, so its verified signature is remembered.
    for _ in 0..2 {
        assert_eq!(
            app.introspect(&rs, &rs_secret, &leaked_token).await["active"],
            true
        );
    }

    let res = rotate(&app, json!({"compromised": true})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["removed"], json!([leaked.clone()]));
    let warning = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        warning.contains("removed from the JWKS") && warning.contains(&leaked),
        "{warning}"
    );

    let jwks = app.get_json("/.well-known/jwks.json").await;
    assert!(!jwks.to_string().contains(&leaked));
    let mut fresh = CachingVerifier::new();
    assert!(
        fresh
            .verify(&app, &leaked_token, app.clock.now())
            .await
            .is_err(),
        "tokens of the leaked key fail"
    );
    assert_eq!(
        app.introspect(&rs, &rs_secret, &leaked_token).await,
        json!({"active": false}),
        "the remembered signature does not outlive its key"
    );
    let token = app.access_token(&id, &secret).await;
    assert_ne!(kid_of(&token), leaked);
    fresh.verify(&app, &token, app.clock.now()).await.unwrap();
    assert!(app
        .state
        .oauth
        .store
        .signing_keys()
        .await
        .unwrap()
        .iter()
        .all(|k| k.kid != leaked));
}

#[rstest]
#[tokio::test]
async fn rsa_algorithms_sign_tokens_that_verify(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
    #[values("RS256", "PS256")] alg: &str,
) {
    let app = TestApp::spawn_with(engine, json!({"signing_alg": alg})).await;
    let (id, secret) = app.standard_client().await;
    let token = app.access_token(&id, &secret).await;
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(format!("{:?}", header.alg), alg);
    let claims = app.verify(&token, "https://api.example.com").await;
    assert_eq!(claims["sub"], id.as_str());
    let jwks = app.get_json("/.well-known/jwks.json").await;
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid_of(&token).as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (key["kty"].as_str(), key["alg"].as_str()),
        (Some("RSA"), Some(alg))
    );
    assert!(key.get("d").is_none());
}

#[rstest]
#[tokio::test]
async fn a_new_algorithm_takes_effect_through_a_normal_rotation(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(engine, fast_rotation()).await;
    let (id, secret) = app.standard_client().await;
    let mut eddsa = fast_rotation();
    eddsa["signing_alg"] = json!("EdDSA");
    let (url, dir) = (app.database_url.clone(), app.dir);
    let app = TestApp::spawn_on(engine, url, dir, eddsa).await;

    // The ES256 key still signs; the EdDSA key is published as next.
    let token = app.access_token(&id, &secret).await;
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );
    let listed = keys(&app).await;
    let next = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "next")
        .unwrap()
        .clone();
    assert_eq!(next["alg"], "EdDSA");

    // After the pre-publication window, a rotation switches the algorithm.
    app.clock.advance(Duration::seconds(3600));
    assert_eq!(
        rotate(&app, json!({"safe": true})).await.status(),
        StatusCode::OK
    );
    let token = app.access_token(&id, &secret).await;
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().alg,
        jsonwebtoken::Algorithm::EdDSA
    );
    assert_eq!(kid_of(&token), next["kid"].as_str().unwrap());
    app.verify(&token, "https://api.example.com").await;
}

#[rstest]
#[tokio::test]
async fn the_key_list_shows_states_and_times_but_no_private_material(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(engine, fast_rotation()).await;
    let listed = keys(&app).await;
    let entries = listed["keys"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for k in entries {
        let members: Vec<&str> = k.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            members,
            [
                "activated_at",
                "alg",
                "created_at",
                "kek_id",
                "kid",
                "removal_at",
                "retired_at",
                "state"
            ],
            "{k}"
        );
    }
    assert_eq!(
        listed["next_rotation_at"],
        json!((app.clock.now() + Duration::seconds(7200))
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    );
    assert_eq!(listed["key_rotation_interval"], 7200);
    assert_eq!(listed["key_prepublish"], 3600);
    assert_eq!(listed["retired_key_retention"], 660);
}

/// Every rotation is in the audit trail: the rotation itself (by the admin
/// who asked, with the new current and next keys) and each key change it
/// made; a compromise as `key_compromised`.
#[rstest]
#[tokio::test]
async fn rotations_and_their_key_changes_are_audited(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(engine, fast_rotation()).await;
    let before = keys(&app).await;
    let (old, promoted) = (kid_in(&before, "current"), kid_in(&before, "next"));

    app.clock.advance(Duration::seconds(3600));
    let res = rotate(&app, json!({})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let report: Value = res.json().await.unwrap();
    let rotated = app.audit_details("key_rotated").await;
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    let rotated: Value = serde_json::from_str(&rotated[0]).unwrap();
    assert_eq!(rotated["current"], report["current"]);
    assert_eq!(rotated["current"], promoted.as_str());
    assert_eq!(rotated["next"], report["next"]);
    let kid_of_event = |kind: &'static str| {
        let app = &app;
        async move {
            app.audit_details(kind)
                .await
                .iter()
                .map(|d| serde_json::from_str::<Value>(d).unwrap()["kid"].clone())
                .collect::<Vec<_>>()
        }
    };
    assert!(kid_of_event("key_activated")
        .await
        .contains(&json!(promoted)));
    assert!(kid_of_event("key_retired").await.contains(&json!(old)));
    assert!(kid_of_event("key_published")
        .await
        .contains(&report["next"]));

    let res = rotate(&app, json!({"compromised": true})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let compromised = app.audit_details("key_compromised").await;
    assert_eq!(compromised.len(), 1, "{compromised:?}");
    let events = app
        .state
        .oauth
        .store
        .audit_events(&portcullis::audit::AuditFilter {
            kind: Some("key_compromised".into()),
            limit: 10,
            ..portcullis::audit::AuditFilter::default()
        })
        .await
        .unwrap();
    assert!(
        events[0].actor.starts_with("admin:"),
        "by the admin who asked: {}",
        events[0].actor
    );
}
