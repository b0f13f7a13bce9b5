//! The `portcullis` binary: client management commands and `serve` as a user runs them.

use std::process::{Command, Stdio};

use rstest::rstest;
use serde_json::Value;

use crate::helpers::{basic, fresh_database, stderr_lines, Engine, ADMIN_TOKEN};

fn portcullis(dir: &tempfile::TempDir, url: &str, args: &[&str]) -> Result<Value, String> {
    portcullis_with(dir, url, &[], args)
}

fn portcullis_with(
    dir: &tempfile::TempDir,
    url: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> Result<Value, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        // The test command exports it for the Python tools; the server would refuse an unknown PORTCULLIS_ key.
        .env("PORTCULLIS_DATABASE_URL", url)
        .env("PORTCULLIS_LOG_LEVEL", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("run portcullis");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON: {e}")))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[rstest]
#[tokio::test]
async fn client_commands_manage_clients_and_print_json(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(engine, &dir).await;
    let run = |args: &[&str]| portcullis(&dir, &url, args);

    assert!(run(&["migrate"]).unwrap()["migrated"].is_string());
    let created = run(&[
        "client",
        "create",
        "--id",
        "inventory",
        "--name",
        "Inventory",
        "--scope",
        "stock:read",
        "--audience",
        "https://stock.example",
        "--ttl",
        "120",
    ])
    .unwrap();
    assert_eq!(created["client_id"], "inventory");
    assert_eq!(created["client_secret"].as_str().unwrap().len(), 43);
    assert_eq!(created["default_audience"], "https://stock.example");

    let shown = run(&["client", "show", "inventory"]).unwrap();
    assert!(shown.get("client_secret").is_none());
    assert_eq!(shown["access_token_ttl"], 120);

    let updated = run(&[
        "client",
        "update",
        "inventory",
        "--scope",
        "stock:read stock:write",
    ])
    .unwrap();
    assert_eq!(updated["scope"], "stock:read stock:write");
    assert_eq!(
        updated["client_name"], "Inventory",
        "options not given stay as they were"
    );

    let rotated = run(&["client", "rotate-secret", "inventory", "--grace", "60"]).unwrap();
    assert_ne!(rotated["client_secret"], created["client_secret"]);
    assert_eq!(
        run(&["client", "disable", "inventory"]).unwrap()["enabled"],
        false
    );
    assert_eq!(
        run(&["client", "enable", "inventory"]).unwrap()["enabled"],
        true
    );
    assert_eq!(
        run(&["client", "list"]).unwrap().as_array().unwrap().len(),
        1
    );
    run(&["client", "delete", "inventory"]).unwrap();
    assert_eq!(run(&["client", "list"]).unwrap(), serde_json::json!([]));

    // Secretless clients: a JWK set from a file, or a certificate subject.
    let key = crate::pki::ClientKey::new("k1");
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, crate::pki::ClientKey::jwks(&[&key]).to_string()).unwrap();
    let signer = run(&[
        "client",
        "create",
        "--id",
        "signer",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        jwks_file.to_str().unwrap(),
    ])
    .unwrap();
    assert!(signer.get("client_secret").is_none(), "{signer}");
    assert_eq!(signer["jwks"]["keys"][0]["kid"], "k1");
    let mesh = run(&[
        "client",
        "create",
        "--id",
        "mesh",
        "--auth-method",
        "tls_client_auth",
        "--tls-san-uri",
        "spiffe://example.org/ns/pay/sa/api",
    ])
    .unwrap();
    assert_eq!(
        mesh["tls_client_auth_san_uri"],
        "spiffe://example.org/ns/pay/sa/api"
    );
    let moved = run(&[
        "client",
        "update",
        "mesh",
        "--tls-subject-dn",
        "CN=api,O=Example",
    ])
    .unwrap();
    assert_eq!(moved["tls_client_auth_subject_dn"], "CN=api,O=Example");
    assert!(moved.get("tls_client_auth_san_uri").is_none(), "{moved}");
    let err = run(&["client", "rotate-secret", "mesh"]).unwrap_err();
    assert!(err.contains("no secret"), "{err}");
    // Switching methods leaves the old method's subject behind.
    let switched = run(&[
        "client",
        "update",
        "mesh",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        jwks_file.to_str().unwrap(),
        "--signing-alg",
        "ES256",
    ])
    .unwrap();
    assert_eq!(switched["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(switched["token_endpoint_auth_signing_alg"], "ES256");
    assert!(
        switched.get("tls_client_auth_subject_dn").is_none(),
        "{switched}"
    );

    // Bad input is a clear message and a failure status, never a panic.
    for (args, needle) in [
        (vec!["client", "show", "inventory"], "no client"),
        (vec!["client", "create", "--scope", "bad\"scope"], "scope"),
        (
            vec!["client", "create", "--audience", "relative"],
            "absolute URI",
        ),
        (
            vec!["client", "rotate-secret", "nobody", "--grace=-5"],
            "grace_period",
        ),
        (
            vec![
                "client",
                "create",
                "--auth-method",
                "private_key_jwt",
                "--jwks-file",
                "/nonexistent.json",
            ],
            "could not read",
        ),
        (
            vec!["client", "create", "--auth-method", "tls_client_auth"],
            "exactly one",
        ),
    ] {
        let err = run(&args).expect_err(&format!("{args:?} must fail"));
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[rstest]
#[tokio::test]
async fn keys_commands_rotate_list_and_rewrap_under_a_new_kek(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(engine, &dir).await;
    let b64 = |byte: u8| base64::engine::general_purpose::STANDARD.encode([byte; 32]);
    let (kek_a, kek_b) = (b64(1), b64(2));
    let only_a = [("PORTCULLIS_KEK", kek_a.as_str())];
    let only_b = [("PORTCULLIS_KEK", kek_b.as_str())];
    let b_with_a = [
        ("PORTCULLIS_KEK", kek_b.as_str()),
        ("PORTCULLIS_OLD_KEKS", kek_a.as_str()),
    ];
    let run = |env: &[(&str, &str)], args: &[&str]| portcullis_with(&dir, &url, env, args);

    // The first rotation publishes keys, then promotes a next key that is too young: it warns.
    let report = run(&only_a, &["keys", "rotate"]).unwrap();
    assert_eq!(report["rotated"], true);
    assert!(report["warnings"][0]
        .as_str()
        .unwrap()
        .contains("key_prepublish"));
    let refused = run(&only_a, &["keys", "rotate", "--safe"]).unwrap_err();
    assert!(refused.contains("rotation refused"), "{refused}");

    let listed = run(&[], &["keys", "list"]).unwrap();
    let states: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.len(), 3, "{listed}");
    assert!(states.contains(&"retired") && states.contains(&"current") && states.contains(&"next"));
    let kek_a_id = portcullis::keys::Kek::from_base64(&kek_a)
        .unwrap()
        .id()
        .to_owned();
    let kek_b_id = portcullis::keys::Kek::from_base64(&kek_b)
        .unwrap()
        .id()
        .to_owned();

    // A new KEK alone cannot open the keys: a clear error naming the KEK they need.
    let err = run(&only_b, &["keys", "rotate"]).unwrap_err();
    assert!(
        err.contains(&kek_a_id) && err.contains("not configured"),
        "{err}"
    );
    assert!(!err.contains("panicked"));

    // Rewrap under the new KEK (the old one still configured), then the new one suffices.
    let rewrapped = run(&b_with_a, &["keys", "rewrap"]).unwrap();
    assert_eq!(
        rewrapped["rewrapped"], 2,
        "current and next; the retired key has no private part"
    );
    assert_eq!(rewrapped["kek_id"], kek_b_id.as_str());
    assert_eq!(
        run(&b_with_a, &["keys", "rewrap"]).unwrap()["rewrapped"],
        0,
        "idempotent"
    );
    let listed = run(&[], &["keys", "list"]).unwrap();
    for k in listed["keys"].as_array().unwrap() {
        assert!(
            k["kek_id"].is_null() || k["kek_id"] == kek_b_id.as_str(),
            "{k}"
        );
    }
    run(&only_b, &["keys", "rotate"]).unwrap();
    let err = run(&[("PORTCULLIS_KEK", "not-base64!")], &["keys", "rewrap"]).unwrap_err();
    assert!(err.contains("base64"), "{err}");
}

/// Runs `portcullis serve` as the README does, gets a token, stops it with
/// SIGTERM, and checks that no secret or token reached the logs.
#[rstest]
#[tokio::test]
async fn serve_issues_tokens_shuts_down_gracefully_and_logs_no_secret(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(engine, &dir).await;
    let created = portcullis(
        &dir,
        &url,
        &[
            "client",
            "create",
            "--scope",
            "a",
            "--audience",
            "https://a.example",
            "--grant-type",
            "client_credentials",
            "--grant-type",
            "refresh_token",
            "--allow-introspection",
            "true",
        ],
    )
    .unwrap();
    let (id, secret) = (
        created["client_id"].as_str().unwrap(),
        created["client_secret"].as_str().unwrap(),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        // The test command exports it for the Python tools; the server would refuse an unknown PORTCULLIS_ key.
        .env("PORTCULLIS_DATABASE_URL", &url)
        .env("PORTCULLIS_LISTEN", "127.0.0.1:0")
        .env("PORTCULLIS_KEK_GENERATE", "true")
        .env("PORTCULLIS_ADMIN_TOKENS", ADMIN_TOKEN)
        .env("PORTCULLIS_LOG_LEVEL", "debug")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start portcullis serve");
    let rx = stderr_lines(&mut child);
    let mut logs = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("server starts within 30 s");
        logs.push(line.clone());
        let v: Value = serde_json::from_str(&line).expect("log lines are JSON");
        if v["message"] == "portcullis listening" {
            break v["addr"].as_str().unwrap().to_owned();
        }
    };

    // Transparent huge pages are off for the server (src/main.rs), so its
    // heap stays in small pages. (Kernels before 6.x do not report the flag.)
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    }

    let http = reqwest::Client::new();
    let res = http
        .post(format!("http://{addr}/token"))
        .header("Authorization", basic(id, secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let issued: Value = res.json().await.unwrap();
    let token = issued["access_token"].as_str().unwrap().to_owned();
    let first_refresh = issued["refresh_token"].as_str().unwrap().to_owned();
    // Refresh, then replay the rotated token (reuse), introspect and revoke.
    let post = |path: &str, form: Vec<(&'static str, String)>| {
        http.post(format!("http://{addr}{path}"))
            .header("Authorization", basic(id, secret))
            .form(&form)
            .send()
    };
    let res = post(
        "/token",
        vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", first_refresh.clone()),
        ],
    )
    .await
    .unwrap();
    let second_refresh = res.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = post(
        "/token",
        vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", first_refresh.clone()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 400, "reuse is refused");
    let res = post("/introspect", vec![("token", token.clone())])
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["active"], true);
    assert_eq!(
        post("/revoke", vec![("token", token.clone())])
            .await
            .unwrap()
            .status(),
        200
    );
    let res = http
        .post(format!("http://{addr}/token"))
        .header("Authorization", basic(id, "wrong-secret-value"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = http
        .get(format!("http://{addr}/admin/clients"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status}");
    // Every audit event accepted before the shutdown was written, and the chain holds:
    // client_created, 3 token outcomes (issued, refresh, reuse denied), reuse, revocation, and more.
    let report = portcullis(&dir, &url, &["audit", "verify"]).unwrap();
    assert_eq!(report["intact"], true, "{report}");
    assert!(report["events"].as_i64().unwrap() >= 7, "{report}");
    logs.extend(rx.try_iter());
    let all = logs.join("\n");
    assert!(all.contains("access token issued"), "issuance is logged");
    assert!(
        all.contains("\"event\":\"refresh_token_reuse\""),
        "reuse is an audit event"
    );
    assert!(
        all.contains("\"event\":\"access_token_revoked\""),
        "revocation is an audit event"
    );
    let kek = std::fs::read_to_string(dir.path().join("keys/kek")).unwrap();
    for (what, value) in [
        ("client secret", secret),
        ("access token", token.as_str()),
        ("refresh token", first_refresh.as_str()),
        ("rotated refresh token", second_refresh.as_str()),
        ("wrong secret", "wrong-secret-value"),
        ("admin token", ADMIN_TOKEN),
        ("KEK", kek.trim()),
    ] {
        assert!(!all.contains(value), "the {what} appeared in the logs");
    }
    if engine == Engine::Postgres {
        assert!(!all.contains(&url), "the database URL is not logged");
    }
}

#[rstest]
#[tokio::test]
async fn client_import_takes_the_secret_from_the_environment_or_a_file_never_an_argument(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(engine, &dir).await;
    assert!(portcullis(&dir, &url, &["migrate"]).unwrap()["migrated"].is_string());
    let hash_file = dir.path().join("hydra.hash");
    std::fs::write(
        &hash_file,
        format!("{}\n", bcrypt::hash("hydra-secret-0123456", 4).unwrap()),
    )
    .unwrap();
    let short_file = dir.path().join("short.txt");
    std::fs::write(&short_file, "password\n").unwrap();
    let env = [("LEGACY_SECRET", "keycloak-secret-0123456789")];
    let import = |args: &[&str]| {
        let mut all = vec!["client", "import", "--scope", "read"];
        all.extend_from_slice(args);
        portcullis_with(&dir, &url, &env, &all)
    };

    // Act and assert: both sources register the client (no secret printed).
    let from_env = import(&["--id", "from-env", "--secret-env", "LEGACY_SECRET"]).unwrap();
    assert_eq!(from_env["client_id"], "from-env");
    assert!(from_env.get("client_secret").is_none(), "{from_env}");
    let from_file = import(&[
        "--id",
        "from-file",
        "--hash-file",
        hash_file.to_str().unwrap(),
    ])
    .unwrap();
    assert_eq!(from_file["client_id"], "from-file");

    // Bad inputs: a clear message, nothing registered.
    let cases: [(&[&str], &str); 6] = [
        (&["--id", "x1"], "--secret-env"),
        (
            &["--id", "x2", "--secret-env", "NOT_SET_ANYWHERE"],
            "NOT_SET_ANYWHERE is not set",
        ),
        (
            &["--id", "x3", "--secret-file", short_file.to_str().unwrap()],
            "at least 16 characters",
        ),
        (
            &["--id", "x4", "--hash-env", "LEGACY_SECRET"],
            "no supported format",
        ),
        (&["--secret-env", "LEGACY_SECRET"], "--id"),
        (
            &[
                "--id",
                "x5",
                "--secret-env",
                "LEGACY_SECRET",
                "--hash-file",
                "f",
            ],
            "cannot be used with",
        ),
    ];
    for (args, message) in cases {
        let err = import(args).expect_err(message);
        assert!(err.contains(message), "{args:?}: {err}");
    }
    let listed = portcullis(&dir, &url, &["client", "list"]).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["from-env", "from-file"]);
}

#[rstest]
#[tokio::test]
async fn federation_commands_manage_federations_validate_and_audit(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(engine, &dir).await;
    let run = |args: &[&str]| portcullis(&dir, &url, args);
    let doc = dir.path().join("cluster.json");
    let body = serde_json::json!({
        "federation_id": "cluster",
        "issuer": "https://kubernetes.example.com",
        "jwks": crate::pki::ClientKey::jwks(&[&crate::pki::ClientKey::new("k")]),
        "audiences": ["https://auth.example.com"],
        "rules": [{"client_id": "api", "sub": "system:serviceaccount:pay:api"}],
    });
    std::fs::write(&doc, body.to_string()).unwrap();
    let doc = doc.to_str().unwrap();

    let created = run(&["federation", "create", "--file", doc]).unwrap();
    assert_eq!(created["federation_id"], "cluster");
    assert_eq!(created["key_source"], "jwks");
    let listed = run(&["federation", "list"]).unwrap();
    assert_eq!(
        listed["federations"][0]["issuer"],
        "https://kubernetes.example.com"
    );
    assert_eq!(
        run(&["federation", "disable", "cluster"]).unwrap()["enabled"],
        false
    );
    assert_eq!(
        run(&["federation", "enable", "cluster"]).unwrap()["enabled"],
        true
    );
    assert_eq!(
        run(&["federation", "show", "cluster"]).unwrap()["max_token_age"],
        3600
    );
    let err = run(&["federation", "create", "--file", doc]).unwrap_err();
    assert!(err.contains("already exists"), "{err}");
    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"issuer": "x", "jwks_uri": "https://keys.example.com/jwks", "audiences": [], "rules": []}"#,
    )
    .unwrap();
    let bad = dir.path().join("bad.json");
    let err = run(&["federation", "create", "--file", bad.to_str().unwrap()]).unwrap_err();
    assert!(err.contains("audiences"), "{err}");
    assert_eq!(
        run(&["federation", "delete", "cluster"]).unwrap()["deleted"],
        "cluster"
    );
    assert!(run(&["federation", "show", "cluster"])
        .unwrap_err()
        .contains("no federation"));

    let store = portcullis::store::Storage::connect(&url.clone().into(), 1)
        .await
        .unwrap();
    let events = portcullis::store::Store::audit_events(
        &store,
        &portcullis::audit::AuditFilter {
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "federation_created",
            "federation_disabled",
            "federation_enabled",
            "federation_deleted"
        ],
        "CLI changes are audited"
    );
    assert!(events.iter().all(|e| e.actor == "cli"));
}
