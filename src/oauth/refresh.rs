//! The refresh-token grant (RFC 6749 §6) with rotation and reuse detection
//! (RFC 9700 §4.14.2): every exchange consumes the presented token and issues
//! its successor in the same family; presenting a consumed token revokes the
//! whole family, so a stolen token stops working for the thief and the owner.
//! A family keeps the binding of the grant that started it: the client
//! certificate (RFC 8705 §4) or the DPoP key (RFC 9449 §5), also for
//! confidential clients, whose refresh tokens RFC 9449 leaves unbound: a
//! stolen refresh token and client secret are then still useless without
//! the private key, and a client-credentials client that changes its key
//! simply runs a new client-credentials grant.

use chrono::{DateTime, Duration, Utc};

use super::{
    issuance::{Binding, Grant, IssuedToken},
    scope::ScopeSet,
    OAuthError, TokenServer,
};
use crate::{
    audit::AuditEvent,
    clients::{Client, GrantType},
    config::Settings,
    store::Store,
    token::refresh::{
        could_be_refresh_token, NewRefreshToken, RefreshFamily, RefreshRecord, RefreshToken,
        RefreshTokenHash, Rotation,
    },
};

/// The answer to every unusable refresh token, whatever the reason, so the
/// response tells an attacker nothing.
const INVALID: OAuthError =
    OAuthError::InvalidGrant("the refresh token is invalid, expired or revoked");

/// Idle and absolute lifetimes for `client` (its own, capped by the server's).
fn lifetimes(s: &Settings, client: &Client) -> (Duration, Duration) {
    let idle = client
        .refresh_token_idle_ttl
        .unwrap_or(s.tokens.refresh_token_idle_ttl)
        .min(s.tokens.refresh_token_idle_ttl);
    let absolute = client
        .refresh_token_absolute_ttl
        .unwrap_or(s.tokens.refresh_token_absolute_ttl)
        .min(s.tokens.refresh_token_absolute_ttl);
    (
        Duration::seconds(i64::from(idle)),
        Duration::seconds(i64::from(absolute)),
    )
}

impl TokenServer {
    /// Starts a family for a client-credentials grant and returns its first token.
    pub(super) async fn start_family(
        &self,
        client: &Client,
        scope: &ScopeSet,
        audiences: &[String],
        binding: Option<Binding>,
        now: DateTime<Utc>,
    ) -> Result<RefreshToken, OAuthError> {
        let (certificate_thumbprint, dpop_jkt) = match binding {
            Some(Binding::Certificate(t)) => (Some(t), None),
            Some(Binding::Dpop(jkt)) => (None, Some(jkt)),
            None => (None, None),
        };
        let (idle, absolute) = lifetimes(&self.settings, client);
        let family = RefreshFamily {
            id: uuid::Uuid::new_v4().to_string(),
            client_id: client.id.clone(),
            scope: scope.clone(),
            audiences: audiences.to_vec(),
            created_at: now,
            expires_at: now + absolute,
            revoked_at: None,
            certificate_thumbprint,
            dpop_jkt,
        };
        let token = RefreshToken::generate()
            .map_err(|_| OAuthError::server(anyhow::anyhow!("random generator failed")))?;
        let stored = NewRefreshToken {
            hash: token.hash(),
            family_id: family.id.clone(),
            issued_at: now,
            expires_at: (now + idle).min(family.expires_at),
        };
        self.store
            .create_refresh_family(&family, &stored)
            .await
            .map_err(OAuthError::server)?;
        tracing::info!(family_id = %family.id, "refresh token family started");
        Ok(token)
    }

    /// Exchanges a refresh token for a new access token and its successor.
    pub(super) async fn refresh(
        &self,
        client: &Client,
        presented: &str,
        scope: Option<ScopeSet>,
        resources: &[String],
        grant: &Grant,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, OAuthError> {
        if !client.grant_types.contains(&GrantType::RefreshToken) {
            return Err(OAuthError::UnauthorizedClient(
                "the client is not registered for the refresh_token grant",
            ));
        }
        let hash = RefreshTokenHash::of(presented);
        let record = self
            .store
            .find_refresh_token(&hash)
            .await
            .map_err(OAuthError::server)?
            .ok_or(INVALID)?;
        let family = &record.family;
        if family.client_id != client.id {
            tracing::warn!(family_id = %family.id, "refresh token presented by another client");
            return Err(INVALID);
        }
        if record.consumed_at.is_some() && family.revoked_at.is_none() {
            self.reuse_detected(client, &family.id, now).await?;
            return Err(INVALID);
        }
        if !record.is_live(now) {
            return Err(INVALID);
        }
        // The access token may narrow the grant's scope and audiences, never widen them;
        // scopes the client has since lost are not granted again.
        let allowed: ScopeSet = family
            .scope
            .iter()
            .filter(|s| client.scope.iter().any(|c| c == *s))
            .map(str::to_owned)
            .collect();
        let scope = match scope {
            None => allowed,
            Some(s) if s.is_subset(&allowed) => s,
            Some(_) => {
                return Err(OAuthError::InvalidScope(
                    "a requested scope exceeds the refresh token's scope",
                ))
            }
        };
        // Likewise for audiences the client may no longer request.
        let still_allowed: Vec<String> = family
            .audiences
            .iter()
            .filter(|a| client.allowed_audiences.contains(a))
            .cloned()
            .collect();
        if still_allowed.is_empty() {
            return Err(OAuthError::InvalidTarget(
                "the refresh token's audiences are no longer allowed for this client",
            ));
        }
        let audiences = narrow_audiences(&still_allowed, resources)?;
        let binding = family_binding(family, client, grant, now)?;
        let decision = self
            .decide(client, scope, audiences, grant, binding.as_ref(), now)
            .await?;
        self.take_quota(client, now).await?;
        let (idle, _) = lifetimes(&self.settings, client);
        let successor = RefreshToken::generate()
            .map_err(|_| OAuthError::server(anyhow::anyhow!("random generator failed")))?;
        let stored = NewRefreshToken {
            hash: successor.hash(),
            family_id: family.id.clone(),
            issued_at: now,
            expires_at: (now + idle).min(family.expires_at),
        };
        match self
            .store
            .rotate_refresh_token(&hash, &stored, now)
            .await
            .map_err(OAuthError::server)?
        {
            Rotation::Rotated => {
                tracing::info!(family_id = %family.id, "refresh token rotated");
                self.sign(client, decision, Some(successor), now)
            }
            Rotation::Reused => {
                self.audit_reuse(client, &family.id, now).await;
                Err(INVALID)
            }
            Rotation::Unknown => Err(INVALID),
        }
    }
}

/// What the new access token is bound to: a bound family refreshes only
/// with the certificate (RFC 8705 §4) or the DPoP key (RFC 9449 §5) it is
/// bound to, for its whole lifetime. An unbound family's token is bound as
/// the request is (a DPoP proof binds it; the family stays unbound).
fn family_binding(
    family: &RefreshFamily,
    client: &Client,
    grant: &Grant,
    now: DateTime<Utc>,
) -> Result<Option<Binding>, OAuthError> {
    if let Some(bound) = &family.certificate_thumbprint {
        if grant.ctx.dpop_jkt.is_some() {
            return Err(OAuthError::InvalidDpopProof(
                "the refresh token is bound to a client certificate; a token is bound one way: send no DPoP proof",
            ));
        }
        let presented = grant.ctx.certificate.as_ref().map(|c| c.thumbprint());
        if presented != Some(bound.as_str()) {
            return Err(OAuthError::InvalidGrant(
                "the refresh token is bound to a client certificate that was not presented",
            ));
        }
        return Ok(Some(Binding::Certificate(bound.clone())));
    }
    if let Some(bound) = &family.dpop_jkt {
        return match &grant.ctx.dpop_jkt {
            None => Err(OAuthError::InvalidDpopProof(
                "the refresh token is bound to a DPoP key: send a DPoP proof made with it",
            )),
            Some(jkt) if jkt != bound => Err(OAuthError::InvalidGrant(
                "the refresh token is bound to another DPoP key",
            )),
            Some(_) => Ok(Some(Binding::Dpop(bound.clone()))),
        };
    }
    grant.ctx.binding(client, now)
}

/// Requested resources must be among the grant's audiences; none means all of them.
fn narrow_audiences(granted: &[String], resources: &[String]) -> Result<Vec<String>, OAuthError> {
    if resources.is_empty() {
        return Ok(granted.to_vec());
    }
    let mut out: Vec<String> = Vec::new();
    for r in resources {
        if !granted.contains(r) {
            return Err(OAuthError::InvalidTarget(
                "a requested resource is outside the refresh token's audiences",
            ));
        }
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    Ok(out)
}

impl TokenServer {
    async fn reuse_detected(
        &self,
        client: &Client,
        family_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), OAuthError> {
        self.store
            .revoke_refresh_family(family_id, "reuse", now)
            .await
            .map_err(OAuthError::server)?;
        self.audit_reuse(client, family_id, now).await;
        Ok(())
    }

    /// The audit event of a detected reuse.
    async fn audit_reuse(&self, client: &Client, family_id: &str, now: DateTime<Utc>) {
        tracing::warn!(
            family_id,
            "a rotated refresh token was presented again; its whole family is revoked"
        );
        let event = AuditEvent::new("refresh_token_reuse", format!("client:{}", client.id), now)
            .client(client.id.as_str())
            .reason("a rotated refresh token was presented again; the family is revoked")
            .details(serde_json::json!({ "family_id": family_id }));
        // Refused, the event is still in its log line; the denial that
        // follows answers 503.
        let _ = self.audit.record(event).await;
    }
}

impl TokenServer {
    /// The stored record of `token` when it is one of our refresh tokens;
    /// a JWT or an oversized string is none, without a lookup.
    pub(super) async fn find_refresh_token(
        &self,
        token: &str,
    ) -> Result<Option<RefreshRecord>, OAuthError> {
        if !could_be_refresh_token(token) {
            return Ok(None);
        }
        self.store
            .find_refresh_token(&RefreshTokenHash::of(token))
            .await
            .map_err(OAuthError::server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_narrow_within_the_granted_audiences() {
        let granted = vec!["https://a".to_owned(), "https://b".to_owned()];
        assert_eq!(narrow_audiences(&granted, &[]).unwrap(), granted);
        assert_eq!(
            narrow_audiences(&granted, &["https://b".into()]).unwrap(),
            ["https://b"]
        );
        assert_eq!(
            narrow_audiences(&granted, &["https://b".into(), "https://b".into()]).unwrap(),
            ["https://b"],
            "a repeated resource counts once"
        );
        assert_eq!(
            narrow_audiences(&granted, &["https://c".into()])
                .unwrap_err()
                .code(),
            "invalid_target"
        );
    }
}
