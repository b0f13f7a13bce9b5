//! Logging: the format of log lines and the filter that selects them.

use serde::Deserialize;

/// Output format of the log lines.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (default; what log pipelines want).
    Json,
    /// Human-readable lines for a terminal.
    Pretty,
}

/// What is logged and how (`log_format`, `log_level`).
#[derive(Clone, Debug, Deserialize)]
pub struct LogSettings {
    /// Log output format.
    #[serde(default = "defaults::log_format")]
    pub log_format: LogFormat,
    /// Log filter (`tracing` `EnvFilter` syntax); `RUST_LOG` wins when set.
    #[serde(default = "defaults::log_level")]
    pub log_level: String,
}

mod defaults {
    use super::LogFormat;

    pub fn log_format() -> LogFormat {
        LogFormat::Json
    }
    pub fn log_level() -> String {
        "info,sqlx=warn".to_owned()
    }
}
