//! The audit trail (SPEC §3): every token issued or denied, refresh reuse,
//! revocation, lockout, admin change and key rotation is an append-only,
//! hash-chained event in the database and a JSON log line.
//!
//! No event is lost: [`AuditSink::record`] returns once the event is durable
//! in the local [`journal`] (written and synced by the group-commit
//! `writer` thread, many events per sync), so the token endpoint sends a
//! token only after its `token_issued` event is on disk. The `apply`
//! task then appends journaled events to the database in order and batches,
//! retrying while the database is unavailable; after a crash the journal is
//! replayed from where the database's cursor stands.
//! [`AuditSink::record_durable`] also waits (briefly) for the database
//! commit, for events an operator acted on (admin changes), so the trail
//! shows them at once; [`AuditSink::flush`] waits until everything recorded
//! before it is in the database.

mod apply;
pub mod chain;
pub mod checkpoint;
pub mod denials;
pub mod event;
pub mod export;
pub mod journal;
mod keys;
pub mod retention;
pub mod verify;
mod writer;

pub use event::{AuditEvent, AuditFilter, TokenIssued};
pub use verify::{verify_archive, verify_store, VerifyReport};

use std::sync::Arc;

use tokio::sync::{watch, Notify};

use crate::{
    metrics::{JournalGauges, Metrics},
    store::{Storage, Store},
};
use chrono::{DateTime, Utc};
use denials::{DenialKey, Denials, Fold, Repeated};
use journal::{Files, Journal};
use writer::Inbox;

/// How long an admin change waits for its event to reach the database.
const APPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The audit trail's entrance, cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditSink {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    inbox: Arc<Inbox>,
    files: Arc<Files>,
    applied: watch::Receiver<u64>,
    /// Asks the database writer to apply what is durable now.
    urgent: Arc<Notify>,
    /// Repeated client-authentication failures, folded.
    denials: Denials,
}

/// The last handle gone, the writer thread finishes and closes the journal.
impl Drop for Inner {
    fn drop(&mut self) {
        self.inbox.close();
    }
}

/// The audit trail could not accept or write the event.
#[derive(Debug, thiserror::Error)]
#[error("the audit trail is unavailable")]
pub struct AuditUnavailable;

impl AuditSink {
    /// Starts the journal's writer thread and the task applying it to `store`
    /// (first replaying what the database does not hold yet). Must be called
    /// within a Tokio runtime.
    pub fn start(store: Storage, journal: Journal, metrics: Metrics) -> std::io::Result<Self> {
        let files = Arc::clone(journal.files());
        let inbox = Arc::new(Inbox::default());
        let urgent = Arc::new(Notify::new());
        let (applied_tx, applied) = watch::channel(files.applied());
        writer::spawn(journal, Arc::clone(&inbox), metrics)?;
        tokio::spawn(apply::run(
            store,
            Arc::clone(&files),
            Arc::clone(&urgent),
            applied_tx,
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                inbox,
                files,
                applied,
                urgent,
                denials: Denials::default(),
            }),
        })
    }

    /// Records `event` (and logs it); returns once it is durable in the
    /// journal, or `Err` when the journal refused it (full or unwritable).
    pub async fn record(&self, event: AuditEvent) -> Result<(), AuditUnavailable> {
        self.journal(&event).await.map(|_| ())
    }

    /// Records a typed `token_issued` event (and logs it) like [`Self::record`],
    /// serialising it into the journal without an intermediate `Value`.
    pub async fn record_issued(&self, event: &TokenIssued<'_>) -> Result<(), AuditUnavailable> {
        log_issued(event);
        let payload = journal::encode_token_issued(event);
        if let Ok(Ok(_)) = self.inner.inbox.submit(Some(payload)).await {
            return Ok(());
        }
        tracing::debug!(
            event = TokenIssued::KIND,
            "the audit journal refused an event"
        );
        Err(AuditUnavailable)
    }

    /// Whether a client-authentication failure is audited now or folded
    /// into its window ([`denials`]), and the repeats of the window it closed.
    #[must_use]
    pub fn fold_denial(&self, key: DenialKey, now: DateTime<Utc>) -> (Fold, Option<Repeated>) {
        self.inner.denials.admit(key, now)
    }

    /// Waits for the journal's current group commit without writing
    /// anything: a folded denial is answered when a recorded one would be,
    /// so a flood of them is paced by the journal like any other request
    /// instead of being answered as fast as the core allows.
    pub async fn pace(&self) {
        let _ = self.inner.inbox.submit(None).await;
    }

    /// Audits the repeats of the windows over at `now` (`None`: all of them,
    /// at shutdown).
    pub async fn close_denial_windows(&self, now: Option<DateTime<Utc>>) {
        for repeated in self.inner.denials.close(now) {
            // Refused, the event is still in its log line.
            let _ = self.record_repeated(&repeated).await;
        }
    }

    /// Records a window's repeats (`token_denied_repeated`).
    pub async fn record_repeated(&self, r: &Repeated) -> Result<(), AuditUnavailable> {
        let actor = denials::denial_actor(r.key.client.as_deref());
        let mut event = AuditEvent::new(denials::REPEATED_KIND, actor, r.last_at)
            .request(None)
            .reason(r.key.error)
            .details(serde_json::json!({
                "grant_type": r.key.grant,
                "error_description": r.key.description,
                "count": r.count,
                "first_at": r.first_at,
                "last_at": r.last_at,
            }));
        if let Some(client) = &r.key.client {
            event = event.client(client.clone());
        }
        self.record(event).await
    }

    /// Records `event` (durable in the journal) and waits up to two seconds
    /// for the database to take it, for events an operator acted on.
    pub async fn record_durable(&self, event: AuditEvent) -> Result<(), AuditUnavailable> {
        let seq = self.journal(&event).await?;
        // Durable already (journaled); waiting for the database only lets a
        // reader of the trail see it at once, and must not hang an admin
        // request when the database goes away meanwhile.
        let _ = tokio::time::timeout(APPLY_WAIT, self.applied(seq)).await;
        Ok(())
    }

    /// Waits until every event recorded before this call is in the database.
    pub async fn flush(&self) {
        if let Ok(Ok(seq)) = self.inner.inbox.submit(None).await {
            let _ = self.applied(seq).await;
        }
    }

    /// Whether the journal has room for another event; the token endpoint
    /// issues nothing while it has not.
    #[must_use]
    pub fn has_room(&self) -> bool {
        self.inner.files.has_room()
    }

    /// The journal's gauges for `/metrics`.
    #[must_use]
    pub fn gauges(&self) -> JournalGauges {
        let files = &self.inner.files;
        JournalGauges {
            bytes: files.bytes(),
            pending_events: files.durable().saturating_sub(files.applied()),
            writable: self.inner.inbox.writable() && files.has_room(),
        }
    }

    /// Logs `event` and journals it; its sequence number.
    async fn journal(&self, event: &AuditEvent) -> Result<u64, AuditUnavailable> {
        log(event);
        let payload = journal::encode_event(event);
        if let Ok(Ok(seq)) = self.inner.inbox.submit(Some(payload)).await {
            return Ok(seq);
        }
        tracing::debug!(event = event.kind, "the audit journal refused an event");
        Err(AuditUnavailable)
    }

    /// Waits until the database holds every event up to `seq`.
    async fn applied(&self, seq: u64) -> Result<(), AuditUnavailable> {
        self.inner.urgent.notify_one();
        let mut applied = self.inner.applied.clone();
        applied
            .wait_for(|a| *a >= seq)
            .await
            .map(|_| ())
            .map_err(|_| AuditUnavailable)
    }
}

/// Where admin changes are recorded durably: the server's sink, or — for the
/// CLI, which runs without a server — the store directly.
#[derive(Clone, Debug)]
pub enum Auditor {
    /// Through the running server's writer.
    Sink(AuditSink),
    /// Straight into the store.
    Direct(Storage),
}

impl Auditor {
    /// Whether an event can be recorded now (the journal has room); the
    /// CLI's direct writes always try.
    #[must_use]
    pub fn has_room(&self) -> bool {
        match self {
            Self::Sink(sink) => sink.gauges().writable,
            Self::Direct(_) => true,
        }
    }

    /// Records `event` and waits until it is committed.
    pub async fn record_durable(&self, event: AuditEvent) -> Result<(), AuditUnavailable> {
        match self {
            Self::Sink(sink) => sink.record_durable(event).await,
            Self::Direct(store) => {
                log(&event);
                store
                    .append_audit_events(&[event], None)
                    .await
                    .map_err(|_| AuditUnavailable)
            }
        }
    }
}

/// The log line of a typed `token_issued` event: the same fields as [`log`]'s.
fn log_issued(e: &TokenIssued<'_>) {
    tracing::info!(
        target: "portcullis::audit",
        event = TokenIssued::KIND,
        actor = %event::ClientActor(e.client_id),
        client_id = e.client_id,
        request_id = e.request_id,
        reason = None::<&str>,
        details = %e.details(),
        "audit"
    );
}

fn log(e: &AuditEvent) {
    tracing::info!(
        target: "portcullis::audit",
        event = e.kind,
        actor = %e.actor,
        client_id = e.client_id.as_deref(),
        request_id = e.request_id.as_deref(),
        reason = e.reason.as_deref(),
        details = %e.details,
        "audit"
    );
}
