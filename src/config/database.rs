//! Database: which engine and where (`database_url`), and the pool size.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::ConfigError;

/// The database connection (`database_url`, `database_max_connections`).
#[derive(Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…`.
    #[serde(default = "defaults::database_url")]
    pub database_url: SecretString,
    /// Maximum connections in the database pool.
    #[serde(default = "defaults::database_max_connections")]
    pub database_max_connections: u32,
}

mod defaults {
    use secrecy::SecretString;

    pub fn database_url() -> SecretString {
        SecretString::from("sqlite://data/portcullis.db")
    }
    pub fn database_max_connections() -> u32 {
        16
    }
}

impl DatabaseSettings {
    /// A known engine and a usable pool size.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.database_max_connections == 0 {
            return invalid("database_max_connections must be at least 1");
        }
        let url = self.database_url.expose_secret();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            return invalid("database_url must start with sqlite:, postgres: or postgresql:");
        }
        Ok(())
    }

    /// Whether the configured database is the embedded SQLite engine (known
    /// only until [`super::Settings::forget_secrets`] drops the URL).
    #[must_use]
    pub fn is_sqlite(&self) -> bool {
        self.database_url.expose_secret().starts_with("sqlite:")
    }
}

/// The URL may carry a password: it is never printed.
impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("database_url", &"[redacted]")
            .field("database_max_connections", &self.database_max_connections)
            .finish()
    }
}
