//! Admin API credentials: the bearer tokens it accepts, inline or from a file.

use std::{fmt, path::PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{de::comma_list, ConfigError};

/// Who may call the admin API (`admin_tokens`, `admin_tokens_file`).
#[derive(Clone, Deserialize)]
pub struct AdminSettings {
    /// Admin bearer tokens (a list, or one comma-separated string).
    #[serde(default, deserialize_with = "comma_list")]
    pub admin_tokens: Vec<SecretString>,
    /// A file with one admin token per line, added to `admin_tokens`.
    #[serde(default)]
    pub admin_tokens_file: Option<PathBuf>,
}

impl AdminSettings {
    /// Adds the tokens of `admin_tokens_file`, one a line (blank lines and
    /// `#` comments skipped), to `admin_tokens`.
    pub(super) fn read_admin_tokens_file(&mut self) -> Result<(), ConfigError> {
        let Some(path) = &self.admin_tokens_file else {
            return Ok(());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::File {
            setting: "admin_tokens_file",
            path: path.clone(),
            source,
        })?;
        self.admin_tokens.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| SecretString::from(l.to_owned())),
        );
        Ok(())
    }

    /// Every token long enough not to be guessed.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for token in &self.admin_tokens {
            if token.expose_secret().len() < 16 {
                return Err(ConfigError::Invalid(
                    "every admin token must be at least 16 characters long".to_owned(),
                ));
            }
        }
        Ok(())
    }
}

/// Tokens are counted, never printed.
impl fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminSettings")
            .field("admin_tokens", &self.admin_tokens.len())
            .field("admin_tokens_file", &self.admin_tokens_file)
            .finish()
    }
}
