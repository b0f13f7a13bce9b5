//! The database writer: reads durable events from the journal in order,
//! appends them to the hash-chained trail in batches — each batch moving
//! the journal's cursor in the same transaction — and deletes the segments
//! it has applied. A failed write is retried with backoff, never skipped:
//! while the database is unavailable, events stay in the journal.
//!
//! The events are durable already, so there is no hurry: once caught up it
//! lets them gather for `TICK` (few, large transactions) unless someone
//! waits for the database (`urgent`: a flush or an admin change).

use std::{sync::Arc, time::Duration};

use tokio::sync::{watch, Notify};

use super::{
    journal::{decode_event, Files, Reader},
    AuditEvent,
};
use crate::store::{JournalCursor, Storage, Store};

/// Largest batch written in one transaction. Large batches matter when
/// many clients take tokens: each event adds an entry to the per-client
/// index at that client's place, so a transaction writes about one index
/// page per distinct client, whatever its number of events. On SQLite,
/// 1,000 clients in rotation measured 67 % of the one-client `/token` rate
/// with 500 events and 100 ms, 74–78 % with 2,000 and 250 ms, 85–90 % with
/// these (and the spill threshold in [`crate::store::SqliteStore`]).
const BATCH: usize = 8000;
/// How long events gather once the writer has caught up: a batch carries
/// up to a second of tokens, so the pages it dirties are written once per
/// thousands of events at every rate the server sustains. Readers that
/// need the database current (an admin read, a flush) do not wait for it.
const TICK: Duration = Duration::from_secs(1);
/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Applies the journal until every [`super::AuditSink`] is dropped; `urgent`
/// asks to apply what is durable now, `applied` publishes progress.
pub(super) async fn run(
    store: Storage,
    files: Arc<Files>,
    urgent: Arc<Notify>,
    applied: watch::Sender<u64>,
) {
    let mut reader = Reader::new(Arc::clone(&files));
    let mut failing = false;
    while !applied.is_closed() {
        let read = tokio::task::spawn_blocking(move || {
            let batch = reader.read(BATCH);
            (reader, batch)
        })
        .await;
        let Ok((back, batch)) = read else {
            return;
        };
        reader = back;
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, journal = %files.dir().display(), "reading the audit journal failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(&(last, _)) = batch.last() else {
            let _ = tokio::time::timeout(TICK, urgent.notified()).await;
            continue;
        };
        let caught_up = batch.len() < BATCH;
        let (seqs, events) = decode(&batch);
        let cursor = JournalCursor {
            journal_id: files.id(),
            seqs: &seqs,
        };
        let mut delay = Duration::from_millis(100);
        while let Err(e) = store.append_audit_events(&events, Some(cursor)).await {
            if !failing {
                tracing::error!(
                    error.cause_chain = ?e,
                    "audit events cannot be written to the database; they stay in the journal \
                     and are retried"
                );
                failing = true;
            }
            if applied.is_closed() {
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_BACKOFF);
        }
        if failing {
            tracing::warn!("audit events are written to the database again");
            failing = false;
        }
        files.set_applied(last);
        applied.send_replace(last);
        let f = Arc::clone(&files);
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || f.release()).await {
            tracing::warn!(error = %e, "could not delete applied audit journal segments");
        }
        if caught_up {
            let _ = tokio::time::timeout(TICK, urgent.notified()).await;
        }
    }
}

/// The events of a batch with their sequence numbers; a record that does
/// not decode (it passed its CRC, so this is a bug, not a torn write) is
/// logged and left out.
fn decode(batch: &[(u64, Vec<u8>)]) -> (Vec<i64>, Vec<AuditEvent>) {
    batch
        .iter()
        .filter_map(|(seq, payload)| {
            let event = decode_event(payload);
            if event.is_none() {
                tracing::error!(
                    seq,
                    "an audit journal record does not decode; it is not applied"
                );
            }
            Some((*seq as i64, event?))
        })
        .unzip()
}
