//! Database: which engine and where (`database_url`, or `database_url_file`
//! as a Kubernetes Secret is mounted), and the pool size.

use std::{fmt, path::PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::ConfigError;

/// The database connection (`database_url` or `database_url_file`,
/// `database_max_connections`).
#[derive(Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…`.
    #[serde(default = "defaults::database_url")]
    pub database_url: SecretString,
    /// A file holding `database_url` (one line; the trailing newline is
    /// dropped). Exclusive with an explicit `database_url`.
    #[serde(default)]
    pub database_url_file: Option<PathBuf>,
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
    /// Reads `database_url` from `database_url_file`, when set. `explicit_url`
    /// says whether `database_url` was also given (any source but the
    /// default): both at once are refused. A read error names the setting
    /// and the path, never the content.
    pub(super) fn read_database_url_file(&mut self, explicit_url: bool) -> Result<(), ConfigError> {
        let Some(path) = &self.database_url_file else {
            return Ok(());
        };
        if explicit_url {
            return Err(ConfigError::Invalid(
                "database_url and database_url_file are both set: set only one".to_owned(),
            ));
        }
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            ConfigError::File {
                setting: "database_url_file",
                path: path.clone(),
                source,
            }
        })?);
        self.database_url = SecretString::from(text.trim_end_matches(['\n', '\r']).to_owned());
        Ok(())
    }

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
            .field("database_url_file", &self.database_url_file)
            .field("database_max_connections", &self.database_max_connections)
            .finish()
    }
}
