//! Row types shared by both engines and their conversion to domain types.
//!
//! [`DbTime`] is the one engine-specific column type: `TIMESTAMPTZ` on
//! PostgreSQL, integer microseconds since the epoch on SQLite (so that SQL
//! comparisons of times are numeric, not textual).

use chrono::{DateTime, Utc};
use sqlx::{
    encode::IsNull,
    error::BoxDynError,
    postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef},
    sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef},
    Decode, Encode, Postgres, Sqlite, Type,
};

use super::StoreError;
use crate::{
    audit::chain::AuditRecord,
    clients::{AuthMethod, Client, ClientId, GrantType, KeyMaterial},
    keys::{Algorithm, KeyState, StoredKey},
    oauth::scope::ScopeSet,
    token::refresh::{RefreshFamily, RefreshRecord},
};

/// A UTC timestamp column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DbTime(pub DateTime<Utc>);

impl Type<Postgres> for DbTime {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
}
impl<'r> Decode<'r, Postgres> for DbTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(<DateTime<Utc> as Decode<Postgres>>::decode(value)?))
    }
}
impl Encode<'_, Postgres> for DbTime {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl Type<Sqlite> for DbTime {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }
}
impl<'r> Decode<'r, Sqlite> for DbTime {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let micros = <i64 as Decode<Sqlite>>::decode(value)?;
        DateTime::from_timestamp_micros(micros)
            .map(Self)
            .ok_or_else(|| "timestamp out of range".into())
    }
}
impl<'q> Encode<'q, Sqlite> for DbTime {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<Sqlite>>::encode_by_ref(&self.0.timestamp_micros(), buf)
    }
}

/// A `clients` row.
#[derive(sqlx::FromRow)]
pub struct ClientRow {
    id: String,
    client_name: Option<String>,
    grant_types: String,
    token_endpoint_auth_method: String,
    scope: String,
    allowed_audiences: String,
    default_audience: Option<String>,
    access_token_ttl: Option<i64>,
    enabled: bool,
    created_at: DbTime,
    updated_at: DbTime,
    allow_introspection: bool,
    refresh_token_idle_ttl: Option<i64>,
    refresh_token_absolute_ttl: Option<i64>,
    tokens_revoked_before: Option<DbTime>,
    locked_until: Option<DbTime>,
    rate_limit_per_second: Option<i64>,
    rate_limit_burst: Option<i64>,
    token_quota_per_hour: Option<i64>,
    token_quota_per_day: Option<i64>,
    key_material: Option<String>,
    certificate_bound_access_tokens: bool,
}

/// Column values of a client, in the order of the shared SQL's parameters.
pub struct ClientColumns {
    pub id: String,
    pub client_name: Option<String>,
    pub grant_types: String,
    pub auth_method: &'static str,
    pub scope: String,
    pub allowed_audiences: String,
    pub default_audience: Option<String>,
    pub access_token_ttl: Option<i64>,
    pub enabled: bool,
    pub created_at: DbTime,
    pub updated_at: DbTime,
    pub allow_introspection: bool,
    pub refresh_token_idle_ttl: Option<i64>,
    pub refresh_token_absolute_ttl: Option<i64>,
    pub rate_limit_per_second: Option<i64>,
    pub rate_limit_burst: Option<i64>,
    pub token_quota_per_hour: Option<i64>,
    pub token_quota_per_day: Option<i64>,
    pub key_material: Option<String>,
    pub certificate_bound_access_tokens: bool,
}

impl From<&Client> for ClientColumns {
    fn from(c: &Client) -> Self {
        Self {
            id: c.id.as_str().to_owned(),
            client_name: c.name.clone(),
            grant_types: c
                .grant_types
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            auth_method: c.auth_method.as_str(),
            scope: c.scope.to_string(),
            allowed_audiences: serde_json::Value::from(c.allowed_audiences.clone()).to_string(),
            default_audience: c.default_audience.clone(),
            access_token_ttl: c.access_token_ttl.map(i64::from),
            enabled: c.enabled,
            created_at: DbTime(c.created_at),
            updated_at: DbTime(c.updated_at),
            allow_introspection: c.allow_introspection,
            refresh_token_idle_ttl: c.refresh_token_idle_ttl.map(i64::from),
            refresh_token_absolute_ttl: c.refresh_token_absolute_ttl.map(i64::from),
            rate_limit_per_second: c.rate_limit_per_second.map(i64::from),
            rate_limit_burst: c.rate_limit_burst.map(i64::from),
            token_quota_per_hour: c.token_quota_per_hour.map(i64::from),
            token_quota_per_day: c.token_quota_per_day.map(i64::from),
            key_material: (!c.keys.is_empty())
                .then(|| serde_json::to_string(&c.keys).unwrap_or_default()),
            certificate_bound_access_tokens: c.certificate_bound_access_tokens,
        }
    }
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;

    fn try_from(r: ClientRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("client {}: {what}", r.id));
        let grant_types = r
            .grant_types
            .split(' ')
            .map(|g| GrantType::parse(g).ok_or_else(|| corrupt("unknown grant type")))
            .collect::<Result<_, _>>()?;
        Ok(Client {
            id: ClientId::parse(&r.id).map_err(|_| corrupt("bad id"))?,
            name: r.client_name.clone(),
            grant_types,
            auth_method: AuthMethod::parse(&r.token_endpoint_auth_method)
                .ok_or_else(|| corrupt("auth method"))?,
            scope: ScopeSet::parse(&r.scope).map_err(|_| corrupt("scope"))?,
            allowed_audiences: serde_json::from_str(&r.allowed_audiences)
                .map_err(|_| corrupt("audiences"))?,
            default_audience: r.default_audience.clone(),
            access_token_ttl: r.access_token_ttl.map(seconds),
            allow_introspection: r.allow_introspection,
            refresh_token_idle_ttl: r.refresh_token_idle_ttl.map(seconds),
            refresh_token_absolute_ttl: r.refresh_token_absolute_ttl.map(seconds),
            tokens_revoked_before: r.tokens_revoked_before.map(|t| t.0),
            locked_until: r.locked_until.map(|t| t.0),
            rate_limit_per_second: r.rate_limit_per_second.map(seconds),
            rate_limit_burst: r.rate_limit_burst.map(seconds),
            token_quota_per_hour: r.token_quota_per_hour.map(seconds),
            token_quota_per_day: r.token_quota_per_day.map(seconds),
            keys: match &r.key_material {
                Some(json) => serde_json::from_str(json).map_err(|_| corrupt("key material"))?,
                None => KeyMaterial::default(),
            },
            certificate_bound_access_tokens: r.certificate_bound_access_tokens,
            enabled: r.enabled,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

/// A stored positive count (lifetime in seconds, rate, quota) as `u32`.
fn seconds(t: i64) -> u32 {
    t.clamp(1, i64::from(u32::MAX)) as u32
}

/// A `signing_keys` row.
#[derive(sqlx::FromRow)]
pub struct KeyRow {
    kid: String,
    alg: String,
    state: String,
    public_jwk: String,
    private_key: Option<Vec<u8>>,
    kek_id: Option<String>,
    created_at: DbTime,
    activated_at: Option<DbTime>,
    retired_at: Option<DbTime>,
}

impl TryFrom<KeyRow> for StoredKey {
    type Error = StoreError;

    fn try_from(r: KeyRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("signing key {}: {what}", r.kid));
        Ok(StoredKey {
            alg: Algorithm::parse(&r.alg).ok_or_else(|| corrupt("unknown algorithm"))?,
            state: KeyState::parse(&r.state).ok_or_else(|| corrupt("unknown state"))?,
            kid: r.kid,
            public_jwk: r.public_jwk,
            sealed_private_key: r.private_key,
            kek_id: r.kek_id,
            created_at: r.created_at.0,
            activated_at: r.activated_at.map(|t| t.0),
            retired_at: r.retired_at.map(|t| t.0),
        })
    }
}

/// A `refresh_tokens` row joined with its family.
#[derive(sqlx::FromRow)]
pub struct RefreshRow {
    issued_at: DbTime,
    expires_at: DbTime,
    consumed_at: Option<DbTime>,
    family_id: String,
    client_id: String,
    scope: String,
    audiences: String,
    family_created_at: DbTime,
    family_expires_at: DbTime,
    family_revoked_at: Option<DbTime>,
    certificate_thumbprint: Option<String>,
}

impl TryFrom<RefreshRow> for RefreshRecord {
    type Error = StoreError;

    fn try_from(r: RefreshRow) -> Result<Self, StoreError> {
        let corrupt =
            |what: &str| StoreError::Corrupt(format!("refresh family {}: {what}", r.family_id));
        Ok(RefreshRecord {
            family: RefreshFamily {
                client_id: ClientId::parse(&r.client_id).map_err(|_| corrupt("client id"))?,
                scope: ScopeSet::parse(&r.scope).map_err(|_| corrupt("scope"))?,
                audiences: serde_json::from_str(&r.audiences).map_err(|_| corrupt("audiences"))?,
                id: r.family_id,
                created_at: r.family_created_at.0,
                expires_at: r.family_expires_at.0,
                revoked_at: r.family_revoked_at.map(|t| t.0),
                certificate_thumbprint: r.certificate_thumbprint,
            },
            issued_at: r.issued_at.0,
            expires_at: r.expires_at.0,
            consumed_at: r.consumed_at.map(|t| t.0),
        })
    }
}

/// An `audit_events` row.
#[derive(sqlx::FromRow)]
pub struct AuditRow {
    id: i64,
    occurred_at: DbTime,
    kind: String,
    actor: String,
    client_id: Option<String>,
    request_id: Option<String>,
    reason: Option<String>,
    details: String,
    prev_hash: String,
    hash: String,
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = StoreError;

    fn try_from(r: AuditRow) -> Result<Self, StoreError> {
        Ok(AuditRecord {
            details: serde_json::from_str(&r.details)
                .map_err(|_| StoreError::Corrupt(format!("audit event {}: details", r.id)))?,
            id: r.id,
            occurred_at: r.occurred_at.0,
            kind: r.kind,
            actor: r.actor,
            client_id: r.client_id,
            request_id: r.request_id,
            reason: r.reason,
            prev_hash: r.prev_hash,
            hash: r.hash,
        })
    }
}
