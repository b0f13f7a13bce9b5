//! `kill -9` under load loses no audit event: the real binary issues tokens
//! to concurrent clients, is killed (SIGKILL) mid-load — also in the middle
//! of a database outage, while it serves from memory and its events exist
//! only in the journal — and restarted on the same database and journal;
//! once it has replayed its journal, every token a client received has its
//! `token_issued` event (exactly once) and the chain verifies.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use rstest::rstest;
use serde_json::{json, Value};

use portcullis::{
    audit::AuditFilter,
    store::{Storage, Store},
};
use secrecy::SecretString;

use crate::{
    helpers::{basic, fresh_database, stderr_lines, Engine, ADMIN_TOKEN},
    journal::jti_of,
    pg_cluster::PgCluster,
};

/// A server process, killed when dropped (a failing assertion must not
/// leave it running, holding the test's output open).
struct Server(Child);

impl std::ops::Deref for Server {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `portcullis serve` in `dir`; returns it and its address.
fn start(dir: &Path, url: &str) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("serve")
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        // The test command exports it for the Python tools; the server would refuse an unknown PORTCULLIS_ key.
        .env("PORTCULLIS_DATABASE_URL", url)
        .env("PORTCULLIS_LISTEN", "127.0.0.1:0")
        .env("PORTCULLIS_ADMIN_TOKENS", ADMIN_TOKEN)
        .env("PORTCULLIS_KEK_GENERATE", "true")
        .env("PORTCULLIS_AUDIT_JOURNAL_DIR", dir.join("journal"))
        .env("PORTCULLIS_WORKERS", "2")
        .env("PORTCULLIS_RATE_LIMIT_IP_PER_SECOND", "0")
        .env("PORTCULLIS_RATE_LIMIT_CLIENT_PER_SECOND", "0")
        .env("PORTCULLIS_RATE_LIMIT_ADMIN_PER_SECOND", "0")
        .env("PORTCULLIS_LOG_LEVEL", "warn,portcullis::startup=info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start portcullis serve");
    let rx = stderr_lines(&mut child);
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("server starts ({e}); exit: {:?}", child.try_wait()));
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if v["message"] == "portcullis listening" {
            let addr = v["addr"].as_str().unwrap().to_owned();
            // Keep draining the log so the server never blocks on a full pipe.
            std::thread::spawn(move || while rx.recv().is_ok() {});
            return (Server(child), addr);
        }
    }
}

/// Every value of one text column.
pub async fn column_of(url: &str, sql: &str) -> Vec<String> {
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let rows = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    }
}

/// How many `token_issued` events carry each `jti`, read through the store.
async fn issued(url: &str) -> HashMap<String, usize> {
    let store = Storage::connect(&SecretString::from(url.to_owned()), 2)
        .await
        .expect("connect to the database");
    let mut counts = HashMap::new();
    let mut after_id = 0;
    loop {
        let filter = AuditFilter {
            kind: Some("token_issued".to_owned()),
            after_id,
            limit: 1000,
            ..AuditFilter::default()
        };
        let page = store.audit_events(&filter).await.expect("audit events");
        let Some(last) = page.last() else { break };
        after_id = last.id;
        for e in &page {
            *counts
                .entry(e.details["jti"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    counts
}

/// Registers a client on the server at `addr`; its Basic credentials.
async fn register(http: &reqwest::Client, addr: &str) -> String {
    let client: Value = http
        .post(format!("http://{addr}/admin/clients"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "scope": "read", "allowed_audiences": ["https://api.example.com"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    basic(
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap(),
    )
}

/// 16 concurrent callers asking for tokens as fast as the server answers;
/// the `jti` of every token received whole.
struct Load {
    received: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(http: &reqwest::Client, addr: &str, auth: &str) -> Self {
        let received = Arc::new(Mutex::new(Vec::<String>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..16)
            .map(|_| {
                let (http, auth, addr) = (http.clone(), auth.to_owned(), addr.to_owned());
                let (received, stop) = (Arc::clone(&received), Arc::clone(&stop));
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let res = http
                            .post(format!("http://{addr}/token"))
                            .header("Authorization", &auth)
                            .form(&[("grant_type", "client_credentials")])
                            .send()
                            .await;
                        let Ok(res) = res else { break };
                        if res.status() != 200 {
                            continue;
                        }
                        // A token counts as received only with its whole body.
                        if let Ok(body) = res.json::<Value>().await {
                            let jti = jti_of(body["access_token"].as_str().unwrap());
                            received.lock().unwrap().push(jti);
                        }
                    }
                })
            })
            .collect();
        Self {
            received,
            stop,
            tasks,
        }
    }

    fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// Waits until `n` tokens in all were received (two minutes at most).
    async fn until(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.count() < n {
            assert!(
                Instant::now() < deadline,
                "the load stalled at {}",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the callers (the server is dead by now); the received `jti`s.
    async fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        let received = self.received.lock().unwrap().clone();
        assert_eq!(
            received.iter().collect::<HashSet<_>>().len(),
            received.len(),
            "unique jtis"
        );
        received
    }
}

/// Restarts the server on the same database and journal, waits until every
/// received token has its `token_issued` event, and checks each was applied
/// once and the chain verifies; how many events there are.
async fn replayed(dir: &Path, url: &str, received: &[String]) -> usize {
    let (mut child, _) = start(dir, url);
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let stored = issued(url).await;
        if received.iter().all(|j| stored.contains_key(j)) {
            break stored;
        }
        assert!(
            Instant::now() < deadline,
            "{} received tokens have no token_issued event",
            received.iter().filter(|j| !stored.contains_key(*j)).count()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        stored.values().all(|n| *n == 1),
        "an event was applied twice"
    );
    let events = stored.values().sum::<usize>();
    assert!(events >= received.len());

    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "verify"])
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        // The test command exports it for the Python tools; the server would refuse an unknown PORTCULLIS_ key.
        .env("PORTCULLIS_DATABASE_URL", url)
        .env("PORTCULLIS_LOG_LEVEL", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["intact"], true, "{report}");
    events
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_no_token_issued_event(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(engine, &dir).await;
    let (mut child, addr) = start(dir.path(), &url);
    let http = http();
    let auth = register(&http, &addr).await;

    let load = Load::start(&http, &addr, &auth);
    load.until(600).await;
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let received = load.finish().await;
    let before = issued(&url).await.values().sum::<usize>();

    let events = replayed(dir.path(), &url, &received).await;
    eprintln!(
        "{engine}: {} tokens received (200), {before} token_issued events in the database at the \
         kill, {events} after the replay",
        received.len()
    );
}

/// The server serves from memory while PostgreSQL is down, so the events of
/// those tokens are only in its journal when it is killed; PostgreSQL comes
/// back, the server restarts, and the journal is replayed into the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_a_database_outage_loses_no_token_issued_event() {
    let pg = tokio::task::block_in_place(PgCluster::start);
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url();
    let (mut child, addr) = start(dir.path(), &url);
    let http = http();
    let auth = register(&http, &addr).await;

    let load = Load::start(&http, &addr, &auth);
    load.until(200).await;
    tokio::task::block_in_place(|| pg.stop());
    let at_stop = load.count();
    load.until(at_stop + 400).await;
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let received = load.finish().await;
    let during = received.len() - at_stop;

    tokio::task::block_in_place(|| pg.start_again());
    let events = replayed(dir.path(), &url, &received).await;
    eprintln!(
        "outage: {} tokens received ({during} while PostgreSQL was down), {events} token_issued \
         events after the restart and replay",
        received.len()
    );
}
