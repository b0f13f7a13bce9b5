//! Database: which engine and where (`database_url`, or `database_url_file`
//! as a Kubernetes Secret is mounted), the pool size, and how an outage is
//! met: the per-call deadline, the circuit breaker, and how long cached
//! clients are served from memory (`outage_grace`).

use std::{fmt, path::PathBuf, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::ConfigError;
use crate::store::GuardSettings;

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
    /// Deadline of a database call on the request path, in milliseconds
    /// (also the pool's wait for a connection). Background work gets at
    /// least 30 s.
    #[serde(default = "defaults::database_timeout_ms")]
    pub database_timeout_ms: u64,
    /// Consecutive failed database calls (deadlines, connection errors)
    /// that open the circuit breaker.
    #[serde(default = "defaults::database_breaker_threshold")]
    pub database_breaker_threshold: u32,
    /// How long the open breaker fails calls at once before letting one
    /// probe through, in milliseconds.
    #[serde(default = "defaults::database_breaker_open_ms")]
    pub database_breaker_open_ms: u64,
    /// Seconds after the last successful database contact during which
    /// clients in the client cache are still served from memory while the
    /// database is unreachable (0: fail closed at once).
    #[serde(default = "defaults::outage_grace")]
    pub outage_grace: u64,
}

mod defaults {
    use secrecy::SecretString;

    pub fn database_url() -> SecretString {
        SecretString::from("sqlite://data/portcullis.db")
    }
    pub fn database_max_connections() -> u32 {
        16
    }
    pub fn database_timeout_ms() -> u64 {
        500
    }
    pub fn database_breaker_threshold() -> u32 {
        5
    }
    pub fn database_breaker_open_ms() -> u64 {
        1000
    }
    pub fn outage_grace() -> u64 {
        300
    }
}

/// Background work (the audit writer, key changes, which generate keys
/// under the database lock) waits for the database at least this long per call.
const BACKGROUND_DEADLINE: Duration = Duration::from_secs(30);

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
        if !(10..=60_000).contains(&self.database_timeout_ms) {
            return invalid("database_timeout_ms must be between 10 and 60000");
        }
        if self.database_breaker_threshold == 0 {
            return invalid("database_breaker_threshold must be at least 1");
        }
        if !(10..=600_000).contains(&self.database_breaker_open_ms) {
            return invalid("database_breaker_open_ms must be between 10 and 600000");
        }
        if self.outage_grace > 7 * 24 * 3600 {
            return invalid("outage_grace must be at most 604800 seconds (7 days)");
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

    /// The storage guard these settings describe.
    #[must_use]
    pub fn guard(&self) -> GuardSettings {
        let request_deadline = Duration::from_millis(self.database_timeout_ms);
        GuardSettings {
            request_deadline,
            background_deadline: request_deadline.max(BACKGROUND_DEADLINE),
            failure_threshold: self.database_breaker_threshold,
            open_for: chrono::Duration::milliseconds(
                i64::try_from(self.database_breaker_open_ms).unwrap_or(i64::MAX),
            ),
            outage_grace: chrono::Duration::seconds(
                i64::try_from(self.outage_grace).unwrap_or(i64::MAX),
            ),
        }
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
            .field("database_timeout_ms", &self.database_timeout_ms)
            .field(
                "database_breaker_threshold",
                &self.database_breaker_threshold,
            )
            .field("database_breaker_open_ms", &self.database_breaker_open_ms)
            .field("outage_grace", &self.outage_grace)
            .finish()
    }
}
