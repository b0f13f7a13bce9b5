//! Audit retention (`audit_retention`): the background task removes events
//! older than the retention, oldest first, in chunks of [`CHUNK`] events —
//! each chunk one short transaction under the audit lock, recording a
//! [`Checkpoint`] — so appending (on any replica) waits at most one chunk and
//! the chain never forks. Events the file export has not written yet are
//! never removed.

use chrono::{DateTime, Duration, Utc};

use super::checkpoint::Checkpoint;
use crate::store::{AuditCut, AuditStore, Storage, StoreError};

/// Events removed per transaction.
pub const CHUNK: u32 = 5000;
/// Chunks per run at most; the next run continues.
const MAX_CHUNKS: usize = 200;

/// What one run removed.
#[derive(Debug, Default)]
pub struct Purged {
    /// Events removed.
    pub removed: i64,
    /// The newest checkpoint, if the run cut anything.
    pub checkpoint: Option<Checkpoint>,
}

/// Removes events that occurred more than `retention` seconds before
/// `now`, none with an id above `up_to` (the file export's cursor), in
/// chunks of `chunk`.
pub async fn purge(
    store: &Storage,
    retention: u64,
    up_to: i64,
    chunk: u32,
    now: DateTime<Utc>,
) -> Result<Purged, StoreError> {
    let seconds = i64::try_from(retention).unwrap_or(i64::MAX);
    let Some(before) = Duration::try_seconds(seconds).and_then(|d| now.checked_sub_signed(d))
    else {
        return Ok(Purged::default());
    };
    let cut = AuditCut {
        before,
        up_to,
        chunk,
        now,
    };
    let mut purged = Purged::default();
    for _ in 0..MAX_CHUNKS {
        let Some((checkpoint, removed)) = store.cut_audit_events(&cut).await? else {
            break;
        };
        purged.removed += removed;
        purged.checkpoint = Some(checkpoint);
        if removed < i64::from(chunk) {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(purged)
}
