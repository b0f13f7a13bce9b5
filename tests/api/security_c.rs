//! Hardening against a client or proxy that abuses what the server fetches,
//! believes or waits for: `jwks_uri` to private, link-local and metadata
//! addresses; a failed key fetch telling the caller its outcome; stale key
//! sets used without bound; several `x-forwarded-client-cert` lines; a
//! trusted proxy's own certificate taken as the client's; a trickled request
//! body; and a Rego policy that never finishes.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{
    helpers::{assert_describes, assert_error, fresh_database, Engine, TestApp, ADMIN_TOKEN},
    pki::{Ca, ClientKey, JwksServer, Leaf},
    private_key_jwt::token_with,
};

const SPIFFE: &str = "spiffe://example.org/ns/pay/sa/api";
const CC: (&str, &str) = ("grant_type", "client_credentials");

/// Registers a `private_key_jwt` client with `jwks_uri`; returns the response.
async fn register_jwks_uri(app: &TestApp, uri: &str) -> reqwest::Response {
    app.admin(
        Method::POST,
        "/admin/clients",
        Some(json!({
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": uri,
            "scope": "read",
            "allowed_audiences": ["https://api.example.com"],
        })),
    )
    .await
}

async fn client_id_of(res: reqwest::Response) -> String {
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    body["client_id"].as_str().unwrap().to_owned()
}

#[rstest]
#[tokio::test]
async fn a_jwks_uri_on_a_private_link_local_or_loopback_address_is_refused_at_registration(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    for uri in [
        "https://169.254.169.254/latest/meta-data/jwks",
        "https://10.0.0.1/jwks.json",
        "https://192.168.1.10/jwks.json",
        "https://100.64.0.1/jwks.json",
        "https://[fd00:ec2::254]/jwks.json",
        "https://[::ffff:169.254.169.254]/jwks.json",
        "https://0.0.0.0/jwks.json",
        "http://127.0.0.1:8080/jwks.json",
        "https://127.0.0.1/jwks.json",
        "http://localhost/jwks.json",
    ] {
        let res = register_jwks_uri(&app, uri).await;
        let body = assert_error(res, StatusCode::BAD_REQUEST, "invalid_client_metadata", uri).await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("jwks_uri"),
            "{uri}: {body}"
        );
    }
    let res = register_jwks_uri(&app, "https://keys.example.com/jwks.json").await;
    assert_eq!(res.status(), StatusCode::CREATED, "a public host is fine");
}

/// A loopback HTTP server answering every request with `status` and `body`.
async fn answering(status: &'static str, body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/jwks.json",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    url
}

#[rstest]
#[tokio::test]
async fn a_failed_key_fetch_does_not_tell_the_caller_what_the_endpoint_answered(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(engine, json!({ "jwks_uri_allow_loopback": true })).await;
    let key = ClientKey::new("k1");
    let aud = app.url("/token");
    for (status, body) in [
        ("401 Unauthorized", "{}"),
        ("200 OK", "<html>internal admin console</html>"),
    ] {
        let uri = answering(status, body).await;
        let id = client_id_of(register_jwks_uri(&app, &uri).await).await;
        let res = token_with(&app, &key.assertion(&id, &aud, app.clock.now().timestamp())).await;
        let body = assert_error(res, StatusCode::UNAUTHORIZED, "invalid_client", status).await;
        let description = body["error_description"].as_str().unwrap();
        assert!(
            description.contains("the client's keys could not be fetched"),
            "{description}"
        );
        for leak in ["401", "HTTP", "JSON", "html"] {
            assert!(!description.contains(leak), "{leak} in {description:?}");
        }
    }
}

#[rstest]
#[tokio::test]
async fn a_stale_key_set_is_used_only_up_to_jwks_stale_max(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(
        engine,
        json!({ "jwks_uri_allow_loopback": true, "jwks_cache_ttl": 60, "jwks_stale_max": 120 }),
    )
    .await;
    let key = ClientKey::new("k1");
    let jwks = JwksServer::start(ClientKey::jwks(&[&key])).await;
    let id = client_id_of(register_jwks_uri(&app, &jwks.url).await).await;
    let aud = app.url("/token");
    let token = |app: &TestApp| key.assertion(&id, &aud, app.clock.now().timestamp());

    let res = token_with(&app, &token(&app)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(jwks.hits(), 1);

    // The client's endpoint breaks (say an attacker keeps it unreachable).
    jwks.set(&json!({"keys": "no"}));
    app.clock.advance(chrono::Duration::seconds(150));
    let res = token_with(&app, &token(&app)).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "within jwks_cache_ttl + jwks_stale_max the stale set still serves"
    );
    assert_eq!(jwks.hits(), 2, "a fetch was attempted");

    app.clock.advance(chrono::Duration::seconds(31));
    let res = token_with(&app, &token(&app)).await;
    let body = assert_error(
        res,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "stale set too old",
    )
    .await;
    assert_describes(&body, "could not be fetched");
}

/// A plain-HTTP server behind a trusted proxy (127.0.0.1) with `x-forwarded-client-cert`.
async fn behind_proxy(engine: Engine, ca: &Ca) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(engine, &dir).await;
    let bundle = ca.write(dir.path(), "client-ca");
    TestApp::spawn_on(
        engine,
        url,
        dir,
        json!({
            "tls_client_ca_file": bundle,
            "forwarded_client_cert": true,
            "trusted_proxies": ["127.0.0.1"],
        }),
    )
    .await
}

async fn tls_client(app: &TestApp) -> String {
    let c = app
        .register_client(json!({
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_san_uri": SPIFFE,
            "scope": "read",
            "allowed_audiences": ["https://api.example.com"],
        }))
        .await;
    c["client_id"].as_str().unwrap().to_owned()
}

#[rstest]
#[tokio::test]
async fn several_forwarded_client_cert_lines_are_refused(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let ca = Ca::new("mesh CA");
    let app = behind_proxy(engine, &ca).await;
    let id = tls_client(&app).await;
    let genuine = ca.issue(&Leaf::spiffe(SPIFFE));
    let other = ca.issue(&Leaf::spiffe("spiffe://example.org/ns/other/sa/x"));
    // One line is the client's own (forged) header, the proxy appended its own.
    let res = app
        .http
        .post(app.url("/token"))
        .header("x-forwarded-client-cert", genuine.xfcc())
        .header("x-forwarded-client-cert", other.xfcc())
        .form(&[CC, ("client_id", &id)])
        .send()
        .await
        .unwrap();
    let body = assert_error(
        res,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "two XFCC lines",
    )
    .await;
    assert_describes(&body, "x-forwarded-client-cert");
    // One line still works.
    let res = app
        .http
        .post(app.url("/token"))
        .header("x-forwarded-client-cert", genuine.xfcc())
        .form(&[CC, ("client_id", &id)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[rstest]
#[tokio::test]
async fn a_trusted_proxys_own_certificate_is_not_the_clients(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let ca = Ca::new("mesh CA");
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(engine, &dir).await;
    let (cert, key) = Ca::new("server CA").server_files(dir.path(), "server");
    let bundle = ca.write(dir.path(), "client-ca");
    let app = TestApp::spawn_on(
        engine,
        url,
        dir,
        json!({
            "tls_cert_file": cert,
            "tls_key_file": key,
            "tls_client_ca_file": bundle,
            "forwarded_client_cert": true,
            "trusted_proxies": ["127.0.0.1"],
        }),
    )
    .await;
    let id = tls_client(&app).await;
    // The proxy connects with its own certificate (which would match the
    // client's registration) and forwards no XFCC header.
    let proxy_cert = ca.issue(&Leaf::spiffe(SPIFFE));
    let res = app
        .client(Some(proxy_cert.identity()))
        .post(app.url("/token"))
        .form(&[CC, ("client_id", &id)])
        .send()
        .await
        .unwrap();
    let body = assert_error(
        res,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "proxy's own certificate",
    )
    .await;
    assert_describes(&body, "no client certificate");
}

/// Sends `head` and then the body one byte at a time every 200 ms (or
/// nothing, when `trickle` is empty); returns what the server answered.
async fn slow_request(app: &TestApp, head: String, trickle: &'static [u8]) -> String {
    let address = app.base.trim_start_matches("http://").to_owned();
    let exchange = async move {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        let (mut read, mut write) = stream.into_split();
        let writer = tokio::spawn(async move {
            for byte in trickle {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if write.write_all(&[*byte]).await.is_err() {
                    return;
                }
            }
            // Then stall, keeping the connection open.
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(write);
        });
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        // Until the whole JSON body arrived (or the server closed).
        while !String::from_utf8_lossy(&answer).contains("\"}") {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
        writer.abort();
        String::from_utf8_lossy(&answer).into_owned()
    };
    tokio::time::timeout(Duration::from_secs(15), exchange)
        .await
        .expect("the server answered a stalled body within the deadline")
}

#[rstest]
#[tokio::test]
async fn a_trickled_or_stalled_body_gets_408_within_the_request_timeout(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn_with(engine, json!({ "request_timeout": 1 })).await;
    let token_head = "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\ngrant_type=".to_owned();
    let answer = slow_request(&app, token_head, b"client_credentials&scope=read+write").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\":\"invalid_request\""), "{answer}");
    assert!(answer
        .to_ascii_lowercase()
        .contains("cache-control: no-store"));

    let admin_head = format!(
        "POST /admin/clients HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"scope\":"
    );
    let answer = slow_request(&app, admin_head, b"").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\":\"invalid_request\""), "{answer}");

    // A body sent at once is unaffected.
    let (id, secret) = app.standard_client().await;
    app.token(&id, &secret, &[CC]).await;
}

/// A policy whose decision needs a comprehension over 10¹⁰ pairs.
const ENDLESS: &str = r#"
package portcullis
import rego.v1
pairs := count([x | some x in numbers.range(1, 100000); some y in numbers.range(1, 100000); x == y + 100000])
decision := {"allow": pairs == 0}
"#;

#[rstest]
#[tokio::test]
async fn a_policy_that_runs_too_long_is_stopped_and_the_request_answered_503(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.rego");
    std::fs::write(&path, ENDLESS).unwrap();
    let app = TestApp::spawn_with(engine, json!({ "policy_file": path })).await;
    let (id, secret) = app.standard_client().await;
    let res = tokio::time::timeout(
        Duration::from_secs(15),
        app.token_basic(&id, &secret, &[CC]),
    )
    .await
    .expect("the token request was answered while the policy was still running");
    assert_error(
        res,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "policy timeout",
    )
    .await;
    // The server still answers other requests.
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
