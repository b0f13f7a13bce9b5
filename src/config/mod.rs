//! Settings: built-in defaults, then a TOML file, then `PORTCULLIS_*` environment
//! variables (the environment wins). Plain `DATABASE_URL` is honoured below
//! `PORTCULLIS_DATABASE_URL`. [`Settings::validate`] rejects inconsistent values
//! with a message that names the setting.
//!
//! The file and the environment are flat (`listen = …`,
//! `PORTCULLIS_ACCESS_TOKEN_TTL=…`); in code the settings are grouped by
//! concern, one section per module: [`listeners`], [`database`], [`admin`],
//! [`keys`], [`tokens`], [`limits`], [`client_auth`], [`dpop`], [`logging`], [`audit`] and [`journal`]. Each
//! section reads its own keys from the same flat figment; a key no section
//! reads is refused, except the service-link variables Kubernetes injects
//! for a Service named `portcullis` (`PORTCULLIS_PORT`, `PORTCULLIS_SERVICE_HOST`, …).

pub mod admin;
pub mod audit;
pub mod client_auth;
pub mod database;
mod de;
pub mod dpop;
#[cfg(test)]
mod env_tests;
pub mod journal;
pub mod keys;
pub mod limits;
pub mod listeners;
pub mod logging;
mod service_links;
#[cfg(test)]
mod tests;
pub mod tokens;

use std::{path::PathBuf, sync::OnceLock};

use figment::{
    error::Kind,
    providers::{Env, Format, Toml},
    value::Dict,
    Figment,
};
use secrecy::SecretString;
use serde::Deserialize;

pub use admin::AdminSettings;
pub use audit::{AuditExport, AuditSettings};
pub use client_auth::ClientAuthSettings;
pub use database::DatabaseSettings;
pub(crate) use de::keys_of;
pub use dpop::DpopSettings;
pub use journal::JournalSettings;
pub use keys::KeySettings;
pub use limits::LimitSettings;
pub use listeners::ListenerSettings;
pub use logging::{LogFormat, LogSettings};
pub use tokens::TokenSettings;

/// Everything that can go wrong while loading or checking the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file or an environment variable could not be read or
    /// parsed, or names an unknown key. The message names the key as it was
    /// written (`PORTCULLIS_LISTNE`, or `listne` and the file) and suggests
    /// the nearest known key for an unknown one.
    #[error("invalid configuration: {}", describe(.0))]
    Load(Box<figment::Error>),
    /// A value is out of range or inconsistent with another one.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A file named by the configuration could not be read. The message
    /// names the setting and the path, never the file's content.
    #[error("could not read {setting} {path}: {source}")]
    File {
        /// The setting that names the file (`database_url_file`, …).
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

impl From<Box<figment::Error>> for ConfigError {
    fn from(e: Box<figment::Error>) -> Self {
        Self::Load(e)
    }
}

/// A figment error as a person reads it: the key as written where it came
/// from, what is wrong, and for an unknown key the nearest known one.
fn describe(e: &figment::Error) -> String {
    let name = e.metadata.as_ref().map(|m| m.name.to_string());
    let source = e.metadata.as_ref().and_then(|m| m.source.as_ref());
    let dotted = e.path.join(".");
    let key = match (name.as_deref(), source) {
        (_, Some(figment::Source::File(path))) => format!("{dotted} in {}", path.display()),
        (Some(n), _) if n.contains("PORTCULLIS_") => {
            format!("PORTCULLIS_{}", e.path.join("__").to_ascii_uppercase())
        }
        (Some(n), _) if n.contains("environment") => dotted.to_ascii_uppercase(),
        (Some(n), _) => format!("{dotted} in {n}"),
        (None, _) => dotted,
    };
    let what = match &e.kind {
        Kind::UnknownField(found, _) => {
            let hint = nearest_key(found)
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_default();
            format!(
                "unknown setting{hint} (portcullis.example.toml and the README's \
                 Configuration table list every setting)"
            )
        }
        kind => kind.to_string(),
    };
    if key.is_empty() {
        what
    } else {
        format!("{key}: {what}")
    }
}

/// The known key most like `unknown`, when one is alike enough to be the
/// key meant (Jaro-Winkler similarity of at least 0.8).
fn nearest_key(unknown: &str) -> Option<&'static str> {
    let unknown = unknown.to_ascii_lowercase();
    known_keys()
        .iter()
        .map(|k| (strsim::jaro_winkler(&unknown, k), *k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// The server's settings, by section. Every key is documented in the README
/// with its `PORTCULLIS_…` name and default. `Debug` never shows a secret.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Listen addresses, issuer, HTTPS, request limits, trusted proxies.
    pub listeners: ListenerSettings,
    /// Database URL and pool size.
    pub database: DatabaseSettings,
    /// Admin API tokens.
    pub admin: AdminSettings,
    /// KEK and signing-key lifecycle.
    pub keys: KeySettings,
    /// Token lifetimes, JWKS caching, clock skew, issuance policy.
    pub tokens: TokenSettings,
    /// Rate limits, quotas, lockout, argon2 concurrency.
    pub limits: LimitSettings,
    /// Client assertions, client JWKS fetching, client-certificate CAs.
    pub client_auth: ClientAuthSettings,
    /// DPoP proofs at the token endpoint.
    pub dpop: DpopSettings,
    /// Log format and filter.
    pub logging: LogSettings,
    /// Audit retention and export.
    pub audit: AuditSettings,
    /// The local audit journal.
    pub journal: JournalSettings,
    /// Kubernetes service-link variables (`PORTCULLIS_PORT`,
    /// `PORTCULLIS_SERVICE_HOST`, …) that [`Settings::load`] skipped; the
    /// server logs them at debug level once logging is set up.
    pub ignored_variables: Vec<String>,
}

impl Settings {
    /// Loads defaults → `config_file` (if given) → environment, and validates.
    pub fn load(config_file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = config_file {
            if !path.exists() {
                return Err(ConfigError::Invalid(format!(
                    "configuration file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        let env = Env::prefixed("PORTCULLIS_").ignore(&["config"]);
        let ignored_variables = env
            .iter()
            .map(|(key, _)| key.as_str().to_ascii_uppercase())
            .filter(|key| service_links::is_service_link(key))
            .map(|key| format!("PORTCULLIS_{key}"))
            .collect();
        let figment = figment
            .merge(Env::raw().only(&["database_url"]))
            .merge(env.filter(|key| !service_links::is_service_link(key.as_str())));
        let mut settings = Self::from_figment(&figment)?;
        settings.ignored_variables = ignored_variables;
        Ok(settings)
    }

    /// Extracts and validates settings from a prepared figment (tests build their own).
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        refuse_unknown_keys(figment)?;
        let mut settings = Self {
            listeners: extract(figment)?,
            database: extract(figment)?,
            admin: extract(figment)?,
            keys: extract(figment)?,
            tokens: extract(figment)?,
            limits: extract(figment)?,
            client_auth: extract(figment)?,
            dpop: extract(figment)?,
            logging: extract(figment)?,
            audit: extract(figment)?,
            journal: extract(figment)?,
            ignored_variables: Vec::new(),
        };
        settings.admin.read_admin_tokens_file()?;
        settings
            .database
            .read_database_url_file(figment.contains("database_url"))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks ranges and cross-field rules, section by section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.tokens.validate()?;
        self.listeners.validate()?;
        self.database.validate()?;
        self.limits.validate()?;
        self.keys.validate(&self.tokens)?;
        self.client_auth.validate()?;
        self.dpop.validate()?;
        self.audit.validate()?;
        self.journal.validate()?;
        self.admin.validate()
    }

    /// Drops the secrets only start-up needs: the admin tokens (once hashed),
    /// the KEK and old KEKs (once the KEK ring is loaded) and the database
    /// URL (once the pool is connected). The server calls it before it keeps
    /// the settings for its lifetime, so they hold none of these; the dropped
    /// values are wiped from memory ([`SecretString`] zeroizes on drop).
    /// Afterwards [`DatabaseSettings::is_sqlite`] and
    /// [`Settings::may_generate_kek`] no longer know the engine.
    pub fn forget_secrets(&mut self) {
        self.admin.admin_tokens = Vec::new();
        self.keys.kek = None;
        self.keys.old_keks = Vec::new();
        self.database.database_url = SecretString::from(String::new());
    }

    /// Whether a missing KEK may be generated (see [`KeySettings::kek_generate`]).
    #[must_use]
    pub fn may_generate_kek(&self) -> bool {
        self.keys
            .kek_generate
            .unwrap_or_else(|| self.database.is_sqlite())
    }
}

/// One section, read straight from the figment: a bad value's error names
/// its key and where it came from.
fn extract<T: for<'de> Deserialize<'de>>(figment: &Figment) -> Result<T, ConfigError> {
    Ok(figment.extract().map_err(Box::new)?)
}

/// Every key some section reads.
fn known_keys() -> &'static [&'static str] {
    static KEYS: OnceLock<Vec<&'static str>> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            de::keys_of::<ListenerSettings>(),
            de::keys_of::<DatabaseSettings>(),
            de::keys_of::<AdminSettings>(),
            de::keys_of::<KeySettings>(),
            de::keys_of::<TokenSettings>(),
            de::keys_of::<LimitSettings>(),
            de::keys_of::<ClientAuthSettings>(),
            de::keys_of::<DpopSettings>(),
            de::keys_of::<LogSettings>(),
            de::keys_of::<AuditSettings>(),
            de::keys_of::<JournalSettings>(),
        ]
        .concat()
    })
}

/// Refuses a key no section reads (a typo would otherwise be ignored), with
/// the error serde's `deny_unknown_fields` gives: the key and its source.
fn refuse_unknown_keys(figment: &Figment) -> Result<(), ConfigError> {
    let given: Dict = figment.extract().map_err(Box::new)?;
    let known = known_keys();
    let Some(key) = given.keys().find(|k| !known.contains(&k.as_str())) else {
        return Ok(());
    };
    let mut error = figment::Error::from(Kind::UnknownField(key.clone(), known));
    error.path = vec![key.clone()];
    error.profile = Some(figment.profile().clone());
    error.metadata = figment.find_metadata(key).cloned();
    Err(Box::new(error).into())
}
