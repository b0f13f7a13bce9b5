//! Token introspection ([RFC 7662](https://www.rfc-editor.org/rfc/rfc7662)):
//! whether a token is active, and what it carries. Anything that is not an
//! active token of ours — unknown, expired, revoked, tampered, `alg: none`,
//! another issuer's, garbage — is just `{"active": false}`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{
    issuance::{confirmation, Binding},
    request::{TokenHint, TokenReference},
    OAuthError, TokenServer,
};
use crate::{
    clients::{Client, ClientId, GrantType},
    store::StoreError,
    token::Audience,
};

/// An introspection response.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Introspection {
    /// Whether the token is active.
    pub active: bool,
    /// The rest, only for active tokens.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub details: Option<Details>,
}

/// What an active token carries (RFC 7662 §2.2).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Details {
    /// Granted scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client the token was issued to.
    pub client_id: String,
    /// Subject (the client, in this grant).
    pub sub: String,
    /// Audience(s).
    pub aud: Audience,
    /// Issuer.
    pub iss: String,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before (access tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Token id (access tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `Bearer` for access tokens, `refresh_token` for refresh tokens.
    pub token_type: &'static str,
    /// The certificate the token is bound to (RFC 8705 §3.2: `x5t#S256`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<serde_json::Value>,
    /// The acting party of an exchanged token (RFC 8693 §4.1), nested for chains.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<serde_json::Value>,
    /// The federated subject the token was issued on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext_sub: Option<serde_json::Value>,
    /// The federation issuer of that subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext_iss: Option<serde_json::Value>,
}

impl Introspection {
    fn inactive() -> Self {
        Self {
            active: false,
            details: None,
        }
    }
}

impl TokenServer {
    /// Introspects `reference` for a caller allowed to introspect.
    pub(super) async fn introspect_token(
        &self,
        caller: &Client,
        reference: &TokenReference,
        now: DateTime<Utc>,
    ) -> Result<Introspection, OAuthError> {
        if !caller.allow_introspection {
            return Err(OAuthError::Forbidden(
                "this client is not allowed to introspect tokens",
            ));
        }
        // The hint orders the search; both kinds are tried (RFC 7662 §2.1).
        let found = if reference.hint == Some(TokenHint::RefreshToken) {
            match self.refresh_details(&reference.token, now).await? {
                Some(d) => Some(d),
                None => self.access_details(&reference.token, now).await?,
            }
        } else {
            match self.access_details(&reference.token, now).await? {
                Some(d) => Some(d),
                None => self.refresh_details(&reference.token, now).await?,
            }
        };
        Ok(
            found.map_or_else(Introspection::inactive, |d| Introspection {
                active: true,
                details: Some(d),
            }),
        )
    }

    async fn access_details(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Details>, OAuthError> {
        let Ok(claims) = self
            .verified
            .verify(&self.keys, &self.issuer, token, now, true)
        else {
            return Ok(None);
        };
        // Answered from memory; as before, not while the database is known
        // to be unreachable, nor from a view that could not be refreshed.
        self.store.check_available().map_err(OAuthError::server)?;
        match self.revoked.is_revoked(&claims.jti) {
            Some(false) => {}
            Some(true) => return Ok(None),
            None => {
                return Err(OAuthError::server(StoreError::Unavailable(
                    "the revoked-token view is out of date",
                )))
            }
        }
        let owner = self.live_client(&claims.client_id, now).await?;
        // Tokens issued up to the second of an admin "revoke all" are inactive, and
        // so are tokens of an earlier client that had the same id.
        if owner.is_none_or(|c| {
            c.tokens_revoked_before
                .is_some_and(|t| claims.iat <= t.timestamp())
                || claims.iat < c.created_at.timestamp()
        }) {
            return Ok(None);
        }
        Ok(Some(Details {
            scope: claims.scope,
            client_id: claims.client_id,
            sub: claims.sub,
            aud: claims.aud,
            iss: claims.iss,
            exp: claims.exp,
            iat: claims.iat,
            nbf: Some(claims.nbf),
            jti: Some(claims.jti),
            // RFC 9449 §6.2: a token bound to a DPoP key is a DPoP token.
            token_type: if claims
                .extra
                .get("cnf")
                .is_some_and(|c| c.get("jkt").is_some())
            {
                "DPoP"
            } else {
                "Bearer"
            },
            cnf: claims.extra.get("cnf").cloned(),
            act: claims.extra.get("act").cloned(),
            ext_sub: claims.extra.get("ext_sub").cloned(),
            ext_iss: claims.extra.get("ext_iss").cloned(),
        }))
    }

    async fn refresh_details(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Details>, OAuthError> {
        let Some(record) = self.find_refresh_token(token).await? else {
            return Ok(None);
        };
        let owner = self
            .live_client(record.family.client_id.as_str(), now)
            .await?;
        if !record.is_live(now)
            || !owner.is_some_and(|c| c.grant_types.contains(&GrantType::RefreshToken))
        {
            return Ok(None);
        }
        let family = record.family;
        Ok(Some(Details {
            scope: (!family.scope.is_empty()).then(|| family.scope.to_string()),
            client_id: family.client_id.to_string(),
            sub: family.client_id.to_string(),
            aud: family.audiences.into(),
            iss: self.issuer.clone(),
            exp: record.expires_at.min(family.expires_at).timestamp(),
            iat: record.issued_at.timestamp(),
            nbf: None,
            jti: None,
            token_type: "refresh_token",
            cnf: family
                .certificate_thumbprint
                .as_deref()
                .map(confirmation)
                .or_else(|| {
                    family
                        .dpop_jkt
                        .clone()
                        .map(|jkt| Binding::Dpop(jkt).confirmation())
                }),
            act: None,
            ext_sub: None,
            ext_iss: None,
        }))
    }

    /// The client if it still exists and is enabled: tokens of disabled or
    /// deleted clients are inactive.
    pub(super) async fn live_client(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Arc<Client>>, OAuthError> {
        let Ok(id) = ClientId::parse(id) else {
            return Ok(None);
        };
        let entry = self
            .clients
            .get(&self.store, &id, now)
            .await
            .map_err(OAuthError::server)?;
        Ok(entry.map(|e| Arc::clone(&e.client)).filter(|c| c.enabled))
    }
}
