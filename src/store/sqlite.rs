//! The SQLite engine: the embedded default, for one process.

use std::{str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    Sqlite, SqlitePool,
};

use super::{
    audit_codec,
    client_columns::{bind_client, client_from_row, Statement, INSERT_CLIENT, UPDATE_CLIENT},
    federations::shared_federation_methods,
    rows::{AuditRow, CheckpointRow, DbTime, KeyRow, RefreshRow},
    shared::{shared_store_helpers, shared_store_methods},
    shared_audit::{shared_audit_helpers, shared_audit_methods, shared_audit_retention_methods},
    shared_consumers::{shared_consumer_helpers, shared_consumer_methods},
    shared_tokens::{shared_token_helpers, shared_token_methods},
    AuditCut, AuditStore, ClientChange, FederationStore, NewSecret, Store, StoreError, UsageCount,
};
use crate::{
    audit::{chain, checkpoint::Checkpoint, AuditEvent, AuditFilter},
    clients::{Client, ClientId, SecretHash},
    federation::Federation,
    keys::{
        consumers::{ConsumerLimits, Sighting, FOLDED},
        lifecycle::KeyChange,
        StoredKey,
    },
    token::refresh::{NewRefreshToken, RefreshFamily, RefreshRecord, RefreshTokenHash, Rotation},
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite storage.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Open connections, and idle ones among them.
    #[must_use]
    pub fn pool_stats(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// Opens (creating the file and its directory if needed) and migrates.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let dir = options
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(ToOwned::to_owned);
        if let Some(dir) = dir {
            std::fs::create_dir_all(&dir).map_err(|e| StoreError::Backend(sqlx::Error::Io(e)))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await.map_err(StoreError::Migrate)?;
        Ok(Self { pool })
    }
}

shared_store_helpers!(Sqlite);
shared_token_helpers!(Sqlite);
shared_consumer_helpers!(Sqlite);
shared_audit_helpers!(Sqlite);

impl Store for SqliteStore {
    shared_store_methods!();
    shared_token_methods!();
    shared_consumer_methods!();
    async fn notify_client_changed(&self, id: &ClientId) -> Result<(), StoreError> {
        let _ = id;
        Ok(())
    }
    fn subscribe_client_changes(&self) -> Option<tokio::sync::mpsc::Receiver<ClientChange>> {
        None
    }

    shared_audit_methods!(Sqlite);
}

impl FederationStore for SqliteStore {
    shared_federation_methods!();
}

impl AuditStore for SqliteStore {
    shared_audit_retention_methods!(Sqlite);
}

/// Lock purposes (SQLite takes its one write lock for each).
const KEY_LOCK: i64 = 1;
/// See [`KEY_LOCK`].
const AUDIT_LOCK: i64 = 2;

/// Begins a transaction holding the database write lock (SQLite has one lock;
/// `_lock` names the purpose, as the PostgreSQL engine's advisory lock does).
async fn begin_locked(
    pool: &SqlitePool,
    _lock: i64,
) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}
