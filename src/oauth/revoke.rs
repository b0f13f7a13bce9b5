//! Token revocation ([RFC 7009](https://www.rfc-editor.org/rfc/rfc7009)): the
//! owning client revokes an access token (its `jti` is denied until it would
//! have expired) or a refresh token (its whole family). Unknown, expired and
//! malformed tokens are not errors: there is nothing left to revoke.

use chrono::{DateTime, Utc};

use super::{
    request::{TokenHint, TokenReference},
    OAuthError, TokenServer,
};
use crate::{
    audit::AuditEvent,
    clients::{Client, ClientId},
    store::Store,
    token::verify,
};

const NOT_OWNER: OAuthError =
    OAuthError::UnauthorizedClient("the token was not issued to this client");

impl TokenServer {
    /// Revokes `reference` on behalf of `caller`.
    pub(super) async fn revoke_token(
        &self,
        caller: &Client,
        reference: &TokenReference,
        now: DateTime<Utc>,
    ) -> Result<(), OAuthError> {
        let refresh_first = reference.hint == Some(TokenHint::RefreshToken);
        if refresh_first && self.revoke_refresh(caller, &reference.token, now).await? {
            return Ok(());
        }
        if self.revoke_access(caller, &reference.token, now).await? {
            return Ok(());
        }
        if !refresh_first {
            self.revoke_refresh(caller, &reference.token, now).await?;
        }
        Ok(())
    }

    /// Returns whether `token` was one of our access tokens.
    async fn revoke_access(
        &self,
        caller: &Client,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, OAuthError> {
        let Ok(claims) = verify(&self.keys, &self.issuer, token, now, false) else {
            return Ok(false);
        };
        if claims.client_id != caller.id.as_str() {
            return Err(NOT_OWNER);
        }
        if claims.exp > now.timestamp() {
            let client = ClientId::parse(&claims.client_id).map_err(|_| NOT_OWNER)?;
            let expires_at = DateTime::from_timestamp(claims.exp, 0).unwrap_or(now);
            self.store
                .revoke_access_token(&claims.jti, &client, expires_at)
                .await
                .map_err(OAuthError::server)?;
            self.revoked.insert(&claims.jti, expires_at);
            let event =
                AuditEvent::new("access_token_revoked", format!("client:{}", caller.id), now)
                    .client(caller.id.as_str())
                    .details(serde_json::json!({ "jti": claims.jti }));
            self.audit
                .record(event)
                .await
                .map_err(|_| OAuthError::AuditUnavailable)?;
        }
        Ok(true)
    }

    /// Returns whether `token` was one of our refresh tokens.
    async fn revoke_refresh(
        &self,
        caller: &Client,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, OAuthError> {
        let Some(record) = self.find_refresh_token(token).await? else {
            return Ok(false);
        };
        if record.family.client_id != caller.id {
            return Err(NOT_OWNER);
        }
        self.store
            .revoke_refresh_family(&record.family.id, "revoked", now)
            .await
            .map_err(OAuthError::server)?;
        let event = AuditEvent::new(
            "refresh_token_revoked",
            format!("client:{}", caller.id),
            now,
        )
        .client(caller.id.as_str())
        .details(serde_json::json!({ "family_id": record.family.id }));
        self.audit
            .record(event)
            .await
            .map_err(|_| OAuthError::AuditUnavailable)?;
        Ok(true)
    }
}
