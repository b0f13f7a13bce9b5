//! Bounded HTTP: documents read with a size limit and a deadline, the
//! `Cache-Control: max-age` of a response, and the issuer's RFC 8414
//! metadata (issuer checked, `jwks_uri`, `introspection_endpoint`).

use reqwest::{header, Response};
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::VerifyError;

/// Why a fetch failed; shown to operators, never to callers of the resource.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("unexpected status {0}")]
    Status(u16),
    #[error("the document exceeds {0} bytes")]
    TooLarge(usize),
    #[error("the document is not what was expected: {0}")]
    Invalid(&'static str),
}

/// Reads the body of `res`, refusing more than `max` bytes.
pub(crate) async fn read_bounded(mut res: Response, max: usize) -> Result<Vec<u8>, FetchError> {
    if res.content_length().is_some_and(|n| n > max as u64) {
        return Err(FetchError::TooLarge(max));
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await? {
        if body.len() + chunk.len() > max {
            return Err(FetchError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `max-age` of a response, `Some(0)` for `no-store`/`no-cache`, `None` if absent.
pub(crate) fn max_age(res: &Response) -> Option<i64> {
    let mut age = None;
    for value in res.headers().get_all(header::CACHE_CONTROL) {
        for directive in value.to_str().unwrap_or("").split(',') {
            let directive = directive.trim();
            let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Some(0);
            }
            if name.eq_ignore_ascii_case("max-age") {
                age = arg.trim_matches('"').parse::<i64>().ok().or(age);
            }
        }
    }
    age
}

#[derive(Deserialize)]
struct MetadataDoc {
    issuer: String,
    jwks_uri: Option<String>,
    introspection_endpoint: Option<String>,
}

/// What the verifier uses from the issuer's metadata.
#[derive(Clone, Debug)]
pub(crate) struct Metadata {
    pub jwks_uri: Option<String>,
    pub introspection_endpoint: Option<String>,
}

/// The issuer's metadata, fetched once (on first need) and kept.
pub(crate) struct Discovery {
    issuer: String,
    http: reqwest::Client,
    max_bytes: usize,
    cell: OnceCell<Metadata>,
}

impl Discovery {
    pub fn new(issuer: String, http: reqwest::Client, max_bytes: usize) -> Self {
        Self {
            issuer,
            http,
            max_bytes,
            cell: OnceCell::new(),
        }
    }

    /// The metadata; a failure is retried on the next call.
    pub async fn metadata(&self) -> Result<&Metadata, VerifyError> {
        self.cell
            .get_or_try_init(|| self.fetch())
            .await
            .map_err(|e| {
                VerifyError::unavailable(format!("the issuer's metadata is unavailable: {e}"))
            })
    }

    /// RFC 8414 §3.1: the well-known path goes between the host and the
    /// issuer's path; the OpenID Connect location (appended) is the fallback.
    fn candidates(&self) -> Vec<String> {
        let issuer = self.issuer.trim_end_matches('/');
        let mut urls = Vec::new();
        if let Ok(url) = url::Url::parse(issuer) {
            let path = url.path().trim_end_matches('/');
            let mut well_known = url.clone();
            well_known.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
            urls.push(well_known.to_string());
        }
        urls.push(format!("{issuer}/.well-known/openid-configuration"));
        urls
    }

    async fn fetch(&self) -> Result<Metadata, FetchError> {
        let mut last = FetchError::Invalid("no metadata location");
        for url in self.candidates() {
            match self.fetch_one(&url).await {
                Ok(m) => return Ok(m),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn fetch_one(&self, url: &str) -> Result<Metadata, FetchError> {
        let res = self
            .http
            .get(url)
            .header(header::ACCEPT, "application/json")
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(FetchError::Status(res.status().as_u16()));
        }
        let body = read_bounded(res, self.max_bytes).await?;
        let doc: MetadataDoc = serde_json::from_slice(&body)
            .map_err(|_| FetchError::Invalid("metadata is not JSON"))?;
        // RFC 8414 §3.3: the document must name exactly the issuer we trust.
        if doc.issuer != self.issuer {
            return Err(FetchError::Invalid("the metadata names another issuer"));
        }
        Ok(Metadata {
            jwks_uri: doc.jwks_uri,
            introspection_endpoint: doc.introspection_endpoint,
        })
    }
}
