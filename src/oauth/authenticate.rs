//! Client authentication at the OAuth endpoints ([RFC 6749 §2.3], [§3.2.1]):
//! by secret (`client_secret_basic`, `client_secret_post`), by assertion
//! (`private_key_jwt`, [RFC 7523 §3]) or by TLS client certificate
//! ([RFC 8705 §2]). The proofs of the secretless methods are checked in
//! [`super::proof`]; this module owns the dispatch, secrets, the per-client
//! rate limit and lockout.
//!
//! An unknown client, a wrong or expired secret, a locked client and a client
//! registered for another method get the same answer (status, headers and
//! body). A presented secret goes through the same code path in every case:
//! an unknown client's is checked against a dummy hash in the fast format of
//! generated secrets, so neither the response nor its timing tells whether a
//! client with a generated secret exists (a client still on a slow hash —
//! an older argon2id or an imported one — costs that hash until it is
//! rotated). The reason is logged (`reason` in the server log), never sent.
//!
//! [RFC 6749 §2.3]: https://www.rfc-editor.org/rfc/rfc6749#section-2.3
//! [§3.2.1]: https://www.rfc-editor.org/rfc/rfc6749#section-3.2.1
//! [RFC 7523 §3]: https://www.rfc-editor.org/rfc/rfc7523#section-3
//! [RFC 8705 §2]: https://www.rfc-editor.org/rfc/rfc8705#section-2

use std::{net::IpAddr, sync::Arc};

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use super::{
    client_auth::{ClientCredentials, Credential},
    proof::Presented,
    OAuthError, TokenServer,
};
use crate::{
    audit::AuditEvent,
    clients::{cache::CachedClient, secret::Origin, Client, ClientId, SecretVerifier},
    protect::{client_ip::address_group, Limited},
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
        ip: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<Arc<Client>, OAuthError> {
        let client = match &creds.credential {
            Credential::Secret { secret, basic } => {
                self.authenticate_secret(creds, secret, *basic, ip, now)
                    .await?
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
        // Counted only once the client proved who it is: requests with a
        // wrong secret for its (public) id must not use up its rate.
        self.limits
            .check_client(client.id.as_str(), Some(&client))
            .map_err(|l| self.rate_limited(l))?;
        Ok(client)
    }

    /// The same failure, after the same hash work, for an unknown client, a
    /// wrong or expired secret, and a client locked for this address.
    /// For clients with an imported secret only, counts failures
    /// towards the lockout of this client from this address (see
    /// [`crate::protect::lockout`]).
    async fn authenticate_secret(
        &self,
        creds: &ClientCredentials,
        secret: &SecretString,
        basic: bool,
        ip: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<Arc<Client>, OAuthError> {
        let entry = self.lookup(&creds.client_id, now).await?;
        let hashes = entry
            .as_ref()
            .map_or_else(Vec::new, |e| e.active_hashes(now));
        let imported = hashes.iter().any(|h| h.origin() == Origin::Imported);
        let locked = imported
            && entry
                .as_ref()
                .is_some_and(|e| self.lockout.locked(e.client.id.as_str(), ip, now));
        // A slow hash verified before is remembered; anything else pays for
        // its check, locked clients included (the result is then ignored), so
        // timing tells nothing beyond the kind of hash the client has.
        let remembered = !locked
            && !SecretVerifier::costliest(&hashes).is_fast()
            && entry
                .as_ref()
                .is_some_and(|e| self.clients.remembered(e, secret, now));
        let verified = remembered || {
            let scheme = SecretVerifier::costliest(&hashes);
            self.metrics.secret_verified(scheme.as_str());
            let ok = self.verifier.verify(secret, hashes).await && !locked;
            if let (true, Some(e)) = (ok, &entry) {
                if !scheme.is_fast() {
                    self.clients.remember(e, secret, now);
                }
            }
            ok
        };
        let client = match entry {
            Some(e) if verified => Arc::clone(&e.client),
            Some(e) => {
                let reason = if locked {
                    "client_locked"
                } else {
                    "bad_credentials"
                };
                tracing::info!(reason, "client authentication failed");
                if imported && !locked {
                    if let Some(until) = self.lockout.record_failure(e.client.id.as_str(), ip, now)
                    {
                        self.locked_out(&e.client, ip, until, now).await;
                    }
                }
                return Err(OAuthError::authentication_failed(basic));
            }
            None => {
                tracing::info!(reason = "bad_credentials", "client authentication failed");
                return Err(OAuthError::authentication_failed(basic));
            }
        };
        if imported {
            self.lockout.clear(client.id.as_str(), ip);
        }
        if !creds.fits(client.auth_method) {
            // The right secret by the wrong method: the same answer as an
            // unknown client, the reason in the log only.
            return Err(wrong_method(creds, basic));
        }
        Ok(client)
    }

    /// The client named by `client_id` (none when unknown or malformed).
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
        Ok(entry)
    }

    /// A registered, unlocked client whose method fits a secretless presentation.
    async fn registered(
        &self,
        creds: &ClientCredentials,
        now: DateTime<Utc>,
    ) -> Result<Arc<Client>, OAuthError> {
        let Some(entry) = self.lookup(&creds.client_id, now).await? else {
            tracing::info!(reason = "unknown_client", "client authentication failed");
            return Err(OAuthError::authentication_failed(false));
        };
        let client = Arc::clone(&entry.client);
        if !creds.fits(client.auth_method) {
            return Err(wrong_method(creds, false));
        }
        Ok(client)
    }

    /// Counts and audits a lockout of `client` from the address of `ip` until `until`.
    async fn locked_out(
        &self,
        client: &Client,
        ip: IpAddr,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        self.metrics.lockout();
        tracing::warn!(locked_until = %until, "client with an imported secret locked for one address after repeated failed authentication");
        let event = AuditEvent::new("client_locked", "system", now)
            .client(client.id.as_str())
            .reason("repeated failed authentication from one address")
            .details(serde_json::json!({
                "locked_until": until.timestamp(),
                "address": address_group(ip),
                "failures": self.settings.limits.lockout_threshold,
                "window_seconds": self.settings.limits.lockout_window,
            }));
        // Refused, the event is still in its log line; the denial that
        // follows answers 503.
        let _ = self.audit.record(event).await;
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
