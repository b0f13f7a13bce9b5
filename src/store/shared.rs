//! The SQL both engines run unchanged, expanded into each engine's `impl Store`.
//!
//! PostgreSQL and SQLite accept the same text for these statements (numbered
//! `$N` parameters, `ON DELETE CASCADE`, partial unique indexes); writing them
//! once keeps the two engines from drifting apart. Engine-specific statements
//! are written in the engine's own module. The client INSERT and UPDATE, with
//! their column lists and binds, come from `store::client_columns`.

/// Expands to the [`super::Store`] methods shared by both engines. The
/// implementing type must have a `pool` field of the engine's pool type, and
/// the engine module a `begin_locked(pool, lock)` and a `KEY_LOCK`.
macro_rules! shared_store_methods {
    () => {
        async fn ping(&self) -> Result<(), StoreError> {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        }

        async fn create_client(&self, client: &Client, secret: Option<&NewSecret>) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            bind_client(sqlx::query(&INSERT_CLIENT), client, Statement::Insert)
                .execute(&mut *tx)
                .await?;
            if let Some(secret) = secret {
                insert_secret(&mut tx, &client.id, secret).await?;
            }
            tx.commit().await?;
            Ok(())
        }

        async fn find_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
            sqlx::query("SELECT * FROM clients WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?
                .map(|row| client_from_row(&row))
                .transpose()
        }

        async fn client_secrets(
            &self,
            id: &ClientId,
            now: DateTime<Utc>,
        ) -> Result<Vec<super::ExpiringSecret>, StoreError> {
            let rows: Vec<(String, Option<DbTime>)> = sqlx::query_as(
                "SELECT secret_hash, expires_at FROM client_secrets \
                 WHERE client_id = $1 AND (expires_at IS NULL OR expires_at > $2) ORDER BY created_at DESC",
            )
            .bind(id.as_str())
            .bind(DbTime(now))
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(|(h, e)| (SecretHash::from_stored(h), e.map(|t| t.0))).collect())
        }

        async fn list_clients(&self, after: Option<&ClientId>, limit: u32) -> Result<Vec<Client>, StoreError> {
            sqlx::query("SELECT * FROM clients WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after.map_or("", ClientId::as_str))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(client_from_row)
                .collect()
        }

        async fn update_client(&self, client: &Client) -> Result<(), StoreError> {
            let done = bind_client(sqlx::query(&UPDATE_CLIENT), client, Statement::Update)
                .execute(&self.pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        }

        async fn delete_client(&self, id: &ClientId) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM client_secrets WHERE client_id = $1").bind(id.as_str()).execute(&mut *tx).await?;
            let done = sqlx::query("DELETE FROM clients WHERE id = $1").bind(id.as_str()).execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            tx.commit().await?;
            Ok(())
        }

        async fn rotate_client_secret(
            &self,
            id: &ClientId,
            secret: &NewSecret,
            old_valid_until: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            let now = DbTime(secret.created_at);
            let until = DbTime(old_valid_until);
            let mut tx = self.pool.begin().await?;
            // Touching the client row first locks it (PostgreSQL) or takes the
            // write lock (SQLite), so two rotations of one client serialize.
            let touched = sqlx::query("UPDATE clients SET updated_at = $2 WHERE id = $1")
                .bind(id.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if touched.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query("DELETE FROM client_secrets WHERE client_id = $1 AND expires_at IS NOT NULL AND expires_at <= $2")
                .bind(id.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE client_secrets SET expires_at = $2 \
                 WHERE client_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind(id.as_str())
            .bind(until)
            .execute(&mut *tx)
            .await?;
            insert_secret(&mut tx, id, secret).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn client_scopes(&self) -> Result<Vec<String>, StoreError> {
            let rows: Vec<(String,)> =
                sqlx::query_as("SELECT DISTINCT scope FROM clients WHERE scope <> ''").fetch_all(&self.pool).await?;
            Ok(rows.into_iter().map(|(s,)| s).collect())
        }

        async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            insert_key(&mut tx, key).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn change_signing_keys<E, F>(&self, decide: F) -> Result<Result<Vec<KeyChange>, E>, StoreError>
        where
            E: Send,
            F: FnOnce(&[StoredKey]) -> Result<Vec<KeyChange>, E> + Send,
        {
            // The engine's exclusive lock (PostgreSQL advisory lock, SQLite's
            // write lock) is taken before reading, so processes sharing the
            // database never decide on the same keys twice.
            let mut tx = begin_locked(&self.pool, KEY_LOCK).await?;
            let keys = select_keys(&mut tx).await?;
            let changes = match decide(&keys) {
                Ok(changes) => changes,
                Err(e) => return Ok(Err(e)),
            };
            apply_key_changes(&mut tx, &changes).await?;
            tx.commit().await?;
            Ok(Ok(changes))
        }

        async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
            sqlx::query_as::<_, KeyRow>("SELECT * FROM signing_keys ORDER BY created_at, kid")
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(StoredKey::try_from)
                .collect()
        }
    };
}

/// Expands to the engine-generic helpers `insert_secret`, `insert_key` and
/// `apply_key_changes` for one engine.
macro_rules! shared_store_helpers {
    ($db:ty) => {
        async fn insert_key(tx: &mut sqlx::Transaction<'static, $db>, key: &StoredKey) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO signing_keys (kid, alg, state, public_jwk, private_key, kek_id, created_at, \
                 activated_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&key.kid)
            .bind(key.alg.as_str())
            .bind(key.state.as_str())
            .bind(&key.public_jwk)
            .bind(key.sealed_private_key.as_deref())
            .bind(key.kek_id.as_deref())
            .bind(DbTime(key.created_at))
            .bind(key.activated_at.map(DbTime))
            .bind(key.retired_at.map(DbTime))
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        async fn select_keys(tx: &mut sqlx::Transaction<'static, $db>) -> Result<Vec<StoredKey>, StoreError> {
            sqlx::query_as::<_, KeyRow>("SELECT * FROM signing_keys ORDER BY created_at, kid")
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(StoredKey::try_from)
                .collect()
        }

        async fn apply_key_changes(
            tx: &mut sqlx::Transaction<'static, $db>,
            changes: &[KeyChange],
        ) -> Result<(), StoreError> {
            for change in changes {
                let query = match change {
                    KeyChange::Insert(key) => {
                        insert_key(tx, key).await?;
                        continue;
                    }
                    // Retiring destroys the private part: a retired key never signs again.
                    KeyChange::Retire { kid, at } => sqlx::query(
                        "UPDATE signing_keys SET state = 'retired', retired_at = $2, private_key = NULL, \
                         kek_id = NULL WHERE kid = $1",
                    )
                    .bind(kid)
                    .bind(DbTime(*at)),
                    KeyChange::Promote { kid, at } => {
                        sqlx::query("UPDATE signing_keys SET state = 'current', activated_at = $2 WHERE kid = $1")
                            .bind(kid)
                            .bind(DbTime(*at))
                    }
                    KeyChange::Remove { kid } => sqlx::query("DELETE FROM signing_keys WHERE kid = $1").bind(kid),
                    KeyChange::Reseal { kid, sealed, kek_id } => {
                        sqlx::query("UPDATE signing_keys SET private_key = $2, kek_id = $3 WHERE kid = $1")
                            .bind(kid)
                            .bind(sealed.as_slice())
                            .bind(kek_id)
                    }
                };
                query.execute(&mut **tx).await?;
            }
            Ok(())
        }

        async fn insert_secret(
            tx: &mut sqlx::Transaction<'static, $db>,
            client: &ClientId,
            secret: &NewSecret,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO client_secrets (id, client_id, secret_hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, NULL)",
            )
            .bind(&secret.id)
            .bind(client.as_str())
            .bind(secret.hash.as_stored())
            .bind(DbTime(secret.created_at))
            .execute(&mut **tx)
            .await?;
            Ok(())
        }
    };
}

pub(super) use {shared_store_helpers, shared_store_methods};
