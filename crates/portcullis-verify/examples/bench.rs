//! Verifications per second on one core with a warm JWKS cache, against raw
//! ring ES256 verification of the same token (the floor the crate aims at:
//! at least 85 % of raw ring). Run in release mode:
//!
//! ```sh
//! cargo run --release -p portcullis-verify --example bench
//! ```

use std::time::Instant;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use portcullis_verify::{RequestParts, Verifier, VerifierConfig};
use ring::{
    rand::SystemRandom,
    signature::{
        EcdsaKeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
        ECDSA_P256_SHA256_FIXED_SIGNING,
    },
};
use serde_json::json;

const ROUNDS: u32 = 20_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| "keygen")?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| "key")?;
    let point = pair.public_key().as_ref().to_vec();
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])}]});

    // A JWKS server on loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let body = jwks.to_string();
    let app = axum::Router::new().route("/jwks", axum::routing::get(move || async move { body }));
    tokio::spawn(async move { axum::serve(listener, app).await });

    // A Portcullis-shaped token.
    let now = portcullis_verify::Clock::System.now();
    let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1"});
    let claims = json!({"iss": url, "sub": "svc-a", "aud": "https://api.example.com", "exp": now + 3600,
        "iat": now, "nbf": now, "jti": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "client_id": "svc-a", "scope": "read write"});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = pair.sign(&rng, input.as_bytes()).map_err(|_| "sign")?;
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));

    let mut config = VerifierConfig::new(url.clone(), "https://api.example.com");
    config.jwks.jwks_uri = Some(format!("{url}/jwks"));
    config.jwks.default_ttl = 3600;
    let verifier = Verifier::new(config)?;
    verifier.warm_up().await?;
    let auth = format!("Bearer {token}");
    let parts = RequestParts::new("GET", "https://api.example.com/orders").authorization(&auth);

    // Raw ring: the signature check alone, key bytes prepared once.
    let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point);
    // Interleaved, best of three, so neither side pays for a cold start.
    let (mut raw, mut through_crate) = (0f64, 0f64);
    for _ in 0..3 {
        raw = raw.max(measure_raw(&key, &input, sig.as_ref()));
        through_crate = through_crate.max(measure_verifier(&verifier, &parts).await?);
    }
    println!("token length: {} bytes", token.len());
    println!("raw ring ES256 verify:        {raw:>9.0} /s");
    println!("Verifier::verify (warm JWKS): {through_crate:>9.0} /s");
    println!("ratio: {:.1} %", 100.0 * through_crate / raw);
    Ok(())
}

fn measure_raw(key: &UnparsedPublicKey<Vec<u8>>, input: &str, sig: &[u8]) -> f64 {
    let start = Instant::now();
    for _ in 0..ROUNDS {
        assert!(key
            .verify(std::hint::black_box(input.as_bytes()), sig)
            .is_ok());
    }
    f64::from(ROUNDS) / start.elapsed().as_secs_f64()
}

async fn measure_verifier(
    verifier: &Verifier,
    parts: &RequestParts<'_>,
) -> Result<f64, Box<dyn std::error::Error>> {
    let start = Instant::now();
    for _ in 0..ROUNDS {
        std::hint::black_box(verifier.verify(std::hint::black_box(parts)).await?);
    }
    Ok(f64::from(ROUNDS) / start.elapsed().as_secs_f64())
}
