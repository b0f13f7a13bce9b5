//! [`AuditStore`]: what audit retention needs of the store, beside the
//! appending and reading in [`super::Store`] — removing the oldest events
//! behind a checkpoint, and reading the checkpoints.

use std::future::Future;

use chrono::{DateTime, Utc};

use super::{
    storage::{delegate, Engine},
    Storage, StoreError,
};
use crate::audit::checkpoint::Checkpoint;

/// One retention cut: which events may go, and how many at most.
#[derive(Clone, Copy, Debug)]
pub struct AuditCut {
    /// Events that occurred before this may be removed.
    pub before: DateTime<Utc>,
    /// No event with a larger id is removed (the export's cursor).
    pub up_to: i64,
    /// Most events removed in one transaction.
    pub chunk: u32,
    /// When the cut is made.
    pub now: DateTime<Utc>,
}

/// Audit retention storage, fulfilled identically by both engines.
pub trait AuditStore: Send + Sync {
    /// Removes the oldest events, a prefix of the chain: at most `cut.chunk`
    /// events with `id <= cut.up_to`, stopping at the first one not older
    /// than `cut.before`. In the same transaction, under the audit lock that
    /// appending takes, records the checkpoint (last removed id and hash,
    /// total removed, chained to the previous checkpoint) and forgets
    /// checkpoints older than `cut.before` but the newest. Returns the
    /// checkpoint and how many events this cut removed; `None` when nothing
    /// was old enough.
    fn cut_audit_events(
        &self,
        cut: &AuditCut,
    ) -> impl Future<Output = Result<Option<(Checkpoint, i64)>, StoreError>> + Send;
    /// The kept checkpoints, oldest first.
    fn audit_checkpoints(&self)
        -> impl Future<Output = Result<Vec<Checkpoint>, StoreError>> + Send;
    /// The end of the chain: the newest event's id and hash, else the latest
    /// checkpoint's (everything was removed), else `(0, GENESIS)`.
    fn audit_head(&self) -> impl Future<Output = Result<(i64, String), StoreError>> + Send;
}

impl AuditStore for Storage {
    async fn cut_audit_events(
        &self,
        cut: &AuditCut,
    ) -> Result<Option<(Checkpoint, i64)>, StoreError> {
        delegate!(self, cut_audit_events(cut))
    }
    async fn audit_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        delegate!(self, audit_checkpoints())
    }
    async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        delegate!(self, audit_head())
    }
}
