//! [`Storage`]: the engine picked at start, which handlers and services hold.
//! Every call runs through the database health guard ([`DbHealth`]): a
//! deadline per call and a circuit breaker, so an unreachable database fails
//! calls fast with [`StoreError::Unavailable`].

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use tokio::sync::mpsc;

use super::{
    health::{DbHealth, GuardSettings},
    ClientChange, ExpiringSecret, NewSecret, PgStore, SqliteStore, Store, StoreError, UsageCount,
};
use crate::{
    audit::{chain::AuditRecord, AuditEvent, AuditFilter},
    clients::{Client, ClientId},
    clock::Clock,
    keys::{
        consumers::{ConsumerLimits, Sighting},
        lifecycle::KeyChange,
        StoredKey,
    },
    token::refresh::{NewRefreshToken, RefreshFamily, RefreshRecord, RefreshTokenHash, Rotation},
};

/// SQLite waits this long for its write lock; a deadline shorter than that
/// would turn a busy moment of the local file into an "outage".
const SQLITE_BUSY: Duration = Duration::from_secs(5);

/// The configured engine behind the health guard. Handlers and services
/// hold this, not a generic; clones share the engine's pool and the guard.
#[derive(Clone, Debug)]
pub struct Storage {
    pub(super) engine: Engine,
    pub(super) health: Arc<DbHealth>,
    pub(super) deadline: Duration,
}

#[derive(Clone, Debug)]
pub(super) enum Engine {
    Postgres(PgStore),
    Sqlite(SqliteStore),
}

impl Storage {
    /// Connects to the engine named by the URL scheme and applies its
    /// migrations, with the guard of one-off commands
    /// ([`GuardSettings::command`]: generous deadlines).
    pub async fn connect(url: &SecretString, max_connections: u32) -> Result<Self, StoreError> {
        Self::open(
            url,
            max_connections,
            GuardSettings::command(),
            Clock::System,
        )
        .await
    }

    /// Connects (the pool waits for a connection no longer than the
    /// request deadline), applies the migrations, and guards every call
    /// with `guard`; the last contact is read on `clock`. On SQLite the
    /// deadlines are at least its 5 s busy timeout.
    pub async fn open(
        url: &SecretString,
        max_connections: u32,
        mut guard: GuardSettings,
        clock: Clock,
    ) -> Result<Self, StoreError> {
        let url = url.expose_secret();
        let engine = if url.starts_with("sqlite:") {
            guard.request_deadline = guard.request_deadline.max(SQLITE_BUSY);
            guard.background_deadline = guard.background_deadline.max(SQLITE_BUSY);
            Engine::Sqlite(SqliteStore::connect(url, max_connections).await?)
        } else {
            Engine::Postgres(PgStore::connect(url, max_connections, guard.request_deadline).await?)
        };
        Ok(Self {
            engine,
            deadline: guard.request_deadline,
            health: Arc::new(DbHealth::new(guard, clock)),
        })
    }

    /// The same storage for background writers (audit trail, purges, key
    /// checks, quota sync): the longer background deadline, the same breaker.
    #[must_use]
    pub fn background(&self) -> Self {
        Self {
            deadline: self.health.settings().background_deadline,
            ..self.clone()
        }
    }

    /// Closes a SQLite store's pool: every later call fails as a lost
    /// connection, as when the database goes away (tests).
    #[cfg(test)]
    pub(crate) async fn close_sqlite(&self) {
        if let Engine::Sqlite(s) = &self.engine {
            s.close().await;
        }
    }

    /// The database's reachability (breaker, last contact, up/down).
    #[must_use]
    pub fn health(&self) -> &DbHealth {
        &self.health
    }

    /// `Unavailable` at once while the database is known to be unreachable:
    /// for callers about to do costly work (hashing a new secret) before a write.
    pub fn check_available(&self) -> Result<(), StoreError> {
        if self.health.is_up() {
            Ok(())
        } else {
            Err(StoreError::Unavailable("the database is unreachable"))
        }
    }

    /// Pings the database whatever the breaker says, within the request
    /// deadline, and records the outcome: the background prober's call,
    /// which notices recovery (and outages) without traffic.
    pub async fn probe(&self) -> Result<(), StoreError> {
        let deadline = self.health.settings().request_deadline;
        self.health
            .run(deadline, async {
                match &self.engine {
                    Engine::Postgres(s) => s.ping().await,
                    Engine::Sqlite(s) => s.ping().await,
                }
            })
            .await
    }

    /// Pool connections: open, and idle among them.
    #[must_use]
    pub fn pool_stats(&self) -> (u32, usize) {
        match &self.engine {
            Engine::Postgres(s) => s.pool_stats(),
            Engine::Sqlite(s) => s.pool_stats(),
        }
    }

    /// The engine's name, for logs.
    #[must_use]
    pub fn engine(&self) -> &'static str {
        match self.engine {
            Engine::Postgres(_) => "postgres",
            Engine::Sqlite(_) => "sqlite",
        }
    }
}

/// Runs a store call on the engine under the health guard. The engine's
/// future is boxed: sqlx futures run to kilobytes, and inlined they would
/// make every request future that merely *might* call the store (a quota, a
/// refresh family) that large, copied whole each time it moves.
macro_rules! delegate {
    ($self:ident, $method:ident($($arg:expr),*)) => {
        $self
            .health
            .guard($self.deadline, Box::pin(async {
                match &$self.engine {
                    Engine::Postgres(s) => s.$method($($arg),*).await,
                    Engine::Sqlite(s) => s.$method($($arg),*).await,
                }
            }))
            .await
    };
}
pub(super) use delegate;

impl Store for Storage {
    async fn ping(&self) -> Result<(), StoreError> {
        delegate!(self, ping())
    }
    async fn create_client(
        &self,
        client: &Client,
        secret: Option<&NewSecret>,
    ) -> Result<(), StoreError> {
        delegate!(self, create_client(client, secret))
    }
    async fn find_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
        delegate!(self, find_client(id))
    }
    async fn client_secrets(
        &self,
        id: &ClientId,
        now: DateTime<Utc>,
    ) -> Result<Vec<ExpiringSecret>, StoreError> {
        delegate!(self, client_secrets(id, now))
    }
    async fn notify_client_changed(&self, id: &ClientId) -> Result<(), StoreError> {
        delegate!(self, notify_client_changed(id))
    }
    fn subscribe_client_changes(&self) -> Option<mpsc::Receiver<ClientChange>> {
        match &self.engine {
            Engine::Postgres(s) => s.subscribe_client_changes(),
            Engine::Sqlite(s) => s.subscribe_client_changes(),
        }
    }
    async fn list_clients(
        &self,
        after: Option<&ClientId>,
        limit: u32,
    ) -> Result<Vec<Client>, StoreError> {
        delegate!(self, list_clients(after, limit))
    }
    async fn update_client(&self, client: &Client) -> Result<(), StoreError> {
        delegate!(self, update_client(client))
    }
    async fn delete_client(&self, id: &ClientId) -> Result<(), StoreError> {
        delegate!(self, delete_client(id))
    }
    async fn rotate_client_secret(
        &self,
        id: &ClientId,
        secret: &NewSecret,
        old_valid_until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        delegate!(self, rotate_client_secret(id, secret, old_valid_until))
    }
    async fn client_owners(&self) -> Result<Vec<(ClientId, String)>, StoreError> {
        delegate!(self, client_owners())
    }
    async fn apply_client_writes(
        &self,
        owner: &str,
        writes: &[super::ClientWrite],
    ) -> Result<(), StoreError> {
        delegate!(self, apply_client_writes(owner, writes))
    }
    async fn client_scopes(&self) -> Result<Vec<String>, StoreError> {
        delegate!(self, client_scopes())
    }
    async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        delegate!(self, insert_signing_key(key))
    }
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        delegate!(self, signing_keys())
    }
    async fn change_signing_keys<E, F>(
        &self,
        decide: F,
    ) -> Result<Result<Vec<KeyChange>, E>, StoreError>
    where
        E: Send,
        F: FnOnce(&[StoredKey]) -> Result<Vec<KeyChange>, E> + Send,
    {
        delegate!(self, change_signing_keys(decide))
    }
    async fn record_jwks_consumers(
        &self,
        sightings: &[Sighting],
        forget_before: DateTime<Utc>,
        limits: ConsumerLimits,
    ) -> Result<usize, StoreError> {
        delegate!(
            self,
            record_jwks_consumers(sightings, forget_before, limits)
        )
    }
    async fn create_refresh_family(
        &self,
        family: &RefreshFamily,
        token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        delegate!(self, create_refresh_family(family, token))
    }
    async fn find_refresh_token(
        &self,
        hash: &RefreshTokenHash,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        delegate!(self, find_refresh_token(hash))
    }
    async fn rotate_refresh_token(
        &self,
        old: &RefreshTokenHash,
        new: &NewRefreshToken,
        now: DateTime<Utc>,
    ) -> Result<Rotation, StoreError> {
        delegate!(self, rotate_refresh_token(old, new, now))
    }
    async fn revoke_refresh_family(
        &self,
        family_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        delegate!(self, revoke_refresh_family(family_id, reason, now))
    }
    async fn revoke_access_token(
        &self,
        jti: &str,
        client: &ClientId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        delegate!(self, revoke_access_token(jti, client, expires_at))
    }
    async fn access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        delegate!(self, access_token_revoked(jti))
    }
    async fn live_revoked_access_tokens(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        delegate!(self, live_revoked_access_tokens(now))
    }
    async fn revoke_client_tokens(
        &self,
        client: &ClientId,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        delegate!(self, revoke_client_tokens(client, now))
    }
    async fn record_assertion_jti(
        &self,
        client_id: &ClientId,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        delegate!(self, record_assertion_jti(client_id, jti, expires_at))
    }
    async fn purge_expired_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        delegate!(self, purge_expired_tokens(now))
    }
    async fn set_client_lock(
        &self,
        client: &ClientId,
        until: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        delegate!(self, set_client_lock(client, until))
    }
    async fn add_token_usage(
        &self,
        increments: &[UsageCount],
        now: DateTime<Utc>,
    ) -> Result<Vec<UsageCount>, StoreError> {
        delegate!(self, add_token_usage(increments, now))
    }
    async fn append_audit_events(
        &self,
        events: &[AuditEvent],
        journal: Option<super::JournalCursor<'_>>,
    ) -> Result<(), StoreError> {
        delegate!(self, append_audit_events(events, journal))
    }
    async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        delegate!(self, audit_events(filter))
    }
    async fn jwks_consumers_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<Sighting>, StoreError> {
        delegate!(self, jwks_consumers_since(since))
    }
}
