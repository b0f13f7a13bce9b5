//! Grants: authenticate the client, apply the grant's rules, sign the token.
//! Domain types in, domain types out; the caller passes `now`.

use chrono::{DateTime, Utc};

use super::{
    audience, client_auth::ClientCredentials, refresh, request::TokenRequest, scope::ScopeSet,
    OAuthError,
};
use crate::{
    clients::{Client, ClientId, GrantType},
    state::AppState,
    store::Store,
    token::{encode, refresh::RefreshToken, AccessTokenClaims},
};

/// A freshly issued access token.
#[derive(Debug)]
pub struct IssuedToken {
    /// The signed JWT.
    pub access_token: String,
    /// Lifetime in seconds.
    pub expires_in: u32,
    /// Granted scope.
    pub scope: ScopeSet,
    /// A refresh token, for clients registered for the `refresh_token` grant.
    pub refresh_token: Option<RefreshToken>,
}

/// Authenticates the client: the same failure, and the same argon2 work, for
/// an unknown client, a wrong secret and an expired secret.
#[tracing::instrument(skip_all, fields(client_id = %creds.client_id))]
pub async fn authenticate(
    state: &AppState,
    creds: &ClientCredentials,
    now: DateTime<Utc>,
) -> Result<Client, OAuthError> {
    let basic = creds.basic_attempted();
    let client = match ClientId::parse(&creds.client_id) {
        Ok(id) => state.store.find_client(&id).await.map_err(server)?,
        Err(_) => None,
    };
    let hashes = match &client {
        Some(c) => state
            .store
            .active_secrets(&c.id, now)
            .await
            .map_err(server)?,
        None => Vec::new(),
    };
    let verified = state.verifier.verify(&creds.secret, hashes).await;
    let client = match client {
        Some(c) if verified => c,
        _ => {
            tracing::info!(reason = "bad_credentials", "client authentication failed");
            return Err(OAuthError::authentication_failed(basic));
        }
    };
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

/// Runs a token request for an authenticated client.
#[tracing::instrument(skip_all, fields(client_id = %client.id))]
pub async fn issue(
    state: &AppState,
    client: &Client,
    request: TokenRequest,
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
            let refresh_token = if client.grant_types.contains(&GrantType::RefreshToken) {
                Some(refresh::start_family(state, client, &scope, &audiences, now).await?)
            } else {
                None
            };
            sign(state, client, scope, audiences, refresh_token, now)
        }
        TokenRequest::RefreshToken {
            refresh_token,
            scope,
            resources,
        } => refresh::exchange(state, client, &refresh_token, scope, &resources, now).await,
    }
}

/// Signs an access token for `client` and packs the response.
pub(super) fn sign(
    state: &AppState,
    client: &Client,
    scope: ScopeSet,
    audiences: Vec<String>,
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
    };
    let key = state.keys.current();
    let access_token = encode(&key, &claims).map_err(|e| OAuthError::Server(e.into()))?;
    tracing::info!(jti = %claims.jti, kid = key.kid(), "access token issued");
    Ok(IssuedToken {
        access_token,
        expires_in: ttl,
        scope,
        refresh_token,
    })
}

pub(super) fn server(e: impl Into<anyhow::Error>) -> OAuthError {
    OAuthError::Server(e.into())
}
