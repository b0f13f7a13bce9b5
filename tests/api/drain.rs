//! Shutdown as Kubernetes drives it: the real binary, configured the way a
//! pod is (service-link variables present, the database URL from a mounted
//! file), gets SIGTERM; `/readyz` answers 503 for `shutdown_drain_delay`
//! while everything else is served, then it exits 0. Also, on Linux: the
//! running binary's background threads run below its serving threads.

use std::{
    process::{Child, Command, Stdio},
    sync::mpsc::Receiver,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::helpers::stderr_lines;

/// Everything a Service named `portcullis` injects into a pod.
const SERVICE_LINKS: &[(&str, &str)] = &[
    ("PORTCULLIS_PORT", "tcp://10.96.0.12:8080"),
    ("PORTCULLIS_PORT_8080_TCP", "tcp://10.96.0.12:8080"),
    ("PORTCULLIS_PORT_8080_TCP_PROTO", "tcp"),
    ("PORTCULLIS_PORT_8080_TCP_PORT", "8080"),
    ("PORTCULLIS_PORT_8080_TCP_ADDR", "10.96.0.12"),
    ("PORTCULLIS_SERVICE_HOST", "10.96.0.12"),
    ("PORTCULLIS_SERVICE_PORT", "8080"),
    ("PORTCULLIS_SERVICE_PORT_HTTP", "8080"),
];

/// Started `portcullis serve`: the process, its log lines so far and the
/// rest to come, and its main and admin addresses.
struct Server {
    child: Child,
    logged: Vec<String>,
    logs: Receiver<String>,
    addr: String,
    admin: String,
}

/// Starts `portcullis serve` and reads its addresses from the
/// "portcullis listening" line.
fn start(dir: &tempfile::TempDir) -> Server {
    let url_file = dir.path().join("database-url");
    let url = format!("sqlite://{}/portcullis.db\n", dir.path().display());
    std::fs::write(&url_file, url).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        // The test command exports it for the Python tools; the server would refuse an unknown PORTCULLIS_ key.
        .env_remove("PORTCULLIS_DATABASE_URL")
        .env("PORTCULLIS_DATABASE_URL_FILE", &url_file)
        .env("PORTCULLIS_LISTEN", "127.0.0.1:0")
        .env("PORTCULLIS_ADMIN_LISTEN", "127.0.0.1:0")
        .env("PORTCULLIS_KEK_GENERATE", "true")
        .env("PORTCULLIS_SHUTDOWN_DRAIN_DELAY", "2")
        .env("PORTCULLIS_LOG_LEVEL", "debug")
        .envs(SERVICE_LINKS.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start portcullis serve");
    let rx = stderr_lines(&mut child);
    let mut logged = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| {
                panic!(
                    "server starts within 60 s ({e}); exit: {:?}",
                    child.try_wait()
                )
            });
        let v: Value = serde_json::from_str(&line).expect("log lines are JSON");
        logged.push(line);
        if v["message"] == "portcullis listening" {
            return Server {
                child,
                logged,
                logs: rx,
                addr: v["addr"].as_str().unwrap().to_owned(),
                admin: format!("127.0.0.1:{}", v["admin_port"].as_u64().unwrap()),
            };
        }
    }
}

async fn status(http: &reqwest::Client, url: String) -> Option<u16> {
    http.get(url).send().await.ok().map(|r| r.status().as_u16())
}

#[tokio::test]
async fn sigterm_flips_readiness_then_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let Server {
        mut child,
        mut logged,
        logs,
        addr,
        admin,
    } = start(&dir);
    // A fresh connection per request: no idle keep-alive connection holds
    // the graceful shutdown open.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = |path: &str| format!("http://{addr}{path}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(&http, url("/healthz")).await != Some(200) {
        assert!(Instant::now() < deadline, "/healthz never answered 200");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status(&http, url("/readyz")).await, Some(200));

    let sent = Instant::now();
    // The shell's own `kill`, so the test needs no procps.
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .unwrap();
    assert!(killed.success());

    // Readiness flips to 503 "draining" ...
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let res = http.get(url("/readyz")).send().await.unwrap();
        if res.status() == 503 {
            break res.json::<Value>().await.unwrap();
        }
        assert_eq!(res.status(), 200);
        assert!(Instant::now() < deadline, "/readyz never answered 503");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(body["status"], "draining", "{body}");
    // ... while liveness, the JWKS and the admin listener are still served.
    assert_eq!(status(&http, url("/healthz")).await, Some(200));
    assert_eq!(
        status(&http, url("/.well-known/jwks.json")).await,
        Some(200)
    );
    assert_eq!(
        status(&http, format!("http://{admin}/healthz")).await,
        Some(200)
    );

    // Then both listeners close and the process exits 0, not before the delay.
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("the server did not exit within 60 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "graceful shutdown exits 0: {exit}");
    assert!(
        sent.elapsed() >= Duration::from_secs(2),
        "the listeners stayed open for shutdown_drain_delay"
    );
    assert_eq!(status(&http, url("/healthz")).await, None, "closed");

    logged.extend(logs.try_iter());
    let all = logged.join("\n");
    assert!(
        all.contains("ignored a Kubernetes service-link variable"),
        "{all}"
    );
    assert!(all.contains("PORTCULLIS_SERVICE_HOST"), "{all}");
    assert!(all.contains("\"signal\":\"SIGTERM\""), "{all}");
    assert!(all.contains("portcullis stopped"), "{all}");
}

/// Each thread of process `pid`: its name and `nice` value (Linux `/proc`).
#[cfg(target_os = "linux")]
fn thread_priorities(pid: u32) -> Vec<(String, i64)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path();
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("stat")),
        ) else {
            continue; // the thread ended meanwhile
        };
        // Fields after the name, which is in parentheses and may hold spaces:
        // state is field 3, nice field 19.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let nice = rest.split(' ').nth(16).unwrap().parse().unwrap();
        threads.push((name.trim_end().to_owned(), nice));
    }
    threads
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn background_threads_run_below_the_serving_threads() {
    let dir = tempfile::tempdir().unwrap();
    let Server {
        mut child, addr, ..
    } = start(&dir);
    // A refused token request: its audit event goes through the journal
    // writer and the apply, so both have run.
    let res = reqwest::Client::new()
        .post(format!("http://{addr}/token"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let threads = thread_priorities(child.id());
    child.kill().ok();
    child.wait().ok();
    let serving = threads
        .iter()
        .find(|(name, _)| name == "portcullis")
        .map(|(_, nice)| *nice)
        .expect("the main thread");
    let of = |prefix: &str| -> Vec<i64> {
        threads
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, nice)| *nice)
            .collect()
    };
    let (workers, background, journal) =
        (of("actix-server"), of("background"), of("audit-journal"));
    assert!(
        !workers.is_empty() && !background.is_empty() && journal.len() == 1,
        "{threads:?}"
    );
    assert!(
        workers.iter().all(|n| *n == serving),
        "serving threads keep the priority: {threads:?}"
    );
    assert!(
        background.iter().all(|n| *n == (serving + 5).min(19)),
        "the background runtime runs 5 steps below: {threads:?}"
    );
    assert_eq!(
        journal,
        [(serving + 10).min(19)],
        "the journal writer 10 below: {threads:?}"
    );
}
