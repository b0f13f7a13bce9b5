//! Client registry operations (RFC 7591 / 7592 semantics), shared by the admin
//! REST API and the CLI so both behave identically.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use serde_json::json;

use super::{
    metadata::Limits,
    model::{ClientMetadata, ClientState, RegistrationRequest},
    Client, ClientCache, ClientId, ClientView, PlainSecret, SecretVerifier,
};
use crate::{
    audit::{AuditEvent, Auditor},
    store::{NewSecret, Storage, Store, StoreError},
};

/// The longest grace period an old secret may be given on rotation (30 days).
pub const MAX_GRACE_PERIOD_SECS: i64 = 30 * 24 * 3600;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Invalid client metadata (RFC 7591 `invalid_client_metadata`).
    #[error("{0}")]
    InvalidMetadata(String),
    /// No such client.
    #[error("no client with this client_id")]
    NotFound,
    /// The requested client id is taken.
    #[error("a client with this client_id already exists")]
    Conflict,
    /// The client's current registration does not allow the operation (a
    /// secret rotation for a client that authenticates without a secret).
    #[error("{0}")]
    StateConflict(String),
    /// Something outside the caller's control failed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict { .. } => Self::Conflict,
            e => Self::Internal(e.into()),
        }
    }
}

/// The registry: storage plus the server limits metadata is checked against.
#[derive(Clone, Debug)]
pub struct Registry {
    pub(super) store: Storage,
    pub(super) limits: Limits,
    pub(super) auditor: Auditor,
    cache: Option<Arc<ClientCache>>,
    hasher: SecretVerifier,
}

impl Registry {
    /// A registry over `store`; `limits` cap clients' token lifetimes.
    #[must_use]
    pub fn new(store: Storage, limits: Limits, auditor: Auditor) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self {
            store,
            limits,
            auditor,
            cache: None,
            hasher: SecretVerifier::new(cores),
        }
    }

    /// Hashes new secrets under the server's argon2 bound.
    #[must_use]
    pub fn with_verifier(mut self, verifier: SecretVerifier) -> Self {
        self.hasher = verifier;
        self
    }

    /// Drops changed clients from `cache` (the server's) as well.
    #[must_use]
    pub fn with_cache(mut self, cache: Arc<ClientCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// After a change: forget the client here and tell the other replicas.
    /// A change can be stored and audited now: the database is reachable and
    /// the audit journal has room. Checked before a change, so none is made
    /// that could not be audited.
    pub(super) fn writable(&self) -> Result<(), RegistryError> {
        self.store.check_available()?;
        if !self.auditor.has_room() {
            return Err(anyhow::Error::from(crate::audit::AuditUnavailable).into());
        }
        Ok(())
    }

    pub(super) async fn changed(&self, id: &ClientId) -> Result<(), RegistryError> {
        if let Some(cache) = &self.cache {
            cache.invalidate(id.as_str());
        }
        self.store.notify_client_changed(id).await?;
        Ok(())
    }

    /// Registers a client and returns it with its generated secret (shown
    /// once), when it authenticates with one.
    #[tracing::instrument(skip_all)]
    pub async fn create(
        &self,
        actor: &str,
        request: RegistrationRequest,
        now: DateTime<Utc>,
    ) -> Result<(Client, Option<PlainSecret>), RegistryError> {
        let meta = request
            .validate(&self.limits)
            .map_err(RegistryError::InvalidMetadata)?;
        // Fail fast during an outage, before hashing a secret for nothing.
        self.writable()?;
        let id = meta.client_id.clone().unwrap_or_else(ClientId::generate);
        let client = apply(meta, id, None, now);
        let (secret, new) = if client.auth_method.uses_secret() {
            let (secret, new) = new_secret(&self.hasher, now)?;
            (Some(secret), Some(new))
        } else {
            (None, None)
        };
        self.store.create_client(&client, new.as_ref()).await?;
        tracing::info!(client_id = %client.id, "client registered");
        self.audit(
            "client_created",
            actor,
            &client.id,
            now,
            None,
            Some(&client),
        )
        .await?;
        Ok((client, secret))
    }

    /// Looks a client up.
    pub async fn get(&self, id: &str) -> Result<Client, RegistryError> {
        let id = ClientId::parse(id).map_err(|_| RegistryError::NotFound)?;
        self.store
            .find_client(&id)
            .await?
            .ok_or(RegistryError::NotFound)
    }

    /// A page of clients ordered by id, after `after`.
    pub async fn list(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Client>, RegistryError> {
        let after = match after {
            Some(a) => Some(ClientId::parse(a).map_err(RegistryError::InvalidMetadata)?),
            None => None,
        };
        Ok(self.store.list_clients(after.as_ref(), limit).await?)
    }

    /// Replaces a client's metadata (RFC 7592 §2.2: omitted fields take their
    /// defaults). A `client_id` in the body must match.
    #[tracing::instrument(skip_all, fields(client_id = %id))]
    pub async fn update(
        &self,
        actor: &str,
        id: &str,
        request: RegistrationRequest,
        now: DateTime<Utc>,
    ) -> Result<Client, RegistryError> {
        self.writable()?;
        let existing = self.get(id).await?;
        let meta = request
            .validate(&self.limits)
            .map_err(RegistryError::InvalidMetadata)?;
        if meta.client_id.as_ref().is_some_and(|c| c != &existing.id) {
            return Err(RegistryError::InvalidMetadata(
                "client_id in the body does not match the URL".into(),
            ));
        }
        let client = apply(meta, existing.id.clone(), Some(&existing), now);
        self.store.update_client(&client).await?;
        tracing::info!(client_id = %client.id, "client updated");
        self.changed(&client.id).await?;
        self.audit(
            "client_updated",
            actor,
            &client.id,
            now,
            Some(&existing),
            Some(&client),
        )
        .await?;
        Ok(client)
    }

    /// Enables or disables a client.
    #[tracing::instrument(skip_all, fields(client_id = %id))]
    pub async fn set_enabled(
        &self,
        actor: &str,
        id: &str,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<Client, RegistryError> {
        self.writable()?;
        let before = self.get(id).await?;
        let mut client = before.clone();
        client.enabled = enabled;
        client.updated_at = now;
        self.store.update_client(&client).await?;
        tracing::info!(client_id = %client.id, enabled, "client enabled state changed");
        self.changed(&client.id).await?;
        let kind = if enabled {
            "client_enabled"
        } else {
            "client_disabled"
        };
        self.audit(kind, actor, &client.id, now, Some(&before), Some(&client))
            .await?;
        Ok(client)
    }

    /// Revokes every live token of a client; returns the refresh families revoked.
    #[tracing::instrument(skip_all, fields(client_id = %id))]
    pub async fn revoke_tokens(
        &self,
        actor: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, RegistryError> {
        self.writable()?;
        let id = ClientId::parse(id).map_err(|_| RegistryError::NotFound)?;
        let families = self.store.revoke_client_tokens(&id, now).await?;
        self.changed(&id).await?;
        let event = AuditEvent::new("client_tokens_revoked", actor, now)
            .client(id.as_str())
            .details(json!({ "refresh_token_families_revoked": families, "access_tokens_issued_before": now.timestamp() }));
        self.auditor
            .record_durable(event)
            .await
            .map_err(anyhow::Error::from)?;
        Ok(families)
    }

    /// Lifts a lockout.
    #[tracing::instrument(skip_all, fields(client_id = %id))]
    pub async fn unlock(
        &self,
        actor: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Client, RegistryError> {
        self.writable()?;
        let before = self.get(id).await?;
        self.store.set_client_lock(&before.id, None).await?;
        self.changed(&before.id).await?;
        let after = self.get(id).await?;
        self.audit(
            "client_unlocked",
            actor,
            &after.id,
            now,
            Some(&before),
            Some(&after),
        )
        .await?;
        Ok(after)
    }

    /// Records an admin change with the client before and after (never secrets).
    async fn audit(
        &self,
        kind: &'static str,
        actor: &str,
        id: &ClientId,
        now: DateTime<Utc>,
        before: Option<&Client>,
        after: Option<&Client>,
    ) -> Result<(), RegistryError> {
        let event = AuditEvent::new(kind, actor, now)
            .client(id.as_str())
            .details(json!({
                "before": before.map(|c| ClientView::new(c, None)),
                "after": after.map(|c| ClientView::new(c, None)),
            }));
        self.auditor
            .record_durable(event)
            .await
            .map_err(anyhow::Error::from)?;
        Ok(())
    }

    /// Deletes a client and its secrets.
    #[tracing::instrument(skip_all, fields(client_id = %id))]
    pub async fn delete(
        &self,
        actor: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RegistryError> {
        self.writable()?;
        let before = self.get(id).await?;
        self.store.delete_client(&before.id).await?;
        tracing::info!(client_id = %before.id, "client deleted");
        self.changed(&before.id).await?;
        self.audit(
            "client_deleted",
            actor,
            &before.id,
            now,
            Some(&before),
            None,
        )
        .await
    }

    /// Issues a new secret; the previous ones stay valid for `grace_secs`
    /// (0 = they stop working at once). Returns the secret and when the old
    /// ones stop working.
    #[tracing::instrument(skip_all, fields(client_id = %id))]
    pub async fn rotate_secret(
        &self,
        actor: &str,
        id: &str,
        grace_secs: i64,
        now: DateTime<Utc>,
    ) -> Result<(PlainSecret, DateTime<Utc>), RegistryError> {
        if !(0..=MAX_GRACE_PERIOD_SECS).contains(&grace_secs) {
            return Err(RegistryError::InvalidMetadata(format!(
                "grace_period must be between 0 and {MAX_GRACE_PERIOD_SECS} seconds"
            )));
        }
        let client = self.get(id).await?;
        if !client.auth_method.uses_secret() {
            return Err(RegistryError::StateConflict(format!(
                "the client authenticates with {} and has no secret; register it for client_secret_basic or client_secret_post first",
                client.auth_method.as_str()
            )));
        }
        let id = client.id;
        self.writable()?;
        let (secret, new) = new_secret(&self.hasher, now)?;
        let until = now + Duration::seconds(grace_secs);
        self.store.rotate_client_secret(&id, &new, until).await?;
        tracing::info!(client_id = %id, grace_secs, "client secret rotated");
        self.changed(&id).await?;
        let event = AuditEvent::new("client_secret_rotated", actor, now)
            .client(id.as_str())
            .details(json!({ "grace_period": grace_secs, "previous_secrets_expire_at": until.timestamp() }));
        self.auditor
            .record_durable(event)
            .await
            .map_err(anyhow::Error::from)?;
        Ok((secret, until))
    }
}

/// The client `meta` describes; what is not metadata (enabled state,
/// registration time, revocation cut-off, lockout) is kept from `existing`.
pub(super) fn apply(
    meta: ClientMetadata,
    id: ClientId,
    existing: Option<&Client>,
    now: DateTime<Utc>,
) -> Client {
    let state = existing.map_or_else(|| ClientState::registered(now), Client::state);
    meta.into_client(
        id,
        ClientState {
            updated_at: now,
            ..state
        },
    )
}

/// Generates a secret and its stored hash (the fast format: it is random).
fn new_secret(
    verifier: &SecretVerifier,
    now: DateTime<Utc>,
) -> Result<(PlainSecret, NewSecret), RegistryError> {
    let (secret, hash) = verifier.new_secret()?;
    let new = NewSecret {
        id: uuid::Uuid::new_v4().to_string(),
        hash,
        created_at: now,
    };
    Ok((secret, new))
}
