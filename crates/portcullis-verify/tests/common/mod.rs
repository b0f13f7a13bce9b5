//! Test fixtures: an issuer with ring ES256 keys that signs tokens, a DPoP
//! client key, and a local HTTP server publishing metadata, a JWKS (with
//! `Cache-Control`, `ETag` and `304`) and an introspection endpoint.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use portcullis_verify::{Clock, Verifier, VerifierConfig};
use ring::{
    rand::SystemRandom,
    signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING},
};
use serde_json::{json, Value};

pub const AUD: &str = "https://api.example.com";
pub const NOW: i64 = 1_750_000_000;

/// An ES256 key pair signing compact JWS.
pub struct Key {
    pair: EcdsaKeyPair,
    pub kid: String,
    rng: SystemRandom,
}

impl Key {
    pub fn new(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Self {
            pair,
            kid: kid.to_owned(),
            rng,
        }
    }

    /// The public JWK (no `kid`).
    pub fn public_jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({
            "kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        })
    }

    /// The public JWK as a JWKS entry.
    pub fn jwks_entry(&self) -> Value {
        let mut jwk = self.public_jwk();
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!("ES256");
        jwk
    }

    pub fn thumbprint(&self) -> String {
        portcullis_verify::jwk_thumbprint(&self.public_jwk().to_string()).unwrap()
    }

    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self.pair.sign(&self.rng, input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    /// An access token: header `ES256`, `at+jwt`, this key's `kid`.
    pub fn token(&self, claims: &Value) -> String {
        self.sign(
            &json!({"alg": "ES256", "typ": "at+jwt", "kid": self.kid}),
            claims,
        )
    }

    /// A DPoP proof for `htm`/`htu`, bound to `token` (RFC 9449 §4.2).
    pub fn proof(
        &self,
        htm: &str,
        htu: &str,
        token: &str,
        iat: i64,
        jti: &str,
        nonce: Option<&str>,
    ) -> String {
        let mut claims = json!({"jti": jti, "htm": htm, "htu": htu, "iat": iat, "ath": portcullis_verify::ath(token)});
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        self.sign(
            &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.public_jwk()}),
            &claims,
        )
    }
}

/// Standard claims for `issuer` at `NOW`.
pub fn claims(issuer: &str) -> Value {
    json!({
        "iss": issuer, "sub": "svc-a", "aud": AUD, "client_id": "svc-a",
        "exp": NOW + 300, "iat": NOW, "nbf": NOW, "jti": "t-1", "scope": "read write",
    })
}

/// What the local server serves and has seen.
#[derive(Default)]
pub struct Served {
    pub jwks: Vec<u8>,
    pub cache_control: Option<String>,
    pub etag: Option<String>,
    pub jwks_hits: usize,
    pub not_modified: usize,
    pub revoked: HashSet<String>,
    pub introspections: usize,
    pub metadata_issuer: Option<String>,
}

#[derive(Clone)]
pub struct Issuer {
    pub url: String,
    pub served: Arc<Mutex<Served>>,
}

impl Issuer {
    /// Starts the server on 127.0.0.1:0 publishing `keys`.
    pub async fn start(keys: &[&Key]) -> Self {
        let served = Arc::new(Mutex::new(Served {
            cache_control: Some("public, max-age=300".into()),
            ..Served::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let issuer = Self {
            url: url.clone(),
            served: Arc::clone(&served),
        };
        issuer.publish(keys);
        let app = Router::new()
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route("/jwks", get(jwks))
            .route("/introspect", post(introspect))
            .with_state((url, served));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        issuer
    }

    /// Publishes `keys` with a new `ETag`.
    pub fn publish(&self, keys: &[&Key]) {
        let body =
            json!({"keys": keys.iter().map(|k| k.jwks_entry()).collect::<Vec<_>>()}).to_string();
        self.set_jwks(body.into_bytes());
    }

    pub fn set_jwks(&self, body: Vec<u8>) {
        let mut s = self.served.lock().unwrap();
        s.etag = Some(format!(
            "\"{}\"",
            portcullis_verify::ath(&String::from_utf8_lossy(&body))
        ));
        s.jwks = body;
    }

    pub fn hits(&self) -> usize {
        self.served.lock().unwrap().jwks_hits
    }

    pub fn config(&self, clock: &Clock) -> VerifierConfig {
        let mut cfg = VerifierConfig::new(self.url.clone(), AUD);
        cfg.clock = clock.clone();
        cfg
    }

    pub fn verifier(&self, clock: &Clock) -> Verifier {
        Verifier::new(self.config(clock)).unwrap()
    }
}

type AppState = (String, Arc<Mutex<Served>>);

async fn metadata(State((url, served)): State<AppState>) -> Response {
    let issuer = served
        .lock()
        .unwrap()
        .metadata_issuer
        .clone()
        .unwrap_or_else(|| url.clone());
    axum::Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{url}/jwks"),
        "introspection_endpoint": format!("{url}/introspect"),
    }))
    .into_response()
}

async fn jwks(State((_, served)): State<AppState>, headers: HeaderMap) -> Response {
    let mut s = served.lock().unwrap();
    s.jwks_hits += 1;
    let mut out = HeaderMap::new();
    if let Some(cc) = &s.cache_control {
        out.insert("cache-control", HeaderValue::from_str(cc).unwrap());
    }
    if let Some(etag) = &s.etag {
        out.insert("etag", HeaderValue::from_str(etag).unwrap());
        if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
            s.not_modified += 1;
            return (StatusCode::NOT_MODIFIED, out).into_response();
        }
    }
    (StatusCode::OK, out, s.jwks.clone()).into_response()
}

async fn introspect(
    State((_, served)): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut s = served.lock().unwrap();
    s.introspections += 1;
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Basic cnM6cnMtc2VjcmV0")
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let token = body
        .split('&')
        .find_map(|p| p.strip_prefix("token="))
        .unwrap_or_default()
        .to_owned();
    axum::Json(json!({"active": !s.revoked.contains(&token)})).into_response()
}
