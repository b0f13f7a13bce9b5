//! Signing keys: algorithms, generation, sealing under the KEK, and the
//! in-memory [`KeySet`] that signs tokens and serves the JWKS.

pub mod consumers;
mod generate;
pub mod kek;
mod keyset;
pub mod lifecycle;
pub mod manager;
pub mod status;

pub use generate::{generate, GeneratedKey};
pub use kek::{Kek, KekError, KekRing};
pub use keyset::{JwksDocument, KeySet, KeySetError, SigningKey};
pub use manager::{KeyManager, RotationReport};

use serde::{Deserialize, Serialize};

/// JWS algorithms Portcullis signs access tokens with (RFC 7518 §3, RFC 8037).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// ECDSA P-256 with SHA-256: the default, fast and compact.
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519 (RFC 8037).
    #[serde(rename = "EdDSA")]
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (2048-bit keys); about 30× slower to sign than ES256.
    #[serde(rename = "RS256")]
    Rs256,
    /// RSASSA-PSS with SHA-256 (2048-bit keys); as slow as RS256.
    #[serde(rename = "PS256")]
    Ps256,
}

impl Algorithm {
    /// The `alg` value on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
        }
    }

    /// Parses a stored or configured `alg` value.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            "RS256" => Some(Self::Rs256),
            "PS256" => Some(Self::Ps256),
            _ => None,
        }
    }

    /// Every algorithm this build can sign with (advertised in the metadata).
    pub const ALL: [Self; 4] = [Self::Es256, Self::EdDsa, Self::Rs256, Self::Ps256];
}

/// Lifecycle state of a signing key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published in the JWKS, not yet signing.
    Next,
    /// The one key that signs.
    Current,
    /// Published so that tokens it signed still verify; no longer signing.
    Retired,
}

impl KeyState {
    /// The stored representation.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Retired => "retired",
        }
    }

    /// Parses the stored representation.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "next" => Some(Self::Next),
            "current" => Some(Self::Current),
            "retired" => Some(Self::Retired),
            _ => None,
        }
    }
}

/// A signing key as the store keeps it: public JWK in clear, private part sealed.
#[derive(Clone)]
pub struct StoredKey {
    /// Key id (the RFC 7638 thumbprint of the public JWK).
    pub kid: String,
    /// Signing algorithm.
    pub alg: Algorithm,
    /// Lifecycle state.
    pub state: KeyState,
    /// The public JWK as JSON text.
    pub public_jwk: String,
    /// AES-256-GCM sealed PKCS#8 private key; `None` once destroyed.
    pub sealed_private_key: Option<Vec<u8>>,
    /// Id of the KEK that sealed it.
    pub kek_id: Option<String>,
    /// When the key was generated.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it became `current`.
    pub activated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it became `retired`.
    pub retired_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .field("sealed_private_key", &"[redacted]")
            .field("kek_id", &self.kek_id)
            .finish_non_exhaustive()
    }
}
