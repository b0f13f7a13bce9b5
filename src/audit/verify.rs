//! `portcullis audit verify`: checks the hash chain of the stored trail —
//! from the latest retention checkpoint, or from the genesis when nothing was
//! ever removed — or of an exported archive, from its first line's
//! `prev_hash`.

use std::io::BufRead;

use serde::Serialize;

use super::{
    chain::{self, AuditRecord, Break},
    checkpoint::{self, Checkpoint},
    AuditFilter,
};
use crate::store::{AuditStore, Storage, Store, StoreError};

/// Where verification started: the event before the first one checked.
#[derive(Debug, Serialize)]
pub struct Start {
    /// Its id (0: the genesis).
    pub after_id: i64,
    /// Its hash, which the first checked event must link to.
    pub hash: String,
}

/// The result of `portcullis audit verify`.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// Events checked.
    pub events: i64,
    /// The last event checked.
    pub last_id: i64,
    /// Whether the chain (and the checkpoints) are intact.
    pub intact: bool,
    /// The first event that does not verify.
    pub first_broken: Option<Break>,
    /// Where verification started.
    pub start: Start,
    /// The retention checkpoint it started at: the last removed event's id
    /// and hash, when it was cut, and how many events were removed in total.
    pub checkpoint: Option<Checkpoint>,
    /// The first kept checkpoint that does not verify (by checkpoint id).
    pub broken_checkpoint: Option<Break>,
}

impl VerifyReport {
    fn new(start: Start, checkpoint: Option<Checkpoint>) -> Self {
        Self {
            events: 0,
            last_id: start.after_id,
            intact: true,
            first_broken: None,
            start,
            checkpoint,
            broken_checkpoint: None,
        }
    }

    /// Checks the next records in order; false once the chain broke.
    fn check(&mut self, records: &[AuditRecord], last_hash: &mut String) -> bool {
        match chain::verify(records, (self.last_id, last_hash)) {
            Ok((id, hash)) => {
                self.events += id - self.last_id;
                self.last_id = id;
                *last_hash = hash;
                true
            }
            Err(b) => {
                self.intact = false;
                self.first_broken = Some(b);
                false
            }
        }
    }
}

/// Walks the kept trail in id order, a page at a time, from the latest
/// checkpoint; verifies the kept checkpoints too.
pub async fn verify_store(store: &Storage) -> Result<VerifyReport, StoreError> {
    let checkpoints = store.audit_checkpoints().await?;
    let latest = checkpoints.last().cloned();
    let start = latest.as_ref().map_or(
        Start {
            after_id: 0,
            hash: chain::GENESIS.to_owned(),
        },
        |c| Start {
            after_id: c.last_id,
            hash: c.last_hash.clone(),
        },
    );
    let mut last_hash = start.hash.clone();
    let mut report = VerifyReport::new(start, latest);
    if let Err(b) = checkpoint::verify(&checkpoints) {
        report.intact = false;
        report.broken_checkpoint = Some(b);
    }
    loop {
        let filter = AuditFilter {
            after_id: report.last_id,
            limit: 1000,
            ..AuditFilter::default()
        };
        let page = store.audit_events(&filter).await?;
        if page.is_empty() || !report.check(&page, &mut last_hash) {
            return Ok(report);
        }
    }
}

/// Verifies an exported archive (one JSON event per line), from the first
/// line's `id - 1` and `prev_hash`. A line that is not an event breaks the
/// chain there.
pub fn verify_archive(archive: impl BufRead) -> std::io::Result<VerifyReport> {
    let mut report: Option<VerifyReport> = None;
    let mut last_hash = String::new();
    for line in archive.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<AuditRecord>(&line);
        let report = report.get_or_insert_with(|| {
            let start = parsed.as_ref().map_or(
                Start {
                    after_id: 0,
                    hash: String::new(),
                },
                |r| Start {
                    after_id: r.id - 1,
                    hash: r.prev_hash.clone(),
                },
            );
            last_hash.clone_from(&start.hash);
            VerifyReport::new(start, None)
        });
        let Ok(record) = parsed else {
            report.intact = false;
            report.first_broken = Some(Break {
                id: report.last_id + 1,
                reason: "archive line is not an audit event",
            });
            break;
        };
        if !report.check(std::slice::from_ref(&record), &mut last_hash) {
            break;
        }
    }
    Ok(report.unwrap_or_else(|| {
        VerifyReport::new(
            Start {
                after_id: 0,
                hash: chain::GENESIS.to_owned(),
            },
            None,
        )
    }))
}
