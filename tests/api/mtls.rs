//! Mutual TLS (RFC 8705) over real TLS connections: `tls_client_auth`
//! against a CA bundle and a registered subject, `self_signed_tls_client_auth`
//! against the client's JWK set, certificate-bound tokens, Envoy's
//! `x-forwarded-client-cert` from trusted proxies only, and the server
//! certificate reloaded from disk without a restart.

use std::time::Duration;

use reqwest::{Response, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};

use crate::{
    helpers::{assert_error, fresh_database, Engine, TestApp},
    pki::{Ca, ClientKey, Issued, Leaf},
};

const SPIFFE: &str = "spiffe://example.org/ns/pay/sa/api";
const CC: (&str, &str) = ("grant_type", "client_credentials");

/// A server speaking HTTPS with a server CA, accepting client certificates
/// from `client_ca` for `tls_client_auth`.
async fn tls_app(engine: Engine, client_ca: &Ca, extra: Value) -> TestApp {
    tls_app_signed_by(engine, &Ca::new("server CA"), client_ca, extra).await
}

async fn tls_app_signed_by(
    engine: Engine,
    server_ca: &Ca,
    client_ca: &Ca,
    extra: Value,
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(engine, &dir).await;
    let (cert, key) = server_ca.server_files(dir.path(), "server");
    let mut overrides = json!({
        "tls_cert_file": cert,
        "tls_key_file": key,
        "tls_client_ca_file": client_ca.write(dir.path(), "client-ca"),
        "tls_reload_interval": 1,
    });
    for (k, v) in extra.as_object().unwrap() {
        overrides[k] = v.clone();
    }
    TestApp::spawn_on(engine, url, dir, overrides).await
}

async fn register(app: &TestApp, body: Value) -> String {
    let mut full = json!({
        "scope": "read",
        "allowed_audiences": ["https://api.example.com"],
        "allow_introspection": true,
        "grant_types": ["client_credentials", "refresh_token"],
    });
    for (k, v) in body.as_object().unwrap() {
        full[k] = v.clone();
    }
    let c = app.register_client(full).await;
    assert!(c.get("client_secret").is_none(), "{c}");
    assert_eq!(c["tls_client_certificate_bound_access_tokens"], true, "{c}");
    c["client_id"].as_str().unwrap().to_owned()
}

/// `POST path` with `form` over a new connection presenting `cert`.
async fn post_as(
    app: &TestApp,
    cert: Option<&Issued>,
    path: &str,
    form: &[(&str, &str)],
) -> Response {
    app.client(cert.map(Issued::identity))
        .post(app.url(path))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn token_ok(app: &TestApp, cert: &Issued, id: &str) -> Value {
    let res = post_as(app, Some(cert), "/token", &[CC, ("client_id", id)]).await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[rstest]
#[tokio::test]
async fn a_spiffe_certificate_gets_certificate_bound_access_and_refresh_tokens(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let ca = Ca::new("mesh CA");
    let app = tls_app(engine, &ca, json!({})).await;
    assert!(app.base.starts_with("https://"));
    assert!(
        app.state.oauth.issuer.starts_with("https://"),
        "the default issuer follows TLS"
    );
    let id = register(
        &app,
        json!({ "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_uri": SPIFFE }),
    )
    .await;
    let cert = ca.issue(&Leaf::spiffe(SPIFFE));

    let body = token_ok(&app, &cert, &id).await;
    let access = body["access_token"].as_str().unwrap();
    let claims = app.verify(access, "https://api.example.com").await;
    assert_eq!(claims["cnf"]["x5t#S256"], cert.thumbprint());

    let answer: Value = post_as(
        &app,
        Some(&cert),
        "/introspect",
        &[("client_id", &id), ("token", access)],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["cnf"]["x5t#S256"], cert.thumbprint());
    let refresh = body["refresh_token"].as_str().unwrap();
    let answer: Value = post_as(
        &app,
        Some(&cert),
        "/introspect",
        &[("client_id", &id), ("token", refresh)],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(answer["cnf"]["x5t#S256"], cert.thumbprint(), "{answer}");

    // Another certificate of the same workload authenticates, but cannot use
    // the refresh token bound to the first one.
    let sibling = ca.issue(&Leaf::spiffe(SPIFFE));
    let res = post_as(
        &app,
        Some(&sibling),
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &id),
            ("refresh_token", refresh),
        ],
    )
    .await;
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "other certificate",
    )
    .await;
    let res = post_as(
        &app,
        Some(&cert),
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &id),
            ("refresh_token", refresh),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let renewed: Value = res.json().await.unwrap();
    let claims = app
        .verify(
            renewed["access_token"].as_str().unwrap(),
            "https://api.example.com",
        )
        .await;
    assert_eq!(claims["cnf"]["x5t#S256"], cert.thumbprint());

    // The policy input and the audit trail see the certificate.
    let details = app.audit_details("token_issued").await;
    assert!(!details.is_empty(), "the tokens above were audited");
    assert!(
        details.iter().all(|d| d.contains("tls_client_auth")),
        "{details:?}"
    );
}

#[rstest]
#[tokio::test]
async fn subject_dn_dns_ip_and_email_subjects_match_exactly(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let ca = Ca::new("corp CA");
    let app = tls_app(engine, &ca, json!({})).await;
    let cert = ca.issue(&Leaf {
        cn: Some("billing".into()),
        org: Some("Example Corp".into()),
        dns: vec!["billing.internal.example".into()],
        ips: vec!["10.1.2.3".parse().unwrap()],
        emails: vec!["billing@example.com".into()],
        ..Leaf::default()
    });
    for (member, value) in [
        ("tls_client_auth_subject_dn", "CN=billing,O=Example Corp"),
        ("tls_client_auth_san_dns", "billing.internal.example"),
        ("tls_client_auth_san_ip", "10.1.2.3"),
        ("tls_client_auth_san_email", "billing@example.com"),
    ] {
        let id = register(
            &app,
            json!({ "token_endpoint_auth_method": "tls_client_auth", member: value }),
        )
        .await;
        token_ok(&app, &cert, &id).await;
    }
}

#[rstest]
#[tokio::test]
async fn every_bad_certificate_is_refused_with_invalid_client(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let ca = Ca::new("mesh CA");
    let app = tls_app(engine, &ca, json!({})).await;
    let id = register(
        &app,
        json!({ "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_uri": SPIFFE }),
    )
    .await;
    let rogue = Ca::new("mesh CA");
    let cases = [
        (
            "wrong CA",
            Some(rogue.issue(&Leaf::spiffe(SPIFFE))),
            "trusted",
        ),
        (
            "expired",
            Some(ca.issue(&Leaf {
                expired: true,
                ..Leaf::spiffe(SPIFFE)
            })),
            "expired",
        ),
        (
            "not yet valid",
            Some(ca.issue(&Leaf {
                future: true,
                ..Leaf::spiffe(SPIFFE)
            })),
            "valid",
        ),
        (
            "SAN mismatch",
            Some(ca.issue(&Leaf::spiffe("spiffe://example.org/ns/pay/sa/other"))),
            "tls_client_auth_san_uri",
        ),
        ("self-signed", Some(Issued::self_signed("api")), "trusted"),
        ("no certificate", None, "no client certificate"),
    ];
    for (case, cert, word) in cases {
        let res = post_as(&app, cert.as_ref(), "/token", &[CC, ("client_id", &id)]).await;
        let body = assert_error(res, StatusCode::UNAUTHORIZED, "invalid_client", case).await;
        let description = body["error_description"].as_str().unwrap();
        assert!(
            description.to_lowercase().contains(word),
            "{case}: {description}"
        );
    }
    // A certificate is no substitute for a secret-based client's secret.
    let (secret_client, _) = app.standard_client().await;
    let res = post_as(
        &app,
        Some(&ca.issue(&Leaf::spiffe(SPIFFE))),
        "/token",
        &[CC, ("client_id", &secret_client)],
    )
    .await;
    assert_error(
        res,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "secret client",
    )
    .await;
}

#[rstest]
#[tokio::test]
async fn a_self_signed_certificate_registered_in_jwks_authenticates(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let ca = Ca::new("mesh CA");
    let app = tls_app(engine, &ca, json!({})).await;
    let cert = Issued::self_signed("batch-job");
    let id = register(
        &app,
        json!({
            "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks": { "keys": [cert.x5c_jwk()] },
        }),
    )
    .await;
    let body = token_ok(&app, &cert, &id).await;
    let claims = app
        .verify(
            body["access_token"].as_str().unwrap(),
            "https://api.example.com",
        )
        .await;
    assert_eq!(claims["cnf"]["x5t#S256"], cert.thumbprint());

    // By thumbprint instead of x5c.
    let by_thumbprint = Issued::self_signed("batch-job-2");
    let mut jwk = ClientKey::new("t").public_jwk();
    jwk["x5t#S256"] = json!(by_thumbprint.thumbprint());
    let id2 = register(
        &app,
        json!({ "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": { "keys": [jwk] } }),
    )
    .await;
    token_ok(&app, &by_thumbprint, &id2).await;

    let other = Issued::self_signed("batch-job");
    let res = post_as(&app, Some(&other), "/token", &[CC, ("client_id", &id)]).await;
    assert_error(
        res,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "unregistered cert",
    )
    .await;
}

#[rstest]
#[tokio::test]
async fn a_private_key_jwt_client_can_ask_for_certificate_bound_tokens(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let ca = Ca::new("mesh CA");
    let app = tls_app(engine, &ca, json!({})).await;
    let key = ClientKey::new("k1");
    let id = register(
        &app,
        json!({
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": ClientKey::jwks(&[&key]),
            "tls_client_certificate_bound_access_tokens": true,
        }),
    )
    .await;
    let cert = Issued::self_signed("any");
    let form = |assertion: &str| {
        vec![
            CC,
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect::<Vec<_>>()
    };
    let now = app.clock.now().timestamp();
    let res = app
        .client(Some(cert.identity()))
        .post(app.url("/token"))
        .form(&form(&key.assertion(&id, &app.state.oauth.issuer, now)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let claims = app
        .verify(
            body["access_token"].as_str().unwrap(),
            "https://api.example.com",
        )
        .await;
    assert_eq!(claims["cnf"]["x5t#S256"], cert.thumbprint());

    let res = app
        .client(None)
        .post(app.url("/token"))
        .form(&form(&key.assertion(&id, &app.state.oauth.issuer, now)))
        .send()
        .await
        .unwrap();
    let body = assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "no certificate",
    )
    .await;
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("certificate"));
}

#[rstest]
#[tokio::test]
async fn the_forwarded_client_certificate_counts_only_from_trusted_proxies(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let ca = Ca::new("mesh CA");
    let cert = ca.issue(&Leaf::spiffe(SPIFFE));
    // (forwarded_client_cert, trusted_proxies, the header counts): the header
    // counts only when the setting is on and the peer is a trusted proxy.
    for (forwarded, proxies, trusted) in [
        (true, "127.0.0.1", true),
        (true, "10.0.0.0/8", false),
        (false, "127.0.0.1", false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_database(engine, &dir).await;
        let bundle = ca.write(dir.path(), "client-ca");
        let app = TestApp::spawn_on(
            engine,
            url,
            dir,
            json!({
                "tls_client_ca_file": bundle,
                "forwarded_client_cert": forwarded,
                "trusted_proxies": [proxies],
            }),
        )
        .await;
        assert!(app.base.starts_with("http://"), "TLS terminated in front");
        let id = register(
            &app,
            json!({ "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_uri": SPIFFE }),
        )
        .await;
        let res = app
            .http
            .post(app.url("/token"))
            .header("x-forwarded-client-cert", cert.xfcc())
            .form(&[CC, ("client_id", &id)])
            .send()
            .await
            .unwrap();
        if trusted {
            assert_eq!(res.status(), StatusCode::OK);
            let body: Value = res.json().await.unwrap();
            let claims = app
                .verify(
                    body["access_token"].as_str().unwrap(),
                    "https://api.example.com",
                )
                .await;
            assert_eq!(claims["cnf"]["x5t#S256"], cert.thumbprint());
            // The same SPIFFE ID in a certificate of a CA the server does not
            // trust, delivered by the trusted proxy: refused.
            let stranger = Ca::new("other mesh CA").issue(&Leaf::spiffe(SPIFFE));
            let res = app
                .http
                .post(app.url("/token"))
                .header("x-forwarded-client-cert", stranger.xfcc())
                .form(&[CC, ("client_id", &id)])
                .send()
                .await
                .unwrap();
            assert_error(
                res,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "certificate of an untrusted CA through XFCC",
            )
            .await;
            // A malformed header from the trusted proxy is refused, not a 500.
            let res = app
                .http
                .post(app.url("/token"))
                .header("x-forwarded-client-cert", "Hash=abc;Subject=\"CN=x\"")
                .form(&[CC, ("client_id", &id)])
                .send()
                .await
                .unwrap();
            assert_error(res, StatusCode::UNAUTHORIZED, "invalid_client", "no Cert").await;
            // ...but only for clients that need a certificate: Istio's default
            // header (no Cert) leaves secret-based clients alone.
            let (secret_id, secret) = app.standard_client().await;
            let res = app
                .http
                .post(app.url("/token"))
                .header("Authorization", crate::helpers::basic(&secret_id, &secret))
                .header("x-forwarded-client-cert", "Hash=abc;Subject=\"CN=x\"")
                .form(&[CC])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
        } else {
            let case = format!("forwarded_client_cert={forwarded}, trusted_proxies={proxies}");
            let body = assert_error(res, StatusCode::UNAUTHORIZED, "invalid_client", &case).await;
            assert!(body["error_description"]
                .as_str()
                .unwrap()
                .contains("no client certificate"));
        }
    }
}

#[rstest]
#[tokio::test]
async fn metadata_advertises_the_secretless_methods_and_mtls_aliases(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let ca = Ca::new("mesh CA");
    let app = tls_app(
        engine,
        &ca,
        json!({ "mtls_endpoint_base": "https://mtls.auth.example.test" }),
    )
    .await;
    let meta = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    for method in [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth",
    ] {
        for endpoint in ["token", "introspection", "revocation"] {
            let list = &meta[format!("{endpoint}_endpoint_auth_methods_supported")];
            assert!(
                list.as_array().unwrap().iter().any(|m| m == method),
                "{endpoint}: {method}"
            );
        }
    }
    assert_eq!(meta["tls_client_certificate_bound_access_tokens"], true);
    assert_eq!(
        meta["mtls_endpoint_aliases"]["token_endpoint"],
        "https://mtls.auth.example.test/token"
    );
    let algs = meta["token_endpoint_auth_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(algs.iter().any(|a| a == "ES256") && algs.iter().all(|a| a != "none" && a != "HS256"));

    // Without TLS or a trusted proxy there are no certificates: only
    // private_key_jwt and federated_jwt join the secret methods.
    let plain = TestApp::spawn(engine).await;
    let meta = plain
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "federated_jwt"
        ])
    );
    assert_eq!(meta["tls_client_certificate_bound_access_tokens"], false);
    assert!(meta.get("mtls_endpoint_aliases").is_none());
}

/// The leaf certificate a new connection to `app` is served.
async fn served_leaf(app: &TestApp) -> Vec<u8> {
    let res = app
        .client(None)
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap();
    res.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("TLS peer certificate")
        .to_vec()
}

/// The leaf certificate `client`'s connection to `app` presents (a pooled
/// connection is reused when one is open).
async fn leaf_on(client: &reqwest::Client, app: &TestApp) -> Vec<u8> {
    let res = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("TLS peer certificate")
        .to_vec()
}

/// Waits until the reloader has refused changed files `n` times in all
/// (`portcullis_tls_reload_failures_total`). The 30 s bound only stops a
/// broken build from hanging; no timing is asserted.
async fn reload_failures_reach(app: &TestApp, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = app.metrics_text().await;
        let failures: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("portcullis_tls_reload_failures_total "))
            .expect("tls_reload_failures in /metrics")
            .parse()
            .unwrap();
        if failures >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reloader never examined the changed files"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[rstest]
#[tokio::test]
async fn a_renewed_server_certificate_is_served_without_a_restart(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let server_ca = Ca::new("server CA");
    let app = tls_app_signed_by(engine, &server_ca, &Ca::new("mesh CA"), json!({})).await;
    let before = served_leaf(&app).await;
    // A live connection opened before the renewal.
    let kept = app.client(None);
    assert_eq!(leaf_on(&kept, &app).await, before);

    let cert_path = app.state.settings.listeners.tls_cert_file.clone().unwrap();
    let key_path = app.state.settings.listeners.tls_key_file.clone().unwrap();
    // Half-written files (a key that does not match yet) are examined, refused
    // and not served.
    std::fs::write(&key_path, Issued::self_signed("x").key_pem).unwrap();
    reload_failures_reach(&app, 1).await;
    assert_eq!(
        served_leaf(&app).await,
        before,
        "a mismatched pair is ignored"
    );

    // cert-manager writes the renewed pair in place.
    let renewed = server_ca.write_server_leaf(&cert_path, &key_path);
    assert_ne!(renewed.der, before);
    let mut after = before.clone();
    for _ in 0..300 {
        after = served_leaf(&app).await;
        if after != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        after, renewed.der,
        "the new certificate is served on new connections"
    );
    // The connection opened before keeps its certificate (and still works).
    assert_eq!(leaf_on(&kept, &app).await, before, "the open connection");
}

#[rstest]
#[tokio::test]
async fn a_policy_sees_the_certificate_and_puts_the_spiffe_id_in_the_token(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let ca = Ca::new("mesh CA");
    let policy_dir = tempfile::tempdir().unwrap();
    let policy = policy_dir.path().join("spiffe.rego");
    std::fs::write(
        &policy,
        include_str!("../../examples/policies/spiffe-workloads.rego"),
    )
    .unwrap();
    let app = tls_app(
        engine,
        &ca,
        json!({ "policy_file": policy, "policy_claims": ["spiffe_id"] }),
    )
    .await;
    let id = register(
        &app,
        json!({ "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_uri": SPIFFE }),
    )
    .await;
    let body = token_ok(&app, &ca.issue(&Leaf::spiffe(SPIFFE)), &id).await;
    let claims = app
        .verify(
            body["access_token"].as_str().unwrap(),
            "https://api.example.com",
        )
        .await;
    assert_eq!(claims["spiffe_id"], SPIFFE);

    // A secret-based client has no certificate: the policy refuses it.
    let (secret_id, secret) = app.standard_client().await;
    let res = app.token_basic(&secret_id, &secret, &[CC]).await;
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "access_denied",
        "no certificate",
    )
    .await;
}
