//! The SQL of declarative client management (`portcullis apply`), shared by
//! both engines: the owner label and the one transaction a plan's writes run in.

/// Expands to [`super::Store::client_owners`] and
/// [`super::Store::apply_client_writes`] for an engine with a `pool`, the
/// client column helpers and `insert_secret` in scope.
macro_rules! shared_owned_client_methods {
    () => {
        async fn client_owners(&self) -> Result<Vec<(ClientId, String)>, StoreError> {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT id, owner FROM clients WHERE owner IS NOT NULL ORDER BY id",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.into_iter()
                .map(|(id, owner)| {
                    ClientId::parse(&id)
                        .map(|id| (id, owner))
                        .map_err(|e| StoreError::Corrupt(format!("client {id}: {e}")))
                })
                .collect()
        }

        async fn apply_client_writes(
            &self,
            owner: &str,
            writes: &[super::ClientWrite],
        ) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            for write in writes {
                match write {
                    super::ClientWrite::Create(client, secret) => {
                        bind_client(sqlx::query(&INSERT_CLIENT), client, Statement::Insert)
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query("UPDATE clients SET owner = $2 WHERE id = $1")
                            .bind(client.id.as_str())
                            .bind(owner)
                            .execute(&mut *tx)
                            .await?;
                        if let Some(secret) = secret {
                            insert_secret(&mut tx, &client.id, secret).await?;
                        }
                    }
                    super::ClientWrite::Update(client, secret) => {
                        // Claiming the row first also locks it: an owner set
                        // by a concurrent apply is seen here, not overwritten.
                        let claimed = sqlx::query(
                            "UPDATE clients SET owner = $2 WHERE id = $1 AND (owner IS NULL OR owner = $2)",
                        )
                        .bind(client.id.as_str())
                        .bind(owner)
                        .execute(&mut *tx)
                        .await?;
                        if claimed.rows_affected() == 0 {
                            return Err(StoreError::Conflict { constraint: "owner".into() });
                        }
                        bind_client(sqlx::query(&UPDATE_CLIENT), client, Statement::Update)
                            .execute(&mut *tx)
                            .await?;
                        if let Some(secret) = secret {
                            sqlx::query("DELETE FROM client_secrets WHERE client_id = $1")
                                .bind(client.id.as_str())
                                .execute(&mut *tx)
                                .await?;
                            insert_secret(&mut tx, &client.id, secret).await?;
                        }
                    }
                    super::ClientWrite::Delete(id) => {
                        sqlx::query(
                            "DELETE FROM client_secrets WHERE client_id IN \
                             (SELECT id FROM clients WHERE id = $1 AND owner = $2)",
                        )
                        .bind(id.as_str())
                        .bind(owner)
                        .execute(&mut *tx)
                        .await?;
                        let done = sqlx::query("DELETE FROM clients WHERE id = $1 AND owner = $2")
                            .bind(id.as_str())
                            .bind(owner)
                            .execute(&mut *tx)
                            .await?;
                        if done.rows_affected() == 0 {
                            return Err(StoreError::NotFound);
                        }
                    }
                }
            }
            tx.commit().await?;
            Ok(())
        }
    };
}

pub(super) use shared_owned_client_methods;
