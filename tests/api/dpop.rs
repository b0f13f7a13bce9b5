//! DPoP (RFC 9449) at the token endpoint of the real server: a proof binds
//! the access token (`cnf.jkt`, `token_type: DPoP`) and the refresh family;
//! every bad proof is `invalid_dpop_proof`; server nonces; proofs are single
//! use; `dpop_bound_access_tokens` clients need a proof; discovery and
//! introspection say so. Proofs are made here with ring (the Python
//! interoperability test is in `dpop_interop`).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use reqwest::{Response, StatusCode};
use ring::{
    rand::SystemRandom,
    signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING},
};
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{assert_describes, assert_error, basic, Engine, TestApp};

const CC: (&str, &str) = ("grant_type", "client_credentials");

/// A DPoP key pair that signs proofs (ES256 or `EdDSA`).
pub enum DpopKey {
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl DpopKey {
    pub fn es256() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Self::Es256(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        )
    }

    pub fn ed25519() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Self::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
    }

    pub fn jwk(&self) -> Value {
        match self {
            Self::Es256(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256",
                       "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                       "y": URL_SAFE_NO_PAD.encode(&point[33..])})
            }
            Self::Ed25519(pair) => json!({"kty": "OKP", "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())}),
        }
    }

    /// The RFC 7638 thumbprint, computed from the JWK here (independently of the server).
    pub fn jkt(&self) -> String {
        let jwk = self.jwk();
        let canonical = match self {
            Self::Es256(_) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                jwk["x"].as_str().unwrap(),
                jwk["y"].as_str().unwrap()
            ),
            Self::Ed25519(_) => format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                jwk["x"].as_str().unwrap()
            ),
        };
        URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        ))
    }

    pub fn alg(&self) -> &'static str {
        match self {
            Self::Es256(_) => "ES256",
            Self::Ed25519(_) => "EdDSA",
        }
    }

    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk()})
    }

    /// Signs exactly `header` and `claims`.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = match self {
            Self::Es256(pair) => pair
                .sign(&SystemRandom::new(), signed.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            Self::Ed25519(pair) => pair.sign(signed.as_bytes()).as_ref().to_vec(),
        };
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// A fresh proof for `htm htu` at `iat`.
    pub fn proof(&self, htm: &str, htu: &str, iat: i64) -> String {
        self.sign(&self.header(), &claims(htm, htu, iat))
    }
}

/// Proof claims with a fresh `jti`.
pub fn claims(htm: &str, htu: &str, iat: i64) -> Value {
    json!({"jti": uuid::Uuid::new_v4().to_string(), "htm": htm, "htu": htu, "iat": iat})
}

fn now(app: &TestApp) -> i64 {
    app.clock.now().timestamp()
}

/// The token endpoint's URL as the issuer names it (the `htu`).
fn token_url(app: &TestApp) -> String {
    format!("{}/token", app.state.oauth.issuer)
}

/// A fresh proof for this app's token endpoint.
fn proof_for(app: &TestApp, key: &DpopKey) -> String {
    key.proof("POST", &token_url(app), now(app))
}

async fn post(
    app: &TestApp,
    id: &str,
    secret: &str,
    proofs: &[&str],
    form: &[(&str, &str)],
) -> Response {
    let mut req = app
        .http
        .post(app.url("/token"))
        .header("Authorization", basic(id, secret))
        .form(form);
    for p in proofs {
        req = req.header("DPoP", *p);
    }
    req.send().await.unwrap()
}

async fn ok(res: Response) -> (Value, Option<String>) {
    let status = res.status();
    let nonce = res
        .headers()
        .get("dpop-nonce")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    (body, nonce)
}

#[rstest]
#[tokio::test]
async fn a_proof_binds_the_access_token_to_its_key_and_introspection_says_so(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.refresh_client(json!({})).await;
    let meta = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;

    for key in [DpopKey::es256(), DpopKey::ed25519()] {
        // Act
        let (body, nonce) =
            ok(post(&app, &id, &secret, &[&proof_for(&app, &key)], &[CC]).await).await;

        // Assert: a DPoP token bound to the key's thumbprint, no nonce unless required.
        assert_eq!(body["token_type"], "DPoP", "{body}");
        assert_eq!(nonce, None);
        let token = body["access_token"].as_str().unwrap();
        let claims = app.verify(token, "https://api.example.com").await;
        assert_eq!(claims["cnf"], json!({"jkt": key.jkt()}), "{claims}");
        let seen = app.introspect(&id, &secret, token).await;
        assert_eq!(seen["token_type"], "DPoP", "{seen}");
        assert_eq!(seen["cnf"]["jkt"], key.jkt(), "{seen}");
        let refresh = body["refresh_token"].as_str().unwrap();
        let family = app.introspect(&id, &secret, refresh).await;
        assert_eq!(family["cnf"]["jkt"], key.jkt(), "{family}");
    }
    // Without a proof the same client still gets a Bearer token.
    let plain = app.token(&id, &secret, &[CC]).await;
    assert_eq!(plain["token_type"], "Bearer");
    assert_eq!(
        meta["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "RS256", "PS256"])
    );
    let issued = app.audit_details("token_issued").await;
    assert!(
        issued.iter().any(|d| d.contains("\"token_type\":\"DPoP\"")),
        "{issued:?}"
    );
}

#[rstest]
#[tokio::test]
async fn every_bad_proof_is_invalid_dpop_proof_and_issues_nothing(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;
    let key = DpopKey::es256();
    let other = DpopKey::es256();
    let t = now(&app);
    let htu = token_url(&app);
    let with = |name: &str, value: Value| {
        let mut c = claims("POST", &htu, t);
        c[name] = value;
        key.sign(&key.header(), &c)
    };
    let header_with = |name: &str, value: Value| {
        let mut h = key.header();
        h[name] = value;
        key.sign(&h, &claims("POST", &htu, t))
    };
    let replayed = key.proof("POST", &htu, t);
    ok(post(&app, &id, &secret, &[&replayed], &[CC]).await).await;
    let good = key.proof("POST", &htu, t);
    let (signed, _) = good.rsplit_once('.').unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["not-a-jwt".into()], "not a compact JWS"),
        (vec![String::new()], "not a compact JWS"),
        (
            vec![good.clone(), key.proof("POST", &htu, t)],
            "more than one DPoP header",
        ),
        (
            vec![header_with("typ", "JWT".into())],
            "typ is not dpop+jwt",
        ),
        (vec![header_with("alg", "none".into())], "alg is not one of"),
        (
            vec![header_with("alg", "HS256".into())],
            "alg is not one of",
        ),
        (vec![header_with("jwk", Value::Null)], "no jwk header"),
        (
            vec![header_with("jwk", json!({"kty": "oct", "k": "c2VjcmV0"}))],
            "private or symmetric",
        ),
        (
            vec![header_with("jwk", other.jwk())],
            "signature does not verify",
        ),
        (vec![format!("{signed}.AAAA")], "signature does not verify"),
        (
            vec![with("htm", "GET".into())],
            "htm is not the request's method",
        ),
        (
            vec![with(
                "htu",
                format!("{}/introspect", app.state.oauth.issuer).into(),
            )],
            "htu is not this endpoint's URL",
        ),
        (
            vec![with("htu", "https://elsewhere.example.com/token".into())],
            "htu is not",
        ),
        (
            vec![with("iat", (t - 3600).into())],
            "iat is outside the accepted window",
        ),
        (vec![with("iat", (t + 3600).into())], "iat is outside"),
        (
            vec![with("jti", Value::Null)],
            "lacks one of jti, htm, htu and iat",
        ),
        (vec![replayed], "used before"),
    ];
    for (proofs, why) in cases {
        // Act
        let refs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let res = post(&app, &id, &secret, &refs, &[CC]).await;

        // Assert
        let body = assert_error(res, StatusCode::BAD_REQUEST, "invalid_dpop_proof", why).await;
        assert!(
            body["error_description"].as_str().unwrap().contains(why),
            "{why}: {body}"
        );
    }
    // A header that is not text is refused too.
    let res = app
        .http
        .post(app.url("/token"))
        .header("Authorization", basic(&id, &secret))
        .header(
            "DPoP",
            reqwest::header::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        )
        .form(&[CC])
        .send()
        .await
        .unwrap();
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
        "binary header",
    )
    .await;
    let denied = app.audit_details("token_denied").await;
    assert!(denied.len() >= 17, "every refusal is audited: {denied:?}");
    let issued = app.audit_details("token_issued").await;
    assert_eq!(
        issued.len(),
        1,
        "only the first use of the replayed proof got a token"
    );
}

#[rstest]
#[tokio::test]
async fn a_client_registered_for_dpop_needs_a_proof_and_cannot_also_bind_to_certificates(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange
    let app = TestApp::spawn(engine).await;
    let c = app
        .register_client(json!({
            "scope": "read",
            "allowed_audiences": ["https://api.example.com"],
            "dpop_bound_access_tokens": true,
        }))
        .await;
    let (id, secret) = (
        c["client_id"].as_str().unwrap(),
        c["client_secret"].as_str().unwrap(),
    );
    assert_eq!(c["dpop_bound_access_tokens"], true, "{c}");

    // Act / Assert: no proof, refused; with one, a DPoP token.
    let res = post(&app, id, secret, &[], &[CC]).await;
    let body = assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
        "no proof",
    )
    .await;
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("dpop_bound_access_tokens"));
    let key = DpopKey::ed25519();
    let (body, _) = ok(post(&app, id, secret, &[&proof_for(&app, &key)], &[CC]).await).await;
    assert_eq!(body["token_type"], "DPoP");

    // A token is bound one way: certificate binding and DPoP do not combine.
    for extra in [
        json!({"tls_client_certificate_bound_access_tokens": true}),
        json!({"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=svc"}),
    ] {
        let mut body = json!({"scope": "read", "allowed_audiences": ["https://api.example.com"], "dpop_bound_access_tokens": true});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let res = app
            .admin(reqwest::Method::POST, "/admin/clients", Some(body))
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{extra}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"], "invalid_client_metadata", "{err}");
        assert_describes(&err, "bound one way");
    }
    // The flag can be switched off again.
    let res = app
        .admin(
            reqwest::Method::PUT,
            &format!("/admin/clients/{id}"),
            Some(json!({"client_id": id, "scope": "read", "allowed_audiences": ["https://api.example.com"], "dpop_bound_access_tokens": false})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.token(id, secret, &[CC]).await["token_type"], "Bearer");
}

#[rstest]
#[tokio::test]
async fn with_nonces_required_a_proof_without_a_current_nonce_gets_use_dpop_nonce(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange
    let app = TestApp::spawn_with(
        engine,
        json!({"dpop_nonce_required": true, "dpop_nonce_lifetime": 60}),
    )
    .await;
    let (id, secret) = app.standard_client().await;
    let key = DpopKey::es256();
    let htu = token_url(&app);

    // Act: no nonce.
    let res = post(&app, &id, &secret, &[&proof_for(&app, &key)], &[CC]).await;

    // Assert: 400 use_dpop_nonce with the nonce to use.
    let nonce = res
        .headers()
        .get("dpop-nonce")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_error(res, StatusCode::BAD_REQUEST, "use_dpop_nonce", "no nonce").await;

    // With it: a token, and the next nonce.
    let mut c = claims("POST", &htu, now(&app));
    c["nonce"] = nonce.clone().into();
    let (body, next) =
        ok(post(&app, &id, &secret, &[&key.sign(&key.header(), &c)], &[CC]).await).await;
    assert_eq!(body["token_type"], "DPoP");
    assert!(next.is_some());

    // A made-up nonce, or one two windows old, is refused the same way.
    for (nonce, advance) in [("made-up".to_owned(), 0), (nonce, 120)] {
        app.clock.advance(chrono::Duration::seconds(advance));
        let mut c = claims("POST", &htu, now(&app));
        c["nonce"] = nonce.into();
        let res = post(&app, &id, &secret, &[&key.sign(&key.header(), &c)], &[CC]).await;
        assert!(res.headers().contains_key("dpop-nonce"));
        assert_error(
            res,
            StatusCode::BAD_REQUEST,
            "use_dpop_nonce",
            "stale nonce",
        )
        .await;
    }
}

#[rstest]
#[tokio::test]
async fn a_dpop_bound_refresh_family_refreshes_only_with_its_key(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.refresh_client(json!({})).await;
    let key = DpopKey::es256();
    let (body, _) = ok(post(&app, &id, &secret, &[&proof_for(&app, &key)], &[CC]).await).await;
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];

    // Act / Assert: without a proof, or with another key, refused and not consumed.
    let res = post(&app, &id, &secret, &[], &form).await;
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
        "no proof",
    )
    .await;
    let res = post(
        &app,
        &id,
        &secret,
        &[&proof_for(&app, &DpopKey::es256())],
        &form,
    )
    .await;
    let err = assert_error(res, StatusCode::BAD_REQUEST, "invalid_grant", "other key").await;
    assert!(err["error_description"]
        .as_str()
        .unwrap()
        .contains("another DPoP key"));

    // With its key: a DPoP token bound to the same key, and the successor is bound too.
    let (body, _) = ok(post(&app, &id, &secret, &[&proof_for(&app, &key)], &form).await).await;
    assert_eq!(body["token_type"], "DPoP");
    let claims = app
        .verify(
            body["access_token"].as_str().unwrap(),
            "https://api.example.com",
        )
        .await;
    assert_eq!(claims["cnf"]["jkt"], key.jkt());
    let next = body["refresh_token"].as_str().unwrap();
    let res = post(
        &app,
        &id,
        &secret,
        &[],
        &[("grant_type", "refresh_token"), ("refresh_token", next)],
    )
    .await;
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
        "successor without proof",
    )
    .await;

    // An unbound family's token is bound by a proof at refresh; the family stays unbound.
    let plain = app.token(&id, &secret, &[CC]).await;
    let unbound = plain["refresh_token"].as_str().unwrap();
    let (body, _) = ok(post(
        &app,
        &id,
        &secret,
        &[&proof_for(&app, &key)],
        &[("grant_type", "refresh_token"), ("refresh_token", unbound)],
    )
    .await)
    .await;
    assert_eq!(body["token_type"], "DPoP");
    let again = app
        .token(
            &id,
            &secret,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(again["token_type"], "Bearer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_database_outage_proofs_are_single_use_in_the_process_and_stored_afterwards() {
    // Arrange: a known client, then the database stops.
    let pg = crate::pg_cluster::PgCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_on(
        Engine::Postgres,
        pg.url(),
        dir,
        json!({ "outage_grace": 300, "database_breaker_threshold": 2, "database_timeout_ms": 500 }),
    )
    .await;
    let (id, secret) = app.standard_client().await;
    app.access_token(&id, &secret).await;
    tokio::task::block_in_place(|| pg.stop());
    crate::outage::wait_for_readiness(&app, "degraded", std::time::Duration::from_secs(15)).await;
    let key = DpopKey::es256();
    let proof = proof_for(&app, &key);

    // Act / Assert: a DPoP token from memory; the same proof again is a replay.
    let (body, _) = ok(post(&app, &id, &secret, &[&proof], &[CC]).await).await;
    assert_eq!(body["token_type"], "DPoP");
    let res = post(&app, &id, &secret, &[&proof], &[CC]).await;
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
        "replay in the outage",
    )
    .await;

    // After recovery the proof id is in the database, and still refused.
    tokio::task::block_in_place(|| pg.start_again());
    crate::outage::wait_for_readiness(&app, "ready", std::time::Duration::from_secs(30)).await;
    let stored = app
        .column("SELECT jti FROM client_assertion_jtis WHERE jti LIKE 'dpop:%'")
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut stored = stored;
    while stored.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        stored = app
            .column("SELECT jti FROM client_assertion_jtis WHERE jti LIKE 'dpop:%'")
            .await;
    }
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(
        stored[0].starts_with(&format!("dpop:{}:", key.jkt())),
        "{stored:?}"
    );
    let res = post(&app, &id, &secret, &[&proof], &[CC]).await;
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
        "replay after recovery",
    )
    .await;
}
