//! The resource-server crate `portcullis-verify` against the real server:
//! it discovers the JWKS through the metadata, accepts the server's tokens,
//! refuses foreign, forged and revoked ones, checks certificate binding, and
//! follows key rotation, and accepts the server's DPoP-bound tokens (RFC 9449)
//! only with a good proof of the bound key.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use portcullis_verify::{
    Clock, ErrorKind, IntrospectionConfig, RequestParts, Requirements, VerifiedToken, Verifier,
    VerifierConfig, VerifyError,
};
use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};

use crate::{
    dpop::{claims as proof_claims, DpopKey},
    helpers::{fresh_database, Engine, TestApp},
    pki::{Ca, Leaf},
};

const API: &str = "https://api.example.com";
const URI: &str = "https://api.example.com/orders";

/// A verifier for `app`'s tokens meant for `API`, on the server's (manual) clock.
fn verifier_for(app: &TestApp, adjust: impl FnOnce(&mut VerifierConfig)) -> Verifier {
    let mut cfg = VerifierConfig::new(app.state.oauth.issuer.clone(), API);
    cfg.clock = Clock::manual(app.clock.now().timestamp());
    adjust(&mut cfg);
    Verifier::new(cfg).unwrap()
}

async fn bearer(v: &Verifier, token: &str) -> Result<VerifiedToken, VerifyError> {
    let auth = format!("Bearer {token}");
    v.verify(&RequestParts::new("GET", URI).authorization(&auth))
        .await
}

fn assert_refused(result: Result<VerifiedToken, VerifyError>, needle: &str, case: &str) {
    let err = result.expect_err(case);
    assert_eq!(err.kind(), &ErrorKind::InvalidToken, "{case}: {err}");
    assert!(err.description().contains(needle), "{case}: {err}");
}

#[rstest]
#[tokio::test]
async fn server_tokens_are_accepted_and_foreign_or_forged_ones_refused(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;
    let token = app.access_token(&id, &secret).await;
    let v = verifier_for(&app, |_| {});

    // Act / Assert: the server's token passes with its claims.
    let verified = bearer(&v, &token).await.unwrap();
    assert_eq!(verified.claims().client_id, id);
    assert_eq!(verified.claims().iss, app.state.oauth.issuer);
    assert!(verified.claims().has_scope("read"));
    let scoped = Requirements::new().scope("admin");
    let auth = format!("Bearer {token}");
    let err = v
        .verify_with(&RequestParts::new("GET", URI).authorization(&auth), &scoped)
        .await
        .unwrap_err();
    assert_eq!(err.status(), 403);

    // A token for another audience.
    let billing = app
        .token(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://billing.example.com"),
            ],
        )
        .await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_refused(bearer(&v, &billing).await, "audience", "other audience");

    // A verifier trusting another issuer (same keys reached directly).
    let jwks_uri = app.url("/.well-known/jwks.json");
    let other = verifier_for(&app, |c| {
        c.issuer = "https://other-issuer.example".into();
        c.jwks.jwks_uri = Some(jwks_uri);
    });
    assert_refused(bearer(&other, &token).await, "issuer", "other issuer");

    // alg none and a tampered signature.
    let mut segments = token.split('.');
    let (header, payload, signature) = (
        segments.next().unwrap(),
        segments.next().unwrap(),
        segments.next().unwrap(),
    );
    let header_json: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    let mut none = header_json.clone();
    none["alg"] = json!("none");
    let none = URL_SAFE_NO_PAD.encode(none.to_string());
    assert_refused(
        bearer(&v, &format!("{none}.{payload}.{signature}")).await,
        "not allowed",
        "alg none",
    );
    let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
    sig[10] ^= 1;
    let tampered = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(sig));
    assert_refused(
        bearer(&v, &tampered).await,
        "signature",
        "tampered signature",
    );
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["scope"] = json!("read write admin");
    let forged = format!(
        "{header}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    assert_refused(bearer(&v, &forged).await, "signature", "tampered claims");
}

#[rstest]
#[tokio::test]
async fn certificate_bound_tokens_pass_only_with_their_certificate(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: certificates reach the server from a trusted proxy (XFCC).
    let spiffe = "spiffe://example.org/ns/pay/sa/api";
    let ca = Ca::new("mesh CA");
    let cert = ca.issue(&Leaf::spiffe(spiffe));
    let sibling = ca.issue(&Leaf::spiffe(spiffe));
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(engine, &dir).await;
    let bundle = ca.write(dir.path(), "client-ca");
    let app = TestApp::spawn_on(
        engine,
        url,
        dir,
        json!({
            "tls_client_ca_file": bundle,
            "forwarded_client_cert": true,
            "trusted_proxies": ["127.0.0.1"],
        }),
    )
    .await;
    let client = app
        .register_client(json!({
            "scope": "read",
            "allowed_audiences": [API],
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_san_uri": spiffe,
        }))
        .await;
    let res = app
        .http
        .post(app.url("/token"))
        .header("x-forwarded-client-cert", cert.xfcc())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client["client_id"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = verifier_for(&app, |_| {});
    let auth = format!("Bearer {token}");
    let parts = RequestParts::new("GET", URI).authorization(&auth);

    // Act / Assert
    let ok = v
        .verify(&parts.clone().peer_certificate(&cert.der))
        .await
        .unwrap();
    assert_eq!(
        ok.claims().cnf.as_ref().unwrap().x5t_s256.as_deref(),
        Some(cert.thumbprint().as_str())
    );
    assert_refused(
        v.verify(&parts.clone().peer_certificate(&sibling.der))
            .await,
        "another client certificate",
        "sibling certificate",
    );
    assert_refused(
        v.verify(&parts).await,
        "none was presented",
        "plain Bearer without a certificate",
    );
    let xfcc = cert.xfcc();
    assert!(
        v.verify(&parts.clone().forwarded_client_cert(&xfcc))
            .await
            .is_ok(),
        "from a trusted proxy"
    );
}

#[rstest]
#[tokio::test]
async fn a_key_rotated_at_the_server_is_picked_up_without_a_restart(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: a verifier holding the JWKS as it was.
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;
    let v = verifier_for(&app, |c| c.jwks.refetch_interval = 0);
    bearer(&v, &app.access_token(&id, &secret).await)
        .await
        .unwrap();
    let before: Vec<String> = app
        .jwks()
        .await
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();

    // Act: two immediate rotations make a key the verifier has never seen the signing one.
    for _ in 0..2 {
        let res = app
            .admin(
                Method::POST,
                "/admin/keys/rotate",
                Some(json!({"compromised": true})),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let token = app.access_token(&id, &secret).await;

    // Assert
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let kid = header["kid"].as_str().unwrap();
    assert!(
        !before.iter().any(|k| k == kid),
        "the new key was not published before"
    );
    let fetches = v.key_cache_stats().fetches;
    bearer(&v, &token).await.unwrap();
    assert_eq!(
        v.key_cache_stats().fetches,
        fetches + 1,
        "refetched on the unknown kid"
    );
}

#[rstest]
#[tokio::test]
async fn a_revoked_token_is_refused_where_introspection_is_asked(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: the resource server is a client allowed to introspect.
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.refresh_client(json!({})).await;
    let (rs_id, rs_secret) = app.refresh_client(json!({})).await;
    let token = app.access_token(&id, &secret).await;
    let v = verifier_for(&app, |c| {
        c.introspection = Some(IntrospectionConfig::new(rs_id, rs_secret));
    });
    let auth = format!("Bearer {token}");
    let parts = RequestParts::new("GET", URI).authorization(&auth);
    let live = Requirements::new().introspected();
    v.verify_with(&parts, &live).await.unwrap();

    // Act
    let (status, _) = app
        .form_post("/revoke", &id, &secret, &[("token", &token)])
        .await;
    assert_eq!(status, StatusCode::OK);

    // Assert: refused once the cached positive answer (10 s) has aged out; offline checks still pass.
    v.config().clock.advance(10);
    let err = v.verify_with(&parts, &live).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InvalidToken, "{err}");
    assert!(err.description().contains("not active"), "{err}");
    assert!(
        v.verify(&parts).await.is_ok(),
        "without introspection the signature still holds"
    );
}

/// A resource-request proof for `token`: `GET URI` with its `ath`, at the server's time.
fn resource_proof(app: &TestApp, key: &DpopKey, token: &str) -> String {
    let mut c = proof_claims("GET", URI, app.clock.now().timestamp());
    c["ath"] = portcullis_verify::ath(token).into();
    key.sign(&key.header(), &c)
}

#[rstest]
#[tokio::test]
async fn server_dpop_tokens_pass_only_with_a_fresh_proof_of_their_key(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: a DPoP-bound token from the server, a verifier with DPoP on.
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;
    let key = DpopKey::es256();
    let token_proof = key.proof(
        "POST",
        &format!("{}/token", app.state.oauth.issuer),
        app.clock.now().timestamp(),
    );
    let res = app
        .http
        .post(app.url("/token"))
        .header("Authorization", crate::helpers::basic(&id, &secret))
        .header("DPoP", token_proof)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let v = verifier_for(&app, |cfg| {
        cfg.dpop = Some(portcullis_verify::DpopConfig::default());
    });
    let auth = format!("DPoP {token}");
    let dpop = |proof: &str, method: &'static str, uri: &'static str| {
        let (auth, proof) = (auth.clone(), proof.to_owned());
        let v = &v;
        async move {
            v.verify(
                &RequestParts::new(method, uri)
                    .authorization(&auth)
                    .dpop(&proof),
            )
            .await
        }
    };

    // Act / Assert: the right proof passes, and the token's key is the proof's.
    let proof = resource_proof(&app, &key, &token);
    let verified = dpop(&proof, "GET", URI).await.unwrap();
    assert_eq!(verified.claims().client_id, id);

    // The same proof again is a replay.
    let err = dpop(&proof, "GET", URI).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InvalidDpopProof, "{err}");

    // A proof by another key: the token is bound to a different one.
    let other = resource_proof(&app, &DpopKey::es256(), &token);
    assert_refused(
        dpop(&other, "GET", URI).await,
        "another DPoP key",
        "other key",
    );

    // Wrong htm, wrong htu, no ath: the proof is refused.
    let t = app.clock.now().timestamp();
    let mut c = proof_claims("GET", URI, t);
    c["ath"] = portcullis_verify::ath(&token).into();
    let cases = [
        (
            {
                let mut c = c.clone();
                c["htm"] = "POST".into();
                c
            },
            "htm",
        ),
        (
            {
                let mut c = c.clone();
                c["htu"] = "https://api.example.com/other".into();
                c
            },
            "htu",
        ),
        (
            {
                let mut c = c.clone();
                c.as_object_mut().unwrap().remove("ath");
                c
            },
            "ath",
        ),
    ];
    for (claims, why) in cases {
        let err = dpop(&key.sign(&key.header(), &claims), "GET", URI)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::InvalidDpopProof, "{why}: {err}");
        assert!(err.description().contains(why), "{why}: {err}");
    }

    // The bound token presented as Bearer is refused.
    assert_refused(bearer(&v, &token).await, "DPoP", "bound token as Bearer");
}
