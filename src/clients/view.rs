//! [`ClientView`]: a client as the admin API and the CLI show it (RFC 7591
//! §3.2.1 response members plus Portcullis's own).

use serde::Serialize;

use super::{Client, PlainSecret, RegistrationRequest};

/// The JSON representation of a client: its registered metadata (every
/// member of the field table, through [`RegistrationRequest`]) and what the
/// server adds.
#[derive(Debug, Serialize)]
pub struct ClientView {
    /// The metadata the client is registered with, `client_id` included.
    #[serde(flatten)]
    pub metadata: RegistrationRequest,
    /// Present only in the response that created or rotated the secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Registration time, seconds since the epoch.
    pub client_id_issued_at: i64,
    /// 0: the secret does not expire (it is rotated explicitly). Absent for
    /// clients that authenticate without a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
    /// Locked after failed authentication until (seconds since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<i64>,
    /// Whether the client may obtain tokens.
    pub enabled: bool,
    /// Last change, seconds since the epoch.
    pub updated_at: i64,
}

impl ClientView {
    /// The view of `client`, with `secret` when it was just generated.
    #[must_use]
    pub fn new(client: &Client, secret: Option<&PlainSecret>) -> Self {
        let mut metadata = RegistrationRequest::from(client);
        // A client that authenticates with its certificate always gets
        // certificate-bound tokens, whatever it registered.
        metadata.tls_client_certificate_bound_access_tokens =
            Some(client.certificate_bound_access_tokens || client.auth_method.uses_certificate());
        Self {
            metadata,
            client_secret: secret.map(|s| s.expose().to_owned()),
            client_id_issued_at: client.created_at.timestamp(),
            client_secret_expires_at: client.auth_method.uses_secret().then_some(0),
            locked_until: client.locked_until.map(|t| t.timestamp()),
            enabled: client.enabled,
            updated_at: client.updated_at.timestamp(),
        }
    }
}
