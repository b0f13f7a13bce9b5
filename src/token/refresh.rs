//! Refresh tokens: opaque, 256 random bits, stored only as a SHA-256 digest,
//! rotated on every use within a family (RFC 9700 §4.14).

use std::fmt;

use chrono::{DateTime, Utc};
use ring::digest;
use secrecy::{ExposeSecret, SecretString};

use crate::{clients::ClientId, oauth::scope::ScopeSet};

/// A refresh token in clear: handed to the client once, never stored or logged.
pub struct RefreshToken(SecretString);

impl RefreshToken {
    /// 256 bits from the system CSPRNG, base64url without padding.
    pub fn generate() -> Result<Self, ring::error::Unspecified> {
        crate::clients::secret::random_256().map(Self)
    }

    /// The token text, for the one response that carries it.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The digest under which it is stored.
    #[must_use]
    pub fn hash(&self) -> RefreshTokenHash {
        RefreshTokenHash::of(self.expose())
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken([redacted])")
    }
}

/// Whether `token` could be one of our refresh tokens at all (a JWT or an
/// oversized string is not), so lookups for anything else are skipped.
#[must_use]
pub fn could_be_refresh_token(token: &str) -> bool {
    token.len() <= 128 && !token.contains('.')
}

/// Hex SHA-256 of a refresh token: what the store keys tokens by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshTokenHash(String);

impl RefreshTokenHash {
    /// The digest of a presented token.
    #[must_use]
    pub fn of(token: &str) -> Self {
        let d = digest::digest(&digest::SHA256, token.as_bytes());
        Self(
            d.as_ref()
                .iter()
                .fold(String::with_capacity(64), |mut s, b| {
                    use fmt::Write as _;
                    let _ = write!(s, "{b:02x}");
                    s
                }),
        )
    }

    /// Wraps a stored digest.
    #[must_use]
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    /// The digest text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One grant's chain of refresh tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshFamily {
    /// Family id.
    pub id: String,
    /// The client it belongs to.
    pub client_id: ClientId,
    /// Scope of the original grant (the ceiling of every refresh).
    pub scope: ScopeSet,
    /// Audiences of the original grant.
    pub audiences: Vec<String>,
    /// When the grant happened.
    pub created_at: DateTime<Utc>,
    /// Absolute end of the family.
    pub expires_at: DateTime<Utc>,
    /// When the family was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The `x5t#S256` of the certificate the family is bound to (RFC 8705 §4).
    pub certificate_thumbprint: Option<String>,
    /// The RFC 7638 thumbprint (`jkt`) of the DPoP key the family is bound
    /// to (RFC 9449 §5); never set together with `certificate_thumbprint`.
    pub dpop_jkt: Option<String>,
}

/// A refresh token to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRefreshToken {
    /// Digest of the token.
    pub hash: RefreshTokenHash,
    /// Its family.
    pub family_id: String,
    /// Issued at.
    pub issued_at: DateTime<Utc>,
    /// Idle expiry (never after the family's).
    pub expires_at: DateTime<Utc>,
}

/// A stored refresh token with its family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshRecord {
    /// The family.
    pub family: RefreshFamily,
    /// Issued at.
    pub issued_at: DateTime<Utc>,
    /// Idle expiry.
    pub expires_at: DateTime<Utc>,
    /// When it was exchanged; a consumed token presented again is reuse.
    pub consumed_at: Option<DateTime<Utc>>,
}

impl RefreshRecord {
    /// Whether the token can still be exchanged at `now`.
    #[must_use]
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.consumed_at.is_none()
            && self.family.revoked_at.is_none()
            && self.expires_at > now
            && self.family.expires_at > now
    }
}

/// The outcome of exchanging a refresh token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The token was consumed and its successor stored.
    Rotated,
    /// The token had already been consumed: its family is now revoked.
    Reused,
    /// No such token.
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_stored_by_sha256() {
        let a = RefreshToken::generate().unwrap();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a.expose(), RefreshToken::generate().unwrap().expose());
        assert_eq!(a.hash(), RefreshTokenHash::of(a.expose()));
        assert_eq!(a.hash().as_str().len(), 64);
        assert_eq!(
            RefreshTokenHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(format!("{a:?}"), "RefreshToken([redacted])");
        let stored = RefreshTokenHash::from_stored(a.hash().as_str().to_owned());
        assert_eq!(stored, a.hash(), "a stored digest as read back");
    }

    #[test]
    fn only_short_strings_without_dots_could_be_refresh_tokens() {
        assert!(could_be_refresh_token(
            RefreshToken::generate().unwrap().expose()
        ));
        assert!(could_be_refresh_token(&"a".repeat(128)));
        assert!(!could_be_refresh_token(&"a".repeat(129)));
        assert!(!could_be_refresh_token("eyJh.eyJz.c2ln"));
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn record(expires_at: i64, family_expires_at: i64) -> RefreshRecord {
        RefreshRecord {
            family: RefreshFamily {
                id: "f".into(),
                client_id: ClientId::parse("c").unwrap(),
                scope: ScopeSet::default(),
                audiences: vec!["https://api".into()],
                created_at: t(0),
                expires_at: t(family_expires_at),
                revoked_at: None,
                certificate_thumbprint: None,
                dpop_jkt: None,
            },
            issued_at: t(0),
            expires_at: t(expires_at),
            consumed_at: None,
        }
    }

    #[test]
    fn a_token_is_live_until_its_own_or_its_familys_end_unless_used_or_revoked() {
        let r = record(100, 200);
        assert!(r.is_live(t(99)));
        assert!(!r.is_live(t(100)), "idle expiry");
        let capped = record(200, 100);
        assert!(capped.is_live(t(99)));
        assert!(!capped.is_live(t(100)), "the family's absolute end");
        let mut used = record(100, 200);
        used.consumed_at = Some(t(1));
        assert!(!used.is_live(t(2)), "consumed");
        let mut revoked = record(100, 200);
        revoked.family.revoked_at = Some(t(1));
        assert!(!revoked.is_live(t(2)), "revoked");
    }
}
