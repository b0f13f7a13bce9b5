//! The three OAuth endpoints as methods of [`TokenServer`]: the token
//! endpoint ([RFC 6749 §3.2], client authentication by [§2.3]; grants
//! [§4.4] and [§6]), introspection ([RFC 7662 §2]) and revocation
//! ([RFC 7009 §2]). Each takes a [`FormPost`] as the web layer read it and
//! the [`Caller`] context (address, certificate, request id, the time read
//! once), applies the per-address limit, authenticates the client and
//! returns a typed outcome. Every outcome of the token endpoint but a
//! rate-limit refusal is counted and audited here, and answered only once
//! its audit event is durable (503 `temporarily_unavailable` when it cannot be).
//!
//! [RFC 6749 §3.2]: https://www.rfc-editor.org/rfc/rfc6749#section-3.2
//! [§2.3]: https://www.rfc-editor.org/rfc/rfc6749#section-2.3
//! [§4.4]: https://www.rfc-editor.org/rfc/rfc6749#section-4.4
//! [§6]: https://www.rfc-editor.org/rfc/rfc6749#section-6
//! [RFC 7662 §2]: https://www.rfc-editor.org/rfc/rfc7662#section-2
//! [RFC 7009 §2]: https://www.rfc-editor.org/rfc/rfc7009#section-2

use std::sync::Arc;

use serde_json::json;

use super::{
    client_auth::ClientCredentials,
    introspect::Introspection,
    issuance::{IssuedToken, RequestContext},
    request::{FormParams, TokenReference, TokenRequest},
    server::{Caller, FormPost, TokenServer},
    OAuthError,
};
use crate::{
    audit::{
        denials::{denial_actor, DenialKey, Fold},
        AuditEvent, TokenIssued,
    },
    clients::Client,
};

/// A form from a client whose authentication succeeded.
struct Authenticated {
    params: FormParams,
    client: Arc<Client>,
    ctx: RequestContext,
}

impl TokenServer {
    /// The token endpoint: authenticates the client and runs its grant.
    pub async fn token(
        &self,
        post: FormPost<'_>,
        caller: &Caller,
    ) -> Result<IssuedToken, OAuthError> {
        let mut claimed = None;
        let mut grant_name = "unknown";
        let outcome = async {
            // Fail closed while the audit journal is full: issuing first would
            // consume a refresh token whose successor cannot be sent.
            if !self.audit.has_room() {
                return Err(OAuthError::AuditUnavailable);
            }
            let mut request = None;
            let dpop = post.dpop;
            let mut form = self
                .authenticate_form(post, caller, &mut claimed, |params| {
                    let parsed = TokenRequest::parse(params)?;
                    grant_name = parsed.grant_name();
                    request = Some(parsed);
                    Ok(())
                })
                .await?;
            let request = request.ok_or(OAuthError::InvalidRequest("grant_type is required"))?;
            form.ctx.dpop_jkt = self.dpop_key(&form.client, dpop, caller.now).await?;
            let bound_by_dpop = form.ctx.dpop_jkt.is_some();
            let mut issued = self
                .issue(&form.client, request, form.ctx, caller.now)
                .await?;
            if bound_by_dpop {
                issued.dpop_nonce = self.next_dpop_nonce(caller.now);
            }
            Ok::<_, OAuthError>((form.client, issued))
        }
        .await;
        match outcome {
            // The token leaves only once its event is durable.
            Ok((client, issued)) => self
                .audit_issued(&client, &issued, grant_name, caller)
                .await
                .map(|()| issued),
            Err(e) => Err(self.audit_denied(e, claimed, grant_name, caller).await),
        }
    }

    /// The introspection endpoint.
    pub async fn introspect(
        &self,
        post: FormPost<'_>,
        caller: &Caller,
    ) -> Result<Introspection, OAuthError> {
        let form = self
            .authenticate_form(post, caller, &mut None, |_| Ok(()))
            .await?;
        let reference = TokenReference::parse(&form.params)?;
        self.introspect_token(&form.client, &reference, caller.now)
            .await
    }

    /// The revocation endpoint: `Ok` also for unknown tokens.
    pub async fn revoke(&self, post: FormPost<'_>, caller: &Caller) -> Result<(), OAuthError> {
        let form = self
            .authenticate_form(post, caller, &mut None, |_| Ok(()))
            .await?;
        let reference = TokenReference::parse(&form.params)?;
        self.revoke_token(&form.client, &reference, caller.now)
            .await
    }

    /// Applies the per-address limit, then authenticates the client (Basic,
    /// post, assertion or certificate). `claimed` receives the client id the
    /// caller named; `before_auth` parses the endpoint's own parameters.
    ///
    /// A failed authentication (`invalid_client`) is answered
    /// `auth_failure_delay_ms` after the request arrived, whatever the check
    /// cost: waiting costs no CPU, so a wrong-secret flood on N connections
    /// gets at most N answers per delay instead of the core, and every
    /// failure takes the same time (a slow hash's included).
    async fn authenticate_form(
        &self,
        post: FormPost<'_>,
        caller: &Caller,
        claimed: &mut Option<String>,
        before_auth: impl FnOnce(&FormParams) -> Result<(), OAuthError>,
    ) -> Result<Authenticated, OAuthError> {
        let arrived = tokio::time::Instant::now();
        let outcome = self.identify(post, caller, claimed, before_auth).await;
        if let Err(e) = &outcome {
            if e.code() == "invalid_client" {
                let delay = self.settings.limits.auth_failure_delay();
                tokio::time::sleep_until(arrived + delay).await;
            }
        }
        outcome
    }

    /// [`Self::authenticate_form`] without the delay of failures.
    async fn identify(
        &self,
        post: FormPost<'_>,
        caller: &Caller,
        claimed: &mut Option<String>,
        before_auth: impl FnOnce(&FormParams) -> Result<(), OAuthError>,
    ) -> Result<Authenticated, OAuthError> {
        self.limits
            .check_ip(caller.ip)
            .map_err(|l| self.rate_limited(l))?;
        let params = post.form?;
        before_auth(&params)?;
        if let Some((client, identity)) = self
            .federated_client(post.authorization, &params, claimed, caller.now)
            .await?
        {
            let ctx = RequestContext {
                ip: caller.ip,
                auth_method: client.auth_method,
                certificate: caller.certificate.as_ref().ok().and_then(Clone::clone),
                dpop_jkt: None,
                federated: Some(Arc::new(identity)),
            };
            return Ok(Authenticated {
                params,
                client,
                ctx,
            });
        }
        let creds = ClientCredentials::extract(post.authorization, &params)?;
        *claimed = Some(creds.client_id.clone());
        let presented = caller.certificate.as_ref().map(Option::as_deref);
        let client = self
            .authenticate(
                &creds,
                presented,
                caller.endpoint.path(),
                caller.ip,
                caller.now,
            )
            .await?;
        let ctx = RequestContext {
            ip: caller.ip,
            auth_method: client.auth_method,
            certificate: caller.certificate.as_ref().ok().and_then(Clone::clone),
            dpop_jkt: None,
            federated: None,
        };
        Ok(Authenticated {
            params,
            client,
            ctx,
        })
    }

    async fn audit_issued(
        &self,
        client: &Client,
        issued: &IssuedToken,
        grant_name: &'static str,
        caller: &Caller,
    ) -> Result<(), OAuthError> {
        let recorded = if issued.token_type == "Bearer" && issued.provenance.is_empty() {
            // The common case, journaled from its typed form (no `Value`).
            let event = TokenIssued {
                occurred_at: caller.now,
                client_id: client.id.as_str(),
                request_id: caller.request_id.as_deref(),
                grant_type: grant_name,
                auth_method: client.auth_method.as_str(),
                jti: &issued.jti,
                scope: &issued.scope,
                expires_in: issued.expires_in,
                refresh_token_issued: issued.refresh_token.is_some(),
            };
            self.audit.record_issued(&event).await
        } else {
            self.audit
                .record(issued_event(client, issued, grant_name, caller))
                .await
        };
        if recorded.is_err() {
            self.metrics
                .token_denied(OAuthError::AuditUnavailable.code());
            return Err(OAuthError::AuditUnavailable);
        }
        self.metrics.token_issued(grant_name);
        if !self.store.health().is_up() {
            self.metrics.token_issued_degraded();
        }
        Ok(())
    }

    /// Audits a denial; the answer is `e`, or 503 when its event cannot be recorded.
    async fn audit_denied(
        &self,
        e: OAuthError,
        claimed: Option<String>,
        grant_name: &'static str,
        caller: &Caller,
    ) -> OAuthError {
        self.metrics.token_denied(e.code());
        if matches!(e, OAuthError::RateLimited(_) | OAuthError::AuditUnavailable) {
            return e;
        }
        if let OAuthError::InvalidClient { description, .. } = e {
            // Failed client authentication with its fixed text (wrong
            // secrets, unknown clients: guessing, floods): repeats are folded.
            let key = DenialKey {
                client: claimed.clone(),
                error: e.code(),
                description,
                grant: grant_name,
            };
            let (fold, closed) = self.audit.fold_denial(key, caller.now);
            if let Some(repeated) = closed {
                // Refused, the event is still in its log line.
                let _ = self.audit.record_repeated(&repeated).await;
            }
            if fold == Fold::Folded {
                self.audit.pace().await;
                return e;
            }
        }
        let actor = denial_actor(claimed.as_deref());
        let mut event = AuditEvent::new("token_denied", actor, caller.now)
            .request(caller.request_id.as_deref())
            .reason(e.code())
            .details(json!({ "grant_type": grant_name, "error_description": e.to_string() }));
        if let Some(c) = claimed {
            event = event.client(c);
        }
        match self.audit.record(event).await {
            Ok(()) => e,
            Err(_) => OAuthError::AuditUnavailable,
        }
    }
}

/// The `token_issued` event of a DPoP-bound token or one with provenance
/// claims (federated subject, exchanged subject and actor).
fn issued_event(
    client: &Client,
    issued: &IssuedToken,
    grant_name: &'static str,
    caller: &Caller,
) -> AuditEvent {
    let mut details = json!({
        "grant_type": grant_name,
        "auth_method": client.auth_method.as_str(),
        "jti": issued.jti,
        "scope": issued.scope.to_string(),
        "expires_in": issued.expires_in,
        "refresh_token_issued": issued.refresh_token.is_some(),
    });
    // Only DPoP tokens say so: Bearer tokens keep their compact event.
    if issued.token_type != "Bearer" {
        details["token_type"] = issued.token_type.into();
    }
    if let Some(obj) = details.as_object_mut() {
        // Whom the token is about beyond the client: the federated
        // subject (ext_sub, ext_iss), the exchanged subject and actor.
        obj.extend(issued.provenance.clone());
    }
    AuditEvent::new(
        TokenIssued::KIND,
        format!("client:{}", client.id),
        caller.now,
    )
    .request(caller.request_id.as_deref())
    .client(client.id.as_str())
    .details(details)
}
