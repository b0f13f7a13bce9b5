//! The PostgreSQL engine: production storage, shared by any number of replicas.

use std::{str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool, Postgres,
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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// PostgreSQL storage.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// `audit_names` ids already read.
    audit_names: super::audit_names::AuditNames,
}

impl PgStore {
    /// Open connections, and idle ones among them.
    #[must_use]
    pub fn pool_stats(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// Connects (`postgres://…`, `sslmode` and `sslrootcert` honoured) and
    /// migrates; a connection is waited for at most `acquire_timeout`.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("portcullis");
        first_connection(&options, acquire_timeout).await?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await.map_err(StoreError::Migrate)?;
        Ok(Self {
            pool,
            audit_names: super::audit_names::AuditNames::default(),
        })
    }
}

/// Opens (and closes) one connection, so that a server that cannot be
/// reached is reported with its host, port and the cause — the pool would
/// only say that it timed out waiting for a connection. Waits at most
/// `deadline` (at least 5 s: a server starting up, a slow DNS).
async fn first_connection(
    options: &PgConnectOptions,
    deadline: Duration,
) -> Result<(), StoreError> {
    use sqlx::{ConnectOptions as _, Connection as _};
    let deadline = deadline.max(Duration::from_secs(5));
    let failed = |cause: String| StoreError::Connect {
        host: options.get_host().to_owned(),
        port: options.get_port(),
        cause,
    };
    match tokio::time::timeout(deadline, options.connect()).await {
        Err(_) => Err(failed(format!("no answer within {} s", deadline.as_secs()))),
        Ok(Err(e)) => Err(failed(connect_cause(&e))),
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Ok(())
        }
    }
}

/// The innermost useful description of a connection failure ("Connection
/// refused (os error 111)", "failed to lookup address information: …",
/// "password authentication failed for user …").
fn connect_cause(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::Tls(tls) => format!("TLS: {tls}"),
        other => other.to_string(),
    }
}

shared_store_helpers!(Postgres);
shared_token_helpers!(Postgres);
shared_consumer_helpers!(Postgres);
shared_audit_helpers!(Postgres);

impl Store for PgStore {
    shared_store_methods!();
    shared_owned_client_methods!();
    shared_token_methods!();
    shared_consumer_methods!();
    async fn notify_client_changed(&self, id: &ClientId) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(super::CLIENT_CHANNEL)
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
    fn subscribe_client_changes(&self) -> Option<tokio::sync::mpsc::Receiver<ClientChange>> {
        Some(super::postgres_notify::subscribe(self.pool.clone()))
    }

    shared_audit_methods!(Postgres);
}

impl FederationStore for PgStore {
    shared_federation_methods!();
}

impl AuditStore for PgStore {
    shared_audit_retention_methods!(Postgres);
}
/// Advisory lock id guarding signing-key changes ("portcull" in ASCII).
const KEY_LOCK: i64 = 0x706f_7274_6375_6c6c;
/// Advisory lock id guarding the audit chain ("portaudt").
const AUDIT_LOCK: i64 = 0x706f_7274_6175_6474;
/// Begins a transaction holding the advisory lock `lock` until it ends.
async fn begin_locked(
    pool: &PgPool,
    lock: i64,
) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}
