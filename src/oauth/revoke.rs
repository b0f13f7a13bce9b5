//! Token revocation ([RFC 7009](https://www.rfc-editor.org/rfc/rfc7009)): the
//! owning client revokes an access token (its `jti` is denied until it would
//! have expired) or a refresh token (its whole family). Unknown, expired and
//! malformed tokens are not errors: there is nothing left to revoke.

use chrono::{DateTime, Utc};

use super::{
    grant::server,
    request::{TokenHint, TokenReference},
    OAuthError,
};
use crate::{
    audit::AuditEvent,
    clients::{Client, ClientId},
    state::AppState,
    store::Store,
    token::{
        refresh::{could_be_refresh_token, RefreshTokenHash},
        verify,
    },
};

const NOT_OWNER: OAuthError =
    OAuthError::UnauthorizedClient("the token was not issued to this client");

/// Revokes `reference` on behalf of `caller`.
pub async fn revoke(
    state: &AppState,
    caller: &Client,
    reference: &TokenReference,
    now: DateTime<Utc>,
) -> Result<(), OAuthError> {
    let refresh_first = reference.hint == Some(TokenHint::RefreshToken);
    if refresh_first && revoke_refresh(state, caller, &reference.token, now).await? {
        return Ok(());
    }
    if revoke_access(state, caller, &reference.token, now).await? {
        return Ok(());
    }
    if !refresh_first {
        revoke_refresh(state, caller, &reference.token, now).await?;
    }
    Ok(())
}

/// Returns whether `token` was one of our access tokens.
async fn revoke_access(
    state: &AppState,
    caller: &Client,
    token: &str,
    now: DateTime<Utc>,
) -> Result<bool, OAuthError> {
    let Ok(claims) = verify(&state.keys, &state.issuer, token, now, false) else {
        return Ok(false);
    };
    if claims.client_id != caller.id.as_str() {
        return Err(NOT_OWNER);
    }
    if claims.exp > now.timestamp() {
        let client = ClientId::parse(&claims.client_id).map_err(|_| NOT_OWNER)?;
        let expires_at = DateTime::from_timestamp(claims.exp, 0).unwrap_or(now);
        state
            .store
            .revoke_access_token(&claims.jti, &client, expires_at)
            .await
            .map_err(server)?;
        let event = AuditEvent::new("access_token_revoked", format!("client:{}", caller.id), now)
            .client(caller.id.as_str())
            .details(serde_json::json!({ "jti": claims.jti }));
        state.audit.record(event).await;
    }
    Ok(true)
}

/// Returns whether `token` was one of our refresh tokens.
async fn revoke_refresh(
    state: &AppState,
    caller: &Client,
    token: &str,
    now: DateTime<Utc>,
) -> Result<bool, OAuthError> {
    if !could_be_refresh_token(token) {
        return Ok(false);
    }
    let Some(record) = state
        .store
        .find_refresh_token(&RefreshTokenHash::of(token))
        .await
        .map_err(server)?
    else {
        return Ok(false);
    };
    if record.family.client_id != caller.id {
        return Err(NOT_OWNER);
    }
    state
        .store
        .revoke_refresh_family(&record.family.id, "revoked", now)
        .await
        .map_err(server)?;
    let event = AuditEvent::new(
        "refresh_token_revoked",
        format!("client:{}", caller.id),
        now,
    )
    .client(caller.id.as_str())
    .details(serde_json::json!({ "family_id": record.family.id }));
    state.audit.record(event).await;
    Ok(true)
}
