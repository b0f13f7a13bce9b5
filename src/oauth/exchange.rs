//! OAuth 2.0 Token Exchange ([RFC 8693]) at the token endpoint: a client
//! registered for `urn:ietf:params:oauth:grant-type:token-exchange` trades a
//! `subject_token` — an access token of this server addressed to it (its
//! `client_id` or one of its `allowed_audiences` in `aud`), or a token of a
//! trusted federation — for a new access token about the same subject,
//! optionally with an `actor_token` (delegation: the new token's `act`
//! claim names the actor, nesting the subject token's `act` for chains,
//! [RFC 8693 §4.1]; a subject token's `may_act` ([§4.4]) must name the
//! actor). The scope can only narrow (within the subject token's and the
//! client's), the audiences are the client's allowed ones ([RFC 8707]), the
//! lifetime never exceeds the subject token's, and the token policy sees
//! `input.subject_token` and `input.actor_token`.
//!
//! [RFC 8693]: https://www.rfc-editor.org/rfc/rfc8693
//! [RFC 8693 §4.1]: https://www.rfc-editor.org/rfc/rfc8693#section-4.1
//! [§4.4]: https://www.rfc-editor.org/rfc/rfc8693#section-4.4
//! [RFC 8707]: https://www.rfc-editor.org/rfc/rfc8707

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{
    audience,
    federated::grant_refused,
    issuance::{Grant, IssuedToken, RequestContext},
    request::{ExchangeRequest, ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT},
    scope::ScopeSet,
    OAuthError, TokenServer,
};
use crate::{
    clients::{Client, GrantType},
    store::Store as _,
    token::{verify, Audience},
};

/// A verified party of an exchange: the subject or the actor.
#[derive(Debug)]
struct Party {
    /// Its `sub` in the new token (a federated token: the mapped client).
    sub: String,
    /// Its issuer.
    iss: String,
    /// Scope it carries (federated: what its mapping allows).
    scope: ScopeSet,
    /// Audiences of an own access token (empty for federated tokens,
    /// whose audience the federation checked).
    aud: Vec<String>,
    /// Expiry.
    exp: i64,
    /// Its own `act` (an earlier delegation).
    act: Option<Value>,
    /// Who may act for it (RFC 8693 §4.4).
    may_act: Option<Value>,
    /// Provenance carried on (`ext_sub`, `ext_iss`).
    provenance: Map<String, Value>,
    /// The verified claims (policy input).
    claims: Map<String, Value>,
}

fn refused(what: &'static str) -> OAuthError {
    tracing::info!(reason = what, "token exchange refused");
    OAuthError::InvalidGrant(what)
}

impl TokenServer {
    /// Verifies a subject or actor token: ours (signature, issuer, times, not
    /// revoked) or a federation's (verified and mapped).
    async fn party(
        &self,
        token: &str,
        now: DateTime<Utc>,
        role: &str,
    ) -> Result<Party, OAuthError> {
        if let Ok(claims) = verify::verify(&self.keys, &self.issuer, token, now, true) {
            if self
                .store
                .access_token_revoked(&claims.jti)
                .await
                .map_err(OAuthError::server)?
            {
                return Err(refused("the token presented is revoked"));
            }
            let value = serde_json::to_value(&claims).map_err(OAuthError::server)?;
            let mut provenance = Map::new();
            for name in ["ext_sub", "ext_iss"] {
                if let Some(v) = claims.extra.get(name) {
                    provenance.insert(name.into(), v.clone());
                }
            }
            return Ok(Party {
                sub: claims.sub,
                iss: claims.iss,
                scope: claims
                    .scope
                    .as_deref()
                    .and_then(|s| ScopeSet::parse(s).ok())
                    .unwrap_or_default(),
                aud: match claims.aud {
                    Audience::One(a) => vec![a],
                    Audience::Many(list) => list,
                },
                exp: claims.exp,
                act: claims.extra.get("act").cloned(),
                may_act: claims.extra.get("may_act").cloned(),
                provenance,
                claims: value.as_object().cloned().unwrap_or_default(),
            });
        }
        let Some(federation) = self.federation_of(token).await? else {
            tracing::info!(role, "exchange token is neither ours nor a federation's");
            return Err(refused(
                "the token presented is not an active access token of this server nor a token of a trusted federation",
            ));
        };
        let (client, identity) = self
            .verify_federated(&federation, token, now)
            .await
            .map_err(|e| grant_refused(&e))?;
        let scope = identity.allowed_scope(&client.scope);
        Ok(Party {
            sub: client.id.to_string(),
            iss: identity.issuer.clone(),
            scope,
            aud: Vec::new(),
            exp: identity.exp,
            act: identity.claims.get("act").cloned(),
            may_act: identity.claims.get("may_act").cloned(),
            provenance: identity.provenance(),
            claims: identity.claims,
        })
    }

    /// RFC 8693 §2: the exchange.
    pub(super) async fn exchange(
        &self,
        client: &Client,
        request: ExchangeRequest,
        ctx: RequestContext,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, OAuthError> {
        if !client.grant_types.contains(&GrantType::TokenExchange) {
            return Err(OAuthError::UnauthorizedClient(
                "the client is not registered for the urn:ietf:params:oauth:grant-type:token-exchange grant",
            ));
        }
        let subject = self.party(&request.subject_token, now, "subject").await?;
        let own_subject = subject.iss == self.issuer;
        if own_subject
            && !subject
                .aud
                .iter()
                .any(|a| a == client.id.as_str() || client.allowed_audiences.contains(a))
        {
            return Err(refused(
                "the subject_token is not addressed to this client (its aud names neither the client_id nor one of its allowed_audiences)",
            ));
        }
        let actor = match &request.actor_token {
            Some(t) => Some(self.party(t, now, "actor").await?),
            None => None,
        };
        let acting = actor
            .as_ref()
            .map_or((client.id.as_str(), self.issuer.as_str()), |a| {
                (a.sub.as_str(), a.iss.as_str())
            });
        if let Some(may_act) = &subject.may_act {
            if !may_act_allows(may_act, acting.0, acting.1) {
                return Err(refused(
                    "the subject_token's may_act does not name the actor (RFC 8693 §4.4)",
                ));
            }
        }
        // RFC 8693 §4.1: the current actor outermost, earlier ones nested.
        let act = match &actor {
            Some(a) => {
                let mut outer = Map::new();
                outer.insert("sub".into(), a.sub.clone().into());
                if a.iss != self.issuer {
                    outer.insert("iss".into(), a.iss.clone().into());
                }
                if let Some(prior) = &subject.act {
                    outer.insert("act".into(), prior.clone());
                }
                Some(Value::Object(outer))
            }
            None => subject.act.clone(),
        };
        let allowed: ScopeSet = subject
            .scope
            .iter()
            .filter(|s| client.scope.iter().any(|c| c == *s))
            .map(str::to_owned)
            .collect();
        let scope = match request.scope {
            None => allowed,
            Some(s) if s.is_subset(&allowed) => s,
            Some(_) => return Err(OAuthError::InvalidScope(
                "the requested scope is wider than the subject_token's (within the client's scope)",
            )),
        };
        let audiences = audience::resolve(client, &request.resources)?;
        let binding = ctx.binding(client, now)?;
        let mut facts = Map::new();
        facts.insert(
            "subject_token".into(),
            Value::Object(subject.claims.clone()),
        );
        facts.insert(
            "actor_token".into(),
            actor
                .as_ref()
                .map_or(Value::Null, |a| Value::Object(a.claims.clone())),
        );
        let grant = Grant {
            name: TOKEN_EXCHANGE_GRANT,
            ctx,
            facts,
        };
        let mut decision = self
            .decide(client, scope, audiences, &grant, binding.as_ref(), now)
            .await?;
        decision.subject = Some(subject.sub.clone());
        decision.expires_by = Some(subject.exp);
        decision.provenance = subject.provenance.clone();
        if let Some(act) = act {
            decision.provenance.insert("act".into(), act);
        }
        self.take_quota(client, now).await?;
        let mut issued = self.sign(client, decision, None, now)?;
        issued.issued_token_type = Some(ACCESS_TOKEN_TYPE);
        Ok(issued)
    }
}

/// Whether `may_act` (an object with `sub`, optionally `iss`) names the actor.
fn may_act_allows(may_act: &Value, sub: &str, iss: &str) -> bool {
    let Some(obj) = may_act.as_object() else {
        return false;
    };
    obj.get("sub").and_then(Value::as_str) == Some(sub)
        && obj
            .get("iss")
            .and_then(Value::as_str)
            .is_none_or(|i| i == iss)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn may_act_names_the_actor_by_sub_and_optionally_iss() {
        let m = json!({"sub": "svc-b"});
        assert!(may_act_allows(&m, "svc-b", "https://as"));
        assert!(!may_act_allows(&m, "svc-c", "https://as"));
        let m = json!({"sub": "svc-b", "iss": "https://as"});
        assert!(may_act_allows(&m, "svc-b", "https://as"));
        assert!(!may_act_allows(&m, "svc-b", "https://other"));
        assert!(!may_act_allows(&json!("svc-b"), "svc-b", "https://as"));
    }
}
