//! `kill -9` under load loses no audit event: the real binary issues tokens
//! to concurrent clients, is killed (SIGKILL) mid-load, and restarted on the same
//! database and journal; once it has replayed its journal, every token a
//! client received has its `token_issued` event (exactly once) and the
//! chain verifies.

use std::{
    collections::{HashMap, HashSet},
    io::{BufRead, BufReader},
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

use crate::{
    helpers::{basic, fresh_database, Engine, ADMIN_TOKEN},
    journal::jti_of,
};

/// Starts `portcullis serve` in `dir`; returns it and its address.
fn start(dir: &Path, url: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("serve")
        .current_dir(dir)
        .env_remove("DATABASE_URL")
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
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
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
            return (child, addr);
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

/// How many `token_issued` events carry each `jti`.
async fn issued(url: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for d in column_of(
        url,
        "SELECT details FROM audit_events WHERE kind = 'token_issued'",
    )
    .await
    {
        let v: Value = serde_json::from_str(&d).unwrap();
        *counts
            .entry(v["jti"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    counts
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_no_token_issued_event(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(engine, &dir).await;
    let (mut child, addr) = start(dir.path(), &url);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
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
    let auth = basic(
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap(),
    );

    // Load: 16 clients asking for tokens as fast as the server answers.
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..16)
        .map(|_| {
            let (http, auth, addr) = (http.clone(), auth.clone(), addr.clone());
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
    let deadline = Instant::now() + Duration::from_secs(120);
    while received.lock().unwrap().len() < 600 {
        assert!(Instant::now() < deadline, "the load never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let received: Vec<String> = received.lock().unwrap().clone();
    let before = issued(&url).await.values().sum::<usize>();

    // Restarted on the same database and journal, the server replays what the database lacks.
    let (mut child, _) = start(dir.path(), &url);
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let stored = issued(&url).await;
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
    let events = stored.values().sum::<usize>();
    eprintln!(
        "{engine}: {} tokens received (200), {before} token_issued events in the database at the \
         kill, {events} after the replay",
        received.len()
    );
    assert_eq!(
        received.iter().collect::<HashSet<_>>().len(),
        received.len(),
        "unique jtis"
    );
    assert!(
        stored.values().all(|n| *n == 1),
        "an event was applied twice"
    );
    assert!(events >= received.len());

    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "verify"])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env("PORTCULLIS_DATABASE_URL", &url)
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
}
