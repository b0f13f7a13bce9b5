//! Client authentication at the OAuth endpoints ([RFC 6749 §2.3], [§3.2.1]):
//! by secret (`client_secret_basic`, `client_secret_post`), by assertion
//! (`private_key_jwt`, [RFC 7523 §3]) or by TLS client certificate
//! ([RFC 8705 §2]). The proofs of the secretless methods are checked in
//! [`super::proof`]; this module owns the dispatch, secrets, the per-client
//! rate limit and lockout.
//!
//! An unknown client, a wrong or expired secret, a locked client and a client
//! registered for another method get the same answer (status, headers and
//! body); a presented secret costs the same argon2 work in every case, so
//! neither the response nor its timing tells which client ids exist. The
//! reason is logged (`reason` in the server log), never sent.
//!
//! [RFC 6749 §2.3]: https://www.rfc-editor.org/rfc/rfc6749#section-2.3
//! [§3.2.1]: https://www.rfc-editor.org/rfc/rfc6749#section-3.2.1
//! [RFC 7523 §3]: https://www.rfc-editor.org/rfc/rfc7523#section-3
//! [RFC 8705 §2]: https://www.rfc-editor.org/rfc/rfc8705#section-2

use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use super::{
    client_auth::{ClientCredentials, Credential},
    proof::Presented,
    OAuthError, TokenServer,
};
use crate::{
    audit::AuditEvent,
    clients::{cache::CachedClient, Client, ClientId},
    protect::Limited,
    store::Store,
};

impl TokenServer {
    /// Authenticates the client by what it presented: a secret, an assertion,
    /// or its TLS client certificate (`certificate`, when the connection or a
    /// trusted proxy carried one). `endpoint` is the path called, which an
    /// assertion's `aud` may name.
    #[tracing::instrument(skip_all, fields(client_id = %creds.client_id))]
    pub async fn authenticate(
        &self,
        creds: &ClientCredentials,
        certificate: Presented<'_>,
        endpoint: &str,
        now: DateTime<Utc>,
    ) -> Result<Client, OAuthError> {
        let client = match &creds.credential {
            Credential::Secret { secret, basic } => {
                self.authenticate_secret(creds, secret, *basic, now).await?
            }
            Credential::Assertion(jwt) => {
                let client = self.registered(creds, now).await?;
                self.verify_assertion(&client, jwt, endpoint, now).await?;
                client
            }
            Credential::Certificate => {
                let client = self.registered(creds, now).await?;
                self.verify_certificate(&client, certificate, now).await?;
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

    /// The same failure, and the same argon2 work, for an unknown client, a
    /// wrong or expired secret, and a locked client. Applies the per-client
    /// rate limit (keyed by the claimed id, known or not) and counts failures
    /// towards lockout (of clients that have secrets: others cannot be locked
    /// out by someone guessing).
    async fn authenticate_secret(
        &self,
        creds: &ClientCredentials,
        secret: &SecretString,
        basic: bool,
        now: DateTime<Utc>,
    ) -> Result<Client, OAuthError> {
        let entry = self.lookup(&creds.client_id, now).await?;
        let locked = entry.as_ref().is_some_and(|e| {
            e.client.locked_until.is_some_and(|t| t > now)
                || self.lockout.locally_locked(e.client.id.as_str(), now)
        });
        // A credential verified before skips argon2; anything else pays for it,
        // including unknown and locked clients, so timing tells nothing.
        let remembered = !locked
            && entry
                .as_ref()
                .is_some_and(|e| self.clients.remembered(e, secret, now));
        let verified = remembered || {
            let hashes = match &entry {
                Some(e) if !locked => e.active_hashes(now),
                _ => Vec::new(),
            };
            self.metrics.secret_verified();
            let ok = self.verifier.verify(secret, hashes).await;
            if let (true, Some(e)) = (ok, &entry) {
                self.clients.remember(e, secret, now);
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
                    if let Some(until) = self.lockout.record_failure(e.client.id.as_str(), now) {
                        self.lock(&e.client, until, now).await?;
                    }
                }
                return Err(OAuthError::authentication_failed(basic));
            }
            None => {
                tracing::info!(reason = "bad_credentials", "client authentication failed");
                return Err(OAuthError::authentication_failed(basic));
            }
        };
        self.lockout.clear(client.id.as_str());
        if !creds.fits(client.auth_method) {
            // The right secret by the wrong method: the same answer as an
            // unknown client, the reason in the log only.
            return Err(wrong_method(creds, basic));
        }
        Ok(client)
    }

    /// The client named by `client_id`, after the per-client rate limit.
    async fn lookup(
        &self,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Arc<CachedClient>>, OAuthError> {
        let entry = match ClientId::parse(client_id) {
            Ok(id) => self
                .clients
                .get(&self.store, &id, now)
                .await
                .map_err(OAuthError::server)?,
            Err(_) => None,
        };
        self.limits
            .check_client(client_id, entry.as_ref().map(|e| &e.client))
            .map_err(|l| self.rate_limited(l))?;
        Ok(entry)
    }

    /// A registered, unlocked client whose method fits a secretless presentation.
    async fn registered(
        &self,
        creds: &ClientCredentials,
        now: DateTime<Utc>,
    ) -> Result<Client, OAuthError> {
        let Some(entry) = self.lookup(&creds.client_id, now).await? else {
            tracing::info!(reason = "unknown_client", "client authentication failed");
            return Err(OAuthError::authentication_failed(false));
        };
        let client = entry.client.clone();
        if client.locked_until.is_some_and(|t| t > now) {
            tracing::info!(reason = "client_locked", "client authentication failed");
            return Err(OAuthError::authentication_failed(false));
        }
        if !creds.fits(client.auth_method) {
            return Err(wrong_method(creds, false));
        }
        Ok(client)
    }

    /// Locks `client` until `until` after too many failures, and audits it.
    /// While the database is unreachable the lock holds in this process only
    /// (and the cached client is kept, so the other clients' service goes on).
    async fn lock(
        &self,
        client: &Client,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), OAuthError> {
        match self.store.set_client_lock(&client.id, Some(until)).await {
            Ok(()) => {
                self.clients.invalidate(client.id.as_str());
                // Other replicas see the stored lock at the latest when their cache entry ages out.
                if let Err(e) = self.store.notify_client_changed(&client.id).await {
                    tracing::warn!(error.cause_chain = ?e, "could not announce the lockout to other replicas");
                }
            }
            Err(e) if e.is_unavailable() => {
                tracing::warn!(error.cause_chain = ?e, "database unavailable: lockout kept in this process only");
                self.lockout.lock_locally(client.id.as_str(), until, now);
            }
            Err(e) => return Err(OAuthError::server(e)),
        }
        self.metrics.lockout();
        tracing::warn!(locked_until = %until, "client locked after repeated failed authentication");
        let event = AuditEvent::new("client_locked", "system", now)
            .client(client.id.as_str())
            .reason("repeated failed authentication")
            .details(serde_json::json!({
                "locked_until": until.timestamp(),
                "failures": self.settings.limits.lockout_threshold,
                "window_seconds": self.settings.limits.lockout_window,
            }));
        // Refused, the event is still in its log line; the denial that
        // follows answers 503.
        let _ = self.audit.record(event).await;
        Ok(())
    }

    /// Counts a limit hit and turns it into the OAuth error.
    pub(super) fn rate_limited(&self, limited: Limited) -> OAuthError {
        self.metrics.rate_limited(limited.limit);
        OAuthError::RateLimited(limited)
    }
}

/// A known client presenting a method it is not registered for: logged with
/// the detail, answered exactly like an unknown client so the answer does not
/// tell which client ids exist.
fn wrong_method(creds: &ClientCredentials, basic: bool) -> OAuthError {
    tracing::info!(
        reason = "wrong_method",
        presented = creds.presented_method(),
        "client authentication failed"
    );
    OAuthError::authentication_failed(basic)
}
