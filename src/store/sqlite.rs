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
    shared_owned::shared_owned_client_methods,
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

/// `PRAGMA cache_size` of every connection: 256 KiB (negative: KiB).
const CACHE_SIZE: &str = "-256";
/// `PRAGMA cache_spill` of every connection: a transaction writes its dirty
/// pages to the WAL mid-way only once they pass 4,096 pages (16 MiB at the
/// default page size). An audit batch of 8,000 events from 1,000 clients
/// dirties some 1,500 pages; spilled at the 256 KiB cache size, the same
/// index pages were written to the WAL several times per transaction. The
/// pages are held only while the transaction runs (one writer at a time),
/// and a larger transaction (a retention cut) still spills past the bound.
const CACHE_SPILL: &str = "4096";

/// SQLite storage.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// How to open a connection of its own (the client-change watcher's).
    options: Box<SqliteConnectOptions>,
    /// `audit_names` ids already read.
    audit_names: super::audit_names::AuditNames,
}

impl SqliteStore {
    /// Open connections, and idle ones among them.
    #[must_use]
    pub fn pool_stats(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// Closes the pool: every later call fails as a lost connection (tests
    /// of what happens when the database goes away).
    #[cfg(test)]
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }

    /// Opens (creating the file and its directory if needed) and migrates.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // Each pooled connection has its own page cache (SQLite's default
            // is 2 MiB): 256 KiB each bounds the pool's to 4 MiB at the
            // default 16 connections; the operating system caches the file.
            .pragma("cache_size", CACHE_SIZE)
            .pragma("cache_spill", CACHE_SPILL);
        create_private_file(options.get_filename())
            .map_err(|e| StoreError::Backend(sqlx::Error::Io(e)))?;
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&pool).await.map_err(StoreError::Migrate)?;
        Ok(Self {
            pool,
            options: Box::new(options),
            audit_names: super::audit_names::AuditNames::default(),
        })
    }
}

/// Creates the database file readable only by its owner (0600; its
/// directory 0700 when created), as it holds secret hashes and sealed keys.
/// SQLite gives its `-wal` and `-shm` files the database file's mode. An
/// existing file is left as it is; `:memory:` databases have no file.
fn create_private_file(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

shared_store_helpers!(Sqlite);
shared_token_helpers!(Sqlite);
shared_consumer_helpers!(Sqlite);
shared_audit_helpers!(Sqlite);

impl Store for SqliteStore {
    shared_store_methods!();
    shared_owned_client_methods!();
    shared_token_methods!();
    shared_consumer_methods!();
    /// Records the change for other processes' watchers
    /// ([`super::sqlite_changes`]), dropping rows far behind it.
    async fn notify_client_changed(&self, id: &ClientId) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let seq = sqlx::query("INSERT INTO client_changes (client_id) VALUES (?)")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .last_insert_rowid();
        sqlx::query("DELETE FROM client_changes WHERE seq <= ?")
            .bind(seq - super::sqlite_changes::KEPT)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
    fn subscribe_client_changes(&self) -> Option<tokio::sync::mpsc::Receiver<ClientChange>> {
        Some(super::sqlite_changes::subscribe((*self.options).clone()))
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
