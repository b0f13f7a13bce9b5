//! Grants: authenticate the client, apply the grant's rules, sign the token.
//! Domain types in, domain types out; the caller passes `now`.

use std::{net::IpAddr, sync::Arc};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use secrecy::SecretString;

use super::{
    assertion, audience,
    client_auth::{ClientCredentials, Credential},
    refresh,
    request::TokenRequest,
    scope::ScopeSet,
    OAuthError,
};
use crate::{
    audit::AuditEvent,
    certs::{jwk_names_certificate, CertError, ClientCertificate},
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

/// A TLS client certificate as the request carried it: none, one, or one
/// that could not be used (a refusal only for clients that need it).
pub type Presented<'a> = Result<Option<&'a ClientCertificate>, &'a CertError>;

/// Authenticates the client by what it presented: a secret, an assertion,
/// or its TLS client certificate (`certificate`, when the connection or a
/// trusted proxy carried one). `endpoint` is the path called, which an
/// assertion's `aud` may name.
#[tracing::instrument(skip_all, fields(client_id = %creds.client_id))]
pub async fn authenticate(
    state: &AppState,
    creds: &ClientCredentials,
    certificate: Presented<'_>,
    endpoint: &str,
    now: DateTime<Utc>,
) -> Result<Client, OAuthError> {
    let client = match &creds.credential {
        Credential::Secret { secret, basic } => {
            authenticate_secret(state, creds, secret, *basic, now).await?
        }
        Credential::Assertion(jwt) => {
            let client = registered(state, creds, now).await?;
            verify_assertion(state, &client, jwt, endpoint, now).await?;
            client
        }
        Credential::Certificate => {
            let client = registered(state, creds, now).await?;
            verify_certificate(state, &client, certificate, now).await?;
            client
        }
    };
    if !client.enabled {
        tracing::info!(reason = "client_disabled", "client authentication refused");
        return Err(OAuthError::InvalidClient {
            basic_attempted: creds.basic_attempted(),
            description: "the client is disabled",
        });
    }
    Ok(client)
}

/// The same failure, and the same argon2 work, for an unknown client, a wrong
/// or expired secret, and a locked client. Applies the per-client rate limit
/// (keyed by the claimed id, known or not) and counts failures towards
/// lockout (of clients that have secrets: others cannot be locked out by
/// someone guessing).
async fn authenticate_secret(
    state: &AppState,
    creds: &ClientCredentials,
    secret: &SecretString,
    basic: bool,
    now: DateTime<Utc>,
) -> Result<Client, OAuthError> {
    let entry = lookup(state, &creds.client_id, now).await?;
    let locked = entry
        .as_ref()
        .is_some_and(|e| e.client.locked_until.is_some_and(|t| t > now));
    // A credential verified before skips argon2; anything else pays for it,
    // including unknown and locked clients, so timing tells nothing.
    let remembered = !locked
        && entry
            .as_ref()
            .is_some_and(|e| state.clients.remembered(e, secret, now));
    let verified = remembered || {
        let hashes = match &entry {
            Some(e) if !locked => e.active_hashes(now),
            _ => Vec::new(),
        };
        state.metrics.secret_verified();
        let ok = state.verifier.verify(secret, hashes).await;
        if let (true, Some(e)) = (ok, &entry) {
            state.clients.remember(e, secret, now);
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
            if !locked && e.client.auth_method.uses_secret() {
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
    if !creds.fits(client.auth_method) {
        return Err(OAuthError::InvalidClient {
            basic_attempted: basic,
            description: "the client is registered for a different token_endpoint_auth_method",
        });
    }
    Ok(client)
}

/// The client named by `client_id`, after the per-client rate limit.
async fn lookup(
    state: &AppState,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Arc<crate::clients::cache::CachedClient>>, OAuthError> {
    let entry = match ClientId::parse(client_id) {
        Ok(id) => state
            .clients
            .get(&state.store, &id, now)
            .await
            .map_err(server)?,
        Err(_) => None,
    };
    state
        .limits
        .check_client(client_id, entry.as_ref().map(|e| &e.client))
        .map_err(|l| rate_limited(state, l))?;
    Ok(entry)
}

/// A registered, unlocked client whose method fits a secretless presentation.
async fn registered(
    state: &AppState,
    creds: &ClientCredentials,
    now: DateTime<Utc>,
) -> Result<Client, OAuthError> {
    let Some(entry) = lookup(state, &creds.client_id, now).await? else {
        tracing::info!(reason = "unknown_client", "client authentication failed");
        return Err(OAuthError::authentication_failed(false));
    };
    let client = entry.client.clone();
    if client.locked_until.is_some_and(|t| t > now) {
        return Err(OAuthError::authentication_failed(false));
    }
    if !creds.fits(client.auth_method) {
        tracing::info!(
            reason = "wrong_method",
            presented = creds.presented_method(),
            "client authentication failed"
        );
        return Err(OAuthError::InvalidClient {
            basic_attempted: false,
            description: "the client is registered for a different token_endpoint_auth_method",
        });
    }
    Ok(client)
}

fn refused(reason: &'static str, message: String) -> OAuthError {
    tracing::info!(reason, detail = %message, "client authentication failed");
    OAuthError::ProofRefused(message)
}

/// RFC 7523 §3: signature by a registered key with an allowed algorithm, the
/// claims, and the `jti` seen nowhere before (the store is shared by replicas).
async fn verify_assertion(
    state: &AppState,
    client: &Client,
    jwt: &str,
    endpoint: &str,
    now: DateTime<Utc>,
) -> Result<(), OAuthError> {
    let settings = &state.settings;
    let assertion_refused = |e: assertion::AssertionError| refused("bad_assertion", e.to_string());
    let (alg, kid) = assertion::header(jwt).map_err(assertion_refused)?;
    let alg_name = format!("{alg:?}");
    let allowed = settings
        .client_auth
        .assertion_signing_algs
        .contains(&alg_name)
        && client
            .keys
            .signing_alg
            .as_ref()
            .is_none_or(|a| *a == alg_name);
    if !allowed {
        return Err(assertion_refused(assertion::AssertionError::Algorithm));
    }
    let keys = state
        .client_jwks
        .keys(client, kid.as_deref())
        .await
        .map_err(|e| refused("client_keys_unavailable", e.to_string()))?;
    let claims =
        assertion::verify_signature(jwt, alg, kid.as_deref(), &keys).map_err(assertion_refused)?;
    let audiences = state.assertion_audiences(endpoint);
    let accepted = assertion::check_claims(
        claims,
        &assertion::Expectations {
            client_id: client.id.as_str(),
            audiences: &audiences,
            max_lifetime: i64::try_from(settings.client_auth.assertion_max_lifetime)
                .unwrap_or(i64::MAX),
            leeway: i64::try_from(settings.tokens.clock_skew).unwrap_or(0),
        },
        now.timestamp(),
    )
    .map_err(assertion_refused)?;
    let until = DateTime::from_timestamp(accepted.remember_until, 0).unwrap_or(now);
    let first_use = state
        .store
        .record_assertion_jti(&client.id, &accepted.jti, until)
        .await
        .map_err(server)?;
    if !first_use {
        tracing::warn!(jti = %accepted.jti, "client assertion replayed");
        return Err(refused(
            "assertion_replayed",
            "the client_assertion was used before (its jti is single-use)".into(),
        ));
    }
    Ok(())
}

/// RFC 8705 §2: a certificate in its validity period that chains to the
/// configured CAs and carries the registered subject (`tls_client_auth`), or
/// that the client registered in its JWK set (`self_signed_tls_client_auth`).
async fn verify_certificate(
    state: &AppState,
    client: &Client,
    certificate: Presented<'_>,
    now: DateTime<Utc>,
) -> Result<(), OAuthError> {
    let method = client.auth_method.as_str();
    let certificate = certificate.map_err(|e| refused("bad_certificate", e.to_string()))?;
    let Some(cert) = certificate else {
        return Err(refused(
            "no_certificate",
            format!("the client is registered for {method} and presented no client certificate"),
        ));
    };
    let cert_refused = |e: CertError| refused("bad_certificate", e.to_string());
    cert.check_validity(now).map_err(cert_refused)?;
    if client.auth_method == AuthMethod::TlsClientAuth {
        let Some(anchors) = state.client_ca.as_deref() else {
            return Err(refused(
                "mtls_not_configured",
                "tls_client_auth is not available: the server has no client CA bundle (tls_client_ca_file)".into(),
            ));
        };
        anchors.verify(cert, now).map_err(cert_refused)?;
        let subject = client.keys.tls_subject.as_ref().ok_or_else(|| {
            server(anyhow::anyhow!(
                "tls_client_auth client {} has no registered subject",
                client.id
            ))
        })?;
        if !subject.matches(cert) {
            return Err(refused(
                "certificate_mismatch",
                format!(
                    "the client certificate does not carry the registered {}",
                    subject.metadata_name()
                ),
            ));
        }
    } else {
        let keys = state
            .client_jwks
            .keys(client, None)
            .await
            .map_err(|e| refused("client_keys_unavailable", e.to_string()))?;
        let named = keys
            .keys
            .iter()
            .any(|k| serde_json::to_value(k).is_ok_and(|jwk| jwk_names_certificate(&jwk, cert)));
        if !named {
            return Err(refused(
                "certificate_mismatch",
                "the client certificate is not one the client registered (x5c or x5t#S256 in its jwks)".into(),
            ));
        }
    }
    Ok(())
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
            "failures": state.settings.limits.lockout_threshold,
            "window_seconds": state.settings.limits.lockout_window,
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
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// The caller's address (behind trusted proxies, the forwarded one).
    pub ip: IpAddr,
    /// How the client authenticated.
    pub auth_method: AuthMethod,
    /// The client's TLS certificate, when it presented one.
    pub certificate: Option<Arc<ClientCertificate>>,
}

impl RequestContext {
    /// The RFC 8705 `x5t#S256` the client's tokens are bound to: its
    /// certificate's, when it authenticated with it or is registered for
    /// certificate-bound tokens (then a certificate is required).
    pub fn binding(
        &self,
        client: &Client,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, OAuthError> {
        if !(client.auth_method.uses_certificate() || client.certificate_bound_access_tokens) {
            return Ok(None);
        }
        let Some(cert) = &self.certificate else {
            return Err(OAuthError::InvalidRequest(
                "this client's tokens are bound to its certificate (RFC 8705): present the client certificate over mutual TLS",
            ));
        };
        cert.check_validity(now)
            .map_err(|e| OAuthError::ProofRefused(e.to_string()))?;
        Ok(Some(cert.thumbprint().to_owned()))
    }
}

/// The certificate confirmation (`cnf`, RFC 8705 §3.1) of a bound token.
pub(super) fn confirmation(thumbprint: &str) -> Value {
    serde_json::json!({ "x5t#S256": thumbprint })
}

/// Adds the certificate confirmation to token claims.
pub(super) fn confirm(claims: &mut Map<String, Value>, thumbprint: Option<&str>) {
    if let Some(t) = thumbprint {
        claims.insert("cnf".into(), confirmation(t));
    }
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
            let binding = ctx.binding(client, now)?;
            let grant = Grant {
                name: "client_credentials",
                ctx,
            };
            let (granted, mut claims) =
                apply_policy(state, client, scope.clone(), &audiences, &grant, now)?;
            confirm(&mut claims, binding.as_deref());
            take_quota(state, client, now).await?;
            // The refresh family keeps the grant's scope; the policy narrows each access token.
            let refresh_token = if client.grant_types.contains(&GrantType::RefreshToken) {
                Some(refresh::start_family(state, client, &scope, &audiences, binding, now).await?)
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
#[derive(Clone, Debug)]
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
    grant: &Grant,
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
        "certificate": grant.ctx.certificate.as_ref().map_or(Value::Null, |c| c.summary()),
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
        .unwrap_or(settings.tokens.access_token_ttl)
        .min(settings.tokens.max_access_token_ttl);
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
