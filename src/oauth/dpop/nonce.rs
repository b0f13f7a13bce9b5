//! Server-provided DPoP nonces ([RFC 9449 §8]), stateless and valid on every
//! replica: a nonce is `base64url(window ‖ HMAC-SHA-256(key, window)[..16])`
//! where `window` is the current time divided by the nonce lifetime. It is
//! accepted during its own window and the next, so a nonce handed out lives
//! between one and two lifetimes. The key is derived from the KEK, which
//! every replica sharing a database must have: no nonce state is stored,
//! and a nonce one replica hands out is good at any other.
//!
//! [RFC 9449 §8]: https://www.rfc-editor.org/rfc/rfc9449#section-8

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use ring::hmac;
use subtle::ConstantTimeEq as _;

/// Bytes of the HMAC tag kept in a nonce (128 bits cannot be guessed).
const TAG_LEN: usize = 16;

/// Issues and checks DPoP nonces.
pub struct Nonces {
    key: hmac::Key,
    lifetime: i64,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl Nonces {
    /// Nonces under `key`, each window `lifetime` seconds long (at least 1).
    #[must_use]
    pub fn new(key: hmac::Key, lifetime: u64) -> Self {
        Self {
            key,
            lifetime: i64::try_from(lifetime).unwrap_or(i64::MAX).max(1),
        }
    }

    fn tag(&self, window: i64) -> hmac::Tag {
        hmac::sign(&self.key, &window.to_be_bytes())
    }

    /// The nonce of the window `now` (seconds since the epoch) is in.
    #[must_use]
    pub fn issue(&self, now: i64) -> String {
        let window = now.div_euclid(self.lifetime);
        let tag = self.tag(window);
        let mut bytes = window.to_be_bytes().to_vec();
        bytes.extend_from_slice(&tag.as_ref()[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Whether `nonce` was issued (with this key) in the window of `now` or the one before.
    #[must_use]
    pub fn is_valid(&self, nonce: &str, now: i64) -> bool {
        // 8 bytes of window and the tag: 32 base64url characters.
        if nonce.len() != 32 {
            return false;
        }
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let Some((window, tag)) = bytes.split_first_chunk::<8>() else {
            return false;
        };
        let window = i64::from_be_bytes(*window);
        let current = now.div_euclid(self.lifetime);
        if window != current && Some(window) != current.checked_sub(1) {
            return false;
        }
        // Constant-time comparison of the truncated tag.
        self.tag(window).as_ref()[..TAG_LEN].ct_eq(tag).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonces(key: u8) -> Nonces {
        Nonces::new(hmac::Key::new(hmac::HMAC_SHA256, &[key; 32]), 300)
    }

    #[test]
    fn a_nonce_is_good_in_its_window_and_the_next_only() {
        let n = nonces(1);
        let nonce = n.issue(3_000);
        assert!(n.is_valid(&nonce, 3_000));
        assert!(n.is_valid(&nonce, 3_299), "same window");
        assert!(n.is_valid(&nonce, 3_599), "next window");
        assert!(!n.is_valid(&nonce, 3_600), "two windows later");
        assert!(!n.is_valid(&nonce, 2_999), "a window before it was issued");
    }

    #[test]
    fn another_key_or_a_made_up_nonce_is_refused() {
        let n = nonces(1);
        assert!(!n.is_valid(&nonces(2).issue(3_000), 3_000), "another key");
        let mut forged = n.issue(3_000).into_bytes();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        for bad in [
            "",
            "abc",
            "!!!!",
            forged.as_str(),
            &"A".repeat(32),
            &"A".repeat(4096),
        ] {
            assert!(!n.is_valid(bad, 3_000), "{bad:?}");
        }
    }

    #[test]
    fn replicas_with_the_same_key_accept_each_others_nonces() {
        assert!(nonces(7).is_valid(&nonces(7).issue(10_000), 10_100));
    }
}
