//! [`ClientId`]: the identifier a client registers with, or is given.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A client identifier: 1–128 characters of `A–Z a–z 0–9 - . _ ~` (URL-safe,
/// and unchanged by the form-encoding of HTTP Basic credentials).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(String);

impl ClientId {
    /// Validates a client id.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err("client_id must be 1-128 characters of A-Z a-z 0-9 - . _ ~".to_owned())
        }
    }

    /// A new random client id (a UUID).
    #[must_use]
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
