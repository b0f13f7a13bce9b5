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

/// A `token_issued` event for a token bound to nothing beyond its client (a
/// `Bearer` token without provenance claims: the common case), in a typed
/// form journaled without building a [`Value`]. It stores exactly what
/// [`AuditEvent`] would hold for it: actor `client:<client_id>`, no reason,
/// and details `{auth_method, expires_in, grant_type, jti,
/// refresh_token_issued, scope}`.
#[derive(Clone, Copy)]
pub struct TokenIssued<'a> {
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// The client the token was issued to.
    pub client_id: &'a str,
    /// The request.
    pub request_id: Option<&'a str>,
    /// The grant's wire name.
    pub grant_type: &'static str,
    /// How the client authenticated.
    pub auth_method: &'static str,
    /// The token's `jti`.
    pub jti: &'a str,
    /// The granted scope (space-separated when displayed).
    pub scope: &'a (dyn std::fmt::Display + Sync),
    /// Lifetime in seconds.
    pub expires_in: u32,
    /// Whether a refresh token came with it.
    pub refresh_token_issued: bool,
}

impl TokenIssued<'_> {
    /// The event kind.
    pub const KIND: &'static str = "token_issued";

    /// The event's details, serialised as the JSON object [`AuditEvent`]
    /// would hold (keys in the order a [`serde_json::Map`] keeps them).
    #[must_use]
    pub fn details(&self) -> IssuedDetails<'_> {
        IssuedDetails(self)
    }

    /// The same event as an [`AuditEvent`] (tests compare both forms).
    #[must_use]
    pub fn to_event(&self) -> AuditEvent {
        AuditEvent {
            occurred_at: self.occurred_at,
            kind: Self::KIND,
            actor: ClientActor(self.client_id).to_string(),
            client_id: Some(self.client_id.to_owned()),
            request_id: self.request_id.map(str::to_owned),
            reason: None,
            details: serde_json::to_value(self.details()).unwrap_or(Value::Null),
        }
    }
}

/// The details of a [`TokenIssued`] event: serialises (and displays) as
/// their JSON object.
pub struct IssuedDetails<'a>(&'a TokenIssued<'a>);

impl serde::Serialize for IssuedDetails<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let e = self.0;
        let mut map = serializer.serialize_map(Some(6))?;
        map.serialize_entry("auth_method", e.auth_method)?;
        map.serialize_entry("expires_in", &e.expires_in)?;
        map.serialize_entry("grant_type", e.grant_type)?;
        map.serialize_entry("jti", e.jti)?;
        map.serialize_entry("refresh_token_issued", &e.refresh_token_issued)?;
        map.serialize_entry("scope", &Shown(e.scope))?;
        map.end()
    }
}

impl std::fmt::Display for IssuedDetails<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let json = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&json)
    }
}

/// The actor of an event caused by a client: `client:<id>`.
pub(crate) struct ClientActor<'a>(pub &'a str);

impl std::fmt::Display for ClientActor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("client:")?;
        f.write_str(self.0)
    }
}

/// A displayable value serialised as a JSON string, without an intermediate `String`.
pub(crate) struct Shown<'a>(pub &'a (dyn std::fmt::Display + Sync));

impl serde::Serialize for Shown<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self.0)
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
