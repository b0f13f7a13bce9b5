//! Storage: the [`Store`] contract, its two engines (PostgreSQL for
//! production, SQLite embedded), and [`Storage`], the engine picked at start.
//!
//! Every method is one use-case-sized unit of work in domain types;
//! multi-row changes are transactions inside the engine, so nothing is ever
//! half-written. The SQL is shared text (numbered `$N` parameters, which both
//! engines accept) expanded into each engine by `store::shared`; engine-specific
//! work lives in each engine's module. The contract test in
//! `tests/api/store.rs` runs against both real engines.

mod audit_codec;
mod audit_names;
mod audit_store;
mod client_columns;
mod federations;
pub mod health;
mod postgres;
mod postgres_notify;
mod rows;
mod shared;
mod shared_audit;
mod shared_consumers;
mod shared_owned;
mod shared_tokens;
mod sqlite;
pub mod sqlite_changes;
mod storage;

use std::future::Future;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

pub use audit_store::{AuditCut, AuditStore};
pub use federations::FederationStore;
pub use health::{BreakerState, DbHealth, GuardSettings};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use storage::Storage;

use crate::{
    audit::{
        chain::AuditRecord,
        event::{AuditEvent, AuditFilter},
    },
    clients::{Client, ClientId, SecretHash},
    keys::{
        consumers::{ConsumerLimits, Sighting},
        lifecycle::KeyChange,
        StoredKey,
    },
    protect::period::Period,
    token::refresh::{NewRefreshToken, RefreshFamily, RefreshRecord, RefreshTokenHash, Rotation},
};

/// Storage failures, as callers need to tell them apart.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row the operation needs does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness constraint refused the write.
    #[error("conflict on {constraint}")]
    Conflict {
        /// The constraint that refused it.
        constraint: String,
    },
    /// A stored value does not decode into the domain type.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database failed or is unreachable.
    #[error("database error")]
    Backend(#[source] sqlx::Error),
    /// The first connection to the database failed. The message names the
    /// server (never the URL, which may hold a password) and the cause.
    #[error("could not connect to PostgreSQL at {host}:{port}: {cause}")]
    Connect {
        /// The host from the URL (or socket directory).
        host: String,
        /// The port.
        port: u16,
        /// What went wrong: refused, no answer within the deadline, a
        /// host name that does not resolve, authentication, TLS, …
        cause: String,
    },
    /// Migrations could not be applied.
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The database cannot be reached now: the call missed its deadline,
    /// the connection failed, or the circuit breaker is open and the call
    /// was not tried (see [`health`]). Retry later.
    #[error("database unavailable: {0}")]
    Unavailable(&'static str),
}

impl StoreError {
    /// Whether this means the database could not be reached (as opposed to
    /// an answer such as `NotFound`): `Unavailable`, or a connection failure.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::Connect { .. } => true,
            Self::Backend(e) => health::is_connection_error(e),
            _ => false,
        }
    }

    /// The first unreachable-database [`StoreError`] in an error's cause
    /// chain, if any (for the HTTP layer, which answers it with 503).
    #[must_use]
    pub fn unavailable_in(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut next = Some(error);
        while let Some(e) = next {
            if e.downcast_ref::<Self>().is_some_and(Self::is_unavailable) {
                return true;
            }
            next = e.source();
        }
        false
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict {
                constraint: db.constraint().unwrap_or("unique").to_owned(),
            },
            e => Self::Backend(e),
        }
    }
}

/// A new client secret to store.
#[derive(Debug)]
pub struct NewSecret {
    /// Row id.
    pub id: String,
    /// The stored hash (see [`crate::clients::secret`]).
    pub hash: SecretHash,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// One write of a declarative apply ([`Store::apply_client_writes`]).
#[derive(Debug)]
pub enum ClientWrite {
    /// A new client, with its first secret when it authenticates with one.
    Create(Client, Option<NewSecret>),
    /// New metadata for an existing client and, when given, the secret that
    /// replaces all of its secrets at once.
    Update(Client, Option<NewSecret>),
    /// Delete a client the owner manages.
    Delete(ClientId),
}

/// Tokens issued to a client in one quota window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageCount {
    /// The client.
    pub client_id: ClientId,
    /// Hour or day.
    pub period: Period,
    /// Start of the window.
    pub window_start: DateTime<Utc>,
    /// Tokens issued (an increment when adding, the total when read back).
    pub issued: u64,
}

/// The storage contract both engines fulfil identically.
pub trait Store: Send + Sync {
    /// Checks the database answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Stores a new client with its first secret (none for secretless
    /// clients); `Conflict` if the id exists.
    fn create_client(
        &self,
        client: &Client,
        secret: Option<&NewSecret>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Looks a client up by id.
    fn find_client(
        &self,
        id: &ClientId,
    ) -> impl Future<Output = Result<Option<Client>, StoreError>> + Send;
    /// The client's secrets valid at `now`, with their expiry.
    fn client_secrets(
        &self,
        id: &ClientId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<ExpiringSecret>, StoreError>> + Send;
    /// Tells every process sharing the database that the client changed
    /// (PostgreSQL `NOTIFY`; nothing to do for the single-process SQLite).
    fn notify_client_changed(
        &self,
        id: &ClientId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Hears the client changes other processes announce: a receiver of
    /// [`ClientChange`]s, fed until it is dropped, or `None` when the engine
    /// serves one process (SQLite). PostgreSQL `LISTEN`s, subscribing again
    /// every second while it cannot. Must be called within a Tokio runtime.
    fn subscribe_client_changes(&self) -> Option<mpsc::Receiver<ClientChange>>;
    /// Clients ordered by id, starting after `after`, at most `limit`.
    fn list_clients(
        &self,
        after: Option<&ClientId>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Client>, StoreError>> + Send;
    /// Replaces a client's metadata (not its secrets); `NotFound` if absent.
    fn update_client(&self, client: &Client)
        -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Deletes a client and its secrets; `NotFound` if absent.
    fn delete_client(&self, id: &ClientId) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds a new secret; every secret valid now stays valid until
    /// `old_valid_until` at the latest. Expired secrets are purged.
    fn rotate_client_secret(
        &self,
        id: &ClientId,
        secret: &NewSecret,
        old_valid_until: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The clients that carry an owner label (set by [`Store::apply_client_writes`]),
    /// ordered by id, with their owner.
    fn client_owners(
        &self,
    ) -> impl Future<Output = Result<Vec<(ClientId, String)>, StoreError>> + Send;
    /// Makes the writes of a declarative apply in one transaction: all of
    /// them or, on any error, none. Created clients get `owner`; an updated
    /// one must carry no owner (it is adopted) or `owner` (`Conflict`
    /// otherwise), and its secrets are replaced when a secret is given;
    /// only clients carrying `owner` are deleted (`NotFound` otherwise).
    fn apply_client_writes(
        &self,
        owner: &str,
        writes: &[ClientWrite],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every client's allowed-scope string (for `scopes_supported`).
    fn client_scopes(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// Stores a signing key; `Conflict` if it would be a second `current` key.
    fn insert_signing_key(
        &self,
        key: &StoredKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// All stored signing keys, oldest first.
    fn signing_keys(&self) -> impl Future<Output = Result<Vec<StoredKey>, StoreError>> + Send;
    /// Changes the signing keys under an exclusive lock shared by every
    /// process on the database: reads the keys, asks `decide` what to change,
    /// applies it, commits. `decide`'s error aborts without changes.
    fn change_signing_keys<E, F>(
        &self,
        decide: F,
    ) -> impl Future<Output = Result<Result<Vec<KeyChange>, E>, StoreError>> + Send
    where
        E: Send,
        F: FnOnce(&[StoredKey]) -> Result<Vec<KeyChange>, E> + Send;
    /// Upserts JWKS consumer sightings (a later sighting wins) and forgets
    /// consumers not seen since `forget_before`, within `limits`: an address
    /// group with more than `limits.per_address` consumers (or a folded one)
    /// is folded into one, and no new consumer is added beyond
    /// `limits.total`. Returns how many sightings were not stored for lack of room.
    fn record_jwks_consumers(
        &self,
        sightings: &[Sighting],
        forget_before: DateTime<Utc>,
        limits: ConsumerLimits,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;
    /// Stores a new refresh family with its first token.
    fn create_refresh_family(
        &self,
        family: &RefreshFamily,
        token: &NewRefreshToken,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A refresh token with its family.
    fn find_refresh_token(
        &self,
        hash: &RefreshTokenHash,
    ) -> impl Future<Output = Result<Option<RefreshRecord>, StoreError>> + Send;
    /// Atomically consumes `old` and stores `new`; if `old` was already
    /// consumed, revokes its family instead (reuse). Of concurrent exchanges of
    /// one token, at most one is `Rotated`.
    fn rotate_refresh_token(
        &self,
        old: &RefreshTokenHash,
        new: &NewRefreshToken,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Rotation, StoreError>> + Send;
    /// Revokes a refresh family (idempotent).
    fn revoke_refresh_family(
        &self,
        family_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Denies an access token until it expires (idempotent).
    fn revoke_access_token(
        &self,
        jti: &str,
        client: &ClientId,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Whether the access token `jti` is revoked.
    fn access_token_revoked(
        &self,
        jti: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The revoked access tokens not yet expired at `now`: `jti` and expiry
    /// (what the in-memory revocation view is loaded from).
    fn live_revoked_access_tokens(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<(String, DateTime<Utc>)>, StoreError>> + Send;
    /// Revokes every live token of a client: its refresh families, and access
    /// tokens issued before `now`. Returns how many families were revoked.
    fn revoke_client_tokens(
        &self,
        client: &ClientId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Records a client assertion's `jti` until `expires_at`; false when the
    /// client used it before (a replay), on this replica or another.
    fn record_assertion_jti(
        &self,
        client_id: &ClientId,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Deletes revocations, refresh families and assertion ids that expired before `now`.
    fn purge_expired_tokens(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Locks a client until `until`, or unlocks it (`None`); `NotFound` if absent.
    fn set_client_lock(
        &self,
        client: &ClientId,
        until: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds token counts (of existing clients) and returns the totals of the
    /// same windows; windows older than two days are forgotten.
    fn add_token_usage(
        &self,
        increments: &[UsageCount],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<UsageCount>, StoreError>> + Send;
    /// Appends events to the hash-chained audit trail, in one transaction.
    /// Events from a server's audit journal name it in `journal`: those at or
    /// below the journal's applied sequence number are skipped (already
    /// appended), and the sequence number of the last one is recorded as
    /// applied in the same transaction.
    fn append_audit_events(
        &self,
        events: &[AuditEvent],
        journal: Option<JournalCursor<'_>>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Audit events matching `filter`, in chain order.
    fn audit_events(
        &self,
        filter: &AuditFilter,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, StoreError>> + Send;
    /// Consumers seen since `since`.
    fn jwks_consumers_since(
        &self,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Sighting>, StoreError>> + Send;
}

/// Where journaled audit events come from: the journal and each event's
/// sequence number in it (ascending, one per event).
#[derive(Clone, Copy, Debug)]
pub struct JournalCursor<'a> {
    /// The journal's persistent id.
    pub journal_id: &'a str,
    /// `seqs[i]` is the sequence number of `events[i]`.
    pub seqs: &'a [i64],
}

/// A secret hash and, after a rotation, the end of its grace period.
pub type ExpiringSecret = (SecretHash, Option<DateTime<Utc>>);

/// What a client-change subscription ([`Store::subscribe_client_changes`]) hears.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientChange {
    /// The subscription is (re)established; notices sent before may have
    /// been missed.
    Subscribed,
    /// A process announced a change to this client (the id as announced).
    Changed(String),
    /// The subscription was lost or could not be established (sent for each
    /// failed attempt); notices are missed until the next `Subscribed`.
    Lost,
}

/// The `LISTEN`/`NOTIFY` channel of client changes.
pub const CLIENT_CHANNEL: &str = "portcullis_clients";
