//! Row types shared by both engines and their conversion to domain types
//! (the `clients` row is decoded by `store::client_columns`).
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

use super::{audit_codec as codec, StoreError};
use crate::{
    audit::{
        chain::{AuditRecord, GENESIS},
        checkpoint::Checkpoint,
    },
    clients::ClientId,
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
    dpop_jkt: Option<String>,
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
                dpop_jkt: r.dpop_jkt,
            },
            issued_at: r.issued_at.0,
            expires_at: r.expires_at.0,
            consumed_at: r.consumed_at.map(|t| t.0),
        })
    }
}

/// An `audit_events` row in its compact form (migration 0009), with the
/// names it refers to and the previous event's hash joined in.
#[derive(sqlx::FromRow)]
pub struct AuditRow {
    id: i64,
    occurred_at: DbTime,
    kind: String,
    actor: Option<String>,
    client_id: Option<String>,
    request_id: Option<Vec<u8>>,
    reason: Option<String>,
    details: Vec<u8>,
    prev_hash: Option<Vec<u8>>,
    hash: Vec<u8>,
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = StoreError;

    fn try_from(r: AuditRow) -> Result<Self, StoreError> {
        let corrupt =
            |e: codec::Malformed| StoreError::Corrupt(format!("audit event {}: {e}", r.id));
        let prev_hash = match &r.prev_hash {
            Some(stored) => codec::decode_hash(stored).map_err(corrupt)?,
            None if r.id == 1 => GENESIS.to_owned(),
            None => String::new(),
        };
        let actor = match (r.actor, &r.client_id) {
            (Some(actor), _) => actor,
            (None, Some(client)) => format!("client:{client}"),
            (None, None) => return Err(corrupt(codec::Malformed("actor"))),
        };
        Ok(AuditRecord {
            details: codec::decode_details(&r.details).map_err(corrupt)?,
            request_id: r
                .request_id
                .as_deref()
                .map(codec::decode_request_id)
                .transpose()
                .map_err(corrupt)?,
            hash: codec::decode_hash(&r.hash).map_err(corrupt)?,
            id: r.id,
            occurred_at: r.occurred_at.0,
            kind: r.kind,
            actor,
            client_id: r.client_id,
            reason: r.reason,
            prev_hash,
        })
    }
}

/// An `audit_checkpoints` row.
#[derive(sqlx::FromRow)]
pub struct CheckpointRow {
    id: i64,
    cut_at: DbTime,
    last_id: i64,
    last_hash: Vec<u8>,
    removed: i64,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl TryFrom<CheckpointRow> for Checkpoint {
    type Error = StoreError;

    fn try_from(r: CheckpointRow) -> Result<Self, StoreError> {
        let corrupt =
            |e: codec::Malformed| StoreError::Corrupt(format!("audit checkpoint {}: {e}", r.id));
        Ok(Checkpoint {
            id: r.id,
            cut_at: r.cut_at.0,
            last_id: r.last_id,
            last_hash: codec::decode_hash(&r.last_hash).map_err(corrupt)?,
            removed: r.removed,
            prev_hash: codec::decode_hash(&r.prev_hash).map_err(corrupt)?,
            hash: codec::decode_hash(&r.hash).map_err(corrupt)?,
        })
    }
}
