//! Issuing an access token once a grant has decided scope and audiences:
//! the token policy (deny, narrow, add claims), the certificate confirmation
//! ([RFC 8705 §3]) or DPoP-key confirmation ([RFC 9449 §6]), the client's quotas, and the signed [RFC 9068] JWT with
//! the claims of [RFC 9068 §2.2] (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`,
//! `jti`, `client_id`, `scope`). Every grant ends here.
//!
//! [RFC 8705 §3]: https://www.rfc-editor.org/rfc/rfc8705#section-3
//! [RFC 9449 §6]: https://www.rfc-editor.org/rfc/rfc9449#section-6
//! [RFC 9068]: https://www.rfc-editor.org/rfc/rfc9068
//! [RFC 9068 §2.2]: https://www.rfc-editor.org/rfc/rfc9068#section-2.2

use std::{net::IpAddr, sync::Arc};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::federated::FederatedIdentity;
use super::{scope::ScopeSet, OAuthError, TokenServer};
use crate::{
    certs::ClientCertificate,
    clients::{AuthMethod, Client, ClientView},
    policy::PolicyError,
    token::{encode, refresh::RefreshToken, AccessTokenClaims},
};

/// A freshly issued access token. `Debug` redacts the tokens.
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
    /// `Bearer`, or `DPoP` for a token bound to a DPoP key (RFC 9449 §5).
    pub token_type: &'static str,
    /// The DPoP nonce for the client's next proof (`DPoP-Nonce`), when nonces are required.
    pub dpop_nonce: Option<String>,
    /// RFC 8693 §2.2.1 `issued_token_type`, for token exchange.
    pub issued_token_type: Option<&'static str>,
    /// Who the token is about beyond the client (`sub` when it is not the
    /// client, `ext_sub`, `ext_iss`, `federation`, `act`), for the audit trail.
    pub provenance: Map<String, Value>,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("access_token", &"[redacted]")
            .field("jti", &self.jti)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("token_type", &self.token_type)
            .field("dpop_nonce", &self.dpop_nonce)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("issued_token_type", &self.issued_token_type)
            .field("provenance", &self.provenance)
            .finish()
    }
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
    /// The RFC 7638 thumbprint of the key of the request's valid DPoP proof.
    pub dpop_jkt: Option<String>,
    /// The federated token that authenticated the client, if one did.
    pub federated: Option<Arc<FederatedIdentity>>,
}

/// What a token is bound to (`cnf`): a client certificate or a DPoP key, never both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// The certificate's `x5t#S256` (RFC 8705 §3.1).
    Certificate(String),
    /// The DPoP key's `jkt` (RFC 9449 §6.1).
    Dpop(String),
}

impl Binding {
    /// The token's `cnf` claim.
    #[must_use]
    pub fn confirmation(&self) -> Value {
        match self {
            Self::Certificate(t) => confirmation(t),
            Self::Dpop(jkt) => serde_json::json!({ "jkt": jkt }),
        }
    }
}

impl RequestContext {
    /// What the client's tokens are bound to: its certificate (RFC 8705
    /// `x5t#S256`) when it authenticated with it or is registered for
    /// certificate-bound tokens (then a certificate is required, and a DPoP
    /// proof is refused: a token is bound one way); else the key of its DPoP
    /// proof, if it sent one.
    pub fn binding(
        &self,
        client: &Client,
        now: DateTime<Utc>,
    ) -> Result<Option<Binding>, OAuthError> {
        if !(client.auth_method.uses_certificate() || client.certificate_bound_access_tokens) {
            return Ok(self.dpop_jkt.clone().map(Binding::Dpop));
        }
        if self.dpop_jkt.is_some() {
            return Err(OAuthError::InvalidDpopProof(
                "this client's tokens are bound to its certificate (RFC 8705); a token is bound one way: send no DPoP proof",
            ));
        }
        let Some(cert) = &self.certificate else {
            return Err(OAuthError::InvalidRequest(
                "this client's tokens are bound to its certificate (RFC 8705): present the client certificate over mutual TLS",
            ));
        };
        cert.check_validity(now)
            .map_err(|e| OAuthError::ProofRefused(e.to_string()))?;
        Ok(Some(Binding::Certificate(cert.thumbprint().to_owned())))
    }
}

/// The grant being run and where its request came from.
#[derive(Clone, Debug)]
pub struct Grant {
    /// The grant's wire name.
    pub name: &'static str,
    /// Where the request came from.
    pub ctx: RequestContext,
    /// Grant-specific policy input members (`subject_token`, `actor_token`,
    /// `federated`), merged into the policy input.
    pub facts: Map<String, Value>,
}

impl Grant {
    /// A grant named `name` with no facts of its own.
    #[must_use]
    pub fn new(name: &'static str, ctx: RequestContext) -> Self {
        let mut facts = Map::new();
        if let Some(f) = &ctx.federated {
            facts.insert("federated".into(), f.fact());
        }
        Self { name, ctx, facts }
    }
}

/// The certificate confirmation (`cnf`, RFC 8705 §3.1) of a bound token.
#[must_use]
pub fn confirmation(thumbprint: &str) -> Value {
    serde_json::json!({ "x5t#S256": thumbprint })
}

/// Adds the confirmation of a bound token to its claims.
pub fn confirm(claims: &mut Map<String, Value>, binding: Option<&Binding>) {
    if let Some(b) = binding {
        claims.insert("cnf".into(), b.confirmation());
    }
}

/// What a grant decided: the token's scope, audiences and extra claims.
pub struct Decision {
    /// The granted scope (after the policy).
    pub scope: ScopeSet,
    /// The token's audiences.
    pub audiences: Vec<String>,
    /// Claims added by the policy and the confirmation.
    pub claims: Map<String, Value>,
    /// `Bearer`, or `DPoP` when bound to a DPoP key.
    pub token_type: &'static str,
    /// The token's `sub` when it is not the client (token exchange).
    pub subject: Option<String>,
    /// The token expires at this instant at the latest (seconds; token
    /// exchange: never after the subject token).
    pub expires_by: Option<i64>,
    /// Claims of provenance set by the grant (`ext_sub`, `ext_iss`, `act`,
    /// `federation`), added after the policy ran, so no policy can forge them.
    pub provenance: Map<String, Value>,
}

impl TokenServer {
    /// Counts the token against the client's quotas.
    pub(super) async fn take_quota(
        &self,
        client: &Client,
        now: DateTime<Utc>,
    ) -> Result<(), OAuthError> {
        self.quotas
            .take(&self.store, client, now)
            .await
            .map_err(|l| self.rate_limited(l))
    }

    /// Runs the token policy, if any: it may deny, narrow the scope, or add
    /// claims; then adds the certificate confirmation.
    pub(super) async fn decide(
        &self,
        client: &Client,
        scope: ScopeSet,
        audiences: Vec<String>,
        grant: &Grant,
        binding: Option<&Binding>,
        now: DateTime<Utc>,
    ) -> Result<Decision, OAuthError> {
        let (scope, mut claims) = self
            .apply_policy(client, scope, &audiences, grant, now)
            .await?;
        confirm(&mut claims, binding);
        let token_type = match binding {
            Some(Binding::Dpop(_)) => "DPoP",
            _ => "Bearer",
        };
        Ok(Decision {
            scope,
            audiences,
            claims,
            token_type,
            subject: None,
            expires_by: None,
            // A client that authenticated with a federated token: its subject.
            provenance: grant
                .ctx
                .federated
                .as_ref()
                .map(|f| f.provenance())
                .unwrap_or_default(),
        })
    }

    /// Evaluates the policy off the HTTP worker, within `policy_timeout_ms`.
    async fn apply_policy(
        &self,
        client: &Client,
        scope: ScopeSet,
        audiences: &[String],
        grant: &Grant,
        now: DateTime<Utc>,
    ) -> Result<(ScopeSet, Map<String, Value>), OAuthError> {
        let Some(policy) = &self.policy else {
            return Ok((scope, Map::new()));
        };
        let mut input = serde_json::json!({
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
        if let Some(obj) = input.as_object_mut() {
            obj.extend(grant.facts.clone());
        }
        match Arc::clone(policy).evaluate_bounded(input).await {
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
        &self,
        client: &Client,
        decision: Decision,
        refresh_token: Option<RefreshToken>,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, OAuthError> {
        let settings = &self.settings;
        let ttl = client
            .access_token_ttl
            .unwrap_or(settings.tokens.access_token_ttl)
            .min(settings.tokens.max_access_token_ttl);
        let iat = now.timestamp();
        let ttl = match decision.expires_by {
            Some(by) => {
                let left = u32::try_from(by.saturating_sub(iat).max(0)).unwrap_or(u32::MAX);
                if left == 0 {
                    return Err(OAuthError::InvalidGrant("the subject token has expired"));
                }
                ttl.min(left)
            }
            None => ttl,
        };
        let scope = decision.scope;
        let token_type = decision.token_type;
        let mut extra = decision.claims;
        extra.extend(decision.provenance.clone());
        let mut provenance = decision.provenance;
        if let Some(sub) = &decision.subject {
            provenance.insert("sub".into(), Value::String(sub.clone()));
        }
        let claims = AccessTokenClaims {
            iss: self.issuer.clone(),
            sub: decision.subject.unwrap_or_else(|| client.id.to_string()),
            aud: decision.audiences.into(),
            exp: iat + i64::from(ttl),
            iat,
            nbf: iat,
            jti: uuid::Uuid::new_v4().to_string(),
            client_id: client.id.to_string(),
            scope: (!scope.is_empty()).then(|| scope.to_string()),
            extra,
        };
        let key = self.keys.current();
        let access_token = encode(&key, &claims).map_err(|e| OAuthError::Server(e.into()))?;
        tracing::info!(jti = %claims.jti, kid = key.kid(), "access token issued");
        Ok(IssuedToken {
            access_token,
            jti: claims.jti,
            expires_in: ttl,
            scope,
            refresh_token,
            token_type,
            dpop_nonce: None,
            issued_token_type: None,
            provenance,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_token() {
        let refresh = RefreshToken::generate().unwrap();
        let refresh_text = refresh.expose().to_owned();
        let issued = IssuedToken {
            access_token: "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzdmMifQ.c2lnbmF0dXJl".into(),
            jti: "jti-1".into(),
            expires_in: 300,
            scope: ScopeSet::parse("read").unwrap(),
            refresh_token: Some(refresh),
            token_type: "Bearer",
            dpop_nonce: None,
            issued_token_type: None,
            provenance: Map::new(),
        };
        let shown = format!("{issued:?}");
        assert!(!shown.contains("eyJhbGciOiJFUzI1NiJ9"), "{shown}");
        assert!(!shown.contains(&refresh_text), "{shown}");
        assert!(
            shown.contains("jti-1") && shown.contains("[redacted]"),
            "{shown}"
        );
    }
}
