//! The JWKS consumer table (the rotation safety signal), the same SQL on both
//! engines, bounded as [`crate::keys::consumers`] describes: a flush updates
//! known consumers (or the folded consumer of their address group), adds new
//! ones only while the table holds fewer than `limits.total`, then folds every
//! address group with more than `limits.per_address` consumers into one.

/// Expands to the JWKS consumer methods of [`super::Store`].
macro_rules! shared_consumer_methods {
    () => {
        async fn record_jwks_consumers(
            &self,
            sightings: &[Sighting],
            forget_before: DateTime<Utc>,
            limits: ConsumerLimits,
        ) -> Result<usize, StoreError> {
            let max = i64::try_from(limits.total).unwrap_or(i64::MAX);
            let per_address = i64::try_from(limits.per_address).unwrap_or(i64::MAX);
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM jwks_consumers WHERE seen_at < $1")
                .bind(DbTime(forget_before))
                .execute(&mut *tx)
                .await?;
            let (mut total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM jwks_consumers")
                .fetch_one(&mut *tx)
                .await?;
            let mut dropped = 0;
            for s in sightings {
                // A known consumer, else the folded consumer of its group, takes the sighting.
                let mut stored = false;
                for (address, user_agent) in [(&s.address, &s.user_agent), (&s.group, &FOLDED.to_owned())] {
                    let done = sqlx::query(
                        "UPDATE jwks_consumers SET etag = $3, kids = $4, seen_at = $5 \
                         WHERE address = $1 AND user_agent = $2 AND seen_at <= $5",
                    )
                    .bind(address)
                    .bind(user_agent)
                    .bind(&s.etag)
                    .bind(&s.kids)
                    .bind(DbTime(s.seen_at))
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() > 0 {
                        stored = true;
                        break;
                    }
                }
                if stored {
                    continue;
                }
                if total >= max {
                    dropped += 1;
                    continue;
                }
                let added = sqlx::query(
                    "INSERT INTO jwks_consumers (address, user_agent, etag, kids, seen_at, address_group) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (address, user_agent) DO NOTHING",
                )
                .bind(&s.address)
                .bind(&s.user_agent)
                .bind(&s.etag)
                .bind(&s.kids)
                .bind(DbTime(s.seen_at))
                .bind(&s.group)
                .execute(&mut *tx)
                .await?;
                total += i64::try_from(added.rows_affected()).unwrap_or(0);
            }
            let crowded: Vec<(String,)> = sqlx::query_as(
                "SELECT address_group FROM jwks_consumers GROUP BY address_group \
                 HAVING COUNT(*) > $1 OR (COUNT(*) > 1 AND SUM(CASE WHEN user_agent = $2 THEN 1 ELSE 0 END) > 0)",
            )
            .bind(per_address)
            .bind(FOLDED)
            .fetch_all(&mut *tx)
            .await?;
            for (group,) in crowded {
                let members = consumers_where(&mut *tx, "address_group = $1", &group).await?;
                let Some(folded) = Sighting::fold(&group, &members) else {
                    continue;
                };
                sqlx::query("DELETE FROM jwks_consumers WHERE address_group = $1")
                    .bind(&group)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO jwks_consumers (address, user_agent, etag, kids, seen_at, address_group) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&folded.address)
                .bind(&folded.user_agent)
                .bind(&folded.etag)
                .bind(&folded.kids)
                .bind(DbTime(folded.seen_at))
                .bind(&folded.group)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(dropped)
        }

        async fn jwks_consumers_since(&self, since: DateTime<Utc>) -> Result<Vec<Sighting>, StoreError> {
            let mut conn = self.pool.acquire().await?;
            consumers_where(&mut *conn, "seen_at >= $1", DbTime(since)).await
        }
    };
}

/// Expands to `consumers_where(executor, condition, parameter)`: the consumers
/// matching a condition with one parameter, ordered by address and `User-Agent`.
macro_rules! shared_consumer_helpers {
    ($db:ty) => {
        async fn consumers_where<'e, E, P>(executor: E, condition: &str, parameter: P) -> Result<Vec<Sighting>, StoreError>
        where
            E: sqlx::Executor<'e, Database = $db>,
            P: for<'q> sqlx::Encode<'q, $db> + sqlx::Type<$db> + Send + 'e,
        {
            let sql = format!(
                "SELECT address, address_group, user_agent, etag, kids, seen_at FROM jwks_consumers \
                 WHERE {condition} ORDER BY address, user_agent"
            );
            let rows: Vec<(String, String, String, String, String, DbTime)> =
                sqlx::query_as(&sql).bind(parameter).fetch_all(executor).await?;
            Ok(rows
                .into_iter()
                .map(|(address, group, user_agent, etag, kids, seen_at)| Sighting {
                    address,
                    group,
                    user_agent,
                    etag,
                    kids,
                    seen_at: seen_at.0,
                })
                .collect())
        }
    };
}

pub(super) use {shared_consumer_helpers, shared_consumer_methods};
