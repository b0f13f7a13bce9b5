//! Grants: authenticate the client, apply the grant's rules, sign the token.
//! Domain types in, domain types out; the caller passes `now`.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{
    audience, client_auth::ClientCredentials, refresh, request::TokenRequest, scope::ScopeSet,
    OAuthError,
};
use crate::{
    audit::AuditEvent,
    clients::{AuthMethod, Client, ClientId, ClientView, GrantType},
    policy::PolicyError,
    protect::Limited,
    state::AppState,
    store::Store,
    token::{encode, refresh::RefreshToken, AccessTokenClaims},
};

/// A freshly issued access token.
#[derive(Debug)]
pub struct IssuedToken {
    /// The signed JWT.
    pub access_token: String,
    /// Its `jti`.
    pub jti: String,
    /// Lifetime in seconds.
    pub expires_in: u32,
    /// Granted scope.
    pub scope: ScopeSet,
    /// A refresh token, for clients registered for the `refresh_token` grant.
    pub refresh_token: Option<RefreshToken>,
}

/// Authenticates the client: the same failure, and the same argon2 work, for
/// an unknown client, a wrong or expired secret, and a locked client. Applies
/// the per-client rate limit (keyed by the claimed id, known or not) and
/// counts failures towards lockout.
#[tracing::instrument(skip_all, fields(client_id = %creds.client_id))]
pub async fn authenticate(
    state: &AppState,
    creds: &ClientCredentials,
    now: DateTime<Utc>,
) -> Result<Client, OAuthError> {
    let basic = creds.basic_attempted();
    let entry = match ClientId::parse(&creds.client_id) {
        Ok(id) => state
            .clients
            .get(&state.store, &id, now)
            .await
            .map_err(server)?,
        Err(_) => None,
    };
    state
        .limits
        .check_client(&creds.client_id, entry.as_ref().map(|e| &e.client))
        .map_err(|l| rate_limited(state, l))?;
    let locked = entry
        .as_ref()
        .is_some_and(|e| e.client.locked_until.is_some_and(|t| t > now));
    // A credential verified before skips argon2; anything else pays for it,
    // including unknown and locked clients, so timing tells nothing.
    let remembered = !locked
        && entry
            .as_ref()
            .is_some_and(|e| state.clients.remembered(e, &creds.secret, now));
    let verified = remembered || {
        let hashes = match &entry {
            Some(e) if !locked => e.active_hashes(now),
            _ => Vec::new(),
        };
        state.metrics.secret_verified();
        let ok = state.verifier.verify(&creds.secret, hashes).await;
        if let (true, Some(e)) = (ok, &entry) {
            state.clients.remember(e, &creds.secret, now);
        }
        ok
    };
    let client = match entry {
        Some(e) if verified => e.client.clone(),
        Some(e) => {
            let reason = if locked {
                "client_locked"
            } else {
                "bad_credentials"
            };
            tracing::info!(reason, "client authentication failed");
            if !locked {
                if let Some(until) = state.lockout.record_failure(e.client.id.as_str(), now) {
                    lock(state, &e.client, until, now).await?;
                }
            }
            return Err(OAuthError::authentication_failed(basic));
        }
        None => {
            tracing::info!(reason = "bad_credentials", "client authentication failed");
            return Err(OAuthError::authentication_failed(basic));
        }
    };
    state.lockout.clear(client.id.as_str());
    if client.auth_method != creds.method {
        return Err(OAuthError::InvalidClient {
            basic_attempted: basic,
            description: "the client is registered for a different token_endpoint_auth_method",
        });
    }
    if !client.enabled {
        tracing::info!(reason = "client_disabled", "client authentication refused");
        return Err(OAuthError::InvalidClient {
            basic_attempted: basic,
            description: "the client is disabled",
        });
    }
    Ok(client)
}

/// Locks `client` until `until` after too many failures, and audits it.
async fn lock(
    state: &AppState,
    client: &Client,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), OAuthError> {
    state
        .store
        .set_client_lock(&client.id, Some(until))
        .await
        .map_err(server)?;
    state.clients.invalidate(client.id.as_str());
    state
        .store
        .notify_client_changed(&client.id)
        .await
        .map_err(server)?;
    state.metrics.lockout();
    tracing::warn!(locked_until = %until, "client locked after repeated failed authentication");
    let event = AuditEvent::new("client_locked", "system", now)
        .client(client.id.as_str())
        .reason("repeated failed authentication")
        .details(serde_json::json!({
            "locked_until": until.timestamp(),
            "failures": state.settings.lockout_threshold,
            "window_seconds": state.settings.lockout_window,
        }));
    state.audit.record(event).await;
    Ok(())
}

/// Counts a limit hit and turns it into the OAuth error.
pub(super) fn rate_limited(state: &AppState, limited: Limited) -> OAuthError {
    state.metrics.rate_limited(limited.limit);
    OAuthError::RateLimited(limited)
}

/// Where a token request came from, for the policy and the audit trail.
#[derive(Clone, Copy, Debug)]
pub struct RequestContext {
    /// The caller's address (behind trusted proxies, the forwarded one).
    pub ip: IpAddr,
    /// How the client authenticated.
    pub auth_method: AuthMethod,
}

/// Runs a token request for an authenticated client.
#[tracing::instrument(skip_all, fields(client_id = %client.id))]
pub async fn issue(
    state: &AppState,
    client: &Client,
    request: TokenRequest,
    ctx: RequestContext,
    now: DateTime<Utc>,
) -> Result<IssuedToken, OAuthError> {
    match request {
        TokenRequest::ClientCredentials { scope, resources } => {
            if !client.grant_types.contains(&GrantType::ClientCredentials) {
                return Err(OAuthError::UnauthorizedClient(
                    "the client is not registered for the client_credentials grant",
                ));
            }
            let scope = match scope {
                None => client.scope.clone(),
                Some(s) if s.is_subset(&client.scope) => s,
                Some(_) => {
                    return Err(OAuthError::InvalidScope(
                        "a requested scope is not allowed for this client",
                    ))
                }
            };
            let audiences = audience::resolve(client, &resources)?;
            let grant = Grant {
                name: "client_credentials",
                ctx,
            };
            let (granted, claims) =
                apply_policy(state, client, scope.clone(), &audiences, grant, now)?;
            take_quota(state, client, now).await?;
            // The refresh family keeps the grant's scope; the policy narrows each access token.
            let refresh_token = if client.grant_types.contains(&GrantType::RefreshToken) {
                Some(refresh::start_family(state, client, &scope, &audiences, now).await?)
            } else {
                None
            };
            sign(
                state,
                client,
                granted,
                audiences,
                claims,
                refresh_token,
                now,
            )
        }
        TokenRequest::RefreshToken {
            refresh_token,
            scope,
            resources,
        } => {
            let grant = Grant {
                name: "refresh_token",
                ctx,
            };
            refresh::exchange(state, client, &refresh_token, scope, &resources, grant, now).await
        }
    }
}

/// The grant being run and where its request came from.
#[derive(Clone, Copy, Debug)]
pub struct Grant {
    /// The grant's wire name.
    pub name: &'static str,
    /// Where the request came from.
    pub ctx: RequestContext,
}

/// Counts the token against the client's quotas.
pub(super) async fn take_quota(
    state: &AppState,
    client: &Client,
    now: DateTime<Utc>,
) -> Result<(), OAuthError> {
    state
        .quotas
        .take(&state.store, client, now)
        .await
        .map_err(|l| rate_limited(state, l))
}

/// Runs the token policy, if any: it may deny, narrow the scope, or add claims.
pub(super) fn apply_policy(
    state: &AppState,
    client: &Client,
    scope: ScopeSet,
    audiences: &[String],
    grant: Grant,
    now: DateTime<Utc>,
) -> Result<(ScopeSet, Map<String, Value>), OAuthError> {
    let Some(policy) = &state.policy else {
        return Ok((scope, Map::new()));
    };
    let input = serde_json::json!({
        "client": ClientView::new(client, None),
        "grant_type": grant.name,
        "scopes": scope.iter().collect::<Vec<_>>(),
        "audiences": audiences,
        "source_ip": grant.ctx.ip.to_string(),
        "auth_method": grant.ctx.auth_method.as_str(),
        "certificate": Value::Null,
        "time": {
            "unix": now.timestamp(),
            "rfc3339": now.to_rfc3339(),
            "hour": now.format("%H").to_string().parse::<u32>().unwrap_or(0),
            "minute": now.format("%M").to_string().parse::<u32>().unwrap_or(0),
            "weekday": now.format("%a").to_string(),
        },
    });
    match policy.evaluate(&input) {
        Ok(decision) => {
            let narrowed = match decision.scopes {
                Some(allowed) => scope
                    .iter()
                    .filter(|s| allowed.iter().any(|a| a == s))
                    .map(str::to_owned)
                    .collect(),
                None => scope,
            };
            Ok((narrowed, decision.claims))
        }
        Err(PolicyError::Denied(reason)) => Err(OAuthError::AccessDenied(reason)),
        Err(PolicyError::Unavailable(why)) => {
            tracing::error!(error = %why, "token policy failed: request denied (fail closed)");
            Err(OAuthError::PolicyUnavailable)
        }
    }
}

/// Signs an access token for `client` and packs the response.
pub(super) fn sign(
    state: &AppState,
    client: &Client,
    scope: ScopeSet,
    audiences: Vec<String>,
    extra: Map<String, Value>,
    refresh_token: Option<RefreshToken>,
    now: DateTime<Utc>,
) -> Result<IssuedToken, OAuthError> {
    let settings = &state.settings;
    let ttl = client
        .access_token_ttl
        .unwrap_or(settings.access_token_ttl)
        .min(settings.max_access_token_ttl);
    let iat = now.timestamp();
    let claims = AccessTokenClaims {
        iss: state.issuer.clone(),
        sub: client.id.to_string(),
        aud: audiences.into(),
        exp: iat + i64::from(ttl),
        iat,
        nbf: iat,
        jti: uuid::Uuid::new_v4().to_string(),
        client_id: client.id.to_string(),
        scope: (!scope.is_empty()).then(|| scope.to_string()),
        extra,
    };
    let key = state.keys.current();
    let access_token = encode(&key, &claims).map_err(|e| OAuthError::Server(e.into()))?;
    tracing::info!(jti = %claims.jti, kid = key.kid(), "access token issued");
    Ok(IssuedToken {
        access_token,
        jti: claims.jti,
        expires_in: ttl,
        scope,
        refresh_token,
    })
}

pub(super) fn server(e: impl Into<anyhow::Error>) -> OAuthError {
    OAuthError::Server(e.into())
}
