//! The one definition of a client's fields.
//!
//! The `client_fields!` macro holds the table of every field of a
//! [`Client`]: its Rust type, its RFC 7591 metadata member and its `clients`
//! column. Every representation of a client is generated from it:
//!
//! - [`Client`], [`ClientMetadata`], [`ClientState`] and the
//!   [`RegistrationRequest`] members, with the conversion of a client back to
//!   its metadata (`clients::model`);
//! - [`ClientView`], the admin API and CLI JSON, which is that metadata plus
//!   the server's own members (`clients::view`);
//! - the `clients` column list, the INSERT and UPDATE statements, their binds
//!   and the decoding of a row (`store::client_columns`).
//!
//! Adding a registration field therefore takes: a line in the `metadata`
//! table below, its validation in [`RegistrationRequest::validate`] (the
//! compiler points there: `ClientMetadata` gains the field), a migration per
//! engine adding the column, and the docs (README, `openapi.yaml`). A field of
//! a type no field had before also needs to say how it is written as metadata
//! ([`Member`]) and stored (`store::client_columns::Column`).
//!
//! [`Client`]: super::Client
//! [`ClientMetadata`]: super::model::ClientMetadata
//! [`ClientState`]: super::model::ClientState
//! [`RegistrationRequest`]: super::RegistrationRequest
//! [`RegistrationRequest::validate`]: super::RegistrationRequest::validate
//! [`ClientView`]: super::ClientView
//! [`Member`]: super::model::Member

/// Calls `$callback! { … }` with the table of the client's fields.
///
/// The table has four sections; each field has its `///` doc, its name and
/// its type:
///
/// - `identity`: the client id, its member in metadata (`=> member`) and its
///   key column (`, column name`). INSERT writes it; UPDATE finds the row by it.
/// - `metadata`: registration fields, each one RFC 7591 member (`=> member`;
///   its JSON type follows from the field's type) and one column, named like
///   the member unless `, column name` says otherwise. Set from validated
///   metadata; INSERT and UPDATE write them.
/// - `key_material`: the keys of a secretless client, several members
///   (written out in `RegistrationRequest`) and one JSON column.
/// - `state`: what the server decides, not the metadata; the column is named
///   like the field and `written by` lists the statements that write it
///   (`Insert`, `Update`; none for a column that has its own statement).
///
/// The order is the order of the struct fields and of the columns in SQL.
macro_rules! client_fields {
    ($callback:ident) => {
        $callback! {
            identity {
                /// Identifier.
                id: ClientId => client_id, column id;
            }
            metadata {
                /// Human-readable name.
                name: Option<String> => client_name;
                /// Grants the client may use.
                grant_types: Vec<GrantType> => grant_types;
                /// How the client authenticates at the token endpoint.
                auth_method: AuthMethod => token_endpoint_auth_method;
                /// Access tokens are bound to the client's certificate (RFC 8705 §3)
                /// even when it authenticates otherwise.
                certificate_bound_access_tokens: bool => tls_client_certificate_bound_access_tokens,
                    column certificate_bound_access_tokens;
                /// Access tokens must be DPoP-bound (RFC 9449 §5.2): a token request
                /// without a DPoP proof is refused.
                dpop_bound_access_tokens: bool => dpop_bound_access_tokens;
                /// Scopes the client may be granted (its allow-list), space-separated.
                scope: ScopeSet => scope;
                /// Audiences (RFC 8707 resources, absolute URIs) the client may request.
                allowed_audiences: Vec<String> => allowed_audiences;
                /// Audience used when a token request names no `resource`; one of
                /// the allowed audiences.
                default_audience: Option<String> => default_audience;
                /// Access-token lifetime in seconds (capped by the server maximum).
                access_token_ttl: Option<u32> => access_token_ttl;
                /// Whether the client may call the introspection endpoint.
                allow_introspection: bool => allow_introspection;
                /// Refresh-token idle lifetime in seconds (capped by the server's).
                refresh_token_idle_ttl: Option<u32> => refresh_token_idle_ttl;
                /// Refresh-token absolute lifetime in seconds (capped by the server's).
                refresh_token_absolute_ttl: Option<u32> => refresh_token_absolute_ttl;
                /// Own rate limit (token requests per second), instead of the server default.
                rate_limit_per_second: Option<u32> => rate_limit_per_second;
                /// Own burst for that rate limit.
                rate_limit_burst: Option<u32> => rate_limit_burst;
                /// Tokens per UTC hour at most.
                token_quota_per_hour: Option<u32> => token_quota_per_hour;
                /// Tokens per UTC day at most.
                token_quota_per_day: Option<u32> => token_quota_per_day;
            }
            key_material {
                /// Keys and certificate subject of a secretless client (`jwks`,
                /// `jwks_uri`, `token_endpoint_auth_signing_alg`, `tls_client_auth_*`).
                keys: KeyMaterial, column key_material;
            }
            state {
                /// Access tokens issued before this time are inactive (admin "revoke
                /// all"; set by its own statement).
                tokens_revoked_before: Option<DateTime<Utc>>, written by [];
                /// Locked after repeated failed authentication, until this time.
                locked_until: Option<DateTime<Utc>>, written by [Update];
                /// Disabled clients cannot obtain tokens.
                enabled: bool, written by [Insert, Update];
                /// Registration time.
                created_at: DateTime<Utc>, written by [Insert];
                /// Last change.
                updated_at: DateTime<Utc>, written by [Insert, Update];
            }
        }
    };
}

pub(crate) use client_fields;
