//! Logging: structured JSON lines (or pretty text for a terminal) through
//! `tracing`. Secrets never enter a span or an event: handlers and services
//! record only client ids, key ids and token ids (`jti`).

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

/// Installs the global subscriber; `RUST_LOG` overrides `level`. Safe to call twice.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

tokio::task_local! {
    /// The id of the request being served: set by the web layer's middleware,
    /// read by the audit trail, so every event names the request that caused it.
    pub static REQUEST_ID: String;
}

/// The id of the request being served, if any.
#[must_use]
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}
