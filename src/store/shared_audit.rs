//! The audit trail's storage, the same SQL on both engines. Appending and
//! retention cuts run under the engine's exclusive audit lock, so that
//! concurrent writers (replicas) extend one chain instead of forking it.
//!
//! Rows are stored compactly (migration 0009, `store::audit_codec`): kinds
//! and client ids as numbers into `audit_names`, hashes as bytes, no
//! `prev_hash` (it is the previous row's hash, joined in when reading).

/// The row as [`super::rows::AuditRow`] reads it: names and the previous
/// event's hash joined in (the checkpoint's for the first event after a cut).
pub(super) const SELECT_AUDIT: &str = "SELECT e.id, e.occurred_at, k.name AS kind, e.actor, c.name AS client_id, \
     e.request_id, e.reason, e.details, \
     COALESCE(e.prev_hash, p.hash, \
        (SELECT last_hash FROM audit_checkpoints WHERE last_id = e.id - 1 ORDER BY id DESC LIMIT 1)) AS prev_hash, \
     e.hash \
     FROM audit_events e \
     JOIN audit_names k ON k.id = e.kind \
     LEFT JOIN audit_names c ON c.id = e.client \
     LEFT JOIN audit_events p ON p.id = e.id - 1 \
     WHERE e.id > ";

/// `audit_names.id` of `token_issued` (fixed by migration 0009; the kind
/// index leaves these events out).
pub(super) const TOKEN_ISSUED: i64 = 1;

/// Rows per audit `INSERT` (9 parameters each).
pub(super) const INSERT_ROWS: usize = 100;

/// Expands to the audit helpers for the engine `$db` (private functions of
/// the engine module).
macro_rules! shared_audit_helpers {
    ($db:ty) => {
        /// The end of the chain: the newest event, else the latest checkpoint
        /// (everything was cut), else the genesis.
        async fn audit_head(tx: &mut sqlx::Transaction<'static, $db>) -> Result<(i64, String), StoreError> {
            let newest: Option<(i64, Vec<u8>)> =
                sqlx::query_as("SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1")
                    .fetch_optional(&mut **tx)
                    .await?;
            let head = match newest {
                Some(head) => Some(head),
                None => sqlx::query_as("SELECT last_id, last_hash FROM audit_checkpoints ORDER BY id DESC LIMIT 1")
                    .fetch_optional(&mut **tx)
                    .await?,
            };
            match head {
                Some((id, hash)) => Ok((
                    id,
                    audit_codec::decode_hash(&hash).map_err(|e| StoreError::Corrupt(format!("audit event {id}: {e}")))?,
                )),
                None => Ok((0, chain::GENESIS.to_owned())),
            }
        }

        /// The `audit_names` ids of `names`, adding the missing ones (the
        /// caller holds the audit lock, the only writer of the table).
        /// Ids already read are answered from `known`.
        async fn audit_name_ids(
            tx: &mut sqlx::Transaction<'static, $db>,
            names: std::collections::BTreeSet<&str>,
            known: &super::audit_names::AuditNames,
        ) -> Result<std::collections::HashMap<String, i64>, StoreError> {
            let (mut ids, names) = known.split(names);
            if names.is_empty() {
                return Ok(ids);
            }
            let mut q = sqlx::QueryBuilder::<$db>::new("SELECT name, id FROM audit_names WHERE name IN (");
            let mut list = q.separated(", ");
            for name in &names {
                list.push_bind((*name).to_owned());
            }
            q.push(")");
            // Lists of every length would each stay prepared on the connection: not kept.
            let read: std::collections::HashMap<String, i64> = q
                .build_query_as::<(String, i64)>()
                .persistent(false)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .collect();
            known.learn(&read);
            ids.extend(read);
            let missing: Vec<&str> = names.into_iter().filter(|n| !ids.contains_key(*n)).collect();
            if missing.is_empty() {
                return Ok(ids);
            }
            let (max,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(id), 0) FROM audit_names")
                .fetch_one(&mut **tx)
                .await?;
            let mut insert = sqlx::QueryBuilder::<$db>::new("INSERT INTO audit_names (id, name) ");
            let mut next = max;
            insert.push_values(&missing, |mut row, name| {
                next += 1;
                ids.insert((*name).to_owned(), next);
                row.push_bind(next).push_bind((*name).to_owned());
            });
            insert.build().persistent(false).execute(&mut **tx).await?;
            Ok(ids)
        }

        /// Inserts chained events in their compact form: `events[i]` as
        /// `first_id + i` with `hashes[i]` (its 32 bytes: the stored form of
        /// a hash, see `audit_codec::encode_hash`).
        async fn insert_audit_records(
            tx: &mut sqlx::Transaction<'static, $db>,
            events: &[AuditEvent],
            first_id: i64,
            hashes: &[[u8; 32]],
            known: &super::audit_names::AuditNames,
        ) -> Result<(), StoreError> {
            if events.is_empty() {
                return Ok(());
            }
            let names = events
                .iter()
                .flat_map(|e| std::iter::once(e.kind).chain(e.client_id.as_deref()))
                .collect();
            let ids = audit_name_ids(tx, names, known).await?;
            let rows: Vec<_> = events.iter().zip(hashes).zip(first_id..).collect();
            for chunk in rows.chunks(super::shared_audit::INSERT_ROWS) {
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO audit_events (id, occurred_at, kind, client, actor, request_id, reason, details, hash) ",
                );
                insert.push_values(chunk, |mut row, &((e, hash), id)| {
                    let client = e.client_id.as_ref().and_then(|c| ids.get(c)).copied();
                    let implied = e.client_id.as_ref().is_some_and(|c| e.actor.strip_prefix("client:") == Some(c));
                    row.push_bind(id)
                        .push_bind(DbTime(e.occurred_at))
                        .push_bind(ids.get(e.kind).copied())
                        .push_bind(client)
                        .push_bind((!implied).then_some(e.actor.as_str()))
                        .push_bind(e.request_id.as_deref().map(audit_codec::encode_request_id))
                        .push_bind(e.reason.as_deref())
                        .push_bind(audit_codec::encode_details(&e.details))
                        .push_bind(hash.to_vec());
                });
                // Only the full chunk's statement is kept prepared: a statement for
                // every shorter length would fill each connection's statement cache
                // (and its memory) with large inserts used once.
                insert
                    .build()
                    .persistent(chunk.len() == super::shared_audit::INSERT_ROWS)
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }
    };
}

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
            if events.is_empty() {
                // All of them were applied before (a replay after a crash).
                return Ok(());
            }
            let (head, mut prev) = audit_head(&mut tx).await?;
            // Each event is hashed from its own fields (no copy of them); the
            // hash is stored as its bytes and chains on as hex.
            let mut hashes = Vec::with_capacity(events.len());
            for (e, id) in events.iter().zip(head + 1..) {
                let hash = chain::Content {
                    id,
                    occurred_at: e.occurred_at,
                    kind: e.kind,
                    actor: &e.actor,
                    client_id: e.client_id.as_deref(),
                    request_id: e.request_id.as_deref(),
                    reason: e.reason.as_deref(),
                    details: &e.details,
                }
                .digest(&prev);
                prev = chain::hex(&hash);
                hashes.push(hash);
            }
            insert_audit_records(&mut tx, events, head + 1, &hashes, &self.audit_names).await?;
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

        async fn audit_events(
            &self,
            filter: &AuditFilter,
        ) -> Result<Vec<chain::AuditRecord>, StoreError> {
            let mut q = sqlx::QueryBuilder::<$db>::new(super::shared_audit::SELECT_AUDIT);
            q.push_bind(filter.after_id);
            if let Some(c) = &filter.client_id {
                q.push(" AND e.client = (SELECT id FROM audit_names WHERE name = ")
                    .push_bind(c.clone())
                    .push(")");
            }
            if let Some(k) = &filter.kind {
                q.push(" AND e.kind = (SELECT id FROM audit_names WHERE name = ")
                    .push_bind(k.clone())
                    .push(")");
                if k != "token_issued" {
                    // Lets both engines use the partial kind index.
                    q.push(format!(
                        " AND e.kind <> {}",
                        super::shared_audit::TOKEN_ISSUED
                    ));
                }
            }
            if let Some(t) = filter.since {
                q.push(" AND e.occurred_at >= ").push_bind(DbTime(t));
            }
            if let Some(t) = filter.until {
                q.push(" AND e.occurred_at < ").push_bind(DbTime(t));
            }
            q.push(" ORDER BY e.id LIMIT ")
                .push_bind(i64::from(filter.limit));
            q.build_query_as::<AuditRow>()
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(chain::AuditRecord::try_from)
                .collect()
        }
    };
}

/// Expands to the [`super::AuditStore`] methods for the engine `$db`.
macro_rules! shared_audit_retention_methods {
    ($db:ty) => {
        async fn cut_audit_events(&self, cut: &AuditCut) -> Result<Option<(Checkpoint, i64)>, StoreError> {
            let mut tx = begin_locked(&self.pool, AUDIT_LOCK).await?;
            let oldest: Vec<(i64, DbTime, Vec<u8>)> = sqlx::query_as(
                "SELECT id, occurred_at, hash FROM audit_events WHERE id <= $1 ORDER BY id LIMIT $2",
            )
            .bind(cut.up_to)
            .bind(i64::from(cut.chunk))
            .fetch_all(&mut *tx)
            .await?;
            // A prefix of the chain: up to the first event that is not old enough.
            let Some((last_id, _, last_hash)) = oldest.iter().take_while(|(_, t, _)| t.0 < cut.before).last() else {
                return Ok(None);
            };
            let last_hash = audit_codec::decode_hash(last_hash)
                .map_err(|e| StoreError::Corrupt(format!("audit event {last_id}: {e}")))?;
            let removed = sqlx::query("DELETE FROM audit_events WHERE id <= $1")
                .bind(last_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let prev = sqlx::query_as::<_, CheckpointRow>("SELECT * FROM audit_checkpoints ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?
                .map(Checkpoint::try_from)
                .transpose()?;
            let removed = i64::try_from(removed).unwrap_or(i64::MAX);
            let checkpoint = Checkpoint::after(prev.as_ref(), cut.now, (*last_id, &last_hash), removed);
            sqlx::query(
                "INSERT INTO audit_checkpoints (id, cut_at, last_id, last_hash, removed, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(checkpoint.id)
            .bind(DbTime(checkpoint.cut_at))
            .bind(checkpoint.last_id)
            .bind(audit_codec::encode_hash(&checkpoint.last_hash))
            .bind(checkpoint.removed)
            .bind(audit_codec::encode_hash(&checkpoint.prev_hash))
            .bind(audit_codec::encode_hash(&checkpoint.hash))
            .execute(&mut *tx)
            .await?;
            // Checkpoints are kept as long as events: the latest always.
            sqlx::query("DELETE FROM audit_checkpoints WHERE cut_at < $1 AND id < $2")
                .bind(DbTime(cut.before))
                .bind(checkpoint.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some((checkpoint, removed)))
        }

        async fn audit_head(&self) -> Result<(i64, String), StoreError> {
            let mut tx = self.pool.begin().await?;
            audit_head(&mut tx).await
        }

        async fn audit_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
            sqlx::query_as::<_, CheckpointRow>("SELECT * FROM audit_checkpoints ORDER BY id")
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(Checkpoint::try_from)
                .collect()
        }
    };
}

pub(super) use {shared_audit_helpers, shared_audit_methods, shared_audit_retention_methods};
