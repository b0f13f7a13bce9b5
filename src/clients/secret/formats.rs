//! The secret-hash formats Portcullis stores and verifies, each behind one
//! [`Scheme`]:
//!
//! | stored text | scheme | cost of one check |
//! |---|---|---|
//! | `$portcullis-sha256$<base64url SHA-256>` | a secret Portcullis generated (256 random bits) | ~1 µs |
//! | `$argon2id$v=19$…` (PHC) | argon2id, the older format of generated secrets, and imported plaintext | ~15 ms |
//! | `$2a$`/`$2b$`/`$2y$…` | bcrypt, as Ory Hydra stores client secrets by default | cost-dependent |
//! | `$pbkdf2-sha256$i=…,l=…$salt$key` / `$pbkdf2-sha512$…` | PBKDF2 as Ory Hydra (`hasherx`) stores it, salt and key in unpadded standard base64 | iteration-dependent |
//!
//! Imported formats are parsed and bounded once, at import
//! ([`parse_imported`]), so a stored hash cannot make verification
//! unboundedly slow; a stored text that does not parse never verifies.

use std::num::NonZeroU32;

use argon2::{
    password_hash::{PasswordHash, PasswordVerifier},
    Argon2,
};
use base64::{
    engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD},
    Engine as _,
};
use ring::digest;
use subtle::ConstantTimeEq;

/// The prefix of Portcullis's own fast format.
pub const FAST_PREFIX: &str = "$portcullis-sha256$";

/// Most argon2 memory an imported hash may ask for (KiB): 64 MiB.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 64 * 1024;
/// Most argon2 passes an imported hash may ask for.
pub const MAX_ARGON2_PASSES: u32 = 10;
/// Most argon2 lanes an imported hash may ask for.
pub const MAX_ARGON2_LANES: u32 = 4;
/// Highest bcrypt cost an imported hash may carry (2^14 rounds, ~1 s).
pub const MAX_BCRYPT_COST: u32 = 14;
/// Most PBKDF2 iterations an imported hash may carry.
pub const MAX_PBKDF2_ITERATIONS: u32 = 1_000_000;

/// How a stored hash is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// SHA-256 of a generated secret, compared in constant time.
    Sha256,
    /// An argon2id PHC string.
    Argon2id,
    /// A bcrypt hash.
    Bcrypt,
    /// PBKDF2-HMAC-SHA-256 or -SHA-512 in Ory Hydra's notation.
    Pbkdf2,
}

impl Scheme {
    /// The scheme of a stored hash text, by its prefix.
    #[must_use]
    pub fn of(text: &str) -> Option<Self> {
        if text.starts_with(FAST_PREFIX) {
            Some(Self::Sha256)
        } else if text.starts_with("$argon2id$") {
            Some(Self::Argon2id)
        } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| text.starts_with(p)) {
            Some(Self::Bcrypt)
        } else if text.starts_with("$pbkdf2-sha256$") || text.starts_with("$pbkdf2-sha512$") {
            Some(Self::Pbkdf2)
        } else {
            None
        }
    }

    /// Whether a check is cheap enough for the request's own thread.
    #[must_use]
    pub fn is_fast(self) -> bool {
        self == Self::Sha256
    }

    /// The metric label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Argon2id => "argon2id",
            Self::Bcrypt => "bcrypt",
            Self::Pbkdf2 => "pbkdf2",
        }
    }
}

/// The fast format of `secret`.
#[must_use]
pub fn sha256_text(secret: &[u8]) -> String {
    let digest = digest::digest(&digest::SHA256, secret);
    let mut text = String::with_capacity(FAST_PREFIX.len() + 43);
    text.push_str(FAST_PREFIX);
    URL_SAFE_NO_PAD.encode_string(digest.as_ref(), &mut text);
    text
}

/// Whether `candidate` matches the stored `text` (false for anything malformed).
#[must_use]
pub fn verify(text: &str, candidate: &[u8]) -> bool {
    match Scheme::of(text) {
        Some(Scheme::Sha256) => {
            let ours = sha256_text(candidate);
            ours.len() == text.len() && bool::from(ours.as_bytes().ct_eq(text.as_bytes()))
        }
        // The bounds are checked again, so even a stored text that bypassed
        // the import checks cannot make a check unboundedly slow.
        Some(Scheme::Argon2id) => {
            check_argon2(text).is_ok()
                && PasswordHash::new(text)
                    .is_ok_and(|h| Argon2::default().verify_password(candidate, &h).is_ok())
        }
        Some(Scheme::Bcrypt) => {
            check_bcrypt(text).is_ok() && bcrypt::verify(candidate, text).unwrap_or(false)
        }
        Some(Scheme::Pbkdf2) => Pbkdf2::parse(text).is_ok_and(|p| p.verify(candidate)),
        None => false,
    }
}

/// Checks an existing hash brought in from another server: a known format,
/// well-formed, with a cost inside the bounds above. Returns its scheme.
pub fn parse_imported(text: &str) -> Result<Scheme, String> {
    let scheme = Scheme::of(text).ok_or_else(|| {
        "the hash is in no supported format (bcrypt $2a$/$2b$/$2y$, $pbkdf2-sha256$, $pbkdf2-sha512$, $argon2id$)".to_owned()
    })?;
    match scheme {
        Scheme::Sha256 => Err("a $portcullis-sha256$ hash cannot be imported: it is only for secrets Portcullis generates".into()),
        Scheme::Argon2id => check_argon2(text).map(|()| scheme),
        Scheme::Bcrypt => check_bcrypt(text).map(|()| scheme),
        Scheme::Pbkdf2 => Pbkdf2::parse(text).map(|_| scheme),
    }
}

fn check_argon2(text: &str) -> Result<(), String> {
    let hash =
        PasswordHash::new(text).map_err(|e| format!("the argon2id hash is malformed: {e}"))?;
    let params = argon2::Params::try_from(&hash)
        .map_err(|e| format!("the argon2id hash has invalid parameters: {e}"))?;
    if hash.hash.is_none() || hash.salt.is_none() {
        return Err("the argon2id hash has no salt or no hash value".into());
    }
    if params.m_cost() > MAX_ARGON2_MEMORY_KIB
        || params.t_cost() > MAX_ARGON2_PASSES
        || params.p_cost() > MAX_ARGON2_LANES
    {
        return Err(format!(
            "the argon2id parameters exceed what this server verifies (m ≤ {MAX_ARGON2_MEMORY_KIB} KiB, t ≤ {MAX_ARGON2_PASSES}, p ≤ {MAX_ARGON2_LANES})"
        ));
    }
    Ok(())
}

fn check_bcrypt(text: &str) -> Result<(), String> {
    let parts = text
        .parse::<bcrypt::HashParts>()
        .map_err(|e| format!("the bcrypt hash is malformed: {e}"))?;
    if parts.get_cost() > MAX_BCRYPT_COST {
        return Err(format!(
            "the bcrypt cost {} exceeds what this server verifies (≤ {MAX_BCRYPT_COST})",
            parts.get_cost()
        ));
    }
    Ok(())
}

/// A parsed `$pbkdf2-<sha256|sha512>$i=<n>,l=<len>$<salt>$<key>`.
struct Pbkdf2 {
    algorithm: ring::pbkdf2::Algorithm,
    iterations: NonZeroU32,
    salt: Vec<u8>,
    key: Vec<u8>,
}

impl Pbkdf2 {
    fn parse(text: &str) -> Result<Self, String> {
        let malformed = || {
            "the PBKDF2 hash must read $pbkdf2-sha256$i=<iterations>,l=<key length>$<salt>$<key> (sha512 likewise), salt and key in base64".to_owned()
        };
        let mut parts = text.split('$');
        let (Some(""), Some(name), Some(params), Some(salt), Some(key), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(malformed());
        };
        let algorithm = match name {
            "pbkdf2-sha256" => ring::pbkdf2::PBKDF2_HMAC_SHA256,
            "pbkdf2-sha512" => ring::pbkdf2::PBKDF2_HMAC_SHA512,
            _ => return Err(malformed()),
        };
        let (mut iterations, mut length) = (None, None);
        for param in params.split(',') {
            match param.split_once('=') {
                Some(("i", v)) if iterations.is_none() => iterations = v.parse::<u32>().ok(),
                Some(("l", v)) if length.is_none() => length = v.parse::<usize>().ok(),
                _ => return Err(malformed()),
            }
        }
        let (Some(iterations), Some(length)) = (iterations, length) else {
            return Err(malformed());
        };
        let iterations = NonZeroU32::new(iterations)
            .filter(|i| i.get() <= MAX_PBKDF2_ITERATIONS)
            .ok_or_else(|| {
                format!("PBKDF2 iterations must be between 1 and {MAX_PBKDF2_ITERATIONS}")
            })?;
        let decode = |s: &str| STANDARD_NO_PAD.decode(s.trim_end_matches('='));
        let (Ok(salt), Ok(key)) = (decode(salt), decode(key)) else {
            return Err(malformed());
        };
        if salt.len() < 8 || salt.len() > 64 {
            return Err("the PBKDF2 salt must be 8 to 64 bytes".into());
        }
        if key.len() != length || !(16..=64).contains(&length) {
            return Err("the PBKDF2 key must be 16 to 64 bytes and as long as l says".into());
        }
        Ok(Self {
            algorithm,
            iterations,
            salt,
            key,
        })
    }

    fn verify(&self, candidate: &[u8]) -> bool {
        // ring compares in constant time.
        ring::pbkdf2::verify(
            self.algorithm,
            self.iterations,
            &self.salt,
            candidate,
            &self.key,
        )
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PBKDF2 in Hydra's notation, computed here with ring.
    fn hydra_pbkdf2(alg: &str, secret: &str, iterations: u32) -> String {
        let salt = b"0123456789abcdef";
        let (algorithm, len) = match alg {
            "sha512" => (ring::pbkdf2::PBKDF2_HMAC_SHA512, 64),
            _ => (ring::pbkdf2::PBKDF2_HMAC_SHA256, 32),
        };
        let mut key = vec![0u8; len];
        ring::pbkdf2::derive(
            algorithm,
            NonZeroU32::new(iterations).unwrap(),
            salt,
            secret.as_bytes(),
            &mut key,
        );
        format!(
            "$pbkdf2-{alg}$i={iterations},l={len}${}${}",
            STANDARD_NO_PAD.encode(salt),
            STANDARD_NO_PAD.encode(&key)
        )
    }

    #[test]
    fn the_fast_format_verifies_only_its_secret() {
        let text = sha256_text(b"right");
        assert_eq!(Scheme::of(&text), Some(Scheme::Sha256));
        assert!(verify(&text, b"right"));
        assert!(!verify(&text, b"wrong"));
        assert!(!verify(&text[..text.len() - 1], b"right"), "truncated");
    }

    #[test]
    fn imported_formats_verify_their_secret_and_nothing_else() {
        let bcrypt = bcrypt::hash("s3cret-from-hydra", 4).unwrap();
        let cases = [
            (bcrypt.clone(), Scheme::Bcrypt),
            (bcrypt.replacen("$2b$", "$2y$", 1), Scheme::Bcrypt),
            (
                hydra_pbkdf2("sha256", "s3cret-from-hydra", 1000),
                Scheme::Pbkdf2,
            ),
            (
                hydra_pbkdf2("sha512", "s3cret-from-hydra", 1000),
                Scheme::Pbkdf2,
            ),
        ];
        for (text, scheme) in cases {
            assert_eq!(parse_imported(&text), Ok(scheme), "{text}");
            assert!(verify(&text, b"s3cret-from-hydra"), "{text}");
            assert!(!verify(&text, b"s3cret-from-hydrA"), "{text}");
        }
    }

    #[test]
    fn malformed_and_too_costly_imports_are_refused() {
        let good = hydra_pbkdf2("sha256", "x", 1000);
        let cases = [
            ("", "no format"),
            ("plaintext", "no format"),
            ("$md5$abc", "unsupported"),
            (
                "$argon2i$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "argon2i",
            ),
            (
                "$argon2id$v=19$m=1048576,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "1 GiB",
            ),
            ("$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ", "no hash value"),
            ("$argon2id$garbage", "malformed argon2"),
            (
                "$2b$31$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
                "bcrypt cost 31",
            ),
            ("$2b$10$short", "short bcrypt"),
            (
                "$pbkdf2-sha256$i=0,l=32$MDEyMzQ1Njc4OWFiY2RlZg$AAAA",
                "zero iterations",
            ),
            (
                "$pbkdf2-sha256$i=5000000,l=32$MDEyMzQ1Njc4OWFiY2RlZg$AAAA",
                "too many iterations",
            ),
            (
                "$pbkdf2-sha1$i=1000,l=20$MDEyMzQ1Njc4OWFiY2RlZg$AAAA",
                "sha1",
            ),
            (
                "$pbkdf2-sha256$i=1000$MDEyMzQ1Njc4OWFiY2RlZg$AAAA",
                "no length",
            ),
            ("$pbkdf2-sha256$i=1000,l=32$!!!$AAAA", "bad base64"),
            ("$pbkdf2-sha256$i=1000,l=32$AAAA$AAAA", "short salt"),
            (&good[..good.len() - 4], "key shorter than l"),
            (&format!("{good}$extra"), "extra field"),
            (&sha256_text(b"x"), "our own fast format"),
        ];
        for (text, why) in cases {
            assert!(parse_imported(text).is_err(), "{why}: {text}");
            assert!(
                !verify(text, b"x") || Scheme::of(text) == Some(Scheme::Sha256),
                "{why}"
            );
        }
    }
}
