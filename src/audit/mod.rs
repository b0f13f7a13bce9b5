//! The audit trail (SPEC §3): every token issued or denied, refresh reuse,
//! revocation, lockout, admin change and key rotation is an append-only,
//! hash-chained event in the database and a JSON log line.
//!
//! Recording never waits for the database on the token path: events go to a
//! bounded queue that one writer drains in batches (one transaction per
//! batch). [`AuditSink::record_durable`] waits for the commit, for events an
//! operator acted on (admin changes); [`AuditSink::flush`] at shutdown writes
//! everything accepted before it.

pub mod chain;
pub mod checkpoint;
pub mod event;
pub mod export;
mod keys;
pub mod retention;
pub mod verify;

pub use event::{AuditEvent, AuditFilter};
pub use verify::{verify_archive, verify_store, VerifyReport};

use std::time::Duration;

use std::sync::Arc;

use tokio::sync::{oneshot, Notify};

use crate::store::{Storage, Store};

/// Largest batch written in one transaction.
const BATCH: usize = 500;
/// How long an event may wait in the queue.
const TICK: Duration = Duration::from_millis(200);
/// Events accepted but not yet written, at most (then recording waits).
const QUEUE: usize = 10_000;

type Ack = oneshot::Sender<()>;

/// Events accepted and not yet written, with the waiters for their commit.
#[derive(Debug, Default)]
struct Queue {
    events: Vec<AuditEvent>,
    acks: Vec<Ack>,
}

#[derive(Debug, Default)]
struct Shared {
    queue: std::sync::Mutex<Queue>,
    wake: Notify,
}

/// The audit trail's entrance, cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditSink {
    shared: Arc<Shared>,
}

/// The audit trail could not accept or write the event.
#[derive(Debug, thiserror::Error)]
#[error("the audit trail is unavailable")]
pub struct AuditUnavailable;

impl AuditSink {
    /// Starts the writer task over `store`.
    #[must_use]
    pub fn start(store: Storage) -> Self {
        let shared = Arc::new(Shared::default());
        tokio::spawn(write_loop(store, Arc::clone(&shared)));
        Self { shared }
    }

    /// Queues an event, and an ack to send once it (and all before it) is
    /// committed. Returns how many events are queued.
    fn push(&self, event: Option<AuditEvent>, ack: Option<Ack>) -> usize {
        let Ok(mut q) = self.shared.queue.lock() else {
            return 0;
        };
        q.events.extend(event);
        q.acks.extend(ack);
        q.events.len()
    }

    /// Records `event` (and logs it); returns at once. The writer takes queued
    /// events in batches, so the token path never waits for the database —
    /// unless the queue is full, which slows recording rather than losing events.
    pub async fn record(&self, event: AuditEvent) {
        log(&event);
        let queued = self.push(Some(event), None);
        if queued >= BATCH {
            self.shared.wake.notify_one();
        }
        while queued >= QUEUE
            && self
                .shared
                .queue
                .lock()
                .is_ok_and(|q| q.events.len() >= QUEUE)
        {
            self.shared.wake.notify_one();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Records `event` and waits until it is committed.
    pub async fn record_durable(&self, event: AuditEvent) -> Result<(), AuditUnavailable> {
        log(&event);
        let (ack, done) = oneshot::channel();
        self.push(Some(event), Some(ack));
        self.shared.wake.notify_one();
        done.await.map_err(|_| AuditUnavailable)
    }

    /// Waits until every event recorded before this call is committed.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        self.push(None, Some(ack));
        self.shared.wake.notify_one();
        let _ = done.await;
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
    /// Records `event` and waits until it is committed.
    pub async fn record_durable(&self, event: AuditEvent) -> Result<(), AuditUnavailable> {
        match self {
            Self::Sink(sink) => sink.record_durable(event).await,
            Self::Direct(store) => {
                log(&event);
                store
                    .append_audit_events(&[event])
                    .await
                    .map_err(|_| AuditUnavailable)
            }
        }
    }
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

/// Writes queued events every `TICK`, or sooner when woken (a full batch,
/// a durable event, a flush).
async fn write_loop(store: Storage, shared: Arc<Shared>) {
    loop {
        let _ = tokio::time::timeout(TICK, shared.wake.notified()).await;
        loop {
            let (batch, acks) = {
                let Ok(mut q) = shared.queue.lock() else {
                    return;
                };
                let take = q.events.len().min(BATCH);
                let batch: Vec<AuditEvent> = q.events.drain(..take).collect();
                // Acks wait for everything queued before them: release them with the last batch.
                let acks = if q.events.is_empty() {
                    std::mem::take(&mut q.acks)
                } else {
                    Vec::new()
                };
                (batch, acks)
            };
            if batch.is_empty() && acks.is_empty() {
                break;
            }
            // A failed write is retried, never dropped: the events were accepted.
            let mut delay = Duration::from_millis(100);
            while !batch.is_empty() {
                match store.append_audit_events(&batch).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::error!(error.cause_chain = ?e, events = batch.len(), "audit write failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
            for ack in acks {
                let _ = ack.send(());
            }
        }
    }
}
