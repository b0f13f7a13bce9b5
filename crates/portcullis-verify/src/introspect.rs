//! Token introspection (RFC 7662) for routes that must see revocation at
//! once: the resource server asks the issuer as a client (HTTP Basic,
//! RFC 6749 §2.3.1) and caches the answer briefly, by SHA-256 of the token.

use std::sync::Arc;

use base64::{engine::general_purpose::STANDARD, Engine as _};
use reqwest::header;
use serde::Deserialize;
use url::form_urlencoded::byte_serialize;

use crate::{
    config::IntrospectionConfig,
    fetch::{read_bounded, Discovery},
    ttl_cache::{key, TtlCache},
    VerifyError,
};

/// Largest accepted introspection answer, bytes.
const MAX_ANSWER: usize = 64 * 1024;

#[derive(Deserialize)]
struct Answer {
    active: bool,
}

pub(crate) struct Introspector {
    cfg: IntrospectionConfig,
    http: reqwest::Client,
    discovery: Arc<Discovery>,
    cache: TtlCache<bool>,
    authorization: String,
}

impl Introspector {
    pub fn new(cfg: IntrospectionConfig, http: reqwest::Client, discovery: Arc<Discovery>) -> Self {
        let enc = |s: &str| byte_serialize(s.as_bytes()).collect::<String>();
        let authorization = format!(
            "Basic {}",
            STANDARD.encode(format!(
                "{}:{}",
                enc(&cfg.client_id),
                enc(&cfg.client_secret)
            ))
        );
        Self {
            cache: TtlCache::new(cfg.max_entries),
            cfg,
            http,
            discovery,
            authorization,
        }
    }

    pub fn always(&self) -> bool {
        self.cfg.always
    }

    /// Refuses the token unless the issuer says it is active; `exp` bounds caching.
    pub async fn check(&self, token: &str, exp: i64, now: i64) -> Result<(), VerifyError> {
        let k = key(&[token.as_bytes()]);
        let active = if let Some(active) = self.cache.get(&k, now) {
            active
        } else {
            let active = self.ask(token).await?;
            let ttl = if active {
                self.cfg.positive_ttl
            } else {
                self.cfg.negative_ttl
            };
            self.cache
                .put(k, active, (now + ttl).min(exp.max(now + 1)), now);
            active
        };
        if active {
            Ok(())
        } else {
            Err(VerifyError::invalid_token("the access token is not active"))
        }
    }

    async fn ask(&self, token: &str) -> Result<bool, VerifyError> {
        let unavailable =
            |why: &str| VerifyError::unavailable(format!("token introspection failed: {why}"));
        let endpoint = match &self.cfg.endpoint {
            Some(e) => e.clone(),
            None => self
                .discovery
                .metadata()
                .await?
                .introspection_endpoint
                .clone()
                .ok_or_else(|| unavailable("the issuer has no introspection_endpoint"))?,
        };
        let res = self
            .http
            .post(endpoint)
            .header(header::AUTHORIZATION, &self.authorization)
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!(
                "token={}&token_type_hint=access_token",
                byte_serialize(token.as_bytes()).collect::<String>()
            ))
            .send()
            .await
            .map_err(|_| unavailable("the endpoint could not be reached"))?;
        if !res.status().is_success() {
            return Err(unavailable(&format!("status {}", res.status().as_u16())));
        }
        let body = read_bounded(res, MAX_ANSWER)
            .await
            .map_err(|_| unavailable("the answer could not be read"))?;
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|_| unavailable("the answer has no boolean active"))?;
        Ok(answer.active)
    }
}
