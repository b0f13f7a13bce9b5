//! The audit trail's storage, the same SQL on both engines. Appending runs
//! under the engine's exclusive lock so that concurrent writers (replicas)
//! extend one chain instead of forking it.

/// Expands to the audit methods of [`super::Store`] for the engine `$db`.
macro_rules! shared_audit_methods {
    ($db:ty) => {
        async fn append_audit_events(
            &self,
            events: &[AuditEvent],
            journal: Option<super::JournalCursor<'_>>,
        ) -> Result<(), StoreError> {
            if events.is_empty() {
                return Ok(());
            }
            let mut tx = begin_locked(&self.pool, AUDIT_LOCK).await?;
            // Journaled events already applied (a replay after a crash) are skipped.
            let events = match &journal {
                Some(j) => {
                    let applied: Option<i64> = sqlx::query_scalar(
                        "SELECT applied_seq FROM audit_journal_cursors WHERE journal_id = $1",
                    )
                    .bind(j.journal_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    &events[j.seqs.partition_point(|s| Some(*s) <= applied)..]
                }
                None => events,
            };
            let last: Option<(i64, String)> =
                sqlx::query_as("SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await?;
            let (mut id, mut prev) = last.unwrap_or((0, chain::GENESIS.to_owned()));
            let mut records = Vec::with_capacity(events.len());
            for e in events {
                id += 1;
                let mut record = chain::AuditRecord {
                    id,
                    occurred_at: e.occurred_at,
                    kind: e.kind.to_owned(),
                    actor: e.actor.clone(),
                    client_id: e.client_id.clone(),
                    request_id: e.request_id.clone(),
                    reason: e.reason.clone(),
                    details: e.details.clone(),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                record.hash = chain::link(&record, &prev);
                prev.clone_from(&record.hash);
                records.push(record);
            }
            for chunk in records.chunks(100) {
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO audit_events (id, occurred_at, kind, actor, client_id, request_id, reason, \
                     details, prev_hash, hash) ",
                );
                insert.push_values(chunk, |mut row, r| {
                    row.push_bind(r.id)
                        .push_bind(DbTime(r.occurred_at))
                        .push_bind(r.kind.clone())
                        .push_bind(r.actor.clone())
                        .push_bind(r.client_id.clone())
                        .push_bind(r.request_id.clone())
                        .push_bind(r.reason.clone())
                        .push_bind(r.details.to_string())
                        .push_bind(r.prev_hash.clone())
                        .push_bind(r.hash.clone());
                });
                insert.build().execute(&mut *tx).await?;
            }
            // ... and the journal's cursor moves in the same transaction.
            if let Some(j) = journal.filter(|_| !events.is_empty()) {
                sqlx::query(
                    "INSERT INTO audit_journal_cursors (journal_id, applied_seq) VALUES ($1, $2) \
                     ON CONFLICT (journal_id) DO UPDATE SET applied_seq = excluded.applied_seq",
                )
                .bind(j.journal_id)
                .bind(j.seqs.last().copied())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        }

        async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<chain::AuditRecord>, StoreError> {
            let mut q = sqlx::QueryBuilder::<$db>::new("SELECT * FROM audit_events WHERE id > ");
            q.push_bind(filter.after_id);
            if let Some(c) = &filter.client_id {
                q.push(" AND client_id = ").push_bind(c.clone());
            }
            if let Some(k) = &filter.kind {
                q.push(" AND kind = ").push_bind(k.clone());
            }
            if let Some(t) = filter.since {
                q.push(" AND occurred_at >= ").push_bind(DbTime(t));
            }
            if let Some(t) = filter.until {
                q.push(" AND occurred_at < ").push_bind(DbTime(t));
            }
            q.push(" ORDER BY id LIMIT ").push_bind(i64::from(filter.limit));
            q.build_query_as::<AuditRow>()
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(chain::AuditRecord::try_from)
                .collect()
        }
    };
}

pub(super) use shared_audit_methods;
