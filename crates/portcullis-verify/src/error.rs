//! [`VerifyError`] and how it is answered: RFC 6750 §3 `Bearer` challenges,
//! RFC 9449 §7.1 `DPoP` challenges (`algs`, `use_dpop_nonce` with a
//! `DPoP-Nonce` header), RFC 9728 §5.1 `resource_metadata`.
//!
//! Error policy: a description says what is wrong with the request in words
//! safe to show the caller; it never quotes the token, a claim value or a key.

use std::borrow::Cow;

/// What kind of failure, with the HTTP status it maps to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No access token at all: `401` with a bare challenge (RFC 6750 §3.1).
    MissingToken,
    /// Malformed request (`invalid_request`, `400`): e.g. two `Authorization` headers.
    InvalidRequest,
    /// Expired, revoked, malformed, badly signed or misbound token (`invalid_token`, `401`).
    InvalidToken,
    /// The token lacks a required scope (`insufficient_scope`, `403`).
    InsufficientScope {
        /// The scopes the resource requires, space-separated.
        scope: String,
    },
    /// The DPoP proof is missing or invalid (`invalid_dpop_proof`, `401`, RFC 9449 §7.1).
    InvalidDpopProof,
    /// The DPoP proof must carry the server nonce given in `DPoP-Nonce` (`use_dpop_nonce`, `401`, RFC 9449 §9).
    UseDpopNonce,
    /// Keys or introspection could not be reached (`503`; not the caller's fault).
    Unavailable,
}

/// Why a request was not authorized. [`Display`](std::fmt::Display) is the safe `error_description`.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{description}")]
pub struct VerifyError {
    kind: ErrorKind,
    description: Cow<'static, str>,
    /// The error belongs to the DPoP challenge (the request used DPoP).
    dpop: bool,
    nonce: Option<String>,
}

impl VerifyError {
    fn new(kind: ErrorKind, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            description: description.into(),
            dpop: false,
            nonce: None,
        }
    }

    pub(crate) fn missing() -> Self {
        Self::new(ErrorKind::MissingToken, "no access token in the request")
    }
    pub(crate) fn invalid_request(why: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidRequest, why)
    }
    pub(crate) fn invalid_token(why: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidToken, why)
    }
    pub(crate) fn insufficient_scope(scope: String) -> Self {
        Self::new(
            ErrorKind::InsufficientScope { scope },
            "the access token lacks a required scope",
        )
    }
    pub(crate) fn invalid_dpop_proof(why: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidDpopProof, why).in_dpop()
    }
    pub(crate) fn use_dpop_nonce(nonce: String) -> Self {
        let mut e = Self::new(
            ErrorKind::UseDpopNonce,
            "a DPoP nonce from the resource server is required",
        )
        .in_dpop();
        e.nonce = Some(nonce);
        e
    }
    pub(crate) fn unavailable(why: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Unavailable, why)
    }
    /// Marks the error as one of the DPoP scheme (the challenge that carries it).
    pub(crate) fn in_dpop(mut self) -> Self {
        self.dpop = true;
        self
    }

    /// The kind of failure.
    #[must_use]
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The safe, human-readable `error_description`.
    #[must_use]
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The HTTP status to answer with: 400, 401, 403 or 503.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self.kind {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::InsufficientScope { .. } => 403,
            ErrorKind::Unavailable => 503,
            _ => 401,
        }
    }

    /// The RFC 6750 / RFC 9449 `error` code, if the answer carries one.
    #[must_use]
    pub fn code(&self) -> Option<&'static str> {
        match self.kind {
            ErrorKind::MissingToken | ErrorKind::Unavailable => None,
            ErrorKind::InvalidRequest => Some("invalid_request"),
            ErrorKind::InvalidToken => Some("invalid_token"),
            ErrorKind::InsufficientScope { .. } => Some("insufficient_scope"),
            ErrorKind::InvalidDpopProof => Some("invalid_dpop_proof"),
            ErrorKind::UseDpopNonce => Some("use_dpop_nonce"),
        }
    }

    /// The nonce to send in the `DPoP-Nonce` header (with [`ErrorKind::UseDpopNonce`]).
    #[must_use]
    pub fn dpop_nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }
}

/// A framework-free error answer: status and headers (the body may stay empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    /// HTTP status code.
    pub status: u16,
    /// Header name/value pairs: one `WWW-Authenticate` per challenge, and `DPoP-Nonce` when asked for.
    pub headers: Vec<(&'static str, String)>,
}

/// What the challenges advertise (from the verifier's configuration).
pub(crate) struct ChallengeSettings<'a> {
    pub realm: Option<&'a str>,
    /// `algs` of the DPoP challenge, when DPoP is accepted.
    pub dpop_algs: Option<String>,
    /// Bearer tokens are refused (DPoP only).
    pub dpop_only: bool,
    pub resource_metadata: Option<&'a str>,
}

/// Renders the answer to `err`.
pub(crate) fn render(err: &VerifyError, s: &ChallengeSettings<'_>) -> ErrorResponse {
    let mut headers = Vec::new();
    if err.kind != ErrorKind::Unavailable {
        // Without a DPoP challenge, the Bearer one carries every error.
        let bearer_error = !err.dpop || s.dpop_algs.is_none();
        let bearer = (!s.dpop_only).then(|| challenge("Bearer", None, err, bearer_error, s));
        let dpop = s
            .dpop_algs
            .as_deref()
            .map(|algs| challenge("DPoP", Some(algs), err, err.dpop || s.dpop_only, s));
        let ordered = if err.dpop {
            [dpop, bearer]
        } else {
            [bearer, dpop]
        };
        headers.extend(
            ordered
                .into_iter()
                .flatten()
                .map(|c| ("WWW-Authenticate", c)),
        );
        if let Some(nonce) = &err.nonce {
            headers.push(("DPoP-Nonce", nonce.clone()));
        }
    }
    ErrorResponse {
        status: err.status(),
        headers,
    }
}

fn challenge(
    scheme: &str,
    algs: Option<&str>,
    err: &VerifyError,
    with_error: bool,
    s: &ChallengeSettings<'_>,
) -> String {
    let mut params = Vec::new();
    if let Some(realm) = s.realm {
        params.push(format!("realm={}", quoted(realm)));
    }
    if let Some(algs) = algs {
        params.push(format!("algs={}", quoted(algs)));
    }
    if let (true, Some(code)) = (with_error, err.code()) {
        params.push(format!("error={}", quoted(code)));
        params.push(format!("error_description={}", quoted(&err.description)));
        if let ErrorKind::InsufficientScope { scope } = &err.kind {
            params.push(format!("scope={}", quoted(scope)));
        }
    }
    if let Some(url) = s.resource_metadata {
        params.push(format!("resource_metadata={}", quoted(url)));
    }
    if params.is_empty() {
        scheme.to_owned()
    } else {
        format!("{scheme} {}", params.join(", "))
    }
}

/// An RFC 9110 quoted-string; control characters are dropped.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dpop: bool) -> ChallengeSettings<'static> {
        ChallengeSettings {
            realm: Some("api"),
            dpop_algs: dpop.then(|| "ES256 EdDSA".to_owned()),
            dpop_only: false,
            resource_metadata: None,
        }
    }

    fn www(r: &ErrorResponse) -> Vec<&str> {
        r.headers
            .iter()
            .filter(|(n, _)| *n == "WWW-Authenticate")
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn bearer_challenges_follow_rfc_6750() {
        let r = render(&VerifyError::missing(), &settings(false));
        assert_eq!((r.status, www(&r)), (401, vec![r#"Bearer realm="api""#]));

        let r = render(
            &VerifyError::invalid_token("the token \"x\" expired"),
            &settings(false),
        );
        assert_eq!(
            www(&r),
            [
                r#"Bearer realm="api", error="invalid_token", error_description="the token \"x\" expired""#
            ]
        );

        let r = render(
            &VerifyError::insufficient_scope("read write".into()),
            &settings(false),
        );
        assert_eq!(r.status, 403);
        assert!(www(&r)[0].ends_with(r#"error="insufficient_scope", error_description="the access token lacks a required scope", scope="read write""#));

        let r = render(&VerifyError::unavailable("down"), &settings(true));
        assert_eq!((r.status, r.headers.len()), (503, 0));
        assert_eq!(VerifyError::invalid_request("two headers").status(), 400);
    }

    #[test]
    fn dpop_errors_go_in_the_dpop_challenge_with_algs_and_the_nonce_header() {
        let r = render(&VerifyError::invalid_dpop_proof("bad htu"), &settings(true));
        assert_eq!(
            www(&r),
            [
                r#"DPoP realm="api", algs="ES256 EdDSA", error="invalid_dpop_proof", error_description="bad htu""#,
                r#"Bearer realm="api""#,
            ]
        );
        let r = render(&VerifyError::use_dpop_nonce("n-1".into()), &settings(true));
        assert!(www(&r)[0]
            .starts_with(r#"DPoP realm="api", algs="ES256 EdDSA", error="use_dpop_nonce""#));
        assert!(r.headers.contains(&("DPoP-Nonce", "n-1".to_owned())));

        let mut only = settings(true);
        only.dpop_only = true;
        only.resource_metadata = Some("https://api/.well-known/oauth-protected-resource");
        let r = render(&VerifyError::invalid_token("expired"), &only);
        assert_eq!(www(&r).len(), 1);
        assert!(www(&r)[0].starts_with("DPoP ") && www(&r)[0].contains("error=\"invalid_token\""));
        assert!(www(&r)[0]
            .ends_with(r#"resource_metadata="https://api/.well-known/oauth-protected-resource""#));
    }
}
