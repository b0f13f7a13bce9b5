//! Federated tokens at the token endpoint: a token of a trusted federation
//! ([`crate::federation`]) as a client assertion ([RFC 7523 §2.2]; the
//! client is the one a mapping rule names, registered for `federated_jwt`)
//! and as an authorization grant ([RFC 7523 §2.1], `grant_type=
//! urn:ietf:params:oauth:grant-type:jwt-bearer`, with or without other
//! client authentication). The token's original subject is kept in the
//! access token (`ext_sub`, `ext_iss`) and the audit trail.
//!
//! Federated tokens are not single-use: platforms hand the same token to a
//! workload for its whole (short) lifetime. `max_token_age` bounds how long
//! one is accepted.
//!
//! [RFC 7523 §2.1]: https://www.rfc-editor.org/rfc/rfc7523#section-2.1
//! [RFC 7523 §2.2]: https://www.rfc-editor.org/rfc/rfc7523#section-2.2

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::{
    assertion::JWT_BEARER,
    audience,
    issuance::{Grant, IssuedToken, RequestContext},
    request::{FormParams, JWT_BEARER_GRANT},
    scope::ScopeSet,
    OAuthError, TokenServer,
};
use crate::{
    clients::{AuthMethod, Client, GrantType},
    federation::{
        rego, rules,
        verify::{self, FederatedTokenError},
        Federation,
    },
};

/// A verified federated token and the client it maps to.
#[derive(Clone, Debug)]
pub struct FederatedIdentity {
    /// The federation's id.
    pub federation: String,
    /// Its issuer (the token's `iss`).
    pub issuer: String,
    /// The token's `sub`.
    pub subject: String,
    /// The client it maps to.
    pub client_id: String,
    /// The scope the mapping allows at most.
    pub scope: Option<ScopeSet>,
    /// Which rule mapped it (`rules[i]` or `rego`).
    pub mapped_by: String,
    /// The token's `exp`.
    pub exp: i64,
    /// The verified claims (policy input).
    pub claims: Map<String, Value>,
    /// Whether it came as the grant's `assertion` (else as a client assertion).
    pub as_grant: bool,
}

impl FederatedIdentity {
    /// The client's scope, narrowed to what the mapping allows.
    #[must_use]
    pub fn allowed_scope(&self, client_scope: &ScopeSet) -> ScopeSet {
        match &self.scope {
            Some(narrow) => client_scope
                .iter()
                .filter(|s| narrow.iter().any(|n| n == *s))
                .map(str::to_owned)
                .collect(),
            None => client_scope.clone(),
        }
    }
}

impl FederatedIdentity {
    /// The provenance claims of tokens issued on it.
    #[must_use]
    pub fn provenance(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("ext_sub".into(), self.subject.clone().into());
        m.insert("ext_iss".into(), self.issuer.clone().into());
        m
    }

    /// The policy input member describing it.
    #[must_use]
    pub fn fact(&self) -> Value {
        json!({
            "federation": self.federation,
            "issuer": self.issuer,
            "sub": self.subject,
            "mapped_by": self.mapped_by,
            "claims": self.claims,
        })
    }
}

/// The wire message of a refusal (safe to return; the detail is logged).
fn message(e: &FederatedTokenError) -> &'static str {
    match e {
        FederatedTokenError::Malformed => "the token is not a well-formed signed JWT",
        FederatedTokenError::UnknownIssuer => "the token's issuer is not a trusted federation",
        FederatedTokenError::Disabled => "the token's issuer is a federation that is disabled",
        FederatedTokenError::Algorithm => "the token's alg is not allowed by its federation",
        FederatedTokenError::UnknownKey => "the token's kid names no key of its issuer",
        FederatedTokenError::KeysUnavailable => {
            "the token's issuer keys are unavailable (its JWKS could not be fetched)"
        }
        FederatedTokenError::Signature => {
            "the token's signature does not verify with its issuer's keys"
        }
        FederatedTokenError::Claims(m) => m,
        FederatedTokenError::NoMapping => "the token matches no mapping rule of its federation",
        FederatedTokenError::NoClient => {
            "the token maps to a client that does not exist, is disabled, or is not registered for federated_jwt"
        }
        FederatedTokenError::Unavailable => "the service is temporarily unavailable; retry later",
    }
}

/// The database could not be reached: 503, not a refusal of the token.
fn unavailable() -> OAuthError {
    OAuthError::Unavailable(anyhow::anyhow!(
        "the mapped client could not be read from the database"
    ))
}

/// A refused grant assertion or subject/actor token: `invalid_grant`.
pub(super) fn grant_refused(e: &FederatedTokenError) -> OAuthError {
    if *e == FederatedTokenError::Unavailable {
        return unavailable();
    }
    tracing::info!(reason = %e, "federated token refused");
    OAuthError::InvalidGrant(message(e))
}

/// A refused client assertion: `invalid_client`.
fn client_refused(e: &FederatedTokenError) -> OAuthError {
    if *e == FederatedTokenError::Unavailable {
        return unavailable();
    }
    tracing::info!(reason = %e, "federated client assertion refused");
    OAuthError::ProofRefused(message(e).to_owned())
}

impl TokenServer {
    /// The federation `token` claims to come from (by its unverified `iss`),
    /// if it names one.
    pub(super) async fn federation_of(
        &self,
        token: &str,
    ) -> Result<Option<Federation>, OAuthError> {
        let Ok(head) = verify::peek(token) else {
            return Ok(None);
        };
        let Some(iss) = head.iss.filter(|i| *i != self.issuer) else {
            return Ok(None);
        };
        self.federations
            .by_issuer(&iss)
            .await
            .map_err(OAuthError::server)
    }

    /// Verifies a token of `federation` and maps it to a client.
    pub(super) async fn verify_federated(
        &self,
        federation: &Federation,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(Arc<Client>, FederatedIdentity), FederatedTokenError> {
        if !federation.enabled {
            return Err(FederatedTokenError::Disabled);
        }
        let head = verify::peek(token)?;
        let alg = verify::allowed_alg(federation, &head)?;
        let keys = self
            .federation_keys
            .keys(federation, head.kid.as_deref())
            .await
            .map_err(|e| {
                tracing::warn!(federation = %federation.id, error = ?e, "federation keys unavailable");
                FederatedTokenError::KeysUnavailable
            })?;
        let claims = verify::verify_signature(token, alg, head.kid.as_deref(), &keys)?;
        let leeway = i64::try_from(self.settings.tokens.clock_skew).unwrap_or(0);
        verify::check_claims(federation, &claims, now.timestamp(), leeway)?;
        let mapping = match rules::first_match(&federation.rules, &claims) {
            Some(m) => Some(m),
            None => match &federation.rego {
                Some(text) => {
                    let limit = Duration::from_millis(self.settings.tokens.policy_timeout_ms);
                    rego::evaluate(&federation.id, &federation.issuer, text, &claims, limit)
                        .await
                        .unwrap_or_else(|e| {
                            tracing::error!(federation = %federation.id, error = %e, "federation rego failed: token refused");
                            None
                        })
                }
                None => None,
            },
        }
        .ok_or(FederatedTokenError::NoMapping)?;
        let client = self
            .live_client(&mapping.client_id, now)
            .await
            .map_err(|_| FederatedTokenError::Unavailable)?
            .ok_or(FederatedTokenError::NoClient)?;
        let identity = FederatedIdentity {
            federation: federation.id.clone(),
            issuer: federation.issuer.clone(),
            subject: claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            client_id: mapping.client_id,
            scope: mapping.scope,
            mapped_by: mapping.by,
            exp: claims.get("exp").and_then(Value::as_i64).unwrap_or(0),
            claims,
            as_grant: false,
        };
        tracing::info!(
            federation = %identity.federation,
            ext_sub = %identity.subject,
            client_id = %identity.client_id,
            mapped_by = %identity.mapped_by,
            "federated token verified"
        );
        Ok((client, identity))
    }

    /// Client authentication by a federated token, when the form carries one:
    /// a `client_assertion` whose issuer is a federation, or — with no other
    /// client authentication — the JWT-bearer grant's `assertion`. `None`
    /// when neither applies (the usual methods run). The client must be
    /// registered for `federated_jwt`.
    pub(super) async fn federated_client(
        &self,
        authorization: Option<&[u8]>,
        params: &FormParams,
        claimed: &mut Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Option<(Arc<Client>, FederatedIdentity)>, OAuthError> {
        let assertion = params.single("client_assertion")?;
        let typed = params.single("client_assertion_type")? == Some(JWT_BEARER);
        let other_auth = authorization.is_some() || params.single("client_secret")?.is_some();
        let form_id = params.single("client_id")?;
        let (token, as_grant) = match assertion {
            Some(a) if typed && !other_auth => (a, false),
            None if !other_auth
                && form_id.is_none()
                && params.single("client_assertion_type")?.is_none()
                && params.single("grant_type")? == Some(JWT_BEARER_GRANT) =>
            {
                match params.single("assertion")? {
                    Some(a) => (a, true),
                    None => return Ok(None),
                }
            }
            _ => return Ok(None),
        };
        // Boxed: most requests carry no assertion, and their futures need
        // not be sized for this path.
        let Some(federation) = Box::pin(self.federation_of(token)).await? else {
            if as_grant {
                return Err(grant_refused(&FederatedTokenError::UnknownIssuer));
            }
            return Ok(None);
        };
        let refuse = |e: &FederatedTokenError| {
            if as_grant {
                grant_refused(e)
            } else {
                client_refused(e)
            }
        };
        let (client, mut identity) = Box::pin(self.verify_federated(&federation, token, now))
            .await
            .map_err(|e| refuse(&e))?;
        *claimed = Some(client.id.to_string());
        self.limits
            .check_client(client.id.as_str(), Some(&client))
            .map_err(|l| self.rate_limited(l))?;
        if client.auth_method != AuthMethod::FederatedJwt
            || form_id.is_some_and(|f| f != client.id.as_str())
        {
            return Err(refuse(&FederatedTokenError::NoClient));
        }
        identity.as_grant = as_grant;
        Ok(Some((client, identity)))
    }

    /// RFC 7523 §2.1: a token for the client the assertion maps to. With
    /// other client authentication, the assertion must map to that client.
    pub(super) async fn jwt_bearer(
        &self,
        client: &Client,
        assertion: &str,
        scope: Option<ScopeSet>,
        resources: &[String],
        ctx: RequestContext,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, OAuthError> {
        if !client.grant_types.contains(&GrantType::JwtBearer) {
            return Err(OAuthError::UnauthorizedClient(
                "the client is not registered for the urn:ietf:params:oauth:grant-type:jwt-bearer grant",
            ));
        }
        let identity = match ctx.federated.as_deref() {
            Some(id) if id.as_grant => id.clone(),
            _ => {
                let federation = self
                    .federation_of(assertion)
                    .await?
                    .ok_or_else(|| grant_refused(&FederatedTokenError::UnknownIssuer))?;
                let (mapped, identity) = self
                    .verify_federated(&federation, assertion, now)
                    .await
                    .map_err(|e| grant_refused(&e))?;
                if mapped.id != client.id {
                    return Err(OAuthError::InvalidGrant(
                        "the assertion maps to another client than the one authenticated",
                    ));
                }
                identity
            }
        };
        let allowed = identity.allowed_scope(&client.scope);
        let scope = match scope {
            None => allowed,
            Some(s) if s.is_subset(&allowed) => s,
            Some(_) => {
                return Err(OAuthError::InvalidScope(
                    "a requested scope is not allowed for this client and assertion",
                ))
            }
        };
        let audiences = audience::resolve(client, resources)?;
        let binding = ctx.binding(client, now)?;
        let mut facts = Map::new();
        facts.insert("federated".into(), identity.fact());
        let grant = Grant {
            name: JWT_BEARER_GRANT,
            ctx,
            facts,
        };
        let mut decision = self
            .decide(client, scope, audiences, &grant, binding.as_ref(), now)
            .await?;
        decision.provenance = identity.provenance();
        self.take_quota(client, now).await?;
        self.sign(client, decision, None, now)
    }
}

/// The federated identity of a request, shared by its context.
#[must_use]
pub fn shared(identity: FederatedIdentity) -> Arc<FederatedIdentity> {
    Arc::new(identity)
}
