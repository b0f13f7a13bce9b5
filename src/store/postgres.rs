//! The PostgreSQL engine: production storage, shared by any number of replicas.

use std::{str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool, Postgres,
};

use super::{
    rows::{ClientColumns, ClientRow, DbTime, KeyRow, RefreshRow},
    shared::{shared_store_helpers, shared_store_methods},
    shared_tokens::{shared_token_helpers, shared_token_methods},
    NewSecret, Store, StoreError,
};
use crate::{
    clients::{Client, ClientId, SecretHash},
    keys::{consumers::Sighting, lifecycle::KeyChange, StoredKey},
    token::refresh::{NewRefreshToken, RefreshFamily, RefreshRecord, RefreshTokenHash, Rotation},
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// PostgreSQL storage.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects (`postgres://…`, `sslmode` and `sslrootcert` honoured) and migrates.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("portcullis");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await.map_err(StoreError::Migrate)?;
        Ok(Self { pool })
    }
}

shared_store_helpers!(Postgres);
shared_token_helpers!(Postgres);

impl Store for PgStore {
    shared_store_methods!();
    shared_token_methods!();

    async fn change_signing_keys<E, F>(
        &self,
        decide: F,
    ) -> Result<Result<Vec<KeyChange>, E>, StoreError>
    where
        E: Send,
        F: FnOnce(&[StoredKey]) -> Result<Vec<KeyChange>, E> + Send,
    {
        let mut tx = self.pool.begin().await?;
        // A transaction-scoped advisory lock: one key change at a time across
        // every replica; released at commit or rollback.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(KEY_LOCK)
            .execute(&mut *tx)
            .await?;
        let keys = select_keys(&mut tx).await?;
        let changes = match decide(&keys) {
            Ok(changes) => changes,
            Err(e) => return Ok(Err(e)),
        };
        apply_key_changes(&mut tx, &changes).await?;
        tx.commit().await?;
        Ok(Ok(changes))
    }
}
/// Advisory lock id guarding signing-key changes ("portcull" in ASCII).
const KEY_LOCK: i64 = 0x706f_7274_6375_6c6c;
