//! Federation administration ([`FederationRegistry`]: create, list, show,
//! replace, enable/disable, delete; each change checked, stored and audited
//! durably, shared by the admin REST API and the CLI) and the server's view
//! of them ([`Directory`]: the federations by issuer, re-read from the store
//! every [`REFRESH`] and at once after a change made here; while the
//! database is unreachable the last set read stays in force).

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Federation, FederationLimits, FederationRequest};
use crate::{
    audit::{AuditEvent, Auditor},
    clock::Clock,
    store::{FederationStore as _, Storage, StoreError},
};

/// How long another replica's change may take to be seen here.
pub const REFRESH: Duration = Duration::from_secs(10);

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// Invalid federation metadata.
    #[error("{0}")]
    Invalid(String),
    /// No such federation.
    #[error("no federation with this federation_id")]
    NotFound,
    /// The id or issuer is taken.
    #[error("a federation with this federation_id or issuer already exists")]
    Conflict,
    /// Something outside the caller's control failed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for FederationError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict { .. } => Self::Conflict,
            e => Self::Internal(e.into()),
        }
    }
}

/// The federations the token endpoint trusts, held in memory. While the
/// database is unreachable the last set read stays in force (none, if none
/// was read since start).
#[derive(Debug)]
pub struct Directory {
    store: Storage,
    clock: Clock,
    loaded: ArcSwap<Option<(Vec<Federation>, DateTime<Utc>)>>,
    reload: tokio::sync::Mutex<()>,
}

impl Directory {
    /// An empty directory over `store`, read at first use.
    #[must_use]
    pub fn new(store: Storage, clock: Clock) -> Self {
        Self {
            store,
            clock,
            loaded: ArcSwap::from_pointee(None),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    /// Forgets the set, so the next use reads the store.
    pub fn invalidate(&self) {
        self.loaded.store(Arc::new(None));
    }

    /// The federation whose issuer is `issuer` (enabled or not).
    pub async fn by_issuer(&self, issuer: &str) -> Result<Option<Federation>, StoreError> {
        let all = self.all().await?;
        Ok(all.iter().find(|f| f.issuer == issuer).cloned())
    }

    /// Every federation: the set in memory while it is younger than
    /// [`REFRESH`]; else read again (the old set is kept while the store fails).
    async fn all(&self) -> Result<Arc<Vec<Federation>>, StoreError> {
        let now = self.clock.now();
        let fresh = |loaded: &Option<(Vec<Federation>, DateTime<Utc>)>| {
            loaded.as_ref().and_then(|(set, at)| {
                let age = (now - *at).to_std().unwrap_or(Duration::ZERO);
                (age < REFRESH).then(|| Arc::new(set.clone()))
            })
        };
        if let Some(set) = fresh(&self.loaded.load()) {
            return Ok(set);
        }
        let _one = self.reload.lock().await;
        if let Some(set) = fresh(&self.loaded.load()) {
            return Ok(set);
        }
        match self.store.federations().await {
            Ok(set) => {
                self.loaded.store(Arc::new(Some((set.clone(), now))));
                Ok(Arc::new(set))
            }
            Err(e) => match &**self.loaded.load() {
                Some((set, _)) => {
                    tracing::warn!(error.cause_chain = ?e, "federations could not be re-read: the last set stays in force");
                    Ok(Arc::new(set.clone()))
                }
                // Never read since start: trust no federation until the
                // database answers, rather than fail every assertion
                // (private_key_jwt clients keep working through an outage).
                None if e.is_unavailable() => {
                    tracing::warn!(error.cause_chain = ?e, "federations could not be read: none is trusted until the database answers");
                    Ok(Arc::new(Vec::new()))
                }
                None => Err(e),
            },
        }
    }
}

/// Administration of federations.
#[derive(Clone, Debug)]
pub struct FederationRegistry {
    store: Storage,
    auditor: Auditor,
    limits: FederationLimits,
    directory: Option<Arc<Directory>>,
}

impl FederationRegistry {
    /// A registry over `store`, auditing through `auditor`.
    #[must_use]
    pub fn new(store: Storage, limits: FederationLimits, auditor: Auditor) -> Self {
        Self {
            store,
            auditor,
            limits,
            directory: None,
        }
    }

    /// Refreshes `directory` (the server's) after each change.
    #[must_use]
    pub fn with_directory(mut self, directory: Arc<Directory>) -> Self {
        self.directory = Some(directory);
        self
    }

    fn writable(&self) -> Result<(), FederationError> {
        self.store.check_available()?;
        if !self.auditor.has_room() {
            return Err(anyhow::Error::from(crate::audit::AuditUnavailable).into());
        }
        Ok(())
    }

    /// Registers a federation.
    pub async fn create(
        &self,
        actor: &str,
        request: FederationRequest,
        now: DateTime<Utc>,
    ) -> Result<Federation, FederationError> {
        let generated = uuid::Uuid::new_v4().to_string();
        let federation = request
            .validate(generated, self.limits, now)
            .map_err(FederationError::Invalid)?;
        self.writable()?;
        self.store.create_federation(&federation).await?;
        self.changed("federation_created", actor, now, None, Some(&federation))
            .await?;
        Ok(federation)
    }

    /// Every federation, ordered by id.
    pub async fn list(&self) -> Result<Vec<Federation>, FederationError> {
        Ok(self.store.federations().await?)
    }

    /// One federation.
    pub async fn get(&self, id: &str) -> Result<Federation, FederationError> {
        self.list()
            .await?
            .into_iter()
            .find(|f| f.id == id)
            .ok_or(FederationError::NotFound)
    }

    /// Replaces a federation's metadata (omitted members take their defaults).
    pub async fn update(
        &self,
        actor: &str,
        id: &str,
        request: FederationRequest,
        now: DateTime<Utc>,
    ) -> Result<Federation, FederationError> {
        if request.federation_id.as_deref().is_some_and(|f| f != id) {
            return Err(FederationError::Invalid(
                "federation_id in the body does not match the URL".into(),
            ));
        }
        self.writable()?;
        let before = self.get(id).await?;
        let mut federation = request
            .validate(id.to_owned(), self.limits, now)
            .map_err(FederationError::Invalid)?;
        federation.created_at = before.created_at;
        self.store.update_federation(&federation).await?;
        self.changed(
            "federation_updated",
            actor,
            now,
            Some(&before),
            Some(&federation),
        )
        .await?;
        Ok(federation)
    }

    /// Enables or disables a federation.
    pub async fn set_enabled(
        &self,
        actor: &str,
        id: &str,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<Federation, FederationError> {
        self.writable()?;
        let before = self.get(id).await?;
        let mut federation = before.clone();
        federation.enabled = enabled;
        federation.updated_at = now;
        self.store.update_federation(&federation).await?;
        let kind = if enabled {
            "federation_enabled"
        } else {
            "federation_disabled"
        };
        self.changed(kind, actor, now, Some(&before), Some(&federation))
            .await?;
        Ok(federation)
    }

    /// Deletes a federation.
    pub async fn delete(
        &self,
        actor: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), FederationError> {
        self.writable()?;
        let before = self.get(id).await?;
        self.store.delete_federation(id).await?;
        self.changed("federation_deleted", actor, now, Some(&before), None)
            .await
    }

    /// Refreshes the directory and records the change durably.
    async fn changed(
        &self,
        kind: &'static str,
        actor: &str,
        now: DateTime<Utc>,
        before: Option<&Federation>,
        after: Option<&Federation>,
    ) -> Result<(), FederationError> {
        if let Some(d) = &self.directory {
            d.invalidate();
        }
        let id = after.or(before).map(|f| f.id.clone()).unwrap_or_default();
        tracing::info!(federation = %id, kind, "federation changed");
        let event = AuditEvent::new(kind, actor, now).details(json!({
            "federation_id": id,
            "before": before.map(Federation::view),
            "after": after.map(Federation::view),
        }));
        self.auditor
            .record_durable(event)
            .await
            .map_err(anyhow::Error::from)?;
        Ok(())
    }
}
