//! Verifications per second on one core with a warm JWKS cache, against raw
//! ring verification of the same signatures (the floor the crate aims at: at
//! least 85 % of raw ring), for three cases: an ES256 Bearer token, an EdDSA
//! Bearer token, and an ES256 DPoP-bound token with an ES256 proof (two
//! signatures; its raw figure is two ring verifications). Run in release mode:
//!
//! ```sh
//! cargo run --release -p portcullis-verify --example bench
//! ```

// A benchmark script: one scenario read top to bottom, paired names (`es_*`,
// `ed_*`), and round counts far below f64's exact integer range.
#![allow(
    clippy::similar_names,
    clippy::too_many_lines,
    clippy::cast_precision_loss
)]

use std::time::Instant;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use portcullis_verify::{DpopConfig, RequestParts, Verifier, VerifierConfig};
use ring::{
    rand::SystemRandom,
    signature::{
        EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
        ECDSA_P256_SHA256_FIXED_SIGNING, ED25519,
    },
};
use serde_json::{json, Value};

const ROUNDS: usize = 20_000;
const RESOURCE: &str = "https://api.example.com/orders";

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn es256_pair(rng: &SystemRandom) -> Result<EcdsaKeyPair, Error> {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
        .map_err(|_| "keygen")?;
    Ok(
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), rng)
            .map_err(|_| "key")?,
    )
}

fn ec_jwk(pair: &EcdsaKeyPair) -> Value {
    let point = pair.public_key().as_ref();
    json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])})
}

/// A signed compact JWS and its signing input and signature.
struct Signed {
    jws: String,
    input: String,
    sig: Vec<u8>,
}

fn sign(
    header: &Value,
    claims: &Value,
    signer: impl Fn(&[u8]) -> Result<Vec<u8>, Error>,
) -> Result<Signed, Error> {
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let sig = signer(input.as_bytes())?;
    Ok(Signed {
        jws: format!("{input}.{}", b64(&sig)),
        input,
        sig,
    })
}

async fn run() -> Result<(), Error> {
    let rng = SystemRandom::new();
    let es = es256_pair(&rng)?;
    let ed = Ed25519KeyPair::from_pkcs8(
        Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| "keygen")?
            .as_ref(),
    )
    .map_err(|_| "key")?;
    let holder = es256_pair(&rng)?; // the DPoP key of the client
    let mut es_jwk = ec_jwk(&es);
    es_jwk["kid"] = "k1".into();
    es_jwk["alg"] = "ES256".into();
    let ed_jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "k2", "alg": "EdDSA",
        "x": b64(ed.public_key().as_ref())});
    let jwks = json!({"keys": [es_jwk, ed_jwk]});

    // A JWKS server on loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let body = jwks.to_string();
    let app = axum::Router::new().route("/jwks", axum::routing::get(move || async move { body }));
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Portcullis-shaped tokens.
    let now = portcullis_verify::Clock::System.now();
    let claims = json!({"iss": url, "sub": "svc-a", "aud": "https://api.example.com", "exp": now + 3600,
        "iat": now, "nbf": now, "jti": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "client_id": "svc-a", "scope": "read write"});
    let es_sign = |m: &[u8]| -> Result<Vec<u8>, Error> {
        Ok(es.sign(&rng, m).map_err(|_| "sign")?.as_ref().to_vec())
    };
    let es_token = sign(
        &json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1"}),
        &claims,
        es_sign,
    )?;
    let ed_token = sign(
        &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k2"}),
        &claims,
        |m| Ok(ed.sign(m).as_ref().to_vec()),
    )?;
    let holder_jwk = ec_jwk(&holder);
    let jkt = portcullis_verify::jwk_thumbprint(&holder_jwk.to_string())?;
    let mut bound_claims = claims.clone();
    bound_claims["cnf"] = json!({"jkt": jkt});
    let bound_token = sign(
        &json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1"}),
        &bound_claims,
        es_sign,
    )?;
    // One fresh proof per verification (a jti is accepted once).
    let proof_header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": holder_jwk});
    let ath = portcullis_verify::ath(&bound_token.jws);
    let proofs = (0..3 * ROUNDS)
        .map(|i| {
            let claims = json!({"jti": format!("p-{i}"), "htm": "GET", "htu": RESOURCE, "iat": now, "ath": ath});
            sign(&proof_header, &claims, |m| {
                Ok(holder.sign(&rng, m).map_err(|_| "sign")?.as_ref().to_vec())
            })
            .map(|s| s.jws)
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut config = VerifierConfig::new(url.clone(), "https://api.example.com");
    config.jwks.jwks_uri = Some(format!("{url}/jwks"));
    config.jwks.default_ttl = 3600;
    config.dpop = Some(DpopConfig::default());
    let verifier = Verifier::new(config)?;
    verifier.warm_up().await?;

    let es_key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, es.public_key().as_ref());
    let ed_key = UnparsedPublicKey::new(&ED25519, ed.public_key().as_ref());
    println!("token length: {} bytes (ES256)", es_token.jws.len());
    println!(
        "{:<34}{:>12}{:>12}{:>8}",
        "case", "raw ring/s", "verifier/s", "ratio"
    );
    for (name, token, key) in [
        ("ES256 Bearer (warm JWKS)", &es_token, &es_key),
        ("EdDSA Bearer (warm JWKS)", &ed_token, &ed_key),
    ] {
        let auth = format!("Bearer {}", token.jws);
        let (mut raw, mut crate_rate) = (0f64, 0f64);
        // Interleaved, best of three, so neither side pays for a cold start.
        for _ in 0..3 {
            raw = raw.max(measure(|| {
                key.verify(token.input.as_bytes(), &token.sig).is_ok()
            }));
            crate_rate = crate_rate.max(verify_rate(&verifier, &auth, None).await);
        }
        report(name, raw, crate_rate);
    }
    // DPoP: token and proof signatures; raw is two ring ES256 checks.
    let holder_key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, holder.public_key().as_ref());
    let proof_signed = sign(
        &proof_header,
        &json!({"jti": "raw", "htm": "GET", "htu": RESOURCE, "iat": now, "ath": ath}),
        |m| Ok(holder.sign(&rng, m).map_err(|_| "sign")?.as_ref().to_vec()),
    )?;
    let auth = format!("DPoP {}", bound_token.jws);
    let (mut raw, mut crate_rate) = (0f64, 0f64);
    for round in 0..3 {
        raw = raw.max(measure(|| {
            es_key
                .verify(bound_token.input.as_bytes(), &bound_token.sig)
                .is_ok()
                && holder_key
                    .verify(proof_signed.input.as_bytes(), &proof_signed.sig)
                    .is_ok()
        }));
        let batch = &proofs[round * ROUNDS..(round + 1) * ROUNDS];
        crate_rate = crate_rate.max(verify_rate(&verifier, &auth, Some(batch)).await);
    }
    report("ES256 DPoP-bound + ES256 proof", raw, crate_rate);
    Ok(())
}

fn report(name: &str, raw: f64, through_crate: f64) {
    println!(
        "{name:<34}{raw:>12.0}{through_crate:>12.0}{:>7.1}%",
        100.0 * through_crate / raw
    );
}

fn measure(mut check: impl FnMut() -> bool) -> f64 {
    let start = Instant::now();
    for _ in 0..ROUNDS {
        assert!(std::hint::black_box(check()));
    }
    ROUNDS as f64 / start.elapsed().as_secs_f64()
}

/// `ROUNDS` verifications of the token in `authorization`, each with its own
/// proof when `proofs` are given.
async fn verify_rate(verifier: &Verifier, authorization: &str, proofs: Option<&[String]>) -> f64 {
    let start = Instant::now();
    for i in 0..ROUNDS {
        let mut parts = RequestParts::new("GET", RESOURCE).authorization(authorization);
        if let Some(proofs) = proofs {
            parts = parts.dpop(&proofs[i]);
        }
        let verified = verifier.verify(std::hint::black_box(&parts)).await;
        assert!(
            std::hint::black_box(verified).is_ok(),
            "verification failed"
        );
    }
    ROUNDS as f64 / start.elapsed().as_secs_f64()
}
