//! Client secrets by entropy: generated secrets stored fast and never locked
//! out; imported secrets (plaintext or another server's hash) verified in
//! their own format, locked out per address; rotation moves any client to
//! the fast format.

use std::num::NonZeroU32;

use argon2::{
    password_hash::{PasswordHasher, SaltString},
    Argon2,
};
use base64::{engine::general_purpose::STANDARD_NO_PAD, Engine as _};
use chrono::Duration;
use portcullis::{
    clients::{
        import::{ExistingSecret, ImportRequest},
        ClientId, RegistrationRequest, RegistryError, SecretHash,
    },
    store::{NewSecret, Store},
};
use reqwest::{Method, StatusCode};
use rstest::rstest;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::{basic, Engine, TestApp};

const CC: [(&str, &str); 1] = [("grant_type", "client_credentials")];
const LOCKOUT: &str = r#"{"lockout_threshold": 3, "lockout_window": 60, "lockout_duration": 120, "trusted_proxies": ["127.0.0.0/8"]}"#;
const ATTACKER: &str = "203.0.113.66";
const CALLER: &str = "198.51.100.7";

async fn token_from(app: &TestApp, id: &str, secret: &str, from: &str) -> reqwest::Response {
    app.http
        .post(app.url("/token"))
        .header("Authorization", basic(id, secret))
        .header("X-Forwarded-For", from)
        .form(&CC)
        .send()
        .await
        .unwrap()
}

/// Status, the headers an answer could differ by, and the body.
async fn answer(res: reqwest::Response) -> (StatusCode, Vec<Option<String>>, Value) {
    let status = res.status();
    let headers = [
        "www-authenticate",
        "cache-control",
        "pragma",
        "content-type",
    ]
    .iter()
    .map(|h| {
        res.headers()
            .get(*h)
            .map(|v| v.to_str().unwrap().to_owned())
    })
    .collect();
    (status, headers, res.json().await.unwrap())
}

fn import_request(id: &str, secret: ExistingSecret) -> ImportRequest {
    ImportRequest {
        registration: RegistrationRequest {
            client_id: Some(id.to_owned()),
            scope: Some("read".to_owned()),
            allowed_audiences: Some(vec!["https://api.example.com".to_owned()]),
            ..RegistrationRequest::default()
        },
        secret,
        source: "test".to_owned(),
    }
}

async fn import(app: &TestApp, id: &str, secret: ExistingSecret) -> Result<(), RegistryError> {
    app.state
        .registry
        .import("test", import_request(id, secret), app.clock.now())
        .await
        .map(|_| ())
}

fn plaintext(text: &str) -> ExistingSecret {
    ExistingSecret::Plaintext(SecretString::from(text.to_owned()))
}

/// PBKDF2 written as Ory Hydra writes it (`hasherx`): unpadded standard base64.
fn hydra_pbkdf2(sha512: bool, secret: &str) -> String {
    let (algorithm, name, len) = if sha512 {
        (ring::pbkdf2::PBKDF2_HMAC_SHA512, "sha512", 64)
    } else {
        (ring::pbkdf2::PBKDF2_HMAC_SHA256, "sha256", 32)
    };
    let salt = b"hydra-salt-16byt";
    let mut key = vec![0u8; len];
    let iterations = NonZeroU32::new(10_000).unwrap();
    ring::pbkdf2::derive(algorithm, iterations, salt, secret.as_bytes(), &mut key);
    format!(
        "$pbkdf2-{name}$i=10000,l={len}${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(&key)
    )
}

fn argon2_phc(secret: &str) -> String {
    let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

async fn metric(app: &TestApp, sample: &str) -> f64 {
    app.metrics_text()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{sample} ")))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

async fn stored_hashes(app: &TestApp, id: &str) -> Vec<String> {
    app.column(&format!(
        "SELECT secret_hash FROM client_secrets WHERE client_id = '{id}' ORDER BY created_at"
    ))
    .await
}

/// The `token_denied_repeated` events once the server's window ticker has
/// audited `n` of them (the ticker runs every 250 ms; this waits up to 30 s).
async fn repeated_denials(app: &TestApp, n: usize) -> Vec<Value> {
    for _ in 0..120 {
        let events = app.audit_details("token_denied_repeated").await;
        if events.len() >= n {
            return events
                .iter()
                .map(|d| serde_json::from_str(d).unwrap())
                .collect();
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("{n} token_denied_repeated events were never audited");
}

#[rstest]
#[tokio::test]
async fn repeated_wrong_secrets_are_audited_once_then_as_one_count_per_window(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange
    let app = TestApp::spawn_with(engine, json!({"trusted_proxies": ["127.0.0.0/8"]})).await;
    let (id, secret) = app.standard_client().await;

    // Act: five wrong secrets for a client and three for an unknown id,
    // within one window (the manual clock stands still).
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(answer(token_from(&app, &id, "guess", ATTACKER).await).await);
    }
    for _ in 0..3 {
        answers.push(answer(token_from(&app, "nobody", "guess", ATTACKER).await).await);
    }

    // Assert: every answer the same 401, whether recorded or folded.
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED);
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(
        metric(
            &app,
            "portcullis_tokens_denied_total{reason=\"invalid_client\"}"
        )
        .await,
        8.0,
        "each is counted"
    );
    let denied = app.audit_details("token_denied").await;
    assert_eq!(denied.len(), 2, "the first of each: {denied:?}");
    assert!(app.audit_details("token_denied_repeated").await.is_empty());

    // The window closes: its repeats are audited as one event each.
    app.clock.advance(Duration::seconds(1));
    let mut repeated = repeated_denials(&app, 2).await;
    repeated.sort_by_key(|d| d["count"].as_u64());
    assert_eq!(repeated[0]["count"], 2);
    assert_eq!(repeated[1]["count"], 4);
    assert_eq!(repeated[1]["grant_type"], "client_credentials");
    assert_eq!(
        repeated[1]["error_description"],
        "client authentication failed"
    );
    let events = app
        .admin(
            Method::GET,
            &format!("/admin/audit?client_id={id}&kind=token_denied_repeated"),
            None,
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(events["events"][0]["reason"], "invalid_client");
    assert_eq!(events["events"][0]["actor"], format!("client:{id}"));

    // A failure after the window is audited at once again; other denials
    // (here a scope the client may not have) are never folded.
    token_from(&app, &id, "guess", ATTACKER).await;
    for _ in 0..2 {
        let res = app
            .token_basic(
                &id,
                &secret,
                &[("grant_type", "client_credentials"), ("scope", "admin")],
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    let denied = app.audit_details("token_denied").await;
    assert_eq!(denied.len(), 5, "{denied:?}");
}

#[rstest]
#[tokio::test]
async fn eleven_wrong_secrets_from_anyone_never_lock_out_a_generated_secret(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: the default lockout settings (10 failures in 5 minutes).
    let app = TestApp::spawn_with(engine, json!({"trusted_proxies": ["127.0.0.0/8"]})).await;
    let (id, secret) = app.standard_client().await;

    // Act: eleven wrong secrets for the (public) client id.
    for _ in 0..11 {
        let res = token_from(&app, &id, "guess", ATTACKER).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }

    // Assert: the right secret still works, from the guesser's address too.
    for from in [CALLER, ATTACKER] {
        let res = token_from(&app, &id, &secret, from).await;
        assert_eq!(res.status(), StatusCode::OK, "from {from}");
    }
    assert!(app.audit_details("client_locked").await.is_empty());
    assert_eq!(metric(&app, "portcullis_lockouts_total").await, 0.0);
    assert_eq!(
        metric(
            &app,
            "portcullis_tokens_denied_total{reason=\"invalid_client\"}"
        )
        .await,
        11.0,
        "failures are still counted"
    );
    // Audited: the first at once, the ten repeats as one count when their
    // window closes.
    assert_eq!(app.audit_details("token_denied").await.len(), 1);
    app.clock.advance(Duration::seconds(1));
    let repeated = repeated_denials(&app, 1).await;
    assert_eq!(repeated[0]["count"], 10, "{repeated:?}");
    let stored = stored_hashes(&app, &id).await;
    assert!(stored[0].starts_with("$portcullis-sha256$"), "{stored:?}");
}

#[rstest]
#[tokio::test]
async fn an_imported_secret_is_locked_out_for_the_guessing_address_only(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange
    let app = TestApp::spawn_with(engine, serde_json::from_str(LOCKOUT).unwrap()).await;
    let secret = "legacy-Keycloak-secret-42";
    import(&app, "legacy", plaintext(secret)).await.unwrap();

    // Act: three wrong secrets from one address.
    for _ in 0..3 {
        let res = token_from(&app, "legacy", "guess-guess-guess", ATTACKER).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }

    // Assert: that address gets exactly an unknown client's answer, even
    // with the right secret; the usual caller is served.
    let locked = answer(token_from(&app, "legacy", secret, ATTACKER).await).await;
    let unknown = answer(token_from(&app, "nobody", secret, ATTACKER).await).await;
    assert_eq!(locked.0, StatusCode::UNAUTHORIZED);
    assert_eq!(locked, unknown);
    let res = token_from(&app, "legacy", secret, CALLER).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the usual caller is not locked out"
    );
    let events = app.audit_details("client_locked").await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(event["address"], ATTACKER);
    assert_eq!(event["locked_until"], app.clock.now().timestamp() + 120);
    assert_eq!(metric(&app, "portcullis_lockouts_total").await, 1.0);

    // The lock ends on its own…
    app.clock.advance(Duration::seconds(120));
    let res = token_from(&app, "legacy", secret, ATTACKER).await;
    assert_eq!(res.status(), StatusCode::OK, "the lock expired");

    // …or when an admin lifts it.
    for _ in 0..3 {
        token_from(&app, "legacy", "guess-guess-guess", ATTACKER).await;
    }
    let res = token_from(&app, "legacy", secret, ATTACKER).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "locked again");
    let res = app
        .admin(Method::POST, "/admin/clients/legacy/unlock", None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = token_from(&app, "legacy", secret, ATTACKER).await;
    assert_eq!(res.status(), StatusCode::OK, "unlocked by an admin");
}

#[rstest]
#[tokio::test]
async fn imported_hashes_and_plaintext_authenticate_and_rotation_moves_them_to_the_fast_format(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: one client per format.
    let app = TestApp::spawn(engine).await;
    let secret = "hydra-client-secret-xyz";
    let cases = [
        (
            "from-bcrypt",
            ExistingSecret::Hash(bcrypt::hash(secret, 4).unwrap()),
        ),
        (
            "from-pbkdf2-256",
            ExistingSecret::Hash(hydra_pbkdf2(false, secret)),
        ),
        (
            "from-pbkdf2-512",
            ExistingSecret::Hash(hydra_pbkdf2(true, secret)),
        ),
        ("from-argon2id", ExistingSecret::Hash(argon2_phc(secret))),
        ("from-plaintext", plaintext(secret)),
    ];
    let ids: Vec<&str> = cases.iter().map(|(id, _)| *id).collect();
    for (id, existing) in cases {
        import(&app, id, existing).await.unwrap();
    }

    for id in ids {
        // Act and assert: the secret authenticates, a wrong one does not.
        let res = token_from(&app, id, secret, CALLER).await;
        assert_eq!(res.status(), StatusCode::OK, "{id}");
        let res = token_from(&app, id, "hydra-client-secret-xyZ", CALLER).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{id}");
        assert!(
            stored_hashes(&app, id).await[0].starts_with("imported:$"),
            "{id}"
        );

        // Rotation gives a generated secret in the fast format.
        let res = app
            .admin(
                Method::POST,
                &format!("/admin/clients/{id}/secret"),
                Some(json!({})),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{id}");
        let rotated: Value = res.json().await.unwrap();
        let new = rotated["client_secret"].as_str().unwrap();
        let res = token_from(&app, id, new, CALLER).await;
        assert_eq!(res.status(), StatusCode::OK, "{id} rotated");
        let res = token_from(&app, id, secret, CALLER).await;
        assert_eq!(
            res.status(),
            StatusCode::UNAUTHORIZED,
            "{id}: old secret ended"
        );
        let hashes = stored_hashes(&app, id).await;
        assert!(
            hashes.last().unwrap().starts_with("$portcullis-sha256$"),
            "{id}: {hashes:?}"
        );
    }
    let imported = app.audit_details("client_imported").await;
    assert_eq!(imported.len(), 5);
    assert!(imported.iter().all(|d| !d.contains(secret)), "{imported:?}");
}

#[rstest]
#[tokio::test]
async fn an_existing_argon2_secret_still_authenticates_until_rotation_replaces_it(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: a client whose secret was stored as argon2id by an older version.
    let app = TestApp::spawn(engine).await;
    let (id, _) = app.standard_client().await;
    let old = "an-older-generated-secret-0123456789abcdef";
    let legacy = NewSecret {
        id: uuid::Uuid::new_v4().to_string(),
        hash: SecretHash::from_stored(argon2_phc(old)),
        created_at: app.clock.now(),
    };
    let client_id = ClientId::parse(&id).unwrap();
    app.state
        .oauth
        .store
        .rotate_client_secret(&client_id, &legacy, app.clock.now())
        .await
        .unwrap();
    app.state.oauth.clients.invalidate(&id);

    // Act and assert: it authenticates (argon2 once, then remembered).
    for _ in 0..2 {
        let res = token_from(&app, &id, old, CALLER).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(
        metric(
            &app,
            "portcullis_secret_verifications_total{scheme=\"argon2id\"}"
        )
        .await,
        1.0
    );

    // Rotation replaces it with the fast format.
    let res = app
        .admin(
            Method::POST,
            &format!("/admin/clients/{id}/secret"),
            Some(json!({})),
        )
        .await;
    let new: Value = res.json().await.unwrap();
    let new = new["client_secret"].as_str().unwrap();
    assert_eq!(
        token_from(&app, &id, new, CALLER).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        token_from(&app, &id, old, CALLER).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let hashes = stored_hashes(&app, &id).await;
    assert!(
        hashes.last().unwrap().starts_with("$portcullis-sha256$"),
        "{hashes:?}"
    );
}

#[rstest]
#[tokio::test]
async fn a_wrong_secret_takes_the_same_path_whether_or_not_the_client_exists(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange
    let app = TestApp::spawn(engine).await;
    let (id, _) = app.standard_client().await;
    let sha256 = "portcullis_secret_verifications_total{scheme=\"sha256\"}";

    // Act and assert: each costs one SHA-256 check and nothing else, and
    // both get the same answer.
    let known = answer(token_from(&app, &id, "wrong", CALLER).await).await;
    assert_eq!(metric(&app, sha256).await, 1.0);
    let unknown = answer(token_from(&app, "no-such-client", "wrong", CALLER).await).await;
    assert_eq!(metric(&app, sha256).await, 2.0);
    assert_eq!(known, unknown);
    let text = app.metrics_text().await;
    for slow in ["argon2id", "bcrypt", "pbkdf2"] {
        assert!(
            !text.contains(&format!("scheme=\"{slow}\"")),
            "{slow}: {text}"
        );
    }
}

#[rstest]
#[tokio::test]
async fn bad_imports_are_refused_with_a_reason_and_store_nothing(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    import(&app, "taken", plaintext("an-acceptable-secret-1"))
        .await
        .unwrap();
    let no_id = ImportRequest {
        registration: RegistrationRequest::default(),
        secret: plaintext("an-acceptable-secret-2"),
        source: "test".into(),
    };
    let mut jwt_method = import_request("jwt-client", plaintext("an-acceptable-secret-3"));
    jwt_method.registration.token_endpoint_auth_method = Some("private_key_jwt".into());
    jwt_method.registration.jwks_uri = Some("https://svc.example/jwks".into());
    let mut bad_scope = import_request("bad-scope", plaintext("an-acceptable-secret-4"));
    bad_scope.registration.scope = Some("bad\u{1}scope".into());
    let cases = [
        (no_id, "client_id is required", "no client id"),
        (
            jwt_method,
            "only clients that authenticate with a secret",
            "secretless method",
        ),
        (bad_scope, "scope", "bad scope"),
        (
            import_request("short", plaintext("password123")),
            "at least 16 characters",
            "short plaintext",
        ),
        (
            import_request("repetitive", plaintext("abababababababababab")),
            "distinct",
            "low variety",
        ),
        (
            import_request("md5", ExistingSecret::Hash("$1$abc$def".into())),
            "no supported format",
            "md5 crypt",
        ),
        (
            import_request(
                "ours",
                ExistingSecret::Hash("$portcullis-sha256$AAAA".into()),
            ),
            "cannot be imported",
            "our own format",
        ),
        (
            import_request(
                "costly",
                ExistingSecret::Hash(
                    "$2b$20$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234".into(),
                ),
            ),
            "cost",
            "bcrypt cost 20",
        ),
        (
            import_request("taken", plaintext("an-acceptable-secret-5")),
            "already exists",
            "duplicate id",
        ),
    ];
    for (request, message, why) in cases {
        let id = request.registration.client_id.clone();
        let err = app
            .state
            .registry
            .import("test", request, app.clock.now())
            .await
            .expect_err(why);
        assert!(err.to_string().contains(message), "{why}: {err}");
        if let Some(id) = id.filter(|i| i != "taken") {
            let stored = app
                .column(&format!("SELECT id FROM clients WHERE id = '{id}'"))
                .await;
            assert!(stored.is_empty(), "{why}: nothing stored");
        }
    }
    assert_eq!(app.audit_details("client_imported").await.len(), 1);
}
