//! DPoP-bound tokens (RFC 9449) with tokens and proofs signed here: the
//! Portcullis server does not issue DPoP-bound tokens yet.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Test tables read best with short names and local helper types.
#![allow(
    clippy::many_single_char_names,
    clippy::items_after_statements,
    clippy::format_collect,
    clippy::too_many_lines
)]

mod common;

use common::{claims, Issuer, Key, NOW};
use portcullis_verify::{
    Clock, DpopConfig, ErrorKind, NonceConfig, RequestParts, Scheme, Verifier, VerifyError,
};
use serde_json::json;

const URI: &str = "https://api.example.com/orders?page=2";
const HTU: &str = "https://api.example.com/orders";

struct Setup {
    issuer_key: Key,
    client: Key,
    issuer: Issuer,
    clock: Clock,
    verifier: Verifier,
    token: String,
}

async fn setup(nonce: bool, required: bool) -> Setup {
    let issuer_key = Key::new("k1");
    let client = Key::new("client");
    let issuer = Issuer::start(&[&issuer_key]).await;
    let clock = Clock::manual(NOW);
    let mut cfg = issuer.config(&clock);
    let mut dpop = DpopConfig::default();
    dpop.required = required;
    dpop.nonce = nonce.then(NonceConfig::default);
    cfg.dpop = Some(dpop);
    let verifier = Verifier::new(cfg).unwrap();
    let mut c = claims(&issuer.url);
    c["cnf"] = json!({"jkt": client.thumbprint()});
    let token = issuer_key.token(&c);
    Setup {
        issuer_key,
        client,
        issuer,
        clock,
        verifier,
        token,
    }
}

async fn call(
    s: &Setup,
    scheme: &str,
    method: &str,
    proof: Option<&str>,
) -> Result<portcullis_verify::VerifiedToken, VerifyError> {
    let auth = format!("{scheme} {}", s.token);
    let mut parts = RequestParts::new(method, URI).authorization(&auth);
    if let Some(p) = proof {
        parts = parts.dpop(p);
    }
    s.verifier.verify(&parts).await
}

fn assert_kind(
    r: Result<portcullis_verify::VerifiedToken, VerifyError>,
    kind: &ErrorKind,
    needle: &str,
    case: &str,
) {
    let err = r.expect_err(case);
    assert_eq!(err.kind(), kind, "{case}: {err}");
    assert!(err.description().contains(needle), "{case}: {err}");
}

#[tokio::test]
async fn a_dpop_bound_token_with_a_good_proof_is_accepted_once() {
    let s = setup(false, false).await;
    let proof = s.client.proof("GET", HTU, &s.token, NOW, "p-1", None);
    let token = call(&s, "DPoP", "GET", Some(&proof)).await.unwrap();
    assert_eq!(token.scheme(), Scheme::Dpop);
    assert_kind(
        call(&s, "DPoP", "GET", Some(&proof)).await,
        &ErrorKind::InvalidDpopProof,
        "already used",
        "replay",
    );
    // Normalized htu: scheme/host case and default port do not matter.
    let proof = s.client.proof(
        "GET",
        "HTTPS://API.EXAMPLE.COM:443/orders",
        &s.token,
        NOW,
        "p-2",
        None,
    );
    assert!(call(&s, "DPoP", "GET", Some(&proof)).await.is_ok());
}

#[tokio::test]
async fn every_proof_check_refuses_a_bad_proof() {
    let s = setup(false, false).await;
    let c = &s.client;
    let t = &s.token;
    let other_token = s.issuer_key.token(&claims(&s.issuer.url));
    let mut private_jwk = c.public_jwk();
    private_jwk["d"] = json!("AAAA");
    let proof_claims =
        json!({"jti": "x", "htm": "GET", "htu": HTU, "iat": NOW, "ath": portcullis_verify::ath(t)});
    let cases = [
        (
            c.proof("POST", HTU, t, NOW, "a", None),
            "htm",
            "wrong method",
        ),
        (
            c.proof("GET", "https://api.example.com/other", t, NOW, "b", None),
            "htu",
            "wrong path",
        ),
        (
            c.proof("GET", "http://api.example.com/orders", t, NOW, "c", None),
            "htu",
            "wrong scheme",
        ),
        (
            c.proof("GET", HTU, t, NOW - 200, "d", None),
            "iat",
            "too old",
        ),
        (
            c.proof("GET", HTU, t, NOW + 120, "e", None),
            "iat",
            "from the future",
        ),
        (
            c.proof("GET", HTU, &other_token, NOW, "f", None),
            "ath",
            "ath of another token",
        ),
        (
            c.sign(
                &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": c.public_jwk()}),
                &json!({"jti": "g", "htm": "GET", "htu": HTU, "iat": NOW}),
            ),
            "ath",
            "no ath",
        ),
        (
            c.sign(
                &json!({"typ": "JWT", "alg": "ES256", "jwk": c.public_jwk()}),
                &proof_claims,
            ),
            "typ",
            "typ",
        ),
        (
            c.sign(
                &json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": c.public_jwk()}),
                &proof_claims,
            ),
            "alg",
            "HS256",
        ),
        (
            c.sign(
                &json!({"typ": "dpop+jwt", "alg": "none", "jwk": c.public_jwk()}),
                &proof_claims,
            ),
            "alg",
            "none",
        ),
        (
            c.sign(&json!({"typ": "dpop+jwt", "alg": "ES256"}), &proof_claims),
            "jwk",
            "no jwk",
        ),
        (
            c.sign(
                &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private_jwk}),
                &proof_claims,
            ),
            "private",
            "private jwk",
        ),
        (
            c.sign(
                &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": s.issuer_key.public_jwk()}),
                &proof_claims,
            ),
            "signature",
            "jwk of another key",
        ),
        (
            c.sign(
                &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": c.public_jwk()}),
                &json!({"htm": "GET"}),
            ),
            "lacks",
            "claims missing",
        ),
        ("not-a-jws".to_owned(), "compact", "garbage"),
    ];
    for (proof, needle, case) in cases {
        assert_kind(
            call(&s, "DPoP", "GET", Some(&proof)).await,
            &ErrorKind::InvalidDpopProof,
            needle,
            case,
        );
    }
    assert_kind(
        call(&s, "DPoP", "GET", None).await,
        &ErrorKind::InvalidDpopProof,
        "missing",
        "no proof",
    );
    let proof = c.proof("GET", HTU, t, NOW, "h", None);
    let auth = format!("DPoP {t}");
    let twice = RequestParts::new("GET", URI)
        .authorization(&auth)
        .dpop(&proof)
        .dpop(&proof);
    assert_eq!(
        s.verifier.verify(&twice).await.unwrap_err().kind(),
        &ErrorKind::InvalidRequest
    );
}

#[tokio::test]
async fn bound_and_unbound_tokens_must_use_their_own_scheme() {
    let s = setup(false, false).await;
    let proof = s.client.proof("GET", HTU, &s.token, NOW, "a", None);
    let err = call(&s, "Bearer", "GET", Some(&proof)).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InvalidToken);
    assert!(err.description().contains("DPoP scheme"), "{err}");
    let answer = s.verifier.error_response(&err);
    assert!(
        answer.headers[0]
            .1
            .starts_with("DPoP algs=\"ES256 ES384 EdDSA RS256 PS256\", error=\"invalid_token\""),
        "{answer:?}"
    );

    // A token bound to another key is the token's fault.
    let stranger = Key::new("stranger");
    let proof = stranger.proof("GET", HTU, &s.token, NOW, "b", None);
    assert_kind(
        call(&s, "DPoP", "GET", Some(&proof)).await,
        &ErrorKind::InvalidToken,
        "another DPoP key",
        "other key",
    );

    // An unbound token sent with the DPoP scheme is refused; as Bearer it is fine.
    let plain = s.issuer_key.token(&claims(&s.issuer.url));
    let auth = format!("DPoP {plain}");
    let proof = s.client.proof("GET", HTU, &plain, NOW, "c", None);
    let err = s
        .verifier
        .verify(
            &RequestParts::new("GET", URI)
                .authorization(&auth)
                .dpop(&proof),
        )
        .await
        .unwrap_err();
    assert!(err.description().contains("not DPoP-bound"), "{err}");
    let auth = format!("Bearer {plain}");
    assert!(s
        .verifier
        .verify(&RequestParts::new("GET", URI).authorization(&auth))
        .await
        .is_ok());

    // When DPoP is required, Bearer is refused outright.
    let s = setup(false, true).await;
    let err = s
        .verifier
        .verify(&RequestParts::new("GET", URI).authorization(&auth))
        .await
        .unwrap_err();
    assert!(err.description().contains("required"), "{err}");
    assert_eq!(
        s.verifier.error_response(&err).headers.len(),
        1,
        "only the DPoP challenge"
    );
}

#[tokio::test]
async fn with_nonces_on_a_proof_without_the_server_nonce_gets_use_dpop_nonce() {
    let s = setup(true, false).await;
    let proof = s.client.proof("GET", HTU, &s.token, NOW, "a", None);
    let err = call(&s, "DPoP", "GET", Some(&proof)).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::UseDpopNonce);
    let answer = s.verifier.error_response(&err);
    assert_eq!(answer.status, 401);
    let nonce = answer
        .headers
        .iter()
        .find(|(n, _)| *n == "DPoP-Nonce")
        .unwrap()
        .1
        .clone();
    assert!(answer.headers[0].1.contains("error=\"use_dpop_nonce\""));

    let proof = s.client.proof("GET", HTU, &s.token, NOW, "b", Some(&nonce));
    assert!(call(&s, "DPoP", "GET", Some(&proof)).await.is_ok());
    let proof = s
        .client
        .proof("GET", HTU, &s.token, NOW, "c", Some("made-up"));
    assert_eq!(
        call(&s, "DPoP", "GET", Some(&proof))
            .await
            .unwrap_err()
            .kind(),
        &ErrorKind::UseDpopNonce
    );
    // Two windows later the nonce is stale.
    s.clock.advance(150);
    let proof = s
        .client
        .proof("GET", HTU, &s.token, NOW + 150, "d", Some(&nonce));
    assert_eq!(
        call(&s, "DPoP", "GET", Some(&proof))
            .await
            .unwrap_err()
            .kind(),
        &ErrorKind::UseDpopNonce
    );
    assert!(s.verifier.dpop_nonce().is_some());
}
