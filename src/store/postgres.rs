//! The PostgreSQL engine: production storage, shared by any number of replicas.

use std::{str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool, Postgres,
};

use super::{
    rows::{ClientColumns, ClientRow, DbTime, KeyRow},
    shared::{shared_store_helpers, shared_store_methods},
    NewSecret, Store, StoreError,
};
use crate::{
    clients::{Client, ClientId, SecretHash},
    keys::StoredKey,
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

impl Store for PgStore {
    shared_store_methods!();
}
