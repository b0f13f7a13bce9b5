//! Audit events of the signing-key lifecycle: every key change (published,
//! activated, retired, removed, rewrapped) and each manual rotation with its
//! report, by the actor who caused it.

use chrono::{DateTime, Utc};

use super::{AuditEvent, AuditSink, AuditUnavailable};
use crate::keys::{lifecycle::KeyChange, RotationReport};

impl AuditSink {
    /// Records each key change by `actor` (`system` for scheduled work). A
    /// change the journal refuses is still in the log line of its event.
    pub async fn record_key_changes(&self, changes: &[KeyChange], actor: &str, now: DateTime<Utc>) {
        for change in changes {
            let (kind, key_id) = change.summary();
            let event =
                AuditEvent::new(kind, actor, now).details(serde_json::json!({ "kid": key_id }));
            let _ = self.record(event).await;
        }
    }

    /// Records a manual rotation (its key changes, then the rotation itself,
    /// durably: an operator acted).
    pub async fn record_rotation(
        &self,
        report: &RotationReport,
        compromised: bool,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AuditUnavailable> {
        self.record_key_changes(&report.changes, actor, now).await;
        let kind = if compromised {
            "key_compromised"
        } else {
            "key_rotated"
        };
        let event = AuditEvent::new(kind, actor, now).details(serde_json::json!({
            "current": report.current,
            "next": report.next,
            "removed": report.removed,
            "warnings": report.warnings,
        }));
        self.record_durable(event).await
    }
}
