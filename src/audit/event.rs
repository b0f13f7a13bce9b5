//! The audit event and the filter that selects events: plain data shared by
//! the audit writer, the store and every module that records what happened.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// An event to record.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// What.
    pub kind: &'static str,
    /// Who.
    pub actor: String,
    /// The client concerned.
    pub client_id: Option<String>,
    /// The request.
    pub request_id: Option<String>,
    /// Why (denials, failures).
    pub reason: Option<String>,
    /// Event-specific JSON; never secrets.
    pub details: Value,
}

impl AuditEvent {
    /// An event of `kind` by `actor` at `now`.
    #[must_use]
    pub fn new(kind: &'static str, actor: impl Into<String>, now: DateTime<Utc>) -> Self {
        Self {
            occurred_at: now,
            kind,
            actor: actor.into(),
            client_id: None,
            request_id: crate::telemetry::current_request_id(),
            reason: None,
            details: Value::Object(serde_json::Map::new()),
        }
    }

    /// Names the client concerned.
    #[must_use]
    pub fn client(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// Names the request.
    #[must_use]
    pub fn request(mut self, id: Option<&str>) -> Self {
        self.request_id = id.map(str::to_owned);
        self
    }

    /// Gives the reason.
    #[must_use]
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Attaches details.
    #[must_use]
    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// Which events `GET /admin/audit` returns.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only this client's events.
    pub client_id: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// Events with a larger id (the page cursor).
    pub after_id: i64,
    /// Page size.
    pub limit: u32,
}
