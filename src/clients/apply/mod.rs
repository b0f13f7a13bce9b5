//! Declarative clients (`portcullis apply`, `POST /admin/apply`): a document
//! names an owner and the clients it manages; the registry is reconciled to
//! it — missing clients created, the fields that differ updated, clients made
//! by hand adopted, and with `prune` the owner's clients the document no
//! longer names deleted. Clients of another owner are never touched.
//!
//! All or nothing, in two steps with no partial state between them: the
//! whole document is read and validated and the plan made first (every
//! error reported, nothing written); then every write of the plan runs in
//! one database transaction ([`crate::store::Store::apply_client_writes`]),
//! which either commits all of them or none. The transaction re-checks the
//! owner of each row it writes, so a concurrent change makes the apply fail
//! whole rather than overwrite it. Audit events and the cache invalidation
//! of every replica follow the commit, one per changed client, as for the
//! registry's other changes; an unchanged client writes nothing.
//!
//! Secrets come by reference only ([`secret_ref`]) and are imported as
//! [`crate::clients::import`] does. A declared plaintext secret is the
//! current one when the client's newest stored secret verifies it; a
//! declared hash, when it is the stored text.

pub mod document;
mod entry;
pub mod locate;
pub mod plan;
pub mod secret_ref;

use std::{collections::HashMap, fmt::Write as _};

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret as _;
use serde_json::json;

pub use document::{read_sources, Document, Source};
pub use plan::{Action, Change, Plan};
pub use secret_ref::{Environment, ProcessEnvironment, SecretRef};

use super::{
    import::ExistingSecret, registry::apply as build_client, Client, ClientId, ClientView,
    Registry, RegistryError,
};
use crate::{
    audit::AuditEvent,
    store::{ClientWrite, NewSecret, Store, StoreError},
};

/// How to apply.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApplyOptions {
    /// Make the plan only.
    pub dry_run: bool,
    /// Delete the owner's clients the document does not name.
    pub prune: bool,
}

/// Why a document was not applied (nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The document is invalid: every problem, each naming file and line.
    #[error("the document is refused: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// It names clients another owner manages, or the registry changed
    /// while it was applied.
    #[error("the document conflicts with the registry: {}", .0.join("; "))]
    Conflict(Vec<String>),
    /// The registry could not be read or written.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<StoreError> for ApplyError {
    fn from(e: StoreError) -> Self {
        Self::Registry(e.into())
    }
}

/// Where a document came from, for the audit trail.
#[derive(Clone, Debug)]
pub struct Origin {
    /// The path given to the CLI, or `api`.
    pub file: String,
}

/// The `sha256:` hex digest of the document: of its files' bytes, one after
/// the other in the order read (for one file, what `sha256sum` prints).
#[must_use]
pub fn digest(sources: &[Source]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for source in sources {
        context.update(&source.bytes);
    }
    let mut text = String::from("sha256:");
    for byte in context.finish().as_ref() {
        // Writing to a String cannot fail.
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// One planned client change and what writing it takes.
struct Step {
    change: Change,
    before: Option<Client>,
    after: Option<Client>,
    secret: Option<(ExistingSecret, SecretRef)>,
}

impl Registry {
    /// Reconciles the registry to the document in `sources` (see the module
    /// documentation), or only plans it with `dry_run`.
    #[tracing::instrument(skip_all, fields(file = %origin.file))]
    pub async fn apply_document(
        &self,
        actor: &str,
        origin: &Origin,
        sources: &[Source],
        env: &dyn Environment,
        options: ApplyOptions,
        now: DateTime<Utc>,
    ) -> Result<Plan, ApplyError> {
        let document = Document::parse(sources, &self.limits, env).map_err(ApplyError::Invalid)?;
        let digest = digest(sources);
        let steps = self
            .plan_steps(document.clients, &document.owner, options, now)
            .await?;
        let changes = steps.iter().map(|s| s.change.clone()).collect();
        let plan = Plan::new(document.owner.clone(), digest, changes, options.dry_run);
        if options.dry_run || !plan.changes_anything() {
            return Ok(plan);
        }
        self.writable()?;
        let mut writes = Vec::new();
        let mut secrets = Vec::new();
        for step in &steps {
            let secret = self.secret_to_write(step, now).await?;
            secrets.push(
                secret
                    .as_ref()
                    .map(|s| s.hash.scheme().map_or("unknown", |s| s.as_str())),
            );
            match (step.change.action, &step.after) {
                (Action::Create, Some(after)) => {
                    writes.push(ClientWrite::Create(after.clone(), secret));
                }
                (Action::Update | Action::Adopt, Some(after)) => {
                    writes.push(ClientWrite::Update(after.clone(), secret));
                }
                (Action::Delete, _) => writes.push(ClientWrite::Delete(
                    ClientId::parse(&step.change.client_id)
                        .map_err(RegistryError::InvalidMetadata)?,
                )),
                _ => {}
            }
        }
        self.store
            .apply_client_writes(&document.owner, &writes)
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } | StoreError::NotFound => ApplyError::Conflict(vec![
                    "the registry changed while the document was applied (a client was created, \
                     labelled or deleted meanwhile); nothing was changed: apply again"
                        .into(),
                ]),
                e => e.into(),
            })?;
        tracing::info!(owner = %document.owner, changed = writes.len(), "document applied");
        for (step, scheme) in steps.iter().zip(secrets) {
            self.record(actor, origin, &plan.digest, step, scheme, now)
                .await?;
        }
        Ok(plan)
    }

    /// The change for each declared client, then the deletions of `prune`.
    async fn plan_steps(
        &self,
        declared: Vec<document::DeclaredClient>,
        owner: &str,
        options: ApplyOptions,
        now: DateTime<Utc>,
    ) -> Result<Vec<Step>, ApplyError> {
        let owners: HashMap<String, String> = self
            .store
            .client_owners()
            .await?
            .into_iter()
            .map(|(id, o)| (id.to_string(), o))
            .collect();
        let mut steps = Vec::new();
        let mut conflicts = Vec::new();
        let mut named = Vec::new();
        for client in declared {
            named.push(client.id.to_string());
            let before = self.store.find_client(&client.id).await?;
            let after = build_client(client.metadata, client.id, before.as_ref(), now);
            let secret_field = match (&client.secret, &before) {
                (Some((secret, _)), Some(before)) => {
                    self.secret_change(&before.id, secret, now).await?
                }
                _ => None,
            };
            let current = before
                .as_ref()
                .map(|b| (b, owners.get(b.id.as_str()).map(String::as_str)));
            match plan::plan_client(&after, current, owner, secret_field) {
                Ok(change) => steps.push(Step {
                    change,
                    before,
                    after: Some(after),
                    secret: client.secret,
                }),
                Err(message) => conflicts.push(format!("{}: {message}", client.place)),
            }
        }
        if !conflicts.is_empty() {
            return Err(ApplyError::Conflict(conflicts));
        }
        if options.prune {
            for (id, _) in owners
                .iter()
                .filter(|(id, o)| o.as_str() == owner && !named.contains(*id))
            {
                let id = ClientId::parse(id).map_err(RegistryError::InvalidMetadata)?;
                let Some(before) = self.store.find_client(&id).await? else {
                    continue;
                };
                steps.push(Step {
                    change: Change {
                        action: Action::Delete,
                        client_id: id.to_string(),
                        fields: std::collections::BTreeMap::new(),
                    },
                    before: Some(before),
                    after: None,
                    secret: None,
                });
            }
            // Deletions in id order, whatever the map's.
            let first_delete = steps.iter().position(|s| s.change.action == Action::Delete);
            if let Some(at) = first_delete {
                steps[at..].sort_by(|a, b| a.change.client_id.cmp(&b.change.client_id));
            }
        }
        Ok(steps)
    }

    /// The `secret` field's change when the declared secret is not the
    /// client's newest stored one.
    async fn secret_change(
        &self,
        id: &ClientId,
        declared: &ExistingSecret,
        now: DateTime<Utc>,
    ) -> Result<Option<plan::FieldChange>, ApplyError> {
        let stored = self.store.client_secrets(id, now).await?;
        let Some((newest, _)) = stored.into_iter().next() else {
            return Ok(Some(plan::secret_change(false)));
        };
        let same = match declared {
            ExistingSecret::Hash(text) => super::SecretHash::import_hash(text)
                .is_ok_and(|h| h.as_stored() == newest.as_stored()),
            ExistingSecret::Plaintext(secret) => {
                let candidate = secret.expose_secret().as_bytes().to_vec();
                tokio::task::spawn_blocking(move || newest.verify(&candidate))
                    .await
                    .map_err(|e| RegistryError::Internal(e.into()))?
            }
        };
        Ok((!same).then(|| plan::secret_change(true)))
    }

    /// The stored secret a step writes: for a created client, or a changed secret.
    async fn secret_to_write(
        &self,
        step: &Step,
        now: DateTime<Utc>,
    ) -> Result<Option<NewSecret>, ApplyError> {
        let writes_secret = match step.change.action {
            Action::Create => true,
            Action::Update | Action::Adopt => step.change.fields.contains_key("secret"),
            Action::Delete | Action::Unchanged => false,
        };
        let Some((secret, _)) = step.secret.as_ref().filter(|_| writes_secret) else {
            return Ok(None);
        };
        let secret = match secret {
            ExistingSecret::Plaintext(s) => ExistingSecret::Plaintext(s.clone()),
            ExistingSecret::Hash(h) => ExistingSecret::Hash(h.clone()),
        };
        let hash = tokio::task::spawn_blocking(move || secret.to_hash())
            .await
            .map_err(|e| RegistryError::Internal(e.into()))?
            .map_err(|e| {
                ApplyError::Invalid(vec![format!("client {:?}: {e}", step.change.client_id)])
            })?;
        Ok(Some(NewSecret {
            id: uuid::Uuid::new_v4().to_string(),
            hash,
            created_at: now,
        }))
    }

    /// After the commit: the replicas forget the client, and the change is
    /// audited with its source.
    async fn record(
        &self,
        actor: &str,
        origin: &Origin,
        digest: &str,
        step: &Step,
        scheme: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), ApplyError> {
        let kind = match step.change.action {
            Action::Unchanged => return Ok(()),
            Action::Create => "client_created",
            Action::Update | Action::Adopt => "client_updated",
            Action::Delete => "client_deleted",
        };
        let id = ClientId::parse(&step.change.client_id).map_err(RegistryError::InvalidMetadata)?;
        self.changed(&id).await?;
        let mut details = json!({
            "before": step.before.as_ref().map(|c| ClientView::new(c, None)),
            "after": step.after.as_ref().map(|c| ClientView::new(c, None)),
            "action": step.change.action,
            "source": "apply",
            "file": origin.file,
            "digest": digest,
        });
        if let (Some(scheme), Some((secret, reference))) = (scheme, &step.secret) {
            details["secret"] = json!({
                "given_as": match secret { ExistingSecret::Plaintext(_) => "plaintext", ExistingSecret::Hash(_) => "hash" },
                "scheme": scheme,
                "reference": reference.describe(),
            });
        }
        let event = AuditEvent::new(kind, actor, now)
            .client(id.as_str())
            .details(details);
        self.auditor
            .record_durable(event)
            .await
            .map_err(|e| RegistryError::Internal(e.into()))?;
        Ok(())
    }
}
