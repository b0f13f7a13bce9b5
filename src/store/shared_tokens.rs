//! Token state both engines keep with the same SQL: refresh families and
//! tokens, and revoked access tokens. Expanded into each engine's `impl Store`.

/// Expands to the token methods of [`super::Store`]. The implementing type
/// must have a `pool` field of the engine's pool type.
macro_rules! shared_token_methods {
    () => {
        async fn create_refresh_family(
            &self,
            family: &RefreshFamily,
            token: &NewRefreshToken,
        ) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO refresh_families (id, client_id, scope, audiences, created_at, expires_at, \
                 certificate_thumbprint, dpop_jkt) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&family.id)
            .bind(family.client_id.as_str())
            .bind(family.scope.to_string())
            .bind(serde_json::Value::from(family.audiences.clone()).to_string())
            .bind(DbTime(family.created_at))
            .bind(DbTime(family.expires_at))
            .bind(family.certificate_thumbprint.as_deref())
            .bind(family.dpop_jkt.as_deref())
            .execute(&mut *tx)
            .await?;
            insert_refresh_token(&mut tx, token).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn find_refresh_token(&self, hash: &RefreshTokenHash) -> Result<Option<RefreshRecord>, StoreError> {
            sqlx::query_as::<_, RefreshRow>(
                "SELECT t.issued_at, t.expires_at, t.consumed_at, f.id AS family_id, f.client_id, f.scope, \
                 f.audiences, f.created_at AS family_created_at, f.expires_at AS family_expires_at, \
                 f.revoked_at AS family_revoked_at, f.certificate_thumbprint, f.dpop_jkt \
                 FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.token_hash = $1",
            )
            .bind(hash.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(RefreshRecord::try_from)
            .transpose()
        }

        async fn rotate_refresh_token(
            &self,
            old: &RefreshTokenHash,
            new: &NewRefreshToken,
            now: DateTime<Utc>,
        ) -> Result<Rotation, StoreError> {
            let mut tx = self.pool.begin().await?;
            // The conditional update is the arbiter: of concurrent exchanges,
            // exactly one finds the token unconsumed.
            let consumed = sqlx::query(
                "UPDATE refresh_tokens SET consumed_at = $2 WHERE token_hash = $1 AND consumed_at IS NULL",
            )
            .bind(old.as_str())
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await?;
            if consumed.rows_affected() == 1 {
                insert_refresh_token(&mut tx, new).await?;
                tx.commit().await?;
                return Ok(Rotation::Rotated);
            }
            let family: Option<(String,)> =
                sqlx::query_as("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
                    .bind(old.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((family_id,)) = family else {
                return Ok(Rotation::Unknown);
            };
            revoke_family(&mut tx, &family_id, "reuse", now).await?;
            tx.commit().await?;
            Ok(Rotation::Reused)
        }

        async fn revoke_refresh_family(
            &self,
            family_id: &str,
            reason: &str,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            revoke_family(&mut tx, family_id, reason, now).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn revoke_access_token(
            &self,
            jti: &str,
            client: &ClientId,
            expires_at: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO revoked_access_tokens (jti, client_id, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (jti) DO NOTHING",
            )
            .bind(jti)
            .bind(client.as_str())
            .bind(DbTime(expires_at))
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        async fn access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
            let row: Option<(String,)> = sqlx::query_as("SELECT jti FROM revoked_access_tokens WHERE jti = $1")
                .bind(jti)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.is_some())
        }

        async fn live_revoked_access_tokens(&self, now: DateTime<Utc>) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
            let rows: Vec<(String, DbTime)> =
                sqlx::query_as("SELECT jti, expires_at FROM revoked_access_tokens WHERE expires_at > $1")
                    .bind(DbTime(now))
                    .fetch_all(&self.pool)
                    .await?;
            Ok(rows.into_iter().map(|(jti, until)| (jti, until.0)).collect())
        }

        async fn revoke_client_tokens(&self, client: &ClientId, now: DateTime<Utc>) -> Result<u64, StoreError> {
            let mut tx = self.pool.begin().await?;
            let touched = sqlx::query("UPDATE clients SET tokens_revoked_before = $2 WHERE id = $1")
                .bind(client.as_str())
                .bind(DbTime(now))
                .execute(&mut *tx)
                .await?;
            if touched.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            let families = sqlx::query(
                "UPDATE refresh_families SET revoked_at = $2, revoked_reason = 'admin' \
                 WHERE client_id = $1 AND revoked_at IS NULL AND expires_at > $2",
            )
            .bind(client.as_str())
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(families.rows_affected())
        }

        async fn set_client_lock(&self, client: &ClientId, until: Option<DateTime<Utc>>) -> Result<(), StoreError> {
            let done = sqlx::query("UPDATE clients SET locked_until = $2 WHERE id = $1")
                .bind(client.as_str())
                .bind(until.map(DbTime))
                .execute(&self.pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        }

        async fn add_token_usage(&self, increments: &[UsageCount], now: DateTime<Utc>) -> Result<Vec<UsageCount>, StoreError> {
            let mut tx = self.pool.begin().await?;
            let mut totals = Vec::with_capacity(increments.len());
            for inc in increments {
                // Only for clients that still exist (a deleted client's counts are moot).
                sqlx::query(
                    "INSERT INTO token_usage (client_id, period, window_start, issued) \
                     SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM clients WHERE id = $1) \
                     ON CONFLICT (client_id, period, window_start) DO UPDATE SET issued = token_usage.issued + excluded.issued",
                )
                .bind(inc.client_id.as_str())
                .bind(inc.period.as_str())
                .bind(DbTime(inc.window_start))
                .bind(i64::try_from(inc.issued).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
                let total: Option<(i64,)> = sqlx::query_as(
                    "SELECT issued FROM token_usage WHERE client_id = $1 AND period = $2 AND window_start = $3",
                )
                .bind(inc.client_id.as_str())
                .bind(inc.period.as_str())
                .bind(DbTime(inc.window_start))
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((issued,)) = total {
                    totals.push(UsageCount { issued: u64::try_from(issued).unwrap_or(0), ..inc.clone() });
                }
            }
            sqlx::query("DELETE FROM token_usage WHERE window_start < $1")
                .bind(DbTime(now - chrono::Duration::days(2)))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(totals)
        }

        async fn record_assertion_jti(
            &self,
            client_id: &ClientId,
            jti: &str,
            expires_at: DateTime<Utc>,
        ) -> Result<bool, StoreError> {
            // The primary key is the arbiter across replicas: of two uses of
            // one jti, exactly one inserts.
            let done = sqlx::query(
                "INSERT INTO client_assertion_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (client_id, jti) DO NOTHING",
            )
            .bind(client_id.as_str())
            .bind(jti)
            .bind(DbTime(expires_at))
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn purge_expired_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
            let mut tx = self.pool.begin().await?;
            let denied = sqlx::query("DELETE FROM revoked_access_tokens WHERE expires_at <= $1")
                .bind(DbTime(now))
                .execute(&mut *tx)
                .await?;
            // Consumed tokens stay until their family ends, so reuse is still detected.
            sqlx::query(
                "DELETE FROM refresh_tokens WHERE family_id IN \
                 (SELECT id FROM refresh_families WHERE expires_at <= $1)",
            )
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await?;
            let families = sqlx::query("DELETE FROM refresh_families WHERE expires_at <= $1")
                .bind(DbTime(now))
                .execute(&mut *tx)
                .await?;
            let assertions = sqlx::query("DELETE FROM client_assertion_jtis WHERE expires_at <= $1")
                .bind(DbTime(now))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(denied.rows_affected() + families.rows_affected() + assertions.rows_affected())
        }
    };
}

/// Expands to the token helpers (`insert_refresh_token`, `revoke_family`) for one engine.
macro_rules! shared_token_helpers {
    ($db:ty) => {
        async fn insert_refresh_token(
            tx: &mut sqlx::Transaction<'static, $db>,
            token: &NewRefreshToken,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, family_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(token.hash.as_str())
            .bind(&token.family_id)
            .bind(DbTime(token.issued_at))
            .bind(DbTime(token.expires_at))
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        async fn revoke_family(
            tx: &mut sqlx::Transaction<'static, $db>,
            family_id: &str,
            reason: &str,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE refresh_families SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(family_id)
            .bind(DbTime(now))
            .bind(reason)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }
    };
}

pub(super) use {shared_token_helpers, shared_token_methods};
