//! The JWKS cache against a local JWKS server: `max-age`, `If-None-Match`
//! revalidation, background refresh, unknown-`kid` refetch limits, rotation,
//! and documents that are too large or not a JWKS. Time moves on a manual clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Test tables read best with short names and local helper types.
#![allow(
    clippy::many_single_char_names,
    clippy::items_after_statements,
    clippy::format_collect,
    clippy::too_many_lines
)]

mod common;

use std::time::Duration;

use common::{claims, Issuer, Key, NOW};
use portcullis_verify::{Clock, ErrorKind, RequestParts, Verifier, VerifyError};

async fn verify(v: &Verifier, token: &str) -> Result<(), VerifyError> {
    let auth = format!("Bearer {token}");
    v.verify(&RequestParts::new("GET", "https://api.example.com/").authorization(&auth))
        .await
        .map(|_| ())
}

/// Waits (without asserting on time) until the server has seen `n` JWKS requests.
async fn until_hits(issuer: &Issuer, n: usize) {
    for _ in 0..500 {
        if issuer.hits() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the JWKS was fetched {} times, expected {n}", issuer.hits());
}

#[tokio::test]
async fn keys_are_cached_for_max_age_then_revalidated_with_if_none_match() {
    let key = Key::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let clock = Clock::manual(NOW);
    let v = issuer.verifier(&clock);
    let token = key.token(&claims(&issuer.url));
    for _ in 0..20 {
        verify(&v, &token).await.unwrap();
    }
    assert_eq!(issuer.hits(), 1, "one fetch for twenty tokens");

    // Past max-age (300 s): a blocking revalidation, answered 304.
    clock.advance(300);
    verify(&v, &token).await.unwrap();
    assert_eq!(
        (issuer.hits(), issuer.served.lock().unwrap().not_modified),
        (2, 1)
    );
    let stats = v.key_cache_stats();
    assert_eq!((stats.fetches, stats.not_modified, stats.keys), (1, 1, 1));
}

#[tokio::test]
async fn keys_are_refreshed_in_the_background_before_they_expire() {
    let key = Key::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let clock = Clock::manual(NOW);
    let v = issuer.verifier(&clock);
    let token = key.token(&claims(&issuer.url));
    verify(&v, &token).await.unwrap();
    clock.advance(250); // past 80 % of 300 s
    verify(&v, &token).await.unwrap();
    until_hits(&issuer, 2).await;
    assert_eq!(issuer.served.lock().unwrap().not_modified, 1);
}

#[tokio::test]
async fn an_unknown_kid_refetches_at_most_every_refetch_interval_and_picks_up_a_rotated_key() {
    let old = Key::new("old");
    let issuer = Issuer::start(&[&old]).await;
    let clock = Clock::manual(NOW);
    let v = issuer.verifier(&clock);
    verify(&v, &old.token(&claims(&issuer.url))).await.unwrap();

    // Tokens with made-up kids cause one refetch (the interval counts from
    // the last fetch), not one per token.
    clock.advance(30);
    let stranger = Key::new("nobody");
    for _ in 0..10 {
        let err = verify(&v, &stranger.token(&claims(&issuer.url)))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::InvalidToken);
        assert!(err.description().contains("unknown"), "{err}");
    }
    assert_eq!(issuer.hits(), 2);

    // The issuer rotates: the new key is fetched on first sight once the interval has passed.
    let new = Key::new("new");
    issuer.publish(&[&old, &new]);
    let token = new.token(&claims(&issuer.url));
    assert!(
        verify(&v, &token).await.is_err(),
        "within the refetch interval"
    );
    clock.advance(30);
    verify(&v, &token).await.unwrap();
    assert_eq!(issuer.hits(), 3);
    verify(&v, &old.token(&claims(&issuer.url))).await.unwrap();
}

#[tokio::test]
async fn oversized_or_garbage_documents_are_refused_and_the_last_good_keys_kept() {
    let key = Key::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let clock = Clock::manual(NOW);
    let token = key.token(&claims(&issuer.url));
    let good = issuer.served.lock().unwrap().jwks.clone();
    let bad_documents: [(Vec<u8>, &str); 5] = [
        (vec![b' '; 300 * 1024], "exceeds"),
        (b"<html>not json</html>".to_vec(), "not a JWKS"),
        (br#"{"keys": "nope"}"#.to_vec(), "not a JWKS"),
        (
            br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k1"}]}"#.to_vec(),
            "no usable key",
        ),
        (
            br#"{"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "x": "AQ", "y": "AQ"}]}"#
                .to_vec(),
            "no usable key",
        ),
    ];
    for (body, needle) in bad_documents {
        issuer.set_jwks(body);
        let v = issuer.verifier(&clock);
        let err = verify(&v, &token).await.unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::Unavailable, "{needle}");
        assert!(err.description().contains(needle), "{needle}: {err}");
        assert_eq!(v.error_response(&err).status, 503);
    }

    // A verifier holding good keys keeps them through a bad refresh (within max_stale).
    issuer.set_jwks(good);
    let v = issuer.verifier(&clock);
    verify(&v, &token).await.unwrap();
    issuer.set_jwks(b"garbage".to_vec());
    clock.advance(301);
    verify(&v, &token).await.unwrap();
    assert_eq!(v.key_cache_stats().failures, 1);
    clock.advance(3_600);
    assert_eq!(
        verify(&v, &token).await.unwrap_err().kind(),
        &ErrorKind::Unavailable,
        "past max_stale"
    );
}

#[tokio::test]
async fn metadata_naming_another_issuer_is_refused() {
    let key = Key::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    issuer.served.lock().unwrap().metadata_issuer = Some("https://evil.example".into());
    let v = issuer.verifier(&Clock::manual(NOW));
    let err = verify(&v, &key.token(&claims(&issuer.url)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Unavailable);
    assert_eq!(issuer.hits(), 0);
}

#[tokio::test]
async fn cache_control_bounds_and_no_store_are_honoured() {
    let key = Key::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    issuer.served.lock().unwrap().cache_control = Some("no-store".into());
    let clock = Clock::manual(NOW);
    let v = issuer.verifier(&clock);
    let token = key.token(&claims(&issuer.url));
    verify(&v, &token).await.unwrap();
    verify(&v, &token).await.unwrap();
    assert_eq!(issuer.hits(), 1, "min_ttl (30 s) applies even to no-store");
    clock.advance(30);
    verify(&v, &token).await.unwrap();
    assert_eq!(issuer.hits(), 2);
}
