//! Limits: request rates, token quotas, lockout after failed
//! authentications, how many argon2 verifications run at once, the bounds
//! of the JWKS consumer table, and whether metrics name clients.

use serde::Deserialize;

use super::ConfigError;

/// Protection against floods and guessing (`rate_limit_*`, `token_quota_*`,
/// `lockout_*`, `auth_failure_delay_ms`, `argon2_concurrency`,
/// `jwks_consumers_*`, `metrics_client_labels`).
#[derive(Clone, Debug, Deserialize)]
pub struct LimitSettings {
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
    /// JWKS requests per second per source address (0: off).
    #[serde(default = "defaults::rate_limit_jwks_per_second")]
    pub rate_limit_jwks_per_second: u32,
    /// Burst of the JWKS limit.
    #[serde(default = "defaults::rate_limit_jwks_burst")]
    pub rate_limit_jwks_burst: u32,
    /// Distinct `User-Agent`s tracked separately per source address (IPv6:
    /// per /64) as JWKS consumers; beyond it the address counts as one.
    #[serde(default = "defaults::jwks_consumers_per_address")]
    pub jwks_consumers_per_address: usize,
    /// Most JWKS consumers kept (in the store, and per process between flushes).
    #[serde(default = "defaults::jwks_consumers_max")]
    pub jwks_consumers_max: usize,
    /// Whether `/metrics` labels per-client series with `client_id`.
    #[serde(default)]
    pub metrics_client_labels: bool,
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
    /// How long after its request arrived a failed client authentication
    /// (`invalid_client`) is answered, in milliseconds (0: at once).
    #[serde(default = "defaults::auth_failure_delay_ms")]
    pub auth_failure_delay_ms: u64,
    /// Concurrent argon2 verifications; 0 means the number of CPU cores.
    #[serde(default)]
    pub argon2_concurrency: usize,
}

/// Longest `auth_failure_delay_ms`.
const MAX_AUTH_FAILURE_DELAY_MS: u64 = 10_000;

mod defaults {
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
    pub fn rate_limit_jwks_per_second() -> u32 {
        20
    }
    pub fn rate_limit_jwks_burst() -> u32 {
        100
    }
    pub fn jwks_consumers_per_address() -> usize {
        16
    }
    pub fn jwks_consumers_max() -> usize {
        10_000
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
    pub fn auth_failure_delay_ms() -> u64 {
        100
    }
}

impl LimitSettings {
    /// An enabled lockout has a window and a duration.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.lockout_threshold > 0 && (self.lockout_window == 0 || self.lockout_duration == 0) {
            return Err(ConfigError::Invalid(
                "lockout_window and lockout_duration must be at least 1 second".to_owned(),
            ));
        }
        if self.auth_failure_delay_ms > MAX_AUTH_FAILURE_DELAY_MS {
            return Err(ConfigError::Invalid(format!(
                "auth_failure_delay_ms must be at most {MAX_AUTH_FAILURE_DELAY_MS} (a failed \
                 authentication waits that long holding its connection)"
            )));
        }
        if self.jwks_consumers_max == 0 {
            return Err(ConfigError::Invalid(
                "jwks_consumers_max must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }

    /// How long after its arrival a failed client authentication is answered.
    #[must_use]
    pub fn auth_failure_delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.auth_failure_delay_ms)
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
