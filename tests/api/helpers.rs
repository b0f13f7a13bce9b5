//! `TestApp`: a real server on a random port against a fresh database
//! (a SQLite file in a temp dir, or a new PostgreSQL database on the server
//! named by `DATABASE_URL`), with a manual clock and a known admin token.

use std::fmt;

use base64::{engine::general_purpose::STANDARD, Engine as _};
use figment::{providers::Serialized, Figment};
use jsonwebtoken::{jwk::JwkSet, DecodingKey, Validation};
use portcullis::{clock::Clock, config::Settings, http::state::AppState, startup::Application};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;

/// The admin token every test server accepts.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Which storage engine a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// A fresh, empty database of the engine; returns its URL.
pub async fn fresh_database(engine: Engine, dir: &TempDir) -> String {
    match engine {
        Engine::Sqlite => format!("sqlite://{}/portcullis.db", dir.path().display()),
        Engine::Postgres => {
            let base = std::env::var("DATABASE_URL")
                .expect("DATABASE_URL must name a PostgreSQL server for the Postgres tests (scripts/test.sh sets it)");
            let name = format!("portcullis_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = PgConnection::connect(&base)
                .await
                .expect("connect to DATABASE_URL");
            conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
                .await
                .expect("create test database");
            conn.close().await.ok();
            let mut url = url::Url::parse(&base).expect("DATABASE_URL is a URL");
            url.set_path(&name);
            url.to_string()
        }
    }
}

/// Settings for a test server; `overrides` are merged last (config keys as in the TOML file).
/// Each call gets its own audit journal directory in `dir` (a journal serves one process;
/// tests may start a second server on the same `dir`).
pub fn test_settings(database_url: &str, dir: &TempDir, overrides: Value) -> Settings {
    let journal = dir
        .path()
        .join(format!("audit-journal-{}", uuid::Uuid::new_v4().simple()));
    let base = json!({
        "audit_journal_dir": journal,
        "listen": "127.0.0.1:0",
        "database_url": database_url,
        "database_max_connections": 4,
        // Every test's server shares two loaded cores: opening a connection
        // may take longer than the production deadline (500 ms). The outage
        // tests set their own.
        "database_timeout_ms": 5000,
        "admin_tokens": [ADMIN_TOKEN],
        "kek_file": dir.path().join("kek"),
        "kek_generate": true,
        "workers": 1,
        "argon2_concurrency": 2,
        "key_refresh_interval": 0,
        "rate_limit_ip_per_second": 0,
        "rate_limit_client_per_second": 0,
        "rate_limit_admin_per_second": 0,
        // Failures are answered at once; the delay has its own test.
        "auth_failure_delay_ms": 0,
    });
    Settings::from_figment(
        &Figment::new()
            .merge(Serialized::defaults(base))
            .merge(Serialized::defaults(overrides)),
    )
    .expect("valid test settings")
}

/// Test databases in use, by name, with the number of servers using each:
/// the last server to stop drops its database.
static DATABASES_IN_USE: std::sync::Mutex<Vec<(String, usize)>> = std::sync::Mutex::new(Vec::new());

/// The running server of a [`TestApp`]: dropping it stops the listeners and,
/// when no other test server uses it, drops the per-test PostgreSQL database.
/// (SQLite files go with the temporary directory.)
pub struct Running {
    handles: Vec<actix_web::dev::ServerHandle>,
    database: Option<url::Url>,
}

impl Running {
    fn new(handles: Vec<actix_web::dev::ServerHandle>, database_url: &str) -> Self {
        let database = url::Url::parse(database_url).ok().filter(|u| {
            u.scheme().starts_with("postgres") && u.path().starts_with("/portcullis_test_")
        });
        if let Some(url) = &database {
            let mut in_use = DATABASES_IN_USE
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match in_use.iter_mut().find(|(n, _)| n == url.path()) {
                Some((_, users)) => *users += 1,
                None => in_use.push((url.path().to_owned(), 1)),
            }
        }
        Self { handles, database }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for handle in &self.handles {
            // The stop command is sent at once; its completion is not awaited.
            drop(handle.stop(false));
        }
        let Some(url) = self.database.take() else {
            return;
        };
        let last = {
            let mut in_use = DATABASES_IN_USE
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let i = in_use.iter().position(|(n, _)| n == url.path());
            i.is_some_and(|i| {
                in_use[i].1 -= 1;
                in_use[i].1 == 0 && {
                    in_use.swap_remove(i);
                    true
                }
            })
        };
        if last {
            drop_database(url);
        }
    }
}

/// Drops the per-test PostgreSQL database `url` (terminating the stopped
/// server's connections), on a thread of its own: this runs inside `Drop`.
fn drop_database(mut url: url::Url) {
    let name = url.path().trim_start_matches('/').to_owned();
    url.set_path("/postgres");
    let dropped = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            let mut conn = PgConnection::connect(url.as_str()).await.ok()?;
            conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                .await
                .ok()?;
            conn.close().await.ok()
        })
    })
    .join();
    // scripts/test.sh drops what is left over (a database the test still held open).
    let _ = dropped;
}

pub struct TestApp {
    pub base: String,
    /// The CA of the server's certificate, when it serves HTTPS.
    pub root: Option<reqwest::Certificate>,
    pub admin_port: Option<u16>,
    pub http: reqwest::Client,
    pub clock: Clock,
    pub state: AppState,
    pub database_url: String,
    pub dir: TempDir,
    /// Stops the server (and drops its database) when the test ends.
    _running: Running,
}

impl TestApp {
    pub async fn spawn(engine: Engine) -> Self {
        Self::spawn_with(engine, json!({})).await
    }

    pub async fn spawn_with(engine: Engine, overrides: Value) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = fresh_database(engine, &dir).await;
        Self::spawn_on(engine, database_url, dir, overrides).await
    }

    /// A server on an existing database and KEK directory.
    pub async fn spawn_on(
        _engine: Engine,
        database_url: String,
        dir: TempDir,
        overrides: Value,
    ) -> Self {
        Self::spawn_at(
            database_url,
            dir,
            overrides,
            Clock::manual(Clock::System.now()),
        )
        .await
    }

    /// A second replica of this server: the same database and KEK, the same
    /// clock, its own journal and `overrides` (e.g. a changed setting, as a
    /// restart with a new configuration).
    pub async fn replica(&self, overrides: Value) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::copy(self.dir.path().join("kek"), dir.path().join("kek")).expect("copy the KEK");
        Self::spawn_at(
            self.database_url.clone(),
            dir,
            overrides,
            self.clock.clone(),
        )
        .await
    }

    async fn spawn_at(database_url: String, dir: TempDir, overrides: Value, clock: Clock) -> Self {
        let settings = test_settings(&database_url, &dir, overrides);
        // Over TLS, the certificate file ends with the test CA: trust it.
        let root = settings.listeners.tls_cert_file.as_ref().map(|path| {
            let pem = std::fs::read_to_string(path).expect("server certificate file");
            let last = pem
                .rfind("-----BEGIN CERTIFICATE-----")
                .expect("a PEM certificate");
            reqwest::Certificate::from_pem(&pem.as_bytes()[last..]).expect("CA certificate")
        });
        let app = Application::build(settings, clock.clone())
            .await
            .expect("server builds");
        let base = match root {
            Some(_) => format!("https://localhost:{}", app.port()),
            None => format!("http://127.0.0.1:{}", app.port()),
        };
        let admin_port = app.admin_port();
        let state = app.state().clone();
        let running = Running::new(app.handles(), &database_url);
        tokio::spawn(app.run_until_stopped());
        Self {
            base,
            admin_port,
            http: client_trusting(root.as_ref(), None),
            root,
            clock,
            state,
            database_url,
            dir,
            _running: running,
        }
    }

    /// An HTTP client for this server presenting `identity` (a client
    /// certificate) when given; every call makes a new connection pool.
    pub fn client(&self, identity: Option<reqwest::Identity>) -> reqwest::Client {
        client_trusting(self.root.as_ref(), identity)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path`, returning the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        let res = self.http.get(self.url(path)).send().await.expect("GET");
        res.json().await.expect("JSON body")
    }

    /// A client-credentials access token for the client (asserting success).
    pub async fn access_token(&self, id: &str, secret: &str) -> String {
        let body = self
            .token(id, secret, &[("grant_type", "client_credentials")])
            .await;
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Registers a client with the refresh-token grant and introspection permission.
    pub async fn refresh_client(&self, extra: Value) -> (String, String) {
        let mut body = json!({
            "grant_types": ["client_credentials", "refresh_token"],
            "scope": "read write",
            "allowed_audiences": ["https://api.example.com", "https://billing.example.com"],
            "default_audience": "https://api.example.com",
            "allow_introspection": true,
        });
        for (k, v) in extra.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        let c = self.register_client(body).await;
        (
            c["client_id"].as_str().unwrap().to_owned(),
            c["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    /// `POST path` with Basic credentials and a form, returning status and JSON body.
    pub async fn form_post(
        &self,
        path: &str,
        id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> (reqwest::StatusCode, Value) {
        let res = self
            .http
            .post(self.url(path))
            .header("Authorization", basic(id, secret))
            .form(form)
            .send()
            .await
            .expect("form post");
        let status = res.status();
        let text = res.text().await.expect("body");
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).expect("JSON body")
            },
        )
    }

    /// Introspects `token` as the given client; returns the JSON answer (asserting 200).
    pub async fn introspect(&self, id: &str, secret: &str, token: &str) -> Value {
        let (status, body) = self
            .form_post("/introspect", id, secret, &[("token", token)])
            .await;
        assert_eq!(
            status,
            reqwest::StatusCode::OK,
            "introspection failed: {body}"
        );
        body
    }

    /// Every value of one text column, read straight from the database.
    pub async fn column(&self, sql: &str) -> Vec<String> {
        if self.database_url.starts_with("sqlite") {
            let pool = sqlx::SqlitePool::connect(&self.database_url)
                .await
                .expect("open SQLite");
            sqlx::query_scalar(sql)
                .fetch_all(&pool)
                .await
                .expect("query")
        } else {
            let pool = sqlx::PgPool::connect(&self.database_url)
                .await
                .expect("connect PostgreSQL");
            sqlx::query_scalar(sql)
                .fetch_all(&pool)
                .await
                .expect("query")
        }
    }

    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics_text(&self) -> String {
        let res = self.http.get(self.url("/metrics")).send().await.unwrap();
        res.text().await.unwrap()
    }

    /// The `details` (as JSON text) of every stored audit event of `kind`,
    /// once this server's recorded events are written.
    pub async fn audit_details(&self, kind: &str) -> Vec<String> {
        use portcullis::{audit::AuditFilter, store::Store};
        self.state.oauth.audit.flush().await;
        let filter = AuditFilter {
            kind: Some(kind.to_owned()),
            limit: 1000,
            ..AuditFilter::default()
        };
        let events = self
            .state
            .oauth
            .store
            .audit_events(&filter)
            .await
            .expect("audit events");
        events.iter().map(|e| e.details.to_string()).collect()
    }

    /// An admin API call with the admin token.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.expect("admin request")
    }

    /// Registers a client and returns the response body (with `client_secret`).
    pub async fn register_client(&self, body: Value) -> Value {
        let res = self.admin(Method::POST, "/admin/clients", Some(body)).await;
        assert_eq!(res.status(), StatusCode::CREATED, "registration failed");
        res.json().await.expect("registration JSON")
    }

    /// Registers a client allowed `read write` on `https://api.example.com`.
    pub async fn standard_client(&self) -> (String, String) {
        let c = self
            .register_client(json!({
                "client_name": "payments",
                "scope": "read write",
                "allowed_audiences": ["https://api.example.com", "https://billing.example.com"],
                "default_audience": "https://api.example.com",
            }))
            .await;
        (
            c["client_id"].as_str().unwrap().to_owned(),
            c["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    /// `POST /token` with HTTP Basic credentials and a form body.
    pub async fn token_basic(&self, id: &str, secret: &str, form: &[(&str, &str)]) -> Response {
        self.http
            .post(self.url("/token"))
            .header("Authorization", basic(id, secret))
            .form(form)
            .send()
            .await
            .expect("token request")
    }

    /// `POST /token` with exactly the given raw body and headers.
    pub async fn token_raw(
        &self,
        content_type: Option<&str>,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let mut req = self.http.post(self.url("/token")).body(body);
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("token request")
    }

    /// Obtains a token with Basic auth and returns the response JSON (asserting 200).
    pub async fn token(&self, id: &str, secret: &str, form: &[(&str, &str)]) -> Value {
        let res = self.token_basic(id, secret, form).await;
        let status = res.status();
        let body: Value = res.json().await.expect("token JSON");
        assert_eq!(status, StatusCode::OK, "token request failed: {body}");
        body
    }

    pub async fn jwks(&self) -> JwkSet {
        self.http
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .expect("JWKS JSON")
    }

    /// Verifies `token` against the served JWKS with an independent JOSE
    /// implementation (jsonwebtoken's `rust_crypto` backend; the server signs with ring).
    pub async fn verify(&self, token: &str, audience: &str) -> Value {
        let header = jsonwebtoken::decode_header(token).expect("JWS header");
        assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 typ");
        let jwks = self.jwks().await;
        let kid = header.kid.expect("kid in header");
        let jwk = jwks.find(&kid).expect("kid is published in the JWKS");
        let key = DecodingKey::from_jwk(jwk).expect("usable JWK");
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[&self.state.oauth.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud", "nbf", "iat"]);
        // Validity is checked against the server's (manual) clock, not the wall clock.
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .expect("token verifies")
            .claims;
        let now = self.clock.now().timestamp();
        assert!(claims["nbf"].as_i64().unwrap() <= now, "nbf in the future");
        assert!(claims["exp"].as_i64().unwrap() > now, "expired");
        claims
    }
}

/// A reqwest client (rustls) trusting `root` in addition to nothing else.
pub fn client_trusting(
    root: Option<&reqwest::Certificate>,
    identity: Option<reqwest::Identity>,
) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().use_rustls_tls().tls_info(true);
    if let Some(root) = root {
        builder = builder
            .tls_built_in_root_certs(false)
            .add_root_certificate(root.clone());
    }
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder.build().expect("HTTP client")
}

pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// Asserts that an error body's `error_description` contains `fragment`.
pub fn assert_describes(body: &Value, fragment: &str) {
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.contains(fragment),
        "error_description lacks {fragment:?}: {body}"
    );
}

/// Asserts an OAuth or admin error: status, `error` code, no-store headers; returns the body.
pub async fn assert_error(res: Response, status: StatusCode, code: &str, case: &str) -> Value {
    assert_eq!(res.status(), status, "{case}: status");
    assert_eq!(
        res.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store"),
        "{case}: Cache-Control"
    );
    assert_eq!(
        res.headers().get("pragma").map(|v| v.to_str().unwrap()),
        Some("no-cache"),
        "{case}: Pragma"
    );
    let body: Value = res
        .json()
        .await
        .unwrap_or_else(|e| panic!("{case}: error body is not JSON: {e}"));
    assert_eq!(body["error"], code, "{case}: {body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{case}: description"
    );
    body
}

/// The lines `child` writes to stderr, as they come (read on a thread of
/// their own, so the child never blocks on a full pipe while they are drained).
pub fn stderr_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::{BufRead, BufReader};
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}
