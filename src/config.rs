//! Settings: built-in defaults, then a TOML file, then `PORTCULLIS_*` environment
//! variables (the environment wins). Plain `DATABASE_URL` is honoured below
//! `PORTCULLIS_DATABASE_URL`. [`Settings::validate`] rejects inconsistent values
//! with a message that names the setting.

use std::{fmt, net::SocketAddr, path::PathBuf};

use figment::{
    providers::{Env, Format, Toml},
    Figment,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use crate::keys::Algorithm;

/// Everything that can go wrong while loading or checking the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file or an environment variable could not be read or parsed.
    #[error("configuration could not be loaded: {0}")]
    Load(#[from] Box<figment::Error>),
    /// A value is out of range or inconsistent with another one.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A file named by the configuration could not be read.
    #[error("could not read {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

/// Output format of the log lines.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (default; what log pipelines want).
    Json,
    /// Human-readable lines for a terminal.
    Pretty,
}

/// The server's settings. Every field is documented in the README with its
/// `PORTCULLIS_…` name and default.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address and port the HTTP listener binds to.
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// Public issuer URL; defaults to `http://` + the bound listen address.
    #[serde(default)]
    pub issuer: Option<String>,
    /// `sqlite://…` or `postgres://…`.
    #[serde(default = "defaults::database_url")]
    pub database_url: SecretString,
    /// Maximum connections in the database pool.
    #[serde(default = "defaults::database_max_connections")]
    pub database_max_connections: u32,
    /// Admin bearer tokens (a list, or one comma-separated string).
    #[serde(default, deserialize_with = "comma_list")]
    pub admin_tokens: Vec<SecretString>,
    /// A file with one admin token per line, added to `admin_tokens`.
    #[serde(default)]
    pub admin_tokens_file: Option<PathBuf>,
    /// File holding the base64 key-encryption key.
    #[serde(default = "defaults::kek_file")]
    pub kek_file: PathBuf,
    /// The base64 key-encryption key itself (takes precedence over `kek_file`).
    #[serde(default, deserialize_with = "optional_secret")]
    pub kek: Option<SecretString>,
    /// Generate a KEK into `kek_file` when none exists. Defaults to true for
    /// SQLite (the development setup) and false otherwise.
    #[serde(default)]
    pub kek_generate: Option<bool>,
    /// Earlier KEK files still accepted for opening keys not yet rewrapped.
    #[serde(default)]
    pub old_kek_files: Vec<PathBuf>,
    /// Earlier KEKs themselves, base64 (a list, or comma-separated).
    #[serde(default, deserialize_with = "comma_list")]
    pub old_keks: Vec<SecretString>,
    /// Algorithm of newly generated signing keys.
    #[serde(default = "defaults::signing_alg")]
    pub signing_alg: Algorithm,
    /// Access-token lifetime in seconds for clients that do not set their own.
    #[serde(default = "defaults::access_token_ttl")]
    pub access_token_ttl: u32,
    /// Upper bound in seconds for any client's access-token lifetime.
    #[serde(default = "defaults::max_access_token_ttl")]
    pub max_access_token_ttl: u32,
    /// Seconds a key signs before the next one takes over (0 disables automatic rotation).
    #[serde(default = "defaults::key_rotation_interval")]
    pub key_rotation_interval: u64,
    /// Minimum seconds a new key is published in the JWKS before it may sign.
    #[serde(default = "defaults::key_prepublish")]
    pub key_prepublish: u64,
    /// Clock skew tolerated by verifiers, in seconds (extends retired-key retention).
    #[serde(default = "defaults::clock_skew")]
    pub clock_skew: u64,
    /// Seconds between key checks: rotation when due, and reloading keys
    /// changed by another replica (0 disables the background task).
    #[serde(default = "defaults::key_refresh_interval")]
    pub key_refresh_interval: u64,
    /// Refresh-token idle lifetime in seconds (unused this long, it expires).
    #[serde(default = "defaults::refresh_token_idle_ttl")]
    pub refresh_token_idle_ttl: u32,
    /// Refresh-token absolute lifetime in seconds (from the original grant).
    #[serde(default = "defaults::refresh_token_absolute_ttl")]
    pub refresh_token_absolute_ttl: u32,
    /// `Cache-Control: max-age` of the JWKS and metadata documents, in seconds.
    #[serde(default = "defaults::jwks_max_age")]
    pub jwks_max_age: u32,
    /// Largest accepted request body in bytes.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// Concurrent argon2 verifications; 0 means the number of CPU cores.
    #[serde(default)]
    pub argon2_concurrency: usize,
    /// A second listener for the admin API and `/metrics`; when set, they are
    /// served only there.
    #[serde(default)]
    pub admin_listen: Option<SocketAddr>,
    /// Proxies (addresses or networks) whose `X-Forwarded-For` is believed.
    #[serde(default, deserialize_with = "comma_strings")]
    pub trusted_proxies: Vec<String>,
    /// Token, introspection and revocation requests per second per source address (0: off).
    #[serde(default = "defaults::rate_limit_ip_per_second")]
    pub rate_limit_ip_per_second: u32,
    /// Burst of the per-address limit.
    #[serde(default = "defaults::rate_limit_ip_burst")]
    pub rate_limit_ip_burst: u32,
    /// Token requests per second per client (0: off); clients may have their own.
    #[serde(default = "defaults::rate_limit_client_per_second")]
    pub rate_limit_client_per_second: u32,
    /// Burst of the per-client limit.
    #[serde(default = "defaults::rate_limit_client_burst")]
    pub rate_limit_client_burst: u32,
    /// Admin API requests per second per source address (0: off).
    #[serde(default = "defaults::rate_limit_admin_per_second")]
    pub rate_limit_admin_per_second: u32,
    /// Burst of the admin limit.
    #[serde(default = "defaults::rate_limit_admin_burst")]
    pub rate_limit_admin_burst: u32,
    /// Tokens per client per UTC hour (0: no quota); clients may have their own.
    #[serde(default)]
    pub token_quota_per_hour: u64,
    /// Tokens per client per UTC day (0: no quota).
    #[serde(default)]
    pub token_quota_per_day: u64,
    /// Failed authentications of one client within `lockout_window` that lock it (0: never).
    #[serde(default = "defaults::lockout_threshold")]
    pub lockout_threshold: u32,
    /// The window in which failures are counted, in seconds.
    #[serde(default = "defaults::lockout_window")]
    pub lockout_window: u64,
    /// How long a lock lasts, in seconds.
    #[serde(default = "defaults::lockout_duration")]
    pub lockout_duration: u64,
    /// Largest total size of a request's headers in bytes (larger: 431).
    #[serde(default = "defaults::max_header_bytes")]
    pub max_header_bytes: usize,
    /// Seconds a client has to send its request headers (slow clients get 408).
    #[serde(default = "defaults::request_timeout")]
    pub request_timeout: u64,
    /// Optional Rego policy evaluated at token issuance.
    #[serde(default)]
    pub policy_file: Option<PathBuf>,
    /// Claims a policy may add to access tokens.
    #[serde(default, deserialize_with = "comma_strings")]
    pub policy_claims: Vec<String>,
    /// PEM certificate chain for HTTPS on `listen` (with `tls_key_file`);
    /// without both, the listener speaks plain HTTP.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// Seconds between checks of the certificate files for a new certificate.
    #[serde(default = "defaults::tls_reload_interval")]
    pub tls_reload_interval: u64,
    /// PEM CA bundle that `tls_client_auth` client certificates must chain to.
    #[serde(default)]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Believe Envoy's `x-forwarded-client-cert` header from `trusted_proxies`
    /// (a sidecar or gateway that terminates TLS); ignored from anyone else.
    #[serde(default)]
    pub forwarded_client_cert: bool,
    /// Base URL of a host name that requests client certificates, advertised
    /// as RFC 8705 `mtls_endpoint_aliases` (defaults to the issuer).
    #[serde(default)]
    pub mtls_endpoint_base: Option<String>,
    /// Algorithms client assertions (`private_key_jwt`) may be signed with.
    #[serde(
        default = "defaults::assertion_signing_algs",
        deserialize_with = "comma_strings"
    )]
    pub assertion_signing_algs: Vec<String>,
    /// Longest accepted client-assertion lifetime (`exp` − `iat`), in seconds.
    #[serde(default = "defaults::assertion_max_lifetime")]
    pub assertion_max_lifetime: u64,
    /// Timeout of one `jwks_uri` fetch, in seconds.
    #[serde(default = "defaults::jwks_fetch_timeout")]
    pub jwks_fetch_timeout: u64,
    /// Largest accepted `jwks_uri` document, in bytes.
    #[serde(default = "defaults::jwks_fetch_max_bytes")]
    pub jwks_fetch_max_bytes: usize,
    /// Seconds a fetched client JWK set is used before it is fetched again.
    #[serde(default = "defaults::jwks_cache_ttl")]
    pub jwks_cache_ttl: u64,
    /// Least seconds between two fetches of one `jwks_uri` when an unknown
    /// `kid` appears (a flood of made-up kids cannot hammer the client).
    #[serde(default = "defaults::jwks_refetch_interval")]
    pub jwks_refetch_interval: u64,
    /// HTTP worker threads; 0 means the number of CPU cores.
    #[serde(default)]
    pub workers: usize,
    /// Log output format.
    #[serde(default = "defaults::log_format")]
    pub log_format: LogFormat,
    /// Log filter (`tracing` `EnvFilter` syntax); `RUST_LOG` wins when set.
    #[serde(default = "defaults::log_level")]
    pub log_level: String,
}

mod defaults {
    use super::{Algorithm, LogFormat, PathBuf, SecretString, SocketAddr};

    pub fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    }
    pub fn database_url() -> SecretString {
        SecretString::from("sqlite://data/portcullis.db")
    }
    pub fn database_max_connections() -> u32 {
        16
    }
    pub fn kek_file() -> PathBuf {
        PathBuf::from("keys/kek")
    }
    pub fn signing_alg() -> Algorithm {
        Algorithm::Es256
    }
    pub fn access_token_ttl() -> u32 {
        300
    }
    pub fn max_access_token_ttl() -> u32 {
        3600
    }
    pub fn rate_limit_ip_per_second() -> u32 {
        100
    }
    pub fn rate_limit_ip_burst() -> u32 {
        200
    }
    pub fn rate_limit_client_per_second() -> u32 {
        20
    }
    pub fn rate_limit_client_burst() -> u32 {
        50
    }
    pub fn rate_limit_admin_per_second() -> u32 {
        20
    }
    pub fn rate_limit_admin_burst() -> u32 {
        50
    }
    pub fn lockout_threshold() -> u32 {
        10
    }
    pub fn lockout_window() -> u64 {
        300
    }
    pub fn lockout_duration() -> u64 {
        900
    }
    pub fn max_header_bytes() -> usize {
        16 * 1024
    }
    pub fn request_timeout() -> u64 {
        10
    }
    pub fn refresh_token_idle_ttl() -> u32 {
        24 * 3600
    }
    pub fn refresh_token_absolute_ttl() -> u32 {
        30 * 24 * 3600
    }
    pub fn key_rotation_interval() -> u64 {
        7 * 24 * 3600
    }
    pub fn key_prepublish() -> u64 {
        24 * 3600
    }
    pub fn clock_skew() -> u64 {
        60
    }
    pub fn key_refresh_interval() -> u64 {
        30
    }
    pub fn jwks_max_age() -> u32 {
        300
    }
    pub fn max_body_bytes() -> usize {
        16 * 1024
    }
    pub fn tls_reload_interval() -> u64 {
        10
    }
    pub fn assertion_signing_algs() -> Vec<String> {
        crate::clients::credentials::ASSERTION_ALGORITHMS
            .iter()
            .map(|a| (*a).to_owned())
            .collect()
    }
    pub fn assertion_max_lifetime() -> u64 {
        300
    }
    pub fn jwks_fetch_timeout() -> u64 {
        5
    }
    pub fn jwks_fetch_max_bytes() -> usize {
        64 * 1024
    }
    pub fn jwks_cache_ttl() -> u64 {
        300
    }
    pub fn jwks_refetch_interval() -> u64 {
        10
    }
    pub fn log_format() -> LogFormat {
        LogFormat::Json
    }
    pub fn log_level() -> String {
        "info,sqlx=warn".to_owned()
    }
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
        let figment = figment
            .merge(Env::raw().only(&["database_url"]))
            .merge(Env::prefixed("PORTCULLIS_").ignore(&["config"]));
        Self::from_figment(&figment)
    }

    /// Extracts and validates settings from a prepared figment (tests build their own).
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        let mut settings: Self = figment.extract().map_err(Box::new)?;
        settings.read_admin_tokens_file()?;
        settings.validate()?;
        Ok(settings)
    }

    fn read_admin_tokens_file(&mut self) -> Result<(), ConfigError> {
        let Some(path) = &self.admin_tokens_file else {
            return Ok(());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::File {
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

    /// Checks ranges and cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.access_token_ttl == 0 || self.max_access_token_ttl == 0 {
            return invalid("access_token_ttl and max_access_token_ttl must be at least 1 second");
        }
        if self.access_token_ttl > self.max_access_token_ttl {
            return invalid("access_token_ttl must not exceed max_access_token_ttl");
        }
        if self.max_access_token_ttl > 86_400 {
            return invalid("max_access_token_ttl must not exceed 86400 seconds (one day)");
        }
        if self.max_body_bytes < 1024 || self.max_body_bytes > 1024 * 1024 {
            return invalid("max_body_bytes must be between 1024 and 1048576");
        }
        if self.database_max_connections == 0 {
            return invalid("database_max_connections must be at least 1");
        }
        if self.refresh_token_idle_ttl == 0
            || self.refresh_token_idle_ttl > self.refresh_token_absolute_ttl
        {
            return invalid(
                "refresh_token_idle_ttl must be at least 1 and not exceed refresh_token_absolute_ttl",
            );
        }
        if self.refresh_token_absolute_ttl > 365 * 24 * 3600 {
            return invalid(
                "refresh_token_absolute_ttl must not exceed 31536000 seconds (one year)",
            );
        }
        crate::protect::client_ip::TrustedProxies::parse(&self.trusted_proxies)
            .map_err(ConfigError::Invalid)?;
        if self.max_header_bytes < 1024 || self.max_header_bytes > 64 * 1024 {
            return invalid("max_header_bytes must be between 1024 and 65536");
        }
        if self.request_timeout == 0 || self.request_timeout > 300 {
            return invalid("request_timeout must be between 1 and 300 seconds");
        }
        if self.lockout_threshold > 0 && (self.lockout_window == 0 || self.lockout_duration == 0) {
            return invalid("lockout_window and lockout_duration must be at least 1 second");
        }
        if let Some(path) = &self.policy_file {
            if !path.exists() {
                return Err(ConfigError::Invalid(format!(
                    "policy_file {} does not exist",
                    path.display()
                )));
            }
        }
        if self
            .admin_listen
            .is_some_and(|a| a == self.listen && a.port() != 0)
        {
            return invalid("admin_listen must differ from listen");
        }
        self.validate_key_lifecycle()?;
        self.validate_client_auth()?;
        if let Some(issuer) = &self.issuer {
            validate_issuer(issuer).map_err(ConfigError::Invalid)?;
        }
        let url = self.database_url.expose_secret();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            return invalid("database_url must start with sqlite:, postgres: or postgresql:");
        }
        for token in &self.admin_tokens {
            if token.expose_secret().len() < 16 {
                return invalid("every admin token must be at least 16 characters long");
            }
        }
        Ok(())
    }

    /// TLS files come in pairs; assertion and JWKS-fetch limits are sane.
    fn validate_client_auth(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return invalid("tls_cert_file and tls_key_file must be set together".into());
        }
        for path in [
            &self.tls_cert_file,
            &self.tls_key_file,
            &self.tls_client_ca_file,
        ]
        .into_iter()
        .flatten()
        {
            if !path.exists() {
                return invalid(format!("{} does not exist", path.display()));
            }
        }
        if self.tls_reload_interval == 0 || self.tls_reload_interval > 3600 {
            return invalid("tls_reload_interval must be between 1 and 3600 seconds".into());
        }
        if let Some(alg) = self
            .assertion_signing_algs
            .iter()
            .find(|a| crate::clients::credentials::assertion_algorithm(a).is_none())
        {
            return invalid(format!(
                "assertion_signing_algs: {alg:?} is not supported; use some of {}",
                crate::clients::credentials::ASSERTION_ALGORITHMS.join(", ")
            ));
        }
        if self.assertion_signing_algs.is_empty() {
            return invalid("assertion_signing_algs must not be empty".into());
        }
        if !(10..=3600).contains(&self.assertion_max_lifetime) {
            return invalid("assertion_max_lifetime must be between 10 and 3600 seconds".into());
        }
        if !(1..=60).contains(&self.jwks_fetch_timeout) {
            return invalid("jwks_fetch_timeout must be between 1 and 60 seconds".into());
        }
        if !(1024..=1024 * 1024).contains(&self.jwks_fetch_max_bytes) {
            return invalid("jwks_fetch_max_bytes must be between 1024 and 1048576".into());
        }
        if self.jwks_cache_ttl == 0 || self.jwks_refetch_interval > self.jwks_cache_ttl {
            return invalid(
                "jwks_cache_ttl must be at least 1 and not below jwks_refetch_interval".into(),
            );
        }
        if let Some(base) = &self.mtls_endpoint_base {
            validate_issuer(base)
                .map_err(|e| ConfigError::Invalid(format!("mtls_endpoint_base: {e}")))?;
        }
        if self.forwarded_client_cert && self.trusted_proxies.is_empty() {
            return invalid(
                "forwarded_client_cert needs trusted_proxies: the header is believed only from them"
                    .into(),
            );
        }
        Ok(())
    }

    /// Whether the public listener speaks HTTPS.
    #[must_use]
    pub fn tls_enabled(&self) -> bool {
        self.tls_cert_file.is_some()
    }

    /// The rotation rules of SPEC §3: a key is published longer than any JWKS
    /// cache lives before it signs, and rotation never outruns pre-publication.
    fn validate_key_lifecycle(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.key_prepublish <= u64::from(self.jwks_max_age) {
            return invalid(format!(
                "key_prepublish ({}s) must exceed jwks_max_age ({}s): a key must be published longer than \
                 verifiers cache the JWKS before it signs, or they reject its tokens",
                self.key_prepublish, self.jwks_max_age
            ));
        }
        if self.key_rotation_interval != 0 && self.key_rotation_interval < self.key_prepublish {
            return invalid(format!(
                "key_rotation_interval ({}s) must be at least key_prepublish ({}s), so each next key is \
                 published for the whole pre-publication window before it signs",
                self.key_rotation_interval, self.key_prepublish
            ));
        }
        if self.clock_skew > 3600 {
            return invalid("clock_skew must not exceed 3600 seconds".into());
        }
        Ok(())
    }

    /// The ceilings client metadata is checked against.
    #[must_use]
    pub fn client_limits(&self) -> crate::clients::Limits {
        crate::clients::Limits {
            access_token_ttl: self.max_access_token_ttl,
            refresh_token_idle_ttl: self.refresh_token_idle_ttl,
            refresh_token_absolute_ttl: self.refresh_token_absolute_ttl,
        }
    }

    /// How long a retired key stays published: every token it signed has expired by then.
    #[must_use]
    pub fn retired_key_retention(&self) -> u64 {
        u64::from(self.max_access_token_ttl) + self.clock_skew
    }

    /// Whether the configured database is the embedded SQLite engine.
    #[must_use]
    pub fn is_sqlite(&self) -> bool {
        self.database_url.expose_secret().starts_with("sqlite:")
    }

    /// Whether a missing KEK may be generated (see [`Settings::kek_generate`]).
    #[must_use]
    pub fn may_generate_kek(&self) -> bool {
        self.kek_generate.unwrap_or_else(|| self.is_sqlite())
    }

    /// Number of argon2 verifications allowed at once.
    #[must_use]
    pub fn argon2_permits(&self) -> usize {
        if self.argon2_concurrency > 0 {
            self.argon2_concurrency
        } else {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        }
    }
}

/// An issuer is an `http`/`https` URL without query or fragment (RFC 8414 §2).
fn validate_issuer(issuer: &str) -> Result<(), String> {
    let url = url::Url::parse(issuer).map_err(|e| format!("issuer is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("issuer must be an http or https URL".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("issuer must not have a query or fragment".into());
    }
    if issuer.ends_with('/') {
        return Err("issuer must not end with '/'".into());
    }
    Ok(())
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("issuer", &self.issuer)
            .field("database_url", &"[redacted]")
            .field("admin_tokens", &self.admin_tokens.len())
            .field("kek_file", &self.kek_file)
            .field("signing_alg", &self.signing_alg)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("max_access_token_ttl", &self.max_access_token_ttl)
            .finish_non_exhaustive()
    }
}

/// A value from TOML or the environment that should be text. Environment
/// values that look like numbers or booleans arrive typed; take them back as text.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    fn into_string(self) -> String {
        match self {
            Self::Text(s) => s,
            Self::Int(i) => i.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Bool(b) => b.to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<Scalar>),
    One(Scalar),
}

fn comma_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SecretString>, D::Error> {
    let items = match OneOrMany::deserialize(d)? {
        OneOrMany::Many(v) => v.into_iter().map(Scalar::into_string).collect(),
        OneOrMany::One(s) => s
            .into_string()
            .split(',')
            .map(str::to_owned)
            .collect::<Vec<_>>(),
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .map(SecretString::from)
        .collect())
}

fn comma_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::Many(v) => v.into_iter().map(Scalar::into_string).collect::<Vec<_>>(),
        OneOrMany::One(s) => s.into_string().split(',').map(str::to_owned).collect(),
    }
    .into_iter()
    .map(|s| s.trim().to_owned())
    .filter(|s| !s.is_empty())
    .collect())
}

fn optional_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Ok(Option::<Scalar>::deserialize(d)?.map(|s| SecretString::from(s.into_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::Serialized;

    fn settings(pairs: &[(&str, serde_json::Value)]) -> Result<Settings, ConfigError> {
        let mut figment = Figment::new();
        for (k, v) in pairs {
            figment = figment.merge(Serialized::default(k, v));
        }
        Settings::from_figment(&figment)
    }

    #[test]
    fn defaults_follow_the_specification() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            s.database_url.expose_secret(),
            "sqlite://data/portcullis.db"
        );
        assert_eq!(s.signing_alg, Algorithm::Es256);
        assert_eq!(s.access_token_ttl, 300);
        assert!(s.may_generate_kek());
    }

    #[test]
    fn admin_tokens_accept_a_comma_separated_string_or_a_list() {
        let s = settings(&[(
            "admin_tokens",
            "first-admin-token-0001, second-admin-token-002".into(),
        )])
        .unwrap();
        assert_eq!(s.admin_tokens.len(), 2);
        assert_eq!(s.admin_tokens[1].expose_secret(), "second-admin-token-002");
        let s = settings(&[("admin_tokens", serde_json::json!(["x-admin-token-00001"]))]).unwrap();
        assert_eq!(s.admin_tokens.len(), 1);
    }

    #[test]
    fn inconsistent_values_are_refused_with_the_setting_named() {
        let cases: &[(&[(&str, serde_json::Value)], &str)] = &[
            (&[("access_token_ttl", 0.into())], "access_token_ttl"),
            (&[("access_token_ttl", 7200.into())], "max_access_token_ttl"),
            (&[("issuer", "ftp://x".into())], "issuer"),
            (&[("issuer", "https://x/?a=b".into())], "issuer"),
            (&[("database_url", "mysql://x".into())], "database_url"),
            (&[("admin_tokens", "short".into())], "admin token"),
            (&[("listen", "not an address".into())], "listen"),
            (&[("unknown_key", 1.into())], "unknown_key"),
            (&[("key_prepublish", 300.into())], "key_prepublish"),
            (
                &[
                    ("key_prepublish", 7200.into()),
                    ("key_rotation_interval", 3600.into()),
                ],
                "key_rotation_interval",
            ),
            (&[("signing_alg", "HS256".into())], "signing_alg"),
        ];
        for (pairs, needle) in cases {
            let err = settings(pairs)
                .err()
                .unwrap_or_else(|| panic!("{needle}: accepted"));
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn the_example_configuration_file_loads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/portcullis.example.toml");
        let s = Settings::from_figment(&Figment::new().merge(Toml::file(path))).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.log_format, LogFormat::Json);
    }

    #[test]
    fn postgres_does_not_generate_a_kek_unless_told_to() {
        let s = settings(&[("database_url", "postgres://localhost/x".into())]).unwrap();
        assert!(!s.may_generate_kek());
        let s = settings(&[
            ("database_url", "postgres://localhost/x".into()),
            ("kek_generate", true.into()),
        ])
        .unwrap();
        assert!(s.may_generate_kek());
    }
}
