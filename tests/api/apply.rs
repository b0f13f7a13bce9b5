//! Declarative clients: `portcullis apply` (the real binary, against the
//! database of a running server) and `POST /admin/apply`, on both engines.

use std::{path::Path, process::Command};

use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{assert_error, Engine, TestApp, ADMIN_TOKEN};

const BILLING_SECRET: &str = "billing-secret-0123456789";
const REPORTS_SECRET: &str = "reports-secret-abcdefghij";
const AUD: &str = "https://legacy.internal.example";

/// What one run of the binary printed.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `portcullis apply ARGS` on the server's database, with `env`.
fn apply_cli(app: &TestApp, cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("apply")
        .args(args)
        .current_dir(cwd)
        .env_remove("DATABASE_URL")
        .env("PORTCULLIS_DATABASE_URL", &app.database_url)
        .env("PORTCULLIS_LOG_LEVEL", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("run portcullis");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A document for owner `payments` with `billing` (secret from the
/// environment) and `reports` (secret from a file, scope `scope`).
fn document(secret_file: &Path, reports_scope: &str) -> String {
    format!(
        "owner: payments\n\
         clients:\n\
         \x20 - client_id: billing\n\
         \x20   client_name: Billing\n\
         \x20   scope: invoices:read invoices:write\n\
         \x20   allowed_audiences: [https://billing.internal.example]\n\
         \x20   secret: {{env: BILLING_SECRET}}\n\
         \x20 - client_id: reports\n\
         \x20   scope: {reports_scope}\n\
         \x20   allowed_audiences: [https://reports.internal.example]\n\
         \x20   token_endpoint_auth_method: client_secret_post\n\
         \x20   secret: {{file: {}}}\n",
        secret_file.display()
    )
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write file");
}

async fn token_status(app: &TestApp, id: &str, secret: &str) -> StatusCode {
    let res = app
        .token_basic(id, secret, &[("grant_type", "client_credentials")])
        .await;
    let status = res.status();
    assert_ne!(
        status,
        StatusCode::BAD_REQUEST,
        "{id}: {}",
        res.text().await.unwrap()
    );
    status
}

async fn token_post_status(app: &TestApp, id: &str, secret: &str) -> StatusCode {
    app.http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap()
        .status()
}

fn sha256_hex(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

async fn admin_get(app: &TestApp, path: &str) -> Value {
    let res = app.admin(Method::GET, path, None).await;
    assert_eq!(res.status(), StatusCode::OK, "GET {path}");
    res.json().await.unwrap()
}

async fn client_ids(app: &TestApp) -> Vec<String> {
    app.column("SELECT id FROM clients ORDER BY id").await
}

#[rstest]
#[tokio::test]
async fn apply_creates_then_updates_only_what_changed_then_changes_nothing(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange
    let app = TestApp::spawn(engine).await;
    let work = tempfile::tempdir().unwrap();
    let secret_file = work.path().join("reports.secret");
    write(&secret_file, &format!("{REPORTS_SECRET}\n"));
    let doc = work.path().join("clients.yaml");
    write(&doc, &document(&secret_file, "reports:read"));
    let env = [("BILLING_SECRET", BILLING_SECRET)];
    let doc_arg = doc.to_str().unwrap();

    // Act: the first apply creates both clients.
    let first = apply_cli(&app, work.path(), &env, &["-f", doc_arg]);

    // Assert
    assert!(first.ok, "{}", first.stderr);
    assert!(
        first.stdout.contains("+ create billing\n"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("+ create reports\n"),
        "{}",
        first.stdout
    );
    assert!(
        first
            .stdout
            .contains("2 to create, 0 to update, 0 to adopt, 0 to delete, 0 unchanged"),
        "{}",
        first.stdout
    );
    assert_eq!(
        token_status(&app, "billing", BILLING_SECRET).await,
        StatusCode::OK
    );
    assert_eq!(
        token_status(&app, "billing", "billing-secret-WRONG-56789").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        token_post_status(&app, "reports", REPORTS_SECRET).await,
        StatusCode::OK
    );
    assert_eq!(
        token_post_status(&app, "reports", "nope-nope-nope-nope-nope").await,
        StatusCode::UNAUTHORIZED
    );
    let billing = admin_get(&app, "/admin/clients/billing").await;
    assert_eq!(billing["client_name"], "Billing");
    assert_eq!(
        billing["default_audience"],
        "https://billing.internal.example"
    );

    // Act: the same document again changes nothing and audits nothing.
    let created_events = app.audit_details("client_created").await.len();
    let second = apply_cli(&app, work.path(), &env, &["-f", doc_arg]);
    assert!(second.ok, "{}", second.stderr);
    assert!(
        second.stdout.contains("= unchanged billing\n"),
        "{}",
        second.stdout
    );
    assert!(
        second.stdout.contains("= unchanged reports\n"),
        "{}",
        second.stdout
    );
    assert!(second
        .stdout
        .contains("0 to create, 0 to update, 0 to adopt, 0 to delete, 2 unchanged"));
    assert_eq!(
        app.audit_details("client_created").await.len(),
        created_events
    );
    assert!(app.audit_details("client_updated").await.is_empty());

    // Act: a changed scope updates that field only.
    write(&doc, &document(&secret_file, "reports:read reports:export"));
    let third = apply_cli(
        &app,
        work.path(),
        &env,
        &["-f", doc_arg, "--output", "json"],
    );
    assert!(third.ok, "{}", third.stderr);
    let plan: Value = serde_json::from_str(&third.stdout).expect("JSON plan");
    assert_eq!(plan["dry_run"], false);
    assert_eq!(
        plan["changes"][0],
        json!({"action": "unchanged", "client_id": "billing"})
    );
    assert_eq!(
        plan["changes"][1],
        json!({"action": "update", "client_id": "reports",
               "fields": {"scope": {"from": "reports:read", "to": "reports:export reports:read"}}})
    );
    assert_eq!(plan["summary"]["update"], 1);
    let reports = admin_get(&app, "/admin/clients/reports").await;
    assert_eq!(reports["scope"], "reports:export reports:read");
    assert_eq!(
        token_post_status(&app, "reports", REPORTS_SECRET).await,
        StatusCode::OK
    );

    // Every change is audited with its source and the document's digest.
    let digest = format!("sha256:{}", sha256_hex(&std::fs::read(&doc).unwrap()));
    let updated = app.audit_details("client_updated").await;
    assert_eq!(updated.len(), 1, "{updated:?}");
    let details: Value = serde_json::from_str(&updated[0]).unwrap();
    assert_eq!(details["source"], "apply");
    assert_eq!(details["file"], doc_arg);
    assert_eq!(details["digest"], digest);
    assert_eq!(details["after"]["scope"], "reports:export reports:read");
    let created: Vec<Value> = app
        .audit_details("client_created")
        .await
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        created.iter().all(|d| d["source"] == "apply"),
        "{created:?}"
    );
    let all = created.iter().map(Value::to_string).collect::<String>();
    assert!(
        !all.contains(BILLING_SECRET) && !all.contains(REPORTS_SECRET),
        "no secret audited"
    );
    assert!(
        all.contains("\"reference\":\"env:BILLING_SECRET\""),
        "{all}"
    );
}

#[rstest]
#[tokio::test]
async fn dry_run_prints_the_plan_as_json_and_changes_nothing(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange
    let app = TestApp::spawn(engine).await;
    let work = tempfile::tempdir().unwrap();
    let secret_file = work.path().join("reports.secret");
    write(&secret_file, REPORTS_SECRET);
    let doc = work.path().join("clients.yaml");
    write(&doc, &document(&secret_file, "reports:read"));
    let env = [("BILLING_SECRET", BILLING_SECRET)];

    // Act
    let run = apply_cli(
        &app,
        work.path(),
        &env,
        &["-f", doc.to_str().unwrap(), "--dry-run", "--output", "json"],
    );

    // Assert
    assert!(run.ok, "{}", run.stderr);
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["owner"], "payments");
    assert_eq!(
        plan["changes"],
        json!([
            {"action": "create", "client_id": "billing"},
            {"action": "create", "client_id": "reports"},
        ])
    );
    assert_eq!(
        plan["summary"],
        json!({"create": 2, "update": 0, "adopt": 0, "delete": 0, "unchanged": 0})
    );
    assert!(client_ids(&app).await.is_empty());
    assert!(app.audit_details("client_created").await.is_empty());
    let text = apply_cli(
        &app,
        work.path(),
        &env,
        &["-f", doc.to_str().unwrap(), "--dry-run"],
    );
    assert!(
        text.stdout
            .contains("Plan (dry run, nothing changed): 2 to create"),
        "{}",
        text.stdout
    );
    assert!(client_ids(&app).await.is_empty());
}

#[rstest]
#[tokio::test]
async fn prune_deletes_only_the_owners_clients_and_a_directory_is_one_document(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: a client made by hand, one of another owner, two of ours in two files.
    let app = TestApp::spawn(engine).await;
    app.register_client(json!({"client_id": "by-hand"})).await;
    let work = tempfile::tempdir().unwrap();
    let theirs = work.path().join("theirs.yaml");
    write(&theirs, "owner: other-team\nclients:\n  - client_id: theirs\n    token_endpoint_auth_method: private_key_jwt\n    jwks_uri: https://theirs.example/jwks\n");
    assert!(apply_cli(&app, work.path(), &[], &["-f", theirs.to_str().unwrap()]).ok);
    let dir = work.path().join("clients");
    std::fs::create_dir(&dir).unwrap();
    let secret = work.path().join("s");
    write(&secret, REPORTS_SECRET);
    let entry = |id: &str| {
        format!(
            "clients:\n  - client_id: {id}\n    secret: {{file: {}}}\n",
            secret.display()
        )
    };
    write(
        &dir.join("a.yaml"),
        &format!("owner: payments\n{}", entry("one")),
    );
    write(&dir.join("b.yml"), &entry("two"));
    write(&dir.join("notes.txt"), "not read");
    let run = apply_cli(&app, work.path(), &[], &["-f", dir.to_str().unwrap()]);
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("+ create one\n+ create two\n"),
        "{}",
        run.stdout
    );

    // Act: `two` leaves the document; without --prune it stays.
    std::fs::remove_file(dir.join("b.yml")).unwrap();
    let kept = apply_cli(&app, work.path(), &[], &["-f", dir.to_str().unwrap()]);
    assert!(kept.ok, "{}", kept.stderr);
    assert!(
        kept.stdout.starts_with("= unchanged one\nApplied:"),
        "{}",
        kept.stdout
    );
    let pruned = apply_cli(
        &app,
        work.path(),
        &[],
        &["-f", dir.to_str().unwrap(), "--prune"],
    );

    // Assert
    assert!(pruned.ok, "{}", pruned.stderr);
    assert!(
        pruned.stdout.contains("= unchanged one\n- delete two\n"),
        "{}",
        pruned.stdout
    );
    assert_eq!(client_ids(&app).await, ["by-hand", "one", "theirs"]);
    let deleted = app.audit_details("client_deleted").await;
    assert_eq!(deleted.len(), 1);
    assert!(
        deleted[0].contains("\"source\":\"apply\""),
        "{}",
        deleted[0]
    );
}

#[rstest]
#[tokio::test]
async fn bad_documents_are_refused_whole_naming_file_line_and_member(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: each case has a valid client first, so a half-applied
    // document would show.
    let app = TestApp::spawn(engine).await;
    let work = tempfile::tempdir().unwrap();
    let secret = work.path().join("ok.secret");
    write(&secret, REPORTS_SECRET);
    let good = format!(
        "  - client_id: good\n    secret: {{file: {}}}\n",
        secret.display()
    );
    let cases: Vec<(String, &[&str], &str)> = vec![
        (format!("owner: t\nclients:\n{good}  - client_id: x\n    scopes: a\n    secret: {{env: S}}\n"),
            &[":6:", "client \"x\", scopes", "did you mean \"scope\""], "unknown field"),
        (format!("owner: t\nclients:\n{good}  - client_id: x\n    secret: {{env: S}}\n    scope: 'a\"b'\n"),
            &[":7:", "client \"x\", scope", "scope must be"], "bad scope"),
        (format!("owner: t\nclients:\n{good}  - client_id: good\n    secret: {{env: S}}\n"),
            &[":5:", "client_id is declared twice (first at", ":3)"], "duplicate id"),
        (format!("owner: t\nclients:\n{good}  - client_id: x\n    scope: a\n"),
            &[":5:", "client \"x\", secret", "client_secret_basic needs a secret reference"], "missing secret reference"),
        (format!("owner: t\nclients:\n{good}  - client_id: x\n    secret: {{env: NOT_SET_ANYWHERE_42}}\n"),
            &[":6:", "NOT_SET_ANYWHERE_42 is not set"], "missing env var"),
        (format!("owner: t\nclients:\n{good}  - client_id: x\n    secret: {{file: /nonexistent/secret}}\n"),
            &[":6:", "/nonexistent/secret: cannot be read"], "missing file"),
        (format!("owner: t\nclients:\n{good}  - client_id: x\n    secret: hunter2-hunter2-hunter2\n"),
            &[":6:", "secret must be a reference"], "secret inline"),
        (format!("owner: t\nclients:\n{good}  - client_id: x\n    client_secret: hunter2-hunter2-hunter2\n    secret: {{env: S}}\n"),
            &[":6:", "client \"x\", client_secret", "never written in the document"], "client_secret inline"),
        (format!("owner: t\npolicies: []\nclients:\n{good}"),
            &[":2:", "unknown top-level key \"policies\""], "unknown top-level key"),
        (format!("owner: t\nclients:\n{good}  - client_id: x\n    secret: {{env: S}}\n    access_token_ttl: soon\n"),
            &[":7:", "access_token_ttl: invalid type"], "wrong type"),
        (format!("owner: [t]\nclients:\n{good}"), &[":1:", "owner must be a string"], "wrong owner type"),
        (format!("clients:\n{good}"), &[":1:", "owner is required"], "missing owner"),
        ("\n".to_owned(), &[":1:", "the file is empty"], "empty file"),
        ("owner: t\nclients:\n  - client_id: [\n".to_owned(), &["not valid YAML or JSON"], "syntax"),
        (format!("owner: t\nclients:\n{good}  - client_id: x\n    scopes: a\n  - client_id: y\n    grant_types: []\n    secret: {{env: S}}\n"),
            &[":6:", ":8:", "grant_types must not be empty", "2 problem(s)"], "every error collected"),
    ];
    let env = [("S", BILLING_SECRET)];
    for (text, expected, case) in cases {
        let doc = work.path().join("bad.yaml");
        write(&doc, &text);

        // Act
        let run = apply_cli(&app, work.path(), &env, &["-f", doc.to_str().unwrap()]);

        // Assert
        assert!(!run.ok, "{case}: accepted");
        assert!(
            run.stderr
                .contains("the document is refused, nothing was changed"),
            "{case}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(doc.to_str().unwrap()),
            "{case}: the file is named: {}",
            run.stderr
        );
        for part in expected {
            assert!(
                run.stderr.contains(part),
                "{case}: {part:?} in {}",
                run.stderr
            );
        }
        assert!(
            !run.stderr.contains(BILLING_SECRET) && !run.stderr.contains("hunter2"),
            "{case}: a secret in {}",
            run.stderr
        );
        assert!(
            client_ids(&app).await.is_empty(),
            "{case}: something was applied"
        );
    }
}

/// `POST /admin/apply` with a body of `content_type`.
async fn post_apply(
    app: &TestApp,
    query: &str,
    content_type: &str,
    body: &str,
) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/admin/apply{query}")))
        .bearer_auth(ADMIN_TOKEN)
        .header("Content-Type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

#[rstest]
#[tokio::test]
async fn rest_apply_plans_applies_adopts_refuses_and_rotates_secrets(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: a client made by hand, another owner's client, secrets in files.
    let app = TestApp::spawn(engine).await;
    let by_hand = app
        .register_client(json!({"client_id": "legacy", "scope": "old", "allowed_audiences": [AUD]}))
        .await;
    let work = tempfile::tempdir().unwrap();
    let secret = work.path().join("legacy.secret");
    write(&secret, REPORTS_SECRET);
    let hash = work.path().join("hydra.hash");
    write(
        &hash,
        &format!("{}\n", bcrypt::hash("hydra-secret-0123456", 4).unwrap()),
    );
    let doc = json!({
        "owner": "platform",
        "clients": [
            {"client_id": "legacy", "scope": "new", "allowed_audiences": [AUD], "secret": {"file": secret}},
            {"client_id": "hydra", "scope": "read", "allowed_audiences": [AUD], "secret": {"hash_file": hash}},
        ]
    })
    .to_string();

    // Act / Assert: without the admin token, 401 and nothing applied.
    let res = app
        .http
        .post(app.url("/admin/apply"))
        .header("Content-Type", "application/json")
        .body(doc.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // A dry run shows the adoption and the creation, and changes nothing.
    let res = post_apply(&app, "?dry_run=true", "application/json", &doc).await;
    assert_eq!(res.status(), StatusCode::OK);
    let plan: Value = res.json().await.unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["changes"][0]["action"], "adopt");
    assert_eq!(
        plan["changes"][0]["fields"]["scope"],
        json!({"from": "old", "to": "new"})
    );
    assert_eq!(
        plan["changes"][0]["fields"]["secret"],
        json!({"from": "set", "to": "changed"})
    );
    assert_eq!(
        plan["changes"][1],
        json!({"action": "create", "client_id": "hydra"})
    );
    assert_eq!(client_ids(&app).await, ["legacy"]);
    let old_secret = by_hand["client_secret"].as_str().unwrap();
    assert_eq!(
        token_status(&app, "legacy", old_secret).await,
        StatusCode::OK
    );

    // Applied: the adopted client has the declared secret, the hash works.
    let res = post_apply(&app, "", "application/json", &doc).await;
    assert_eq!(res.status(), StatusCode::OK);
    let plan: Value = res.json().await.unwrap();
    assert_eq!(plan["summary"]["adopt"], 1);
    assert_eq!(
        token_status(&app, "legacy", REPORTS_SECRET).await,
        StatusCode::OK
    );
    assert_eq!(
        token_status(&app, "legacy", old_secret).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        token_status(&app, "hydra", "hydra-secret-0123456").await,
        StatusCode::OK
    );
    assert_eq!(
        token_status(&app, "hydra", "hydra-secret-6543210").await,
        StatusCode::UNAUTHORIZED
    );
    let adopted = app.audit_details("client_updated").await;
    assert!(
        adopted[0].contains("\"action\":\"adopt\"") && adopted[0].contains("\"file\":\"api\""),
        "{adopted:?}"
    );
    assert!(adopted[0].contains("\"digest\":\"sha256:"), "{adopted:?}");

    // The same document as YAML: unchanged (the secret verifies).
    let yaml = serde_yaml_ng::to_string(&serde_json::from_str::<Value>(&doc).unwrap()).unwrap();
    let res = post_apply(&app, "", "application/yaml", &yaml).await;
    let plan: Value = res.json().await.unwrap();
    assert_eq!(plan["summary"]["unchanged"], 2, "{plan}");

    // A changed secret reference updates the secret.
    write(&secret, "rotated-secret-0123456789");
    let plan: Value = post_apply(&app, "", "application/json", &doc)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(plan["changes"][0]["action"], "update", "{plan}");
    assert_eq!(
        plan["changes"][0]["fields"],
        json!({"secret": {"from": "set", "to": "changed"}})
    );
    assert_eq!(
        token_status(&app, "legacy", "rotated-secret-0123456789").await,
        StatusCode::OK
    );
    assert_eq!(
        token_status(&app, "legacy", REPORTS_SECRET).await,
        StatusCode::UNAUTHORIZED
    );

    // Another owner naming our client is refused as a conflict; nothing changes.
    let other = json!({"owner": "intruder", "clients": [
        {"client_id": "fresh", "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://x.example/jwks"},
        {"client_id": "hydra", "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://x.example/jwks"},
    ]});
    let res = post_apply(&app, "", "application/json", &other.to_string()).await;
    let body = assert_error(res, StatusCode::CONFLICT, "conflict", "other owner").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("managed by owner \"platform\""),
        "{body}"
    );
    assert_eq!(client_ids(&app).await, ["hydra", "legacy"]);

    // A bad document: 400 naming the member and the line; nothing changes.
    let bad = "owner: platform\nclients:\n  - client_id: fresh\n    scope: ok\n    allowed_audience: [https://a.example]\n";
    let res = post_apply(&app, "", "application/yaml", bad).await;
    let body = assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "bad document",
    )
    .await;
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.contains("api:5: client \"fresh\", allowed_audience"),
        "{description}"
    );
    assert_eq!(client_ids(&app).await, ["hydra", "legacy"]);

    // Bad requests: unknown query parameter, wrong media type, empty body.
    let res = post_apply(&app, "?force=true", "application/json", &doc).await;
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "unknown query",
    )
    .await;
    let res = post_apply(&app, "", "text/plain", &doc).await;
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let res = post_apply(&app, "", "application/json", "").await;
    let body = assert_error(res, StatusCode::BAD_REQUEST, "invalid_request", "empty").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("empty"),
        "{body}"
    );

    // Prune over REST deletes only the owner's clients the document left out.
    let only_hydra = json!({"owner": "platform", "clients": [
        {"client_id": "hydra", "scope": "read", "allowed_audiences": [AUD], "secret": {"hash_file": hash}},
    ]});
    let plan: Value = post_apply(
        &app,
        "?prune=true",
        "application/json",
        &only_hydra.to_string(),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        plan["changes"][1],
        json!({"action": "delete", "client_id": "legacy"}),
        "{plan}"
    );
    assert_eq!(client_ids(&app).await, ["hydra"]);
}

/// The store's side: one transaction, owners checked inside it.
#[rstest]
#[tokio::test]
async fn the_store_applies_writes_all_or_nothing_and_checks_owners(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    use portcullis::{
        clients::{Client, ClientId, SecretHash},
        clock::Clock,
        store::{ClientWrite, NewSecret, Storage, Store, StoreError},
    };
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let url = crate::helpers::fresh_database(engine, &dir).await;
    let store = Storage::connect(&secrecy::SecretString::from(url), 2)
        .await
        .unwrap();
    let now = Clock::System.now();
    let client = |id: &str| Client::new(ClientId::parse(id).unwrap(), now);
    let secret = |tag: &str| NewSecret {
        id: format!("secret-{tag}"),
        hash: SecretHash::from_stored(format!("hash-{tag}")),
        created_at: now,
    };
    let owners = || async {
        store
            .client_owners()
            .await
            .unwrap()
            .into_iter()
            .map(|(id, o)| format!("{id}={o}"))
            .collect::<Vec<_>>()
    };
    store.create_client(&client("by-hand"), None).await.unwrap();
    store
        .apply_client_writes(
            "t",
            &[
                ClientWrite::Create(client("a"), Some(secret("a1"))),
                ClientWrite::Create(client("b"), None),
            ],
        )
        .await
        .unwrap();
    assert_eq!(owners().await, ["a=t", "b=t"]);

    // Act / Assert: a failing write undoes the writes before it.
    let mut renamed = client("a");
    renamed.name = Some("changed".into());
    let failed = store
        .apply_client_writes(
            "t",
            &[
                ClientWrite::Update(renamed.clone(), None),
                ClientWrite::Create(client("c"), None),
                ClientWrite::Create(client("b"), None),
            ],
        )
        .await;
    assert!(
        matches!(failed, Err(StoreError::Conflict { .. })),
        "{failed:?}"
    );
    let a = ClientId::parse("a").unwrap();
    assert_eq!(store.find_client(&a).await.unwrap().unwrap().name, None);
    assert!(store
        .find_client(&ClientId::parse("c").unwrap())
        .await
        .unwrap()
        .is_none());

    // Another owner can neither update nor delete; a client without owner is adopted.
    let other = store
        .apply_client_writes("u", &[ClientWrite::Update(renamed.clone(), None)])
        .await;
    assert!(
        matches!(other, Err(StoreError::Conflict { .. })),
        "{other:?}"
    );
    let other = store
        .apply_client_writes("u", &[ClientWrite::Delete(a.clone())])
        .await;
    assert!(matches!(other, Err(StoreError::NotFound)), "{other:?}");
    store
        .apply_client_writes(
            "t",
            &[
                ClientWrite::Update(client("by-hand"), None),
                ClientWrite::Update(renamed, Some(secret("a2"))),
            ],
        )
        .await
        .unwrap();
    assert_eq!(owners().await, ["a=t", "b=t", "by-hand=t"]);
    let secrets: Vec<String> = store
        .client_secrets(&a, now)
        .await
        .unwrap()
        .into_iter()
        .map(|(h, _)| h.as_stored().to_owned())
        .collect();
    assert_eq!(secrets, ["hash-a2"], "a given secret replaces the others");
    store
        .apply_client_writes("t", &[ClientWrite::Delete(a.clone())])
        .await
        .unwrap();
    assert!(store.find_client(&a).await.unwrap().is_none());
    assert!(store.client_secrets(&a, now).await.unwrap().is_empty());
}
