//! The key-encryption key (KEK): AES-256-GCM sealing of signing keys at rest,
//! with the key id as associated data so a sealed blob cannot be moved to
//! another key's row (SPEC §3).

use std::{fs, io::Write, path::Path};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use ring::{
    aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN},
    digest,
    rand::{SecureRandom, SystemRandom},
};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::config::Settings;

/// Errors of loading a KEK or opening a sealed key.
#[derive(Debug, thiserror::Error)]
pub enum KekError {
    /// No KEK is configured and generating one is not allowed.
    #[error(
        "no key-encryption key: {path} does not exist and PORTCULLIS_KEK is not set. \
         Create one with `portcullis kek generate` (it writes {path}, creating its directory) \
         and keep it safe: it protects every signing key"
    )]
    Missing {
        /// The configured KEK file.
        path: String,
    },
    /// `portcullis kek generate` found a KEK file already there.
    #[error(
        "{path} already exists: refusing to overwrite a key-encryption key (the signing keys it \
         sealed would be lost). Move it away yourself if you really mean to replace it"
    )]
    Exists {
        /// The existing file.
        path: String,
    },
    /// The KEK is not 32 bytes of base64.
    #[error("the key-encryption key must be 32 random bytes, base64-encoded ({0})")]
    Malformed(&'static str),
    /// The KEK file could not be read or written.
    #[error("key-encryption key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A sealed blob did not open (wrong KEK, tampered data, or wrong key id).
    #[error("a sealed signing key could not be decrypted with KEK {0}")]
    Open(String),
    /// The system random generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A stored key names a KEK that is not configured.
    #[error(
        "signing key {kid} was sealed under KEK {needed}, which is not configured (configured: {configured}); \
         configure that KEK (kek_file, or old_kek_files / old_keks while rewrapping)"
    )]
    Unknown {
        /// The key.
        kid: String,
        /// The KEK id it needs.
        needed: String,
        /// The ids that are configured.
        configured: String,
    },
}

/// A loaded key-encryption key.
pub struct Kek {
    id: String,
    key: LessSafeKey,
    /// The PRF key of [`Kek::derive_hmac_key`].
    derived: ring::hmac::Key,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Kek {
    /// Builds a KEK from its 32 raw bytes. Its id is a fingerprint, so a stored
    /// key can say which KEK it needs without revealing anything about it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KekError> {
        if bytes.len() != 32 {
            return Err(KekError::Malformed("wrong length"));
        }
        let fp = digest::digest(
            &digest::SHA256,
            &[b"portcullis-kek-id:".as_slice(), bytes].concat(),
        );
        let id = fp.as_ref()[..8]
            .iter()
            .fold(String::with_capacity(16), |mut s, b| {
                use std::fmt::Write as _;
                let _ = write!(s, "{b:02x}");
                s
            });
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| KekError::Malformed("wrong length"))?;
        let derived = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes);
        Ok(Self {
            id,
            key: LessSafeKey::new(key),
            derived,
        })
    }

    /// Parses base64 text (surrounding white space ignored).
    pub fn from_base64(text: &str) -> Result<Self, KekError> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| KekError::Malformed("not base64"))?,
        );
        Self::from_bytes(&bytes)
    }

    /// Loads the KEK from `PORTCULLIS_KEK`, else from `kek_file`, generating the
    /// file when allowed. Returns the KEK and whether it was just generated.
    pub fn load_or_generate(settings: &Settings) -> Result<(Self, bool), KekError> {
        if let Some(kek) = &settings.keys.kek {
            return Ok((Self::from_base64(kek.expose_secret())?, false));
        }
        let path = &settings.keys.kek_file;
        let io = |source| KekError::Io {
            path: path.display().to_string(),
            source,
        };
        match fs::read_to_string(path) {
            Ok(text) => {
                warn_if_exposed(path);
                Ok((Self::from_base64(&Zeroizing::new(text))?, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !settings.may_generate_kek() {
                    return Err(KekError::Missing {
                        path: path.display().to_string(),
                    });
                }
                Ok((Self::generate_file(path)?, true))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Generates a new KEK into `path` (mode 0600, its directory created with
    /// mode 0700). An existing file is never overwritten: [`KekError::Exists`].
    pub fn generate_file(path: &Path) -> Result<Self, KekError> {
        let shown = || path.display().to_string();
        let mut bytes = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| KekError::Random)?;
        write_private_file(path, STANDARD.encode(bytes.as_ref()).as_bytes()).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                KekError::Exists { path: shown() }
            } else {
                KekError::Io {
                    path: shown(),
                    source,
                }
            }
        })?;
        Self::from_bytes(bytes.as_ref())
    }

    /// The KEK's public fingerprint, stored beside every key it seals.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// An HMAC-SHA-256 key derived from the KEK for one `purpose`
    /// (HMAC-SHA-256 of the purpose under the KEK, HMAC as a PRF): the same
    /// on every replica that has this KEK, and telling nothing about the KEK
    /// or about the keys of other purposes.
    #[must_use]
    pub fn derive_hmac_key(&self, purpose: &'static str) -> ring::hmac::Key {
        let label = [b"portcullis-derived-key:".as_slice(), purpose.as_bytes()].concat();
        let bytes = ring::hmac::sign(&self.derived, &label);
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes.as_ref())
    }

    /// Seals `plaintext` for the key `kid`: `nonce || ciphertext || tag`.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<Vec<u8>, KekError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KekError::Random)?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut buf,
            )
            .map_err(|_| KekError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        zeroize::Zeroize::zeroize(&mut buf);
        Ok(out)
    }

    /// Opens what [`Kek::seal`] produced for the same `kid`.
    pub fn open(&self, kid: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KekError> {
        if sealed.len() < NONCE_LEN {
            return Err(KekError::Open(self.id.clone()));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| KekError::Open(self.id.clone()))?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), buf.as_mut_slice())
            .map_err(|_| KekError::Open(self.id.clone()))?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

/// The configured KEKs: the primary seals, every one opens what it sealed.
#[derive(Debug)]
pub struct KekRing {
    primary: Kek,
    old: Vec<Kek>,
}

impl KekRing {
    /// A ring of one KEK.
    #[must_use]
    pub fn single(primary: Kek) -> Self {
        Self {
            primary,
            old: Vec::new(),
        }
    }

    /// Loads the primary KEK (see [`Kek::load_or_generate`]) and the old ones.
    /// Returns the ring and whether the primary was just generated.
    pub fn load(settings: &Settings) -> Result<(Self, bool), KekError> {
        let (primary, generated) = Kek::load_or_generate(settings)?;
        let mut old = Vec::new();
        for path in &settings.keys.old_kek_files {
            let text = fs::read_to_string(path).map_err(|source| KekError::Io {
                path: path.display().to_string(),
                source,
            })?;
            warn_if_exposed(path);
            old.push(Kek::from_base64(&Zeroizing::new(text))?);
        }
        for kek in &settings.keys.old_keks {
            old.push(Kek::from_base64(kek.expose_secret())?);
        }
        Ok((Self { primary, old }, generated))
    }

    /// The KEK new keys are sealed under.
    #[must_use]
    pub fn primary(&self) -> &Kek {
        &self.primary
    }

    /// Every configured KEK id, primary first.
    #[must_use]
    pub fn ids(&self) -> Vec<&str> {
        std::iter::once(&self.primary)
            .chain(&self.old)
            .map(Kek::id)
            .collect()
    }

    /// Opens a key sealed under the KEK `kek_id`.
    pub fn open(
        &self,
        kek_id: &str,
        kid: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KekError> {
        std::iter::once(&self.primary)
            .chain(&self.old)
            .find(|k| k.id() == kek_id)
            .ok_or_else(|| KekError::Unknown {
                kid: kid.to_owned(),
                needed: kek_id.to_owned(),
                configured: self.ids().join(", "),
            })?
            .open(kid, sealed)
    }

    /// Whether a key sealed under `kek_id` can be opened.
    #[must_use]
    pub fn has(&self, kek_id: &str) -> bool {
        self.ids().contains(&kek_id)
    }
}

/// Whether a file mode lets the file's group or others read, write or
/// execute it (anything in `0o077`).
fn mode_exposes(mode: u32) -> bool {
    mode & 0o077 != 0
}

/// The permission bits of `path` when its group or others have access to it.
fn exposed_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path).ok()?.permissions().mode();
    mode_exposes(mode).then_some(mode & 0o777)
}

/// Warns when a KEK file can be read by more than its owner.
fn warn_if_exposed(path: &Path) {
    if let Some(mode) = exposed_mode(path) {
        tracing::warn!(
            path = %path.display(),
            mode = %format!("{mode:o}"),
            "the key-encryption key file is accessible to its group or others: \
             restrict it to its owner (chmod 600)"
        );
    }
}

/// Writes a file readable only by its owner, creating its directory (mode 0700).
fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(byte: u8) -> Kek {
        Kek::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn derived_keys_depend_on_the_kek_and_the_purpose() {
        let tag = |k: &Kek, purpose| ring::hmac::sign(&k.derive_hmac_key(purpose), b"m");
        assert_eq!(tag(&kek(1), "a").as_ref(), tag(&kek(1), "a").as_ref());
        assert_ne!(tag(&kek(1), "a").as_ref(), tag(&kek(2), "a").as_ref());
        assert_ne!(tag(&kek(1), "a").as_ref(), tag(&kek(1), "b").as_ref());
    }

    #[test]
    fn sealed_keys_open_only_with_the_same_kek_and_kid() {
        let sealed = kek(1).seal("kid-a", b"private").unwrap();
        assert_eq!(
            kek(1).open("kid-a", &sealed).unwrap().as_slice(),
            b"private"
        );
        assert!(kek(2).open("kid-a", &sealed).is_err(), "other KEK");
        assert!(kek(1).open("kid-b", &sealed).is_err(), "other kid (AAD)");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(kek(1).open("kid-a", &tampered).is_err(), "tampered");
        assert!(kek(1).open("kid-a", &sealed[..5]).is_err(), "truncated");
    }

    #[test]
    fn kek_ids_differ_per_key_and_reveal_no_key_bytes() {
        assert_ne!(kek(1).id(), kek(2).id());
        assert_eq!(kek(1).id().len(), 16);
    }

    #[test]
    fn group_or_world_access_to_a_kek_file_is_noticed() {
        use std::os::unix::fs::PermissionsExt;
        for mode in [0o600, 0o400, 0o700, 0o100_600] {
            assert!(!mode_exposes(mode), "{mode:o}");
        }
        for mode in [0o640, 0o604, 0o644, 0o660, 0o666, 0o610, 0o601, 0o100_644] {
            assert!(mode_exposes(mode), "{mode:o}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        write_private_file(&path, b"x").unwrap();
        assert_eq!(exposed_mode(&path), None, "written 0600");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(exposed_mode(&path), Some(0o644));
        assert_eq!(exposed_mode(&dir.path().join("missing")), None);
    }

    #[test]
    fn a_generated_kek_file_is_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new-dir").join("kek");
        let kek = Kek::generate_file(&path).unwrap();
        let written = fs::read_to_string(&path).unwrap();
        assert_eq!(Kek::from_base64(&written).unwrap().id(), kek.id());
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);

        let err = Kek::generate_file(&path).unwrap_err();
        assert!(matches!(err, KekError::Exists { .. }), "{err}");
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            written,
            "left as it was"
        );
    }

    #[test]
    fn malformed_keks_are_refused() {
        assert!(Kek::from_base64("not base64!").is_err());
        assert!(Kek::from_base64(&STANDARD.encode([0u8; 16])).is_err());
        assert!(Kek::from_base64(&format!(" {}\n", STANDARD.encode([7u8; 32]))).is_ok());
    }
}
