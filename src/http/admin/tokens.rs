//! [`AdminTokens`]: the configured admin bearer tokens, kept only as SHA-256
//! digests and compared in constant time against every one of them.

use ring::digest;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// Digests of the configured admin tokens.
pub struct AdminTokens(Vec<[u8; 32]>);

impl AdminTokens {
    /// Hashes the configured tokens; the clear values are not kept.
    #[must_use]
    pub fn new(tokens: &[SecretString]) -> Self {
        Self(
            tokens
                .iter()
                .map(|t| sha256(t.expose_secret().as_bytes()))
                .collect(),
        )
    }

    /// Whether no admin token is configured (the admin API then refuses everything).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `presented` is one of the tokens. Every digest is compared, so
    /// timing does not depend on which one matched.
    #[must_use]
    pub fn verify(&self, presented: &[u8]) -> bool {
        let candidate = sha256(presented);
        self.0
            .iter()
            .fold(subtle::Choice::from(0), |acc, t| acc | t.ct_eq(&candidate))
            .into()
    }

    /// How the audit trail names the holder of `presented`: a fingerprint
    /// (8 bytes of SHA-256 over a different input than the stored digest).
    #[must_use]
    pub fn actor(presented: &[u8]) -> String {
        let fp = sha256(&[b"portcullis-admin-actor:".as_slice(), presented].concat());
        fp[..8].iter().fold(String::from("admin:"), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_tokens_verify() {
        let tokens = AdminTokens::new(&[
            SecretString::from("first-admin-token".to_owned()),
            SecretString::from("second-admin-token".to_owned()),
        ]);
        assert!(tokens.verify(b"first-admin-token"));
        assert!(tokens.verify(b"second-admin-token"));
        assert!(!tokens.verify(b"first-admin-toke"));
        assert!(!tokens.verify(b""));
        assert!(!AdminTokens::new(&[]).verify(b"anything"));
    }
}
