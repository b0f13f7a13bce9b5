//! The grant dispatch of the token endpoint ([RFC 6749 §4.4.2], [§6]) and
//! the client-credentials grant ([RFC 6749 §4.4]): scope from the client's
//! allow-list ([§3.3]), audiences by [RFC 8707], a refresh-token family for
//! clients registered for it. The refresh grant lives in [`super::refresh`];
//! both end in [`super::issuance`].
//!
//! [RFC 6749 §4.4]: https://www.rfc-editor.org/rfc/rfc6749#section-4.4
//! [RFC 6749 §4.4.2]: https://www.rfc-editor.org/rfc/rfc6749#section-4.4.2
//! [§6]: https://www.rfc-editor.org/rfc/rfc6749#section-6
//! [§3.3]: https://www.rfc-editor.org/rfc/rfc6749#section-3.3
//! [RFC 8707]: https://www.rfc-editor.org/rfc/rfc8707

use chrono::{DateTime, Utc};

use super::{
    audience,
    issuance::{Grant, IssuedToken, RequestContext},
    request::TokenRequest,
    scope::ScopeSet,
    OAuthError, TokenServer,
};
use crate::clients::{Client, GrantType};

impl TokenServer {
    /// Runs a token request for an authenticated client.
    #[tracing::instrument(skip_all, fields(client_id = %client.id))]
    pub async fn issue(
        &self,
        client: &Client,
        request: TokenRequest,
        ctx: RequestContext,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, OAuthError> {
        // The other grants' futures are boxed, so that the common
        // client-credentials request is not sized (and moved) for them.
        match request {
            TokenRequest::ClientCredentials { scope, resources } => {
                let grant = Grant::new("client_credentials", ctx);
                self.client_credentials(client, scope, &resources, &grant, now)
                    .await
            }
            TokenRequest::RefreshToken {
                refresh_token,
                scope,
                resources,
            } => {
                let grant = Grant::new("refresh_token", ctx);
                Box::pin(self.refresh(client, &refresh_token, scope, &resources, &grant, now)).await
            }
            TokenRequest::JwtBearer {
                assertion,
                scope,
                resources,
            } => Box::pin(self.jwt_bearer(client, &assertion, scope, &resources, ctx, now)).await,
            TokenRequest::TokenExchange(exchange) => {
                Box::pin(self.exchange(client, *exchange, ctx, now)).await
            }
        }
    }

    /// RFC 6749 §4.4: the client's own token, within its registration.
    async fn client_credentials(
        &self,
        client: &Client,
        scope: Option<ScopeSet>,
        resources: &[String],
        grant: &Grant,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, OAuthError> {
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
        let audiences = audience::resolve(client, resources)?;
        let binding = grant.ctx.binding(client, now)?;
        let decision = self
            .decide(
                client,
                scope.clone(),
                audiences,
                grant,
                binding.as_ref(),
                now,
            )
            .await?;
        self.take_quota(client, now).await?;
        // The refresh family keeps the grant's scope; the policy narrows each access token.
        let refresh_token = if client.grant_types.contains(&GrantType::RefreshToken) {
            Some(
                self.start_family(client, &scope, &decision.audiences, binding, now)
                    .await?,
            )
        } else {
            None
        };
        self.sign(client, decision, refresh_token, now)
    }
}
