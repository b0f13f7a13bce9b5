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
            expires_at: token_expiry(now, idle, family.expires_at),
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
        if presented_as(&record, client, now)? == Presented::Reused {
            self.reuse_detected(client, &family.id, now).await?;
            return Err(INVALID);
        }
        let (scope, audiences) = narrowed(family, client, scope, resources)?;
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
            expires_at: token_expiry(now, idle, family.expires_at),
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

/// What the stored record of a presented token allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Presented {
    /// Live, and the presenting client's: it can be exchanged.
    Usable,
    /// Already exchanged, in a family not yet revoked: reuse (the family
    /// must be revoked).
    Reused,
}

/// Whether `record` can be exchanged by `client` at `now`: another client's
/// token, and one expired, consumed in a revoked family or revoked, are all
/// [`INVALID`] alike.
fn presented_as(
    record: &RefreshRecord,
    client: &Client,
    now: DateTime<Utc>,
) -> Result<Presented, OAuthError> {
    let family = &record.family;
    if family.client_id != client.id {
        tracing::warn!(family_id = %family.id, "refresh token presented by another client");
        return Err(INVALID);
    }
    if record.consumed_at.is_some() && family.revoked_at.is_none() {
        return Ok(Presented::Reused);
    }
    if !record.is_live(now) {
        return Err(INVALID);
    }
    Ok(Presented::Usable)
}

/// The scope and audiences of the refreshed access token: it may narrow the
/// grant's, never widen them, and what the client has since lost (scopes,
/// allowed audiences) is not granted again.
fn narrowed(
    family: &RefreshFamily,
    client: &Client,
    scope: Option<ScopeSet>,
    resources: &[String],
) -> Result<(ScopeSet, Vec<String>), OAuthError> {
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
    Ok((scope, narrow_audiences(&still_allowed, resources)?))
}

/// A refresh token's idle expiry: `idle` after issue, never after its family's end.
fn token_expiry(
    now: DateTime<Utc>,
    idle: Duration,
    family_expires_at: DateTime<Utc>,
) -> DateTime<Utc> {
    (now + idle).min(family_expires_at)
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
    use std::{net::Ipv4Addr, sync::Arc};

    use super::*;
    use crate::{
        certs::{testutil, ClientCertificate},
        clients::{AuthMethod, ClientId},
        oauth::issuance::RequestContext,
    };

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn client(id: &str, scope: &str, audiences: &[&str]) -> Client {
        let mut c = Client::new(ClientId::parse(id).unwrap(), t(0));
        c.scope = ScopeSet::parse(scope).unwrap();
        c.allowed_audiences = audiences.iter().map(|a| (*a).to_owned()).collect();
        c
    }

    fn family(client: &str, scope: &str, audiences: &[&str]) -> RefreshFamily {
        RefreshFamily {
            id: "family".into(),
            client_id: ClientId::parse(client).unwrap(),
            scope: ScopeSet::parse(scope).unwrap(),
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            created_at: t(0),
            expires_at: t(1000),
            revoked_at: None,
            certificate_thumbprint: None,
            dpop_jkt: None,
        }
    }

    fn record(family: RefreshFamily) -> RefreshRecord {
        RefreshRecord {
            family,
            issued_at: t(0),
            expires_at: t(100),
            consumed_at: None,
        }
    }

    fn code<T: std::fmt::Debug>(r: Result<T, OAuthError>) -> &'static str {
        r.unwrap_err().code()
    }

    #[test]
    fn a_live_token_of_the_presenting_client_is_usable_and_nothing_else_is() {
        let c = client("c", "a", &["https://a"]);
        let live = record(family("c", "a", &["https://a"]));
        assert_eq!(presented_as(&live, &c, t(99)).unwrap(), Presented::Usable);
        assert_eq!(code(presented_as(&live, &c, t(100))), "invalid_grant");
        let other = client("other", "a", &["https://a"]);
        assert_eq!(code(presented_as(&live, &other, t(1))), "invalid_grant");
        let mut revoked = record(family("c", "a", &["https://a"]));
        revoked.family.revoked_at = Some(t(1));
        assert_eq!(code(presented_as(&revoked, &c, t(2))), "invalid_grant");
    }

    #[test]
    fn a_consumed_token_is_reuse_until_its_family_is_revoked() {
        let c = client("c", "a", &["https://a"]);
        let mut used = record(family("c", "a", &["https://a"]));
        used.consumed_at = Some(t(1));
        assert_eq!(presented_as(&used, &c, t(2)).unwrap(), Presented::Reused);
        assert_eq!(
            presented_as(&used, &c, t(500)).unwrap(),
            Presented::Reused,
            "reuse is detected also after the token's own expiry"
        );
        used.family.revoked_at = Some(t(2));
        assert_eq!(code(presented_as(&used, &c, t(3))), "invalid_grant");
        let other = client("other", "a", &["https://a"]);
        used.family.revoked_at = None;
        assert_eq!(
            code(presented_as(&used, &other, t(2))),
            "invalid_grant",
            "another client's consumed token revokes nothing"
        );
    }

    #[test]
    fn the_refreshed_scope_narrows_and_drops_what_the_client_lost() {
        let f = family("c", "a b", &["https://a"]);
        let c = client("c", "a b", &["https://a"]);
        let (scope, aud) = narrowed(&f, &c, None, &[]).unwrap();
        assert_eq!(scope, ScopeSet::parse("a b").unwrap());
        assert_eq!(aud, ["https://a"]);
        let (scope, _) = narrowed(&f, &c, Some(ScopeSet::parse("b").unwrap()), &[]).unwrap();
        assert_eq!(scope, ScopeSet::parse("b").unwrap());
        assert_eq!(
            code(narrowed(&f, &c, Some(ScopeSet::parse("a c").unwrap()), &[])),
            "invalid_scope"
        );
        let lost_b = client("c", "a", &["https://a"]);
        let (scope, _) = narrowed(&f, &lost_b, None, &[]).unwrap();
        assert_eq!(
            scope,
            ScopeSet::parse("a").unwrap(),
            "a lost scope is not granted again"
        );
        assert_eq!(
            code(narrowed(
                &f,
                &lost_b,
                Some(ScopeSet::parse("b").unwrap()),
                &[]
            )),
            "invalid_scope"
        );
    }

    #[test]
    fn the_refreshed_audiences_stay_within_the_grant_and_the_clients_list() {
        let f = family("c", "a", &["https://a", "https://b"]);
        let c = client("c", "a", &["https://a", "https://b", "https://c"]);
        let (_, aud) = narrowed(&f, &c, None, &["https://b".into()]).unwrap();
        assert_eq!(aud, ["https://b"]);
        assert_eq!(
            code(narrowed(&f, &c, None, &["https://c".into()])),
            "invalid_target",
            "allowed for the client but not in the grant"
        );
        let lost_a = client("c", "a", &["https://b"]);
        let (_, aud) = narrowed(&f, &lost_a, None, &[]).unwrap();
        assert_eq!(aud, ["https://b"]);
        assert_eq!(
            code(narrowed(&f, &lost_a, None, &["https://a".into()])),
            "invalid_target"
        );
        let lost_all = client("c", "a", &["https://c"]);
        assert_eq!(code(narrowed(&f, &lost_all, None, &[])), "invalid_target");
    }

    #[test]
    fn lifetimes_are_the_clients_capped_by_the_servers() {
        let settings = Settings::from_figment(&figment::Figment::new()).unwrap();
        let (idle, absolute) = (
            settings.tokens.refresh_token_idle_ttl,
            settings.tokens.refresh_token_absolute_ttl,
        );
        let secs = |d: Duration| d.num_seconds();
        let mut c = client("c", "a", &["https://a"]);
        let (i, a) = lifetimes(&settings, &c);
        assert_eq!((secs(i), secs(a)), (i64::from(idle), i64::from(absolute)));
        c.refresh_token_idle_ttl = Some(60);
        c.refresh_token_absolute_ttl = Some(120);
        let (i, a) = lifetimes(&settings, &c);
        assert_eq!((secs(i), secs(a)), (60, 120));
        c.refresh_token_idle_ttl = Some(idle + 1);
        c.refresh_token_absolute_ttl = Some(absolute + 1);
        let (i, a) = lifetimes(&settings, &c);
        assert_eq!((secs(i), secs(a)), (i64::from(idle), i64::from(absolute)));
    }

    #[test]
    fn a_token_expires_after_its_idle_time_but_never_after_its_family() {
        assert_eq!(token_expiry(t(10), Duration::seconds(50), t(100)), t(60));
        assert_eq!(token_expiry(t(80), Duration::seconds(50), t(100)), t(100));
    }

    fn grant(certificate: Option<&Arc<ClientCertificate>>, dpop: Option<&str>) -> Grant {
        Grant::new(
            "refresh_token",
            RequestContext {
                ip: Ipv4Addr::LOCALHOST.into(),
                auth_method: AuthMethod::ClientSecretBasic,
                certificate: certificate.cloned(),
                dpop_jkt: dpop.map(str::to_owned),
                federated: None,
            },
        )
    }

    fn certificate(cn: &str) -> Arc<ClientCertificate> {
        let (der, _) = testutil::self_signed(testutil::leaf_params(cn)).unwrap();
        Arc::new(ClientCertificate::from_chain(vec![der]).unwrap())
    }

    #[test]
    fn a_certificate_bound_family_refreshes_only_with_its_certificate() {
        let c = client("c", "a", &["https://a"]);
        let mine = certificate("mine");
        let theirs = certificate("theirs");
        let mut f = family("c", "a", &["https://a"]);
        f.certificate_thumbprint = Some(mine.thumbprint().to_owned());
        assert_eq!(
            family_binding(&f, &c, &grant(Some(&mine), None), t(1)).unwrap(),
            Some(Binding::Certificate(mine.thumbprint().to_owned()))
        );
        assert_eq!(
            code(family_binding(&f, &c, &grant(Some(&theirs), None), t(1))),
            "invalid_grant"
        );
        assert_eq!(
            code(family_binding(&f, &c, &grant(None, None), t(1))),
            "invalid_grant"
        );
        assert_eq!(
            code(family_binding(
                &f,
                &c,
                &grant(Some(&mine), Some("jkt")),
                t(1)
            )),
            "invalid_dpop_proof",
            "bound one way"
        );
    }

    #[test]
    fn a_dpop_bound_family_refreshes_only_with_its_key() {
        let c = client("c", "a", &["https://a"]);
        let mut f = family("c", "a", &["https://a"]);
        f.dpop_jkt = Some("jkt-1".into());
        assert_eq!(
            family_binding(&f, &c, &grant(None, Some("jkt-1")), t(1)).unwrap(),
            Some(Binding::Dpop("jkt-1".into()))
        );
        assert_eq!(
            code(family_binding(&f, &c, &grant(None, Some("jkt-2")), t(1))),
            "invalid_grant"
        );
        assert_eq!(
            code(family_binding(&f, &c, &grant(None, None), t(1))),
            "invalid_dpop_proof"
        );
    }

    #[test]
    fn an_unbound_family_is_bound_as_the_request_is() {
        let c = client("c", "a", &["https://a"]);
        let f = family("c", "a", &["https://a"]);
        assert_eq!(
            family_binding(&f, &c, &grant(None, None), t(1)).unwrap(),
            None
        );
        assert_eq!(
            family_binding(&f, &c, &grant(None, Some("jkt")), t(1)).unwrap(),
            Some(Binding::Dpop("jkt".into()))
        );
    }

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
