//! [`KeySet`]: the signing keys loaded in memory. It holds the `current` key
//! pre-parsed (no per-request key parsing, SPEC §6) and the JWKS document
//! pre-rendered with its `ETag`; both are swapped atomically when keys change.

use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use chrono::{DateTime, Utc};
use jsonwebtoken::{crypto::JwtSigner, jwk::Jwk, Header};
use ring::{
    digest,
    rand::SystemRandom,
    signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING},
};

use super::{generate, Algorithm, Kek, KekError, KeyState, StoredKey};
use crate::store::{Storage, Store, StoreError};

/// Errors of loading or creating signing keys.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    /// The store failed.
    #[error("signing keys could not be read or written")]
    Store(#[from] StoreError),
    /// Sealing or opening failed.
    #[error(transparent)]
    Kek(#[from] KekError),
    /// A stored key was sealed under a KEK that is not configured.
    #[error(
        "signing key {kid} was sealed under KEK {needed}, but the configured KEK is {configured}; \
         configure the KEK this database was created with"
    )]
    KekMismatch {
        /// The key.
        kid: String,
        /// KEK id stored with the key.
        needed: String,
        /// Id of the configured KEK.
        configured: String,
    },
    /// A stored key is unreadable (unknown algorithm, bad JWK, bad PKCS#8).
    #[error("signing key {kid} is corrupt: {why}")]
    Corrupt {
        /// The key.
        kid: String,
        /// What is wrong.
        why: &'static str,
    },
}

enum Pair {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

/// A parsed private key ready to sign, with its JWS header pre-encoded.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    pair: Pair,
    header_b64: String,
    rng: SystemRandom,
}

impl SigningKey {
    fn from_pkcs8(kid: &str, alg: Algorithm, pkcs8: &[u8]) -> Result<Self, KeySetError> {
        let corrupt = || KeySetError::Corrupt {
            kid: kid.to_owned(),
            why: "private key does not parse",
        };
        let rng = SystemRandom::new();
        let pair = match alg {
            Algorithm::Es256 => Pair::Es256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
                    .map_err(|_| corrupt())?,
            ),
            Algorithm::EdDsa => {
                Pair::EdDsa(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| corrupt())?)
            }
        };
        let mut header = Header::new(jwt_alg(alg));
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(kid.to_owned());
        let header_json = serde_json::to_vec(&header).map_err(|_| corrupt())?;
        Ok(Self {
            kid: kid.to_owned(),
            alg,
            pair,
            header_b64: URL_SAFE_NO_PAD.encode(header_json),
            rng,
        })
    }

    /// The key id carried in the JWS header.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signing algorithm.
    #[must_use]
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The base64url JWS protected header (`alg`, `typ: at+jwt`, `kid`).
    #[must_use]
    pub fn header_b64(&self) -> &str {
        &self.header_b64
    }
}

impl signature::Signer<Vec<u8>> for SigningKey {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        match &self.pair {
            Pair::Es256(p) => p
                .sign(&self.rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| signature::Error::new()),
            Pair::EdDsa(p) => Ok(p.sign(msg).as_ref().to_vec()),
        }
    }
}

impl JwtSigner for SigningKey {
    fn algorithm(&self) -> jsonwebtoken::Algorithm {
        jwt_alg(self.alg)
    }
}

fn jwt_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    match alg {
        Algorithm::Es256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::EdDsa => jsonwebtoken::Algorithm::EdDSA,
    }
}

/// The JWKS as served: body bytes and a strong `ETag`.
#[derive(Clone, Debug)]
pub struct JwksDocument {
    /// `{"keys":[…]}` as JSON.
    pub body: actix_web::web::Bytes,
    /// Quoted strong entity tag derived from the body.
    pub etag: String,
}

struct Snapshot {
    current: Arc<SigningKey>,
    jwks: JwksDocument,
    algorithms: Vec<Algorithm>,
}

/// The loaded keys. Cheap to read from any thread.
pub struct KeySet {
    snapshot: ArcSwap<Snapshot>,
}

impl KeySet {
    /// Loads the keys from the store; when no key is `current`, generates one
    /// with `alg`, seals it under `kek` and stores it. Two processes racing to
    /// create the first key agree through the store's one-current constraint.
    pub async fn load(
        store: &Storage,
        kek: &Kek,
        alg: Algorithm,
        now: DateTime<Utc>,
    ) -> Result<Self, KeySetError> {
        let mut keys = store.signing_keys().await?;
        if !keys.iter().any(|k| k.state == KeyState::Current) {
            let generated = generate(alg)?;
            let stored = StoredKey {
                kid: generated.kid.clone(),
                alg,
                state: KeyState::Current,
                public_jwk: serde_json::to_string(&generated.public_jwk).map_err(|_| {
                    KeySetError::Corrupt {
                        kid: generated.kid.clone(),
                        why: "JWK does not serialize",
                    }
                })?,
                sealed_private_key: Some(kek.seal(&generated.kid, &generated.pkcs8)?),
                kek_id: Some(kek.id().to_owned()),
                created_at: now,
                activated_at: Some(now),
                retired_at: None,
            };
            match store.insert_signing_key(&stored).await {
                Ok(()) => {
                    tracing::info!(kid = %stored.kid, alg = alg.as_str(), "generated the first signing key");
                }
                Err(StoreError::Conflict { .. }) => {} // another replica created it first
                Err(e) => return Err(e.into()),
            }
            keys = store.signing_keys().await?;
        }
        Ok(Self {
            snapshot: ArcSwap::from_pointee(build_snapshot(&keys, kek)?),
        })
    }

    /// The key that signs now.
    #[must_use]
    pub fn current(&self) -> Arc<SigningKey> {
        Arc::clone(&self.snapshot.load().current)
    }

    /// The algorithms of the published keys (for the metadata document).
    #[must_use]
    pub fn algorithms(&self) -> Vec<Algorithm> {
        self.snapshot.load().algorithms.clone()
    }

    /// The pre-rendered JWKS.
    #[must_use]
    pub fn jwks(&self) -> JwksDocument {
        self.snapshot.load().jwks.clone()
    }
}

fn build_snapshot(keys: &[StoredKey], kek: &Kek) -> Result<Snapshot, KeySetError> {
    let mut published = Vec::with_capacity(keys.len());
    let mut algorithms = Vec::new();
    let mut current = None;
    for key in keys {
        if !algorithms.contains(&key.alg) {
            algorithms.push(key.alg);
        }
        let jwk: Jwk = serde_json::from_str(&key.public_jwk).map_err(|_| KeySetError::Corrupt {
            kid: key.kid.clone(),
            why: "public JWK does not parse",
        })?;
        published.push(jwk);
        if key.state == KeyState::Current {
            current = Some(Arc::new(open_key(key, kek)?));
        }
    }
    let current = current.ok_or(KeySetError::Corrupt {
        kid: String::new(),
        why: "no current key",
    })?;
    let body = serde_json::to_vec(&serde_json::json!({ "keys": published })).map_err(|_| {
        KeySetError::Corrupt {
            kid: String::new(),
            why: "JWKS does not serialize",
        }
    })?;
    let hash = digest::digest(&digest::SHA256, &body);
    let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16]));
    Ok(Snapshot {
        current,
        jwks: JwksDocument {
            body: body.into(),
            etag,
        },
        algorithms,
    })
}

fn open_key(key: &StoredKey, kek: &Kek) -> Result<SigningKey, KeySetError> {
    let (Some(sealed), Some(kek_id)) = (&key.sealed_private_key, &key.kek_id) else {
        return Err(KeySetError::Corrupt {
            kid: key.kid.clone(),
            why: "current key has no private part",
        });
    };
    if kek_id != kek.id() {
        return Err(KeySetError::KekMismatch {
            kid: key.kid.clone(),
            needed: kek_id.clone(),
            configured: kek.id().to_owned(),
        });
    }
    let pkcs8 = kek.open(&key.kid, sealed)?;
    SigningKey::from_pkcs8(&key.kid, key.alg, &pkcs8)
}
