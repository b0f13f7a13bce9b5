//! [`KeySet`]: the signing keys loaded in memory. It holds the `current` key
//! pre-parsed (no per-request key parsing, SPEC §6) and the JWKS document
//! pre-rendered with its `ETag`; both are swapped atomically when keys change.

use std::{collections::HashMap, sync::Arc};

use arc_swap::ArcSwap;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use jsonwebtoken::{
    crypto::JwtSigner,
    jwk::{AlgorithmParameters, Jwk},
    Header,
};
use ring::{
    digest,
    rand::SystemRandom,
    signature::{
        EcdsaKeyPair, Ed25519KeyPair, RsaEncoding, RsaKeyPair, RsaParameters,
        RsaPublicKeyComponents, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
        ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
        RSA_PSS_2048_8192_SHA256, RSA_PSS_SHA256,
    },
};

use super::{Algorithm, KekError, KekRing, KeyState, StoredKey};
use crate::store::StoreError;

/// Errors of loading or changing signing keys.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    /// The store failed.
    #[error("signing keys could not be read or written: {0}")]
    Store(#[from] StoreError),
    /// Sealing or opening failed, or a KEK is missing.
    #[error(transparent)]
    Kek(#[from] KekError),
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
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair, &'static dyn RsaEncoding),
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
            Algorithm::Es256 => Pair::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
                    .map_err(|_| corrupt())?,
            ),
            Algorithm::EdDsa => {
                Pair::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| corrupt())?)
            }
            Algorithm::Rs256 => Pair::Rsa(
                RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| corrupt())?,
                &RSA_PKCS1_SHA256,
            ),
            Algorithm::Ps256 => Pair::Rsa(
                RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| corrupt())?,
                &RSA_PSS_SHA256,
            ),
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
            Pair::Ecdsa(p) => p
                .sign(&self.rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| signature::Error::new()),
            Pair::Ed25519(p) => Ok(p.sign(msg).as_ref().to_vec()),
            Pair::Rsa(p, encoding) => {
                let mut sig = vec![0; p.public().modulus_len()];
                p.sign(*encoding, &self.rng, msg, &mut sig)
                    .map_err(|_| signature::Error::new())?;
                Ok(sig)
            }
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
        Algorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::Ps256 => jsonwebtoken::Algorithm::PS256,
    }
}

/// The JWKS as served: body bytes, a strong `ETag`, and the key ids it holds.
#[derive(Clone, Debug)]
pub struct JwksDocument {
    /// `{"keys":[…]}` as JSON.
    pub body: bytes::Bytes,
    /// Quoted strong entity tag derived from the body.
    pub etag: Arc<str>,
    /// The published key ids, space-separated.
    pub kids: Arc<str>,
}

/// A published public key, parsed for verification.
pub struct VerifyingKey {
    alg: Algorithm,
    key: PublicKey,
}

enum PublicKey {
    /// EC point or Ed25519 key bytes.
    Unparsed(UnparsedPublicKey<Vec<u8>>),
    /// RSA modulus and exponent.
    Rsa(RsaPublicKeyComponents<Vec<u8>>, &'static RsaParameters),
}

impl VerifyingKey {
    /// The algorithm this key verifies.
    #[must_use]
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Whether `signature` is this key's signature of `message`.
    #[must_use]
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.key {
            PublicKey::Unparsed(k) => k.verify(message, signature).is_ok(),
            PublicKey::Rsa(k, params) => k.verify(params, message, signature).is_ok(),
        }
    }

    fn from_jwk(jwk: &Jwk, alg: Algorithm) -> Option<Self> {
        let b64 = |s: &str| URL_SAFE_NO_PAD.decode(s).ok();
        let key = match (&jwk.algorithm, alg) {
            (AlgorithmParameters::EllipticCurve(p), Algorithm::Es256) => {
                let mut point = vec![4u8];
                point.extend(b64(&p.x)?);
                point.extend(b64(&p.y)?);
                PublicKey::Unparsed(UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point))
            }
            (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDsa) => {
                PublicKey::Unparsed(UnparsedPublicKey::new(&ED25519, b64(&p.x)?))
            }
            (AlgorithmParameters::RSA(p), Algorithm::Rs256 | Algorithm::Ps256) => {
                let params: &'static RsaParameters = if alg == Algorithm::Rs256 {
                    &RSA_PKCS1_2048_8192_SHA256
                } else {
                    &RSA_PSS_2048_8192_SHA256
                };
                PublicKey::Rsa(
                    RsaPublicKeyComponents {
                        n: b64(&p.n)?,
                        e: b64(&p.e)?,
                    },
                    params,
                )
            }
            _ => return None,
        };
        Some(Self { alg, key })
    }
}

/// One consistent view of the keys.
pub struct Snapshot {
    current: Arc<SigningKey>,
    jwks: JwksDocument,
    algorithms: Vec<Algorithm>,
    next_kid: Option<String>,
    verifying: HashMap<String, Arc<VerifyingKey>>,
}

/// The loaded keys. Cheap to read from any thread.
pub struct KeySet {
    snapshot: ArcSwap<Snapshot>,
}

impl KeySet {
    /// A key set showing `snapshot`.
    #[must_use]
    pub fn new(snapshot: Snapshot) -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(snapshot),
        }
    }

    /// Replaces what the key set shows, atomically.
    pub fn install(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
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

    /// The published key `kid`, parsed for verification.
    #[must_use]
    pub fn verifying_key(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.snapshot.load().verifying.get(kid).cloned()
    }

    /// The key id of the published `next` key, if any.
    #[must_use]
    pub fn next_kid(&self) -> Option<String> {
        self.snapshot.load().next_kid.clone()
    }

    /// Builds a snapshot of `keys`: all are published; the `current` one is
    /// opened with the KEK ring, unless `reuse` already holds it parsed.
    pub fn snapshot(
        keys: &[StoredKey],
        ring: &KekRing,
        reuse: Option<&Self>,
    ) -> Result<Snapshot, KeySetError> {
        let mut published = Vec::with_capacity(keys.len());
        let mut verifying = HashMap::with_capacity(keys.len());
        let mut algorithms = Vec::new();
        let mut current = None;
        for key in keys {
            if !algorithms.contains(&key.alg) {
                algorithms.push(key.alg);
            }
            let jwk: Jwk =
                serde_json::from_str(&key.public_jwk).map_err(|_| KeySetError::Corrupt {
                    kid: key.kid.clone(),
                    why: "public JWK does not parse",
                })?;
            let verifier =
                VerifyingKey::from_jwk(&jwk, key.alg).ok_or_else(|| KeySetError::Corrupt {
                    kid: key.kid.clone(),
                    why: "public JWK does not match its algorithm",
                })?;
            verifying.insert(key.kid.clone(), Arc::new(verifier));
            published.push(jwk);
            if key.state == KeyState::Current {
                let loaded = reuse.map(Self::current).filter(|k| k.kid() == key.kid);
                current = Some(match loaded {
                    Some(k) => k,
                    None => Arc::new(open_key(key, ring)?),
                });
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
        let kids = keys
            .iter()
            .map(|k| k.kid.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let next_kid = keys
            .iter()
            .find(|k| k.state == KeyState::Next)
            .map(|k| k.kid.clone());
        Ok(Snapshot {
            current,
            jwks: JwksDocument {
                body: body.into(),
                etag: etag.into(),
                kids: kids.into(),
            },
            algorithms,
            next_kid,
            verifying,
        })
    }
}

fn open_key(key: &StoredKey, ring: &KekRing) -> Result<SigningKey, KeySetError> {
    let (Some(sealed), Some(kek_id)) = (&key.sealed_private_key, &key.kek_id) else {
        return Err(KeySetError::Corrupt {
            kid: key.kid.clone(),
            why: "current key has no private part",
        });
    };
    let pkcs8 = ring.open(kek_id, &key.kid, sealed)?;
    SigningKey::from_pkcs8(&key.kid, key.alg, &pkcs8)
}
