//! [`Verifier`]: the checks of an access token (RFC 9068 §4), its sender
//! constraint (RFC 8705 §3, RFC 9449 §7), its scopes (RFC 6750 §3.1) and,
//! where asked, its liveness at the issuer (RFC 7662).

use std::sync::Arc;

use crate::{
    binding::certificate_matches,
    claims::AccessTokenClaims,
    config::VerifierConfig,
    dpop::{normalize_htu, DpopChecker, ProofInput},
    error::{render, ChallengeSettings, ErrorResponse},
    fetch::Discovery,
    introspect::Introspector,
    jwk::Algorithm,
    jws::{Compact, Header},
    keys::{KeyCache, KeyCacheStats, Snapshot},
    request::{parse_authorization, RequestParts, Requirements, Scheme},
    verified::{Inner, VerifiedToken},
    VerifyError,
};

/// A configuration the verifier cannot work with.
#[derive(Debug, thiserror::Error)]
#[error("invalid verifier configuration: {0}")]
pub struct ConfigError(String);

/// Verifies Portcullis access tokens. Cheap to clone; share one per issuer.
#[derive(Clone)]
pub struct Verifier(Arc<Shared>);

struct Shared {
    cfg: VerifierConfig,
    keys: Arc<KeyCache>,
    dpop: Option<DpopChecker>,
    introspector: Option<Introspector>,
    dpop_algs: Option<String>,
}

impl Verifier {
    /// A verifier with its own HTTP client (rustls, the configured fetch timeout, no redirects).
    pub fn new(cfg: VerifierConfig) -> Result<Self, ConfigError> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(cfg.jwks.fetch_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("portcullis-verify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError(format!("HTTP client: {e}")))?;
        Self::with_http_client(cfg, http)
    }

    /// A verifier fetching with `http` (for custom roots, proxies or timeouts).
    pub fn with_http_client(
        cfg: VerifierConfig,
        http: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let err = |m: &str| Err(ConfigError(m.to_owned()));
        if url::Url::parse(&cfg.issuer).is_err() {
            return err("issuer must be an absolute URL");
        }
        if cfg.audience.is_empty() {
            return err("audience must not be empty");
        }
        if cfg.algorithms.is_empty() || cfg.dpop.as_ref().is_some_and(|d| d.algorithms.is_empty()) {
            return err("algorithm lists must not be empty");
        }
        if cfg.leeway < 0 || cfg.jwks.min_ttl < 0 || cfg.jwks.refetch_interval < 0 {
            return err("durations must not be negative");
        }
        let discovery = Arc::new(Discovery::new(
            cfg.issuer.clone(),
            http.clone(),
            cfg.jwks.max_bytes,
        ));
        let keys = Arc::new(KeyCache::new(
            cfg.jwks.clone(),
            http.clone(),
            Arc::clone(&discovery),
            cfg.clock.clone(),
        ));
        let introspector = cfg
            .introspection
            .clone()
            .map(|c| Introspector::new(c, http, discovery));
        let dpop_algs = cfg.dpop.as_ref().map(|d| {
            d.algorithms
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        });
        Ok(Self(Arc::new(Shared {
            dpop: cfg.dpop.clone().map(DpopChecker::new),
            cfg,
            keys,
            introspector,
            dpop_algs,
        })))
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &VerifierConfig {
        &self.0.cfg
    }

    /// Fetches the keys now (e.g. at start-up), so the first request does not wait.
    pub async fn warm_up(&self) -> Result<(), VerifyError> {
        self.0.keys.keys().await.map(|_| ())
    }

    /// What the key cache has done so far.
    #[must_use]
    pub fn key_cache_stats(&self) -> KeyCacheStats {
        self.0.keys.stats()
    }

    /// A fresh DPoP server nonce, when nonces are configured (for a `DPoP-Nonce` header).
    #[must_use]
    pub fn dpop_nonce(&self) -> Option<String> {
        self.0
            .dpop
            .as_ref()
            .and_then(|d| d.nonce(self.0.cfg.clock.now()))
    }

    /// The status and headers answering `err` (`WWW-Authenticate`, `DPoP-Nonce`).
    #[must_use]
    pub fn error_response(&self, err: &VerifyError) -> ErrorResponse {
        let cfg = &self.0.cfg;
        render(
            err,
            &ChallengeSettings {
                realm: cfg.realm.as_deref(),
                dpop_algs: self.0.dpop_algs.clone(),
                dpop_only: cfg.dpop.as_ref().is_some_and(|d| d.required),
                resource_metadata: cfg.resource_metadata_url.as_deref(),
            },
        )
    }

    /// Verifies the request's token with the configured requirements.
    pub async fn verify(&self, parts: &RequestParts<'_>) -> Result<VerifiedToken, VerifyError> {
        self.verify_with(parts, &Requirements::default()).await
    }

    /// Verifies the request's token with the route's `requirements` on top of the configured ones.
    pub async fn verify_with(
        &self,
        parts: &RequestParts<'_>,
        requirements: &Requirements,
    ) -> Result<VerifiedToken, VerifyError> {
        let s = &*self.0;
        if let Some(header) = parts.repeated {
            return Err(VerifyError::invalid_request(format!(
                "more than one {header} header"
            )));
        }
        let (scheme, token) = parse_authorization(parts.authorization)?;
        let in_scheme = |e: VerifyError| {
            if scheme == Scheme::Dpop {
                e.in_dpop()
            } else {
                e
            }
        };
        match (scheme, &s.dpop) {
            (Scheme::Dpop, None) => {
                return Err(VerifyError::invalid_request(
                    "the DPoP scheme is not accepted here",
                ))
            }
            (Scheme::Bearer, Some(d)) if d.config().required => {
                return Err(
                    VerifyError::invalid_token("DPoP-bound access tokens are required").in_dpop(),
                )
            }
            _ => {}
        }
        let now = s.cfg.clock.now();
        let (claims, payload) = self.decode(token).await.map_err(in_scheme)?;
        self.check_claims(&claims, now).map_err(in_scheme)?;
        self.check_binding(parts, scheme, token, &claims, now)?;
        let missing = s
            .cfg
            .required_scopes
            .iter()
            .chain(&requirements.scopes)
            .any(|r| !claims.has_scope(r));
        if missing {
            let required: Vec<&str> = s
                .cfg
                .required_scopes
                .iter()
                .chain(&requirements.scopes)
                .map(String::as_str)
                .collect();
            return Err(in_scheme(VerifyError::insufficient_scope(
                required.join(" "),
            )));
        }
        match &s.introspector {
            Some(i) if requirements.introspect || i.always() => {
                i.check(token, claims.exp, now).await.map_err(in_scheme)?;
            }
            None if requirements.introspect => {
                return Err(VerifyError::unavailable(
                    "token introspection is not configured",
                ));
            }
            _ => {}
        }
        Ok(VerifiedToken(Arc::new(Inner {
            claims,
            payload,
            scheme,
        })))
    }

    /// Signature and claims of the JWS, against the issuer's keys.
    async fn decode(&self, token: &str) -> Result<(AccessTokenClaims, Vec<u8>), VerifyError> {
        let jws = Compact::split(token).map_err(VerifyError::invalid_token)?;
        let header_bytes = jws.header_bytes().map_err(VerifyError::invalid_token)?;
        let header = Header::parse(&header_bytes).map_err(VerifyError::invalid_token)?;
        if !header.typ_is("at+jwt") {
            return Err(VerifyError::invalid_token("the token's typ is not at+jwt"));
        }
        let alg = header
            .algorithm(&self.0.cfg.algorithms)
            .map_err(VerifyError::invalid_token)?;
        let kid = header.kid.as_deref();
        let snapshot = self.0.keys.keys().await?;
        let verified = match check_signature(&snapshot, &jws, kid, alg) {
            Some(result) => result,
            None => match self.0.keys.refetch_for_unknown_kid(&snapshot).await {
                Some(fresh) => check_signature(&fresh, &jws, kid, alg).ok_or_else(|| {
                    VerifyError::invalid_token("the token's signing key is unknown")
                })?,
                None => {
                    return Err(VerifyError::invalid_token(
                        "the token's signing key is unknown",
                    ))
                }
            },
        };
        verified?;
        let payload = jws.payload_bytes().map_err(VerifyError::invalid_token)?;
        let claims = serde_json::from_slice(&payload).map_err(|_| {
            VerifyError::invalid_token("the token's claims are malformed or incomplete")
        })?;
        Ok((claims, payload))
    }

    fn check_claims(&self, c: &AccessTokenClaims, now: i64) -> Result<(), VerifyError> {
        let cfg = &self.0.cfg;
        let why = if c.iss != cfg.issuer {
            "the token is from another issuer"
        } else if !c.aud.contains(&cfg.audience) {
            "the token is meant for another audience"
        } else if now >= c.exp.saturating_add(cfg.leeway) {
            "the token has expired"
        } else if c
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(cfg.leeway))
        {
            "the token is not valid yet"
        } else if c.iat > now.saturating_add(cfg.leeway) {
            "the token was issued in the future"
        } else {
            return Ok(());
        };
        Err(VerifyError::invalid_token(why))
    }

    /// `cnf`: a DPoP-bound token needs the DPoP scheme and a proof; a
    /// certificate-bound one the certificate; a DPoP request a bound token.
    fn check_binding(
        &self,
        parts: &RequestParts<'_>,
        scheme: Scheme,
        token: &str,
        claims: &AccessTokenClaims,
        now: i64,
    ) -> Result<(), VerifyError> {
        let cnf = claims.cnf.as_ref();
        match (scheme, cnf.and_then(|c| c.jkt.as_deref()), &self.0.dpop) {
            (Scheme::Dpop, Some(jkt), Some(dpop)) => {
                let proof = parts
                    .dpop
                    .ok_or_else(|| VerifyError::invalid_dpop_proof("the DPoP proof is missing"))?;
                let htu = self.request_htu(parts.uri)?;
                dpop.check(&ProofInput {
                    proof,
                    method: parts.method,
                    htu: &htu,
                    access_token: token,
                    jkt,
                    now,
                    leeway: self.0.cfg.leeway,
                })?;
            }
            (Scheme::Dpop, None, _) => {
                return Err(
                    VerifyError::invalid_token("the access token is not DPoP-bound").in_dpop(),
                );
            }
            (Scheme::Bearer, Some(_), _) => {
                return Err(VerifyError::invalid_token(
                    "a DPoP-bound access token must use the DPoP scheme",
                )
                .in_dpop());
            }
            _ => {}
        }
        if let Some(x5t) = cnf.and_then(|c| c.x5t_s256.as_deref()) {
            certificate_matches(x5t, parts.peer_certificate, parts.forwarded_client_cert).map_err(
                |why| {
                    let e = VerifyError::invalid_token(why);
                    if scheme == Scheme::Dpop {
                        e.in_dpop()
                    } else {
                        e
                    }
                },
            )?;
        }
        Ok(())
    }

    fn request_htu(&self, uri: &str) -> Result<String, VerifyError> {
        let absolute = match (uri.starts_with('/'), &self.0.cfg.public_origin) {
            (true, Some(origin)) => {
                normalize_htu(&format!("{}{uri}", origin.trim_end_matches('/')))
            }
            (true, None) => None,
            (false, _) => normalize_htu(uri),
        };
        absolute.ok_or_else(|| {
            VerifyError::unavailable(
                "the request URI is not absolute and no public_origin is configured",
            )
        })
    }
}

/// `Some(Ok)` if a key verifies the signature, `Some(Err)` if the key named
/// by `kid` refuses it, `None` if no key is known for it.
fn check_signature(
    snap: &Snapshot,
    jws: &Compact<'_>,
    kid: Option<&str>,
    alg: Algorithm,
) -> Option<Result<(), VerifyError>> {
    let bad = |why| Some(Err(VerifyError::invalid_token(why)));
    if let Some(kid) = kid {
        let key = snap.keys.get(kid)?;
        if !key.accepts(alg) {
            return bad("the token's alg does not fit its key");
        }
        return if jws.verify(key, alg) {
            Some(Ok(()))
        } else {
            bad("the token's signature does not verify")
        };
    }
    let mut candidates = snap
        .unnamed
        .iter()
        .chain(snap.keys.values())
        .filter(|k| k.accepts(alg))
        .peekable();
    candidates.peek()?;
    if candidates.any(|k| jws.verify(k, alg)) {
        Some(Ok(()))
    } else {
        bad("the token's signature does not verify")
    }
}
