//! Test token issuers served over loopback HTTP (or HTTPS with a test CA's
//! certificate): an OIDC discovery document
//! and a JWKS (`/.well-known/openid-configuration`, `/jwks`), which the test
//! can make slow, huge or failing, and signing keys (RS256 with ring from a
//! fixed 2048-bit test key, ES256 from [`ClientKey`]) for tokens shaped like
//! Kubernetes service-account tokens, SPIFFE JWT-SVIDs and GitHub Actions
//! OIDC tokens.

use std::{
    net::IpAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine as _,
};
use ring::{
    rand::SystemRandom,
    signature::{RsaKeyPair, RSA_PKCS1_SHA256},
};
use rustls_pki_types::{pem::PemObject as _, CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

use crate::pki::{Ca, Leaf};

/// A 2048-bit RSA key (PKCS#8 DER, base64) generated for these tests only.
const TEST_RSA_PKCS8: &str = "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDNdmQ23PeDtYXWpN56IwLnz9h4ixq0vVJ0WlVdwu1s2NW5RsOZ0GHfMTVsFMOe+nJ2YKQ4bV6Kzuw9DbdYxmkhmpwRn6gheR2yUwZAk4DRAfBVuQFl0hcQAomRqW9izG22OjrG0qPetxNV9pyO9J+EmaR6Wyqz/l8wga3bhY7oXWDwG7F8SSxq+CssIYy1sJX1BNLwM+0vK01g/3gEnsMOL1rHgSN7byElkGtS/nQkbvAO+l77Wnh3/udT0gv5SZ943O4wNF7rXnyQe9F5A7t+ljOe0G1ZDgVicdpeDsU5pqG9eHSbM6NLhFtN1TCrAE9sPLsCD7bR6s8pXT1TtTrHAgMBAAECggEAAUrtuyaiwV0NWC9gsvYGGP1GyGNfqfly9lvHI7g2lDO9DIBfJK2Z9V8y4y4yQ413K5AqGFd1JnxszL7fA3D5d7D9qw1ib8DPqK/ltIGjvYI8nTLKc8s27UPcJ7ggL51Hp24wW9CMIA+Y0Iv6VNqXJ6zBIH/zAdTni7+VH3IfVw4/HTgyWAYsRCbFrFphucryzYyEmr/mNMe6Promm1MXwgG5VfMj1oat367ANnJaW2/0M0LXvLO7RII2SbgT5Ka+wP5bHo/t5ShrnPrZNn/NiD7B4IVPN953nU291vOAjcmbtYNJuOpMLccxco6LakuZ+pr94Mp4+FpnLaRgoegcwQKBgQD866N4Yw6DXU/Ombq9GvAFwCIcAKsjbJBrna1VNiBOYeYLonerMPJV2/Z9zbZo0xLw2hIDr4LCHqwaY4wMEeq8xIBu3uE91TJfnZ0P4YQzIghI1YUsZqngIXebmrZs+z8gss3j0keicS9jJONUgJmb3feSD/Cz3GEdJX949prapwKBgQDP9tMjpTjTEfrWY5ijNVdExiyAV1GPL0vPedBgY+SjluDK5dQAQk1cV+g4hY0Uwsh1PjGebKn+ohRtXo8WbEBrP5JxFrodTq5tnlqZ2RefgqkoswjG8O5L46DAtoI/2bmQEvI7ZPOaKFQ1Xbj3Kzf3g7vbeUAQuekvMXbywGRC4QKBgQCpHi9qmmHj+QsaTLUPKeoBDl5Adzn4L+nJ698xMUYc411dvj9imxIP00tZB6rHIQxzPH37NOqsPrI52wKUN47MtmBiwmm+XMaYJN4W9mbdgg4kFZI9BFDm67n8tFDzQnUNukHt6ne36RMUql/P60XLcXrPkhUTT3MoeCBqlAsr1QKBgHU8LqCslpEeVKqhML3o5w5lLVcYYmj2f6UxhY+hIJY8CvM2hsGynsvM3qNmXjby63B0pCIsHdTm598T7FP2qIYNK2/HIRo+bcRr/aU3JcMNNHE2JF+KGLv9UXTyLhDym1Il7BohedZQn9AJyqjD22QUBkXeX4hOVa7+EpEcdijhAoGBAK+AlSs2zAB/pFnxWQY9OwTYlVK9LaRbdMttY6aNXgaSqH7YgTyHyyQ2qP8tucngyaJ4ju6fA6w7fuqRuKY0XvVKepCqjXX0RZi+j7izhNfghLj9ql9zgsOSy09xCbZf2mr4or0hXEx78rtx1qNgLPRKduPYbGv7aKLQ4Xvh3ffe";

/// An RS256 signing key, as Kubernetes API servers and GitHub use.
pub struct RsaKey {
    pub kid: String,
    pair: RsaKeyPair,
}

impl RsaKey {
    pub fn new(kid: &str) -> Self {
        let der = STANDARD.decode(TEST_RSA_PKCS8).unwrap();
        Self {
            kid: kid.to_owned(),
            pair: RsaKeyPair::from_pkcs8(&der).unwrap(),
        }
    }

    /// The public JWK as Kubernetes publishes it (`use: sig`, `alg: RS256`).
    pub fn public_jwk(&self) -> Value {
        let public: ring::rsa::PublicKeyComponents<Vec<u8>> = self.pair.public().into();
        json!({
            "use": "sig", "kty": "RSA", "kid": self.kid, "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(&public.n),
            "e": URL_SAFE_NO_PAD.encode(&public.e),
        })
    }

    /// A compact JWS over `claims` with `header` (`alg` and `kid` added
    /// unless present).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let mut h = json!({ "alg": "RS256", "kid": self.kid });
        for (k, v) in header.as_object().unwrap() {
            h[k] = v.clone();
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(h.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// How the issuer's endpoints answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Normally.
    Up,
    /// After 30 s (longer than any fetch timeout).
    Slow,
    /// With a JWKS of 1 MiB.
    Huge,
    /// HTTP 503.
    Failing,
}

/// A token issuer on 127.0.0.1.
pub struct Issuer {
    pub url: String,
    jwks: Arc<Mutex<Value>>,
    mode: Arc<Mutex<Mode>>,
    hits: Arc<AtomicUsize>,
}

impl Issuer {
    /// Serves `jwks` and a discovery document naming its URL as the issuer.
    pub async fn start(jwks: Value) -> Self {
        Self::serve(jwks, None).await
    }

    /// The same over HTTPS, with a server certificate for 127.0.0.1 issued
    /// by `ca` (as an in-cluster API server presents one from the
    /// cluster's CA).
    pub async fn start_tls(jwks: Value, ca: &Ca) -> Self {
        let leaf = ca.issue(&Leaf {
            cn: Some("kubernetes".into()),
            dns: vec!["kubernetes.default.svc".into()],
            ips: vec![IpAddr::from([127, 0, 0, 1])],
            server: true,
            ..Leaf::default()
        });
        let chain = vec![CertificateDer::from(leaf.der.clone())];
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        Self::serve(jwks, Some(TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn serve(jwks: Value, tls: Option<TlsAcceptor>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!(
            "{scheme}://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let shared = Shared {
            jwks: Arc::new(Mutex::new(jwks)),
            mode: Arc::new(Mutex::new(Mode::Up)),
            hits: Arc::new(AtomicUsize::new(0)),
            base: url.clone(),
        };
        let server = shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (shared, tls) = (server.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        // A failed handshake (a client that does not trust
                        // the CA) never reaches the handler.
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream).await {
                                shared.answer(stream).await;
                            }
                        }
                        None => shared.answer(stream).await,
                    }
                });
            }
        });
        Self {
            url,
            jwks: shared.jwks,
            mode: shared.mode,
            hits: shared.hits,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn publish(&self, jwks: Value) {
        *self.jwks.lock().unwrap() = jwks;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// What the issuer's connections share.
#[derive(Clone)]
struct Shared {
    jwks: Arc<Mutex<Value>>,
    mode: Arc<Mutex<Mode>>,
    hits: Arc<AtomicUsize>,
    base: String,
}

impl Shared {
    /// Reads one request from `stream` and answers it.
    async fn answer<S: AsyncRead + AsyncWrite + Unpin>(&self, mut stream: S) {
        let mut buf = vec![0u8; 4096];
        let mut read = 0;
        while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf[read..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read += n,
            }
        }
        self.hits.fetch_add(1, Ordering::SeqCst);
        let head = String::from_utf8_lossy(&buf[..read]).to_string();
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let mode = *self.mode.lock().unwrap();
        let base = &self.base;
        let (status, body) = match (mode, path.as_str()) {
            (Mode::Slow, _) => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                ("200 OK", "{}".to_owned())
            }
            (Mode::Failing, _) => ("503 Service Unavailable", "{}".to_owned()),
            (_, "/.well-known/openid-configuration") => (
                "200 OK",
                json!({
                    "issuer": base,
                    "jwks_uri": format!("{base}/jwks"),
                    "response_types_supported": ["id_token"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                })
                .to_string(),
            ),
            (Mode::Huge, "/jwks") => (
                "200 OK",
                format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(1 << 20)),
            ),
            (Mode::Up, "/jwks") => ("200 OK", self.jwks.lock().unwrap().to_string()),
            _ => ("404 Not Found", "{}".to_owned()),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}

/// A URL on 127.0.0.1 where nothing listens.
pub async fn nothing_listening() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    drop(listener);
    url
}

/// The claims of a Kubernetes projected service-account token (as
/// `kubectl create token` and the kubelet issue them), valid from `now` for an hour.
pub fn kubernetes_claims(iss: &str, aud: &str, namespace: &str, sa: &str, now: i64) -> Value {
    json!({
        "aud": [aud],
        "exp": now + 3600,
        "iat": now,
        "iss": iss,
        "jti": uuid::Uuid::new_v4().to_string(),
        "kubernetes.io": {
            "namespace": namespace,
            "node": {"name": "node-1", "uid": "1b0c7e4c-4c5c-4c0a-9d8a-2f6d3c9e2a11"},
            "pod": {"name": format!("{sa}-6d4cf56db6-xk2mq"), "uid": "5f3a8e9b-0b5e-4a9d-8c1e-7d2f6b4a3c21"},
            "serviceaccount": {"name": sa, "uid": "9e8d7c6b-5a4f-4e3d-2c1b-0a9f8e7d6c5b"},
            "warnafter": now + 3607
        },
        "nbf": now,
        "sub": format!("system:serviceaccount:{namespace}:{sa}"),
    })
}

/// The claims of a SPIFFE JWT-SVID (SPIRE: `sub`, `aud`, `exp`, `iat`, and `iss` when configured).
pub fn svid_claims(iss: &str, aud: &str, spiffe_id: &str, now: i64) -> Value {
    json!({ "aud": [aud], "exp": now + 300, "iat": now, "iss": iss, "sub": spiffe_id })
}

/// The claims of a GitHub Actions OIDC token for a deployment job.
pub fn github_claims(
    iss: &str,
    aud: &str,
    repository: &str,
    git_ref: &str,
    environment: &str,
    now: i64,
) -> Value {
    let owner = repository.split('/').next().unwrap();
    json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "sub": format!("repo:{repository}:environment:{environment}"),
        "environment": environment,
        "aud": aud,
        "ref": git_ref,
        "sha": "d6e4c0b1a5f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9",
        "repository": repository,
        "repository_owner": owner,
        "repository_owner_id": "65432100",
        "repository_visibility": "private",
        "repository_id": "123456789",
        "run_id": "9876543210",
        "run_number": "42",
        "run_attempt": "1",
        "actor": "octocat",
        "actor_id": "583231",
        "workflow": "deploy",
        "workflow_ref": format!("{repository}/.github/workflows/deploy.yml@{git_ref}"),
        "job_workflow_ref": format!("{repository}/.github/workflows/deploy.yml@{git_ref}"),
        "head_ref": "",
        "base_ref": "",
        "event_name": "push",
        "ref_type": "branch",
        "runner_environment": "github-hosted",
        "iss": iss,
        "nbf": now - 5,
        "exp": now + 295,
        "iat": now,
    })
}
