//! Keys: the key-encryption key (KEK) that wraps signing keys at rest, and
//! the signing-key lifecycle (algorithm, rotation, pre-publication, refresh).

use std::{fmt, path::PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

use super::{
    de::{comma_list, optional_secret},
    tokens::TokenSettings,
    ConfigError,
};
use crate::keys::Algorithm;

/// The KEK and the signing keys' lifecycle (`kek*`, `old_kek*`,
/// `signing_alg`, `key_*`).
#[derive(Clone, Deserialize)]
pub struct KeySettings {
    /// File holding the base64 key-encryption key.
    #[serde(default = "defaults::kek_file")]
    pub kek_file: PathBuf,
    /// The base64 key-encryption key itself (takes precedence over `kek_file`).
    #[serde(default, deserialize_with = "optional_secret")]
    pub kek: Option<SecretString>,
    /// Generate a KEK into `kek_file` when none exists. Defaults to true for
    /// SQLite (the development setup) and false otherwise.
    #[serde(default)]
    pub kek_generate: Option<bool>,
    /// Earlier KEK files still accepted for opening keys not yet rewrapped.
    #[serde(default)]
    pub old_kek_files: Vec<PathBuf>,
    /// Earlier KEKs themselves, base64 (a list, or comma-separated).
    #[serde(default, deserialize_with = "comma_list")]
    pub old_keks: Vec<SecretString>,
    /// Algorithm of newly generated signing keys.
    #[serde(default = "defaults::signing_alg")]
    pub signing_alg: Algorithm,
    /// Seconds a key signs before the next one takes over (0 disables automatic rotation).
    #[serde(default = "defaults::key_rotation_interval")]
    pub key_rotation_interval: u64,
    /// Minimum seconds a new key is published in the JWKS before it may sign.
    #[serde(default = "defaults::key_prepublish")]
    pub key_prepublish: u64,
    /// Seconds between key checks: rotation when due, and reloading keys
    /// changed by another replica (0 disables the background task).
    #[serde(default = "defaults::key_refresh_interval")]
    pub key_refresh_interval: u64,
}

mod defaults {
    use std::path::PathBuf;

    use crate::keys::Algorithm;

    pub fn kek_file() -> PathBuf {
        PathBuf::from("keys/kek")
    }
    pub fn signing_alg() -> Algorithm {
        Algorithm::Es256
    }
    pub fn key_rotation_interval() -> u64 {
        7 * 24 * 3600
    }
    pub fn key_prepublish() -> u64 {
        24 * 3600
    }
    pub fn key_refresh_interval() -> u64 {
        30
    }
}

impl KeySettings {
    /// The rotation rules of SPEC §3: a key is published longer than any JWKS
    /// cache lives (`tokens.jwks_max_age`) before it signs, and rotation never
    /// outruns pre-publication.
    pub(super) fn validate(&self, tokens: &TokenSettings) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.key_prepublish <= u64::from(tokens.jwks_max_age) {
            return invalid(format!(
                "key_prepublish ({}s) must exceed jwks_max_age ({}s): a key must be published longer than \
                 verifiers cache the JWKS before it signs, or they reject its tokens",
                self.key_prepublish, tokens.jwks_max_age
            ));
        }
        if self.key_rotation_interval != 0 && self.key_rotation_interval < self.key_prepublish {
            return invalid(format!(
                "key_rotation_interval ({}s) must be at least key_prepublish ({}s), so each next key is \
                 published for the whole pre-publication window before it signs",
                self.key_rotation_interval, self.key_prepublish
            ));
        }
        Ok(())
    }
}

/// KEKs are never printed, only whether (or how many) are set.
impl fmt::Debug for KeySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySettings")
            .field("kek_file", &self.kek_file)
            .field("kek", &self.kek.as_ref().map(|_| "[redacted]"))
            .field("kek_generate", &self.kek_generate)
            .field("old_kek_files", &self.old_kek_files)
            .field("old_keks", &self.old_keks.len())
            .field("signing_alg", &self.signing_alg)
            .field("key_rotation_interval", &self.key_rotation_interval)
            .field("key_prepublish", &self.key_prepublish)
            .field("key_refresh_interval", &self.key_refresh_interval)
            .finish()
    }
}
