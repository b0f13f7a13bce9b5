//! The token checks end to end: a local issuer signs tokens, the verifier
//! fetches its JWKS over HTTP and judges requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Test tables read best with short names and local helper types.
#![allow(
    clippy::many_single_char_names,
    clippy::items_after_statements,
    clippy::format_collect,
    clippy::too_many_lines
)]

mod common;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use common::{claims, Issuer, Key, AUD, NOW};
use portcullis_verify::{
    certificate_thumbprint, Clock, ErrorKind, IntrospectionConfig, RequestParts, Requirements,
    Scheme, Verifier, VerifyError,
};
use serde_json::{json, Value};

const URI: &str = "https://api.example.com/orders";

async fn setup() -> (Key, Issuer, Verifier, Clock) {
    let key = Key::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let clock = Clock::manual(NOW);
    let verifier = issuer.verifier(&clock);
    (key, issuer, verifier, clock)
}

async fn bearer(
    v: &Verifier,
    token: &str,
) -> Result<portcullis_verify::VerifiedToken, VerifyError> {
    let auth = format!("Bearer {token}");
    v.verify(&RequestParts::new("GET", URI).authorization(&auth))
        .await
}

fn assert_invalid(
    result: Result<portcullis_verify::VerifiedToken, VerifyError>,
    needle: &str,
    case: &str,
) {
    let err = result.expect_err(case);
    assert_eq!(err.kind(), &ErrorKind::InvalidToken, "{case}: {err}");
    assert!(err.description().contains(needle), "{case}: {err}");
}

#[tokio::test]
async fn a_valid_bearer_token_yields_typed_and_custom_claims() {
    let (key, issuer, v, _) = setup().await;
    let mut c = claims(&issuer.url);
    c["tenant"] = json!("acme");
    c["act"] = json!({"sub": "gateway", "act": {"sub": "edge"}});
    let token = bearer(&v, &key.token(&c)).await.unwrap();
    assert_eq!(token.scheme(), Scheme::Bearer);
    let claims = token.claims();
    assert_eq!(
        (
            claims.sub.as_str(),
            claims.client_id.as_str(),
            claims.jti.as_str()
        ),
        ("svc-a", "svc-a", "t-1")
    );
    assert!(claims.has_scope("read"));
    assert_eq!(claims.act.as_ref().unwrap().chain().count(), 2);
    #[derive(serde::Deserialize)]
    struct Mine {
        tenant: String,
    }
    assert_eq!(token.custom::<Mine>().unwrap().tenant, "acme");
    assert_eq!(token.claims_map()["tenant"], "acme");
    // `application/at+jwt` and any case are the same media type.
    let t = key.sign(
        &json!({"alg": "ES256", "typ": "Application/AT+JWT", "kid": "k1"}),
        &claims_value(&issuer),
    );
    assert!(bearer(&v, &t).await.is_ok());
}

fn claims_value(issuer: &Issuer) -> Value {
    claims(&issuer.url)
}

#[tokio::test]
async fn headers_algorithms_and_signatures_are_checked() {
    let (key, issuer, v, _) = setup().await;
    let c = claims(&issuer.url);
    let other = Key::new("k1"); // same kid, another key
    let good = key.token(&c);
    let (h, p, s) = {
        let mut it = good.split('.');
        (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
    };
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt","kid":"k1"}"#);
    let mut forged = c.clone();
    forged["scope"] = json!("admin");
    let forged_payload = URL_SAFE_NO_PAD.encode(forged.to_string());
    let cases = [
        (
            key.sign(&json!({"alg": "ES256", "kid": "k1"}), &c),
            "typ",
            "no typ",
        ),
        (
            key.sign(&json!({"alg": "ES256", "typ": "JWT", "kid": "k1"}), &c),
            "typ",
            "typ JWT",
        ),
        (
            format!("{none_header}.{p}."),
            "empty segment",
            "alg none, empty signature",
        ),
        (format!("{none_header}.{p}.{s}"), "not allowed", "alg none"),
        (
            key.sign(&json!({"alg": "HS256", "typ": "at+jwt", "kid": "k1"}), &c),
            "not allowed",
            "HS256",
        ),
        (
            key.sign(&json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"}), &c),
            "does not fit",
            "RS256 with an EC key",
        ),
        (other.token(&c), "signature", "signed by another key"),
        (
            format!("{h}.{forged_payload}.{s}"),
            "signature",
            "payload tampered",
        ),
        (
            format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode([7u8; 64])),
            "signature",
            "signature replaced",
        ),
        (format!("{h}.{p}"), "compact JWS", "two segments"),
        (
            key.sign(
                &json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1", "crit": ["x"], "x": 1}),
                &c,
            ),
            "critical",
            "crit",
        ),
        (
            key.sign(
                &json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1"}),
                &json!({"iss": issuer.url}),
            ),
            "incomplete",
            "claims missing",
        ),
    ];
    for (token, needle, case) in cases {
        assert_invalid(bearer(&v, &token).await, needle, case);
    }
    assert!(bearer(&v, &good).await.is_ok());
    // Without kid, the keys that fit the algorithm are tried.
    let no_kid = key.sign(&json!({"alg": "ES256", "typ": "at+jwt"}), &c);
    assert!(bearer(&v, &no_kid).await.is_ok());
}

#[tokio::test]
async fn issuer_audience_and_times_are_checked_with_leeway() {
    let (key, issuer, v, clock) = setup().await;
    let with = |k: &str, val: Value| {
        let mut c = claims(&issuer.url);
        c[k] = val;
        key.token(&c)
    };
    assert_invalid(
        bearer(&v, &with("iss", json!("https://evil.example"))).await,
        "issuer",
        "iss",
    );
    assert_invalid(
        bearer(&v, &with("iss", json!(format!("{}/", issuer.url)))).await,
        "issuer",
        "iss slash",
    );
    assert_invalid(
        bearer(&v, &with("aud", json!("https://other.example"))).await,
        "audience",
        "aud",
    );
    assert!(
        bearer(&v, &with("aud", json!(["https://other.example", AUD])))
            .await
            .is_ok(),
        "aud array"
    );
    assert_invalid(
        bearer(&v, &with("nbf", json!(NOW + 61))).await,
        "not valid yet",
        "nbf",
    );
    assert!(
        bearer(&v, &with("nbf", json!(NOW + 60))).await.is_ok(),
        "nbf within leeway"
    );
    assert_invalid(
        bearer(&v, &with("iat", json!(NOW + 61))).await,
        "future",
        "iat",
    );

    let token = key.token(&claims(&issuer.url));
    clock.set(NOW + 300 + 59);
    assert!(bearer(&v, &token).await.is_ok(), "exp within leeway");
    clock.set(NOW + 300 + 60);
    assert_invalid(bearer(&v, &token).await, "expired", "exp");
}

#[tokio::test]
async fn scopes_are_required_per_verifier_and_per_route() {
    let (key, issuer, _, clock) = setup().await;
    let mut cfg = issuer.config(&clock);
    cfg.required_scopes = vec!["read".into()];
    let v = Verifier::new(cfg).unwrap();
    let token = key.token(&claims(&issuer.url));
    let auth = format!("Bearer {token}");
    let parts = RequestParts::new("GET", URI).authorization(&auth);
    assert!(v.verify(&parts).await.is_ok());
    let err = v
        .verify_with(&parts, &Requirements::new().scope("admin"))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        &ErrorKind::InsufficientScope {
            scope: "read admin".into()
        }
    );
    let answer = v.error_response(&err);
    assert_eq!(answer.status, 403);
    assert!(
        answer.headers[0]
            .1
            .contains(r#"error="insufficient_scope""#)
            && answer.headers[0].1.contains(r#"scope="read admin""#)
    );

    let mut c = claims(&issuer.url);
    c.as_object_mut().unwrap().remove("scope");
    let auth = format!("Bearer {}", key.token(&c));
    let err = v
        .verify(&RequestParts::new("GET", URI).authorization(&auth))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 403);
}

#[tokio::test]
async fn malformed_or_missing_authorization_gets_the_rfc_6750_answer() {
    let (key, issuer, v, _) = setup().await;
    let err = v.verify(&RequestParts::new("GET", URI)).await.unwrap_err();
    let answer = v.error_response(&err);
    assert_eq!(
        (answer.status, answer.headers.clone()),
        (401, vec![("WWW-Authenticate", "Bearer".to_owned())])
    );
    let token = format!("Bearer {}", key.token(&claims(&issuer.url)));
    let twice = RequestParts::new("GET", URI)
        .authorization(&token)
        .authorization(&token);
    assert_eq!(v.verify(&twice).await.unwrap_err().status(), 400);
    let dpop = format!("DPoP {}", key.token(&claims(&issuer.url)));
    let err = v
        .verify(&RequestParts::new("GET", URI).authorization(&dpop))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        &ErrorKind::InvalidRequest,
        "DPoP not configured: {err}"
    );
}

#[tokio::test]
async fn certificate_bound_tokens_need_their_certificate() {
    let (key, issuer, v, _) = setup().await;
    let cert = rcgen::generate_simple_self_signed(vec!["client".into()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["other".into()]).unwrap();
    let der = cert.cert.der().to_vec();
    let mut c = claims(&issuer.url);
    c["cnf"] = json!({"x5t#S256": certificate_thumbprint(&der)});
    let auth = format!("Bearer {}", key.token(&c));
    let parts = RequestParts::new("GET", URI).authorization(&auth);

    assert!(v
        .verify(&parts.clone().peer_certificate(&der))
        .await
        .is_ok());
    assert_invalid(
        v.verify(&parts.clone().peer_certificate(other.cert.der()))
            .await,
        "another client certificate",
        "other cert",
    );
    assert_invalid(v.verify(&parts).await, "none was presented", "no cert");
    let hash: String = ring::digest::digest(&ring::digest::SHA256, &der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let xfcc = format!("By=spiffe://x;Hash={hash};Subject=\"CN=client\"");
    assert!(
        v.verify(&parts.clone().forwarded_client_cert(&xfcc))
            .await
            .is_ok(),
        "trusted XFCC"
    );
}

#[tokio::test]
async fn introspection_refuses_revoked_tokens_and_caches_answers() {
    let (key, issuer, _, clock) = setup().await;
    let mut cfg = issuer.config(&clock);
    cfg.introspection = Some(IntrospectionConfig::new("rs", "rs-secret"));
    let v = Verifier::new(cfg).unwrap();
    let token = key.token(&claims(&issuer.url));
    let auth = format!("Bearer {token}");
    let parts = RequestParts::new("GET", URI).authorization(&auth);
    let live = Requirements::new().introspected();

    assert!(v.verify(&parts).await.is_ok());
    assert_eq!(
        issuer.served.lock().unwrap().introspections,
        0,
        "only where asked"
    );
    assert!(v.verify_with(&parts, &live).await.is_ok());
    issuer.served.lock().unwrap().revoked.insert(token.clone());
    assert!(
        v.verify_with(&parts, &live).await.is_ok(),
        "positive answer cached"
    );
    assert_eq!(issuer.served.lock().unwrap().introspections, 1);
    clock.advance(10);
    assert_invalid(v.verify_with(&parts, &live).await, "not active", "revoked");
    assert_invalid(
        v.verify_with(&parts, &live).await,
        "not active",
        "negative cached",
    );
    assert_eq!(issuer.served.lock().unwrap().introspections, 2);

    let mut cfg = issuer.config(&clock);
    cfg.introspection = Some(IntrospectionConfig::new("rs", "wrong"));
    let v = Verifier::new(cfg).unwrap();
    assert_eq!(
        v.verify_with(&parts, &live).await.unwrap_err().status(),
        503,
        "introspection failure fails closed"
    );
}
