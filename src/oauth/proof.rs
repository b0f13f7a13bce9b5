//! The proofs of the secretless client-authentication methods: a client
//! assertion signed with the client's key (`private_key_jwt`,
//! [RFC 7523 §3], [RFC 7521 §4.2]) and a TLS client certificate
//! (`tls_client_auth` and `self_signed_tls_client_auth`, [RFC 8705 §2]).
//! The claim rules of assertions are pure and live in [`super::assertion`].
//!
//! [RFC 7523 §3]: https://www.rfc-editor.org/rfc/rfc7523#section-3
//! [RFC 7521 §4.2]: https://www.rfc-editor.org/rfc/rfc7521#section-4.2
//! [RFC 8705 §2]: https://www.rfc-editor.org/rfc/rfc8705#section-2

use chrono::{DateTime, Utc};

use super::{assertion, OAuthError, TokenServer};
use crate::{
    certs::{jwk_names_certificate, CertError, ClientCertificate},
    clients::{AuthMethod, Client},
    store::Store,
};

/// A TLS client certificate as the request carried it: none, one, or one
/// that could not be used (a refusal only for clients that need it).
pub type Presented<'a> = Result<Option<&'a ClientCertificate>, &'a CertError>;

fn refused(reason: &'static str, message: String) -> OAuthError {
    tracing::info!(reason, detail = %message, "client authentication failed");
    OAuthError::ProofRefused(message)
}

impl TokenServer {
    /// The `aud` values a client assertion sent to `endpoint` (a path such as
    /// `/token`) may carry: the issuer, and the token endpoint's and the called
    /// endpoint's URLs under the issuer and the mTLS alias base
    /// ([RFC 7523 §3](https://www.rfc-editor.org/rfc/rfc7523#section-3) item 3).
    #[must_use]
    pub fn assertion_audiences(&self, endpoint: &str) -> Vec<String> {
        let mut out = vec![self.issuer.clone()];
        let bases = std::iter::once(self.issuer.as_str())
            .chain(self.settings.listeners.mtls_endpoint_base.as_deref());
        for base in bases {
            for path in ["/token", endpoint] {
                let url = format!("{base}{path}");
                if !out.contains(&url) {
                    out.push(url);
                }
            }
        }
        out
    }

    /// RFC 7523 §3: signature by a registered key with an allowed algorithm,
    /// the claims, and the `jti` seen nowhere before (the store is shared by
    /// replicas).
    pub(super) async fn verify_assertion(
        &self,
        client: &Client,
        jwt: &str,
        endpoint: &str,
        now: DateTime<Utc>,
    ) -> Result<(), OAuthError> {
        let settings = &self.settings;
        let assertion_refused =
            |e: assertion::AssertionError| refused("bad_assertion", e.to_string());
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
        let keys = self
            .client_jwks
            .keys(client, kid.as_deref())
            .await
            .map_err(|e| refused("client_keys_unavailable", e.to_string()))?;
        let claims = assertion::verify_signature(jwt, alg, kid.as_deref(), &keys)
            .map_err(assertion_refused)?;
        let audiences = self.assertion_audiences(endpoint);
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
        // The replay record must outlive the assertion: one that cannot be
        // stored until its exp is refused, never remembered for less.
        let Some(until) =
            DateTime::from_timestamp(accepted.remember_until, 0).filter(|until| *until > now)
        else {
            return Err(refused(
                "assertion_unrememberable",
                "the client_assertion's exp is out of range".into(),
            ));
        };
        let first_use = self.record_jti(client, &accepted.jti, until, now).await?;
        if !first_use {
            tracing::warn!(jti = %accepted.jti, "client assertion replayed");
            return Err(refused(
                "assertion_replayed",
                "the client_assertion was used before (its jti is single-use)".into(),
            ));
        }
        Ok(())
    }

    /// Records an assertion's (or, prefixed, a DPoP proof's) `jti` until
    /// `until`: in the database (shared by every replica), or — while it is
    /// unreachable — in this process's bounded replay set. False for a replay.
    pub(super) async fn record_jti(
        &self,
        client: &Client,
        jti: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, OAuthError> {
        match self
            .store
            .record_assertion_jti(&client.id, jti, until)
            .await
        {
            Ok(first) => Ok(first && !self.replays.seen(&client.id, jti, now)),
            Err(e) if e.is_unavailable() => {
                tracing::debug!("database unavailable: assertion id kept in this process");
                self.replays
                    .record(&client.id, jti, until, now)
                    .map_err(|full| OAuthError::Unavailable(full.into()))
            }
            Err(e) => Err(OAuthError::server(e)),
        }
    }

    /// RFC 8705 §2: a certificate in its validity period that chains to the
    /// configured CAs and carries the registered subject (`tls_client_auth`),
    /// or that the client registered in its JWK set
    /// (`self_signed_tls_client_auth`).
    pub(super) async fn verify_certificate(
        &self,
        client: &Client,
        certificate: Presented<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), OAuthError> {
        let method = client.auth_method.as_str();
        let certificate = certificate.map_err(|e| refused("bad_certificate", e.to_string()))?;
        let Some(cert) = certificate else {
            return Err(refused(
                "no_certificate",
                format!(
                    "the client is registered for {method} and presented no client certificate"
                ),
            ));
        };
        cert.check_validity(now)
            .map_err(|e| refused("bad_certificate", e.to_string()))?;
        if client.auth_method == AuthMethod::TlsClientAuth {
            self.verify_chained_certificate(client, cert, now)
        } else {
            self.verify_registered_certificate(client, cert).await
        }
    }

    /// `tls_client_auth`: chains to the CA bundle and names the registered subject.
    fn verify_chained_certificate(
        &self,
        client: &Client,
        cert: &ClientCertificate,
        now: DateTime<Utc>,
    ) -> Result<(), OAuthError> {
        let Some(anchors) = self.client_ca.as_deref() else {
            return Err(refused(
                "mtls_not_configured",
                "tls_client_auth is not available: the server has no client CA bundle (tls_client_ca_file)".into(),
            ));
        };
        anchors
            .verify(cert, now)
            .map_err(|e| refused("bad_certificate", e.to_string()))?;
        let subject = client.keys.tls_subject.as_ref().ok_or_else(|| {
            OAuthError::server(anyhow::anyhow!(
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
        Ok(())
    }

    /// `self_signed_tls_client_auth`: the certificate is in the client's JWK set.
    async fn verify_registered_certificate(
        &self,
        client: &Client,
        cert: &ClientCertificate,
    ) -> Result<(), OAuthError> {
        let keys = self
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
        Ok(())
    }
}
