//! Importing a client with the secret it already has at another
//! authorization server (Keycloak, Ory Hydra, …), so moving to Portcullis
//! does not mean re-issuing every secret. Only the operator's tools reach
//! this (the CLI, and the declarative `apply` built on [`ImportRequest`]),
//! never the public registration API.
//!
//! The secret comes either in clear (from an environment variable or a file:
//! hashed here with argon2id, after the minimum of
//! [`check_imported_plaintext`]) or as the other server's hash (bcrypt,
//! PBKDF2 as Ory Hydra stores it, argon2id), kept and verified in its own
//! format. Either way it is marked imported: it keeps its slow hash, and
//! failures count towards the per-address lockout, until the client's next
//! rotation gives it a generated secret.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::json;

use super::{
    registry::apply,
    secret::{check_imported_plaintext, SecretHash},
    Client, ClientView, Registry, RegistryError,
};
use crate::{
    audit::AuditEvent,
    store::{NewSecret, Store},
};

/// The secret a client already has.
pub enum ExistingSecret {
    /// In clear: hashed with argon2id on import.
    Plaintext(SecretString),
    /// The other server's hash of it, kept as it is.
    Hash(String),
}

impl std::fmt::Debug for ExistingSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plaintext(_) => "Plaintext([redacted])",
            Self::Hash(_) => "Hash([redacted])",
        })
    }
}

impl ExistingSecret {
    /// The stored hash, or why the secret cannot be imported.
    pub fn to_hash(&self) -> Result<SecretHash, String> {
        match self {
            Self::Plaintext(secret) => SecretHash::import_plaintext(secret),
            Self::Hash(text) => SecretHash::import_hash(text),
        }
    }

    /// Checks the secret without hashing it (cheap, for plans and dry runs).
    pub fn check(&self) -> Result<(), String> {
        match self {
            Self::Plaintext(secret) => {
                check_imported_plaintext(secrecy::ExposeSecret::expose_secret(secret))
            }
            Self::Hash(text) => SecretHash::import_hash(text).map(|_| ()),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Plaintext(_) => "plaintext",
            Self::Hash(_) => "hash",
        }
    }
}

/// A client to register with its existing secret.
#[derive(Debug)]
pub struct ImportRequest {
    /// The client's metadata; `client_id` is required (callers keep their id),
    /// and the method must be `client_secret_basic` or `client_secret_post`.
    pub registration: crate::clients::RegistrationRequest,
    /// The secret.
    pub secret: ExistingSecret,
    /// Where the import came from, for the audit trail (`cli`, a file name…).
    pub source: String,
}

impl Registry {
    /// Registers a client with its existing secret. Nothing is stored unless
    /// the metadata and the secret are both acceptable.
    #[tracing::instrument(skip_all)]
    pub async fn import(
        &self,
        actor: &str,
        request: ImportRequest,
        now: DateTime<Utc>,
    ) -> Result<Client, RegistryError> {
        let meta = request
            .registration
            .validate(&self.limits)
            .map_err(RegistryError::InvalidMetadata)?;
        let id = meta.client_id.clone().ok_or_else(|| {
            RegistryError::InvalidMetadata(
                "client_id is required when importing: callers keep the id they have".into(),
            )
        })?;
        let client = apply(meta, id, None, now);
        if !client.auth_method.uses_secret() {
            return Err(RegistryError::InvalidMetadata(format!(
                "only clients that authenticate with a secret can be imported with one, not {}",
                client.auth_method.as_str()
            )));
        }
        request
            .secret
            .check()
            .map_err(RegistryError::InvalidMetadata)?;
        self.writable()?;
        let secret = request.secret;
        let kind = secret.kind();
        let hash = tokio::task::spawn_blocking(move || secret.to_hash())
            .await
            .map_err(anyhow::Error::from)?
            .map_err(RegistryError::InvalidMetadata)?;
        let scheme = hash.scheme().map_or("unknown", |s| s.as_str());
        let new = NewSecret {
            id: uuid::Uuid::new_v4().to_string(),
            hash,
            created_at: now,
        };
        self.store.create_client(&client, Some(&new)).await?;
        tracing::info!(client_id = %client.id, scheme, "client imported with its existing secret");
        let event = AuditEvent::new("client_imported", actor, now)
            .client(client.id.as_str())
            .details(json!({
                "after": ClientView::new(&client, None),
                "secret": { "given_as": kind, "scheme": scheme },
                "source": request.source,
            }));
        self.auditor
            .record_durable(event)
            .await
            .map_err(anyhow::Error::from)?;
        Ok(client)
    }
}
