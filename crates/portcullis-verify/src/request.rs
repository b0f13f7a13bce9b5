//! [`RequestParts`]: what the verifier reads from an HTTP request, without
//! any web framework's types; [`Requirements`] of a route; the
//! `Authorization` header's scheme and token (RFC 6750 §2.1, RFC 9449 §7.1).

use crate::VerifyError;

/// The parts of an HTTP request that authorize it.
///
/// ```
/// use portcullis_verify::RequestParts;
/// let parts = RequestParts::new("GET", "https://api.example.com/orders?page=2")
///     .authorization("DPoP eyJ...")
///     .dpop("eyJ...");
/// ```
#[derive(Clone, Default)]
pub struct RequestParts<'a> {
    pub(crate) method: &'a str,
    pub(crate) uri: &'a str,
    pub(crate) authorization: Option<&'a str>,
    pub(crate) dpop: Option<&'a str>,
    pub(crate) peer_certificate: Option<&'a [u8]>,
    pub(crate) forwarded_client_cert: Option<&'a str>,
    pub(crate) repeated: Option<&'static str>,
}

impl<'a> RequestParts<'a> {
    /// A request with `method` (`GET`, …) for `uri`: absolute as the client
    /// addressed it (`https://host/path?query`), or a path completed with
    /// [`VerifierConfig::public_origin`](crate::VerifierConfig::public_origin).
    #[must_use]
    pub fn new(method: &'a str, uri: &'a str) -> Self {
        Self {
            method,
            uri,
            ..Self::default()
        }
    }

    /// An `Authorization` header value; call once per header (a second one is refused).
    #[must_use]
    pub fn authorization(mut self, value: &'a str) -> Self {
        if self.authorization.replace(value).is_some() {
            self.repeated = Some("Authorization");
        }
        self
    }

    /// A `DPoP` header value; call once per header (a second one is refused, RFC 9449 §4.3).
    #[must_use]
    pub fn dpop(mut self, value: &'a str) -> Self {
        if self.dpop.replace(value).is_some() {
            self.repeated = Some("DPoP");
        }
        self
    }

    /// The client certificate (DER) of the TLS connection.
    #[must_use]
    pub fn peer_certificate(mut self, der: &'a [u8]) -> Self {
        self.peer_certificate = Some(der);
        self
    }

    /// Envoy's `x-forwarded-client-cert` header. Pass it only when the proxy
    /// in front is trusted to set it (and to strip it from clients).
    #[must_use]
    pub fn forwarded_client_cert(mut self, value: &'a str) -> Self {
        self.forwarded_client_cert = Some(value);
        self
    }
}

impl std::fmt::Debug for RequestParts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens and proofs are credentials: only their presence is shown.
        f.debug_struct("RequestParts")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("authorization", &self.authorization.map(|_| "[redacted]"))
            .field("dpop", &self.dpop.map(|_| "[redacted]"))
            .field("peer_certificate", &self.peer_certificate.is_some())
            .field(
                "forwarded_client_cert",
                &self.forwarded_client_cert.is_some(),
            )
            .finish()
    }
}

/// What a route requires beyond a valid token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requirements {
    /// Scopes the token must all carry (in addition to the configured ones).
    pub scopes: Vec<String>,
    /// Ask the issuer whether the token is still active (RFC 7662), for
    /// routes that must see revocation at once.
    pub introspect: bool,
}

impl Requirements {
    /// No further requirement.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Also requires `scope`.
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// Also requires the token to be active at the issuer right now.
    #[must_use]
    pub fn introspected(mut self) -> Self {
        self.introspect = true;
        self
    }
}

/// How the token was presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer` (RFC 6750).
    Bearer,
    /// `Authorization: DPoP` with a `DPoP` proof (RFC 9449).
    Dpop,
}

/// The scheme and token of an `Authorization` header. Other schemes count
/// as no token (RFC 6750 §3.1).
pub(crate) fn parse_authorization(value: Option<&str>) -> Result<(Scheme, &str), VerifyError> {
    let value = value.ok_or_else(VerifyError::missing)?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let scheme = if scheme.eq_ignore_ascii_case("Bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("DPoP") {
        Scheme::Dpop
    } else {
        return Err(VerifyError::missing());
    };
    let token = token.trim_matches(' ');
    // token68 (RFC 9110 §11.2).
    let body = token.trim_end_matches('=');
    let ok = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if !ok {
        return Err(VerifyError::invalid_request(
            "the Authorization header is malformed",
        ));
    }
    Ok((scheme, token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn authorization_schemes_are_case_insensitive_and_tokens_are_token68() {
        assert_eq!(
            parse_authorization(Some("Bearer a.b.c")).unwrap(),
            (Scheme::Bearer, "a.b.c")
        );
        assert_eq!(
            parse_authorization(Some("bearer  a.b.c")).unwrap(),
            (Scheme::Bearer, "a.b.c")
        );
        assert_eq!(
            parse_authorization(Some("DPoP a.b-_.c")).unwrap(),
            (Scheme::Dpop, "a.b-_.c")
        );
        assert_eq!(
            parse_authorization(Some("DPOP x=")).unwrap(),
            (Scheme::Dpop, "x=")
        );
        for (value, kind) in [
            (None, ErrorKind::MissingToken),
            (Some("Basic dXNlcjpwdw=="), ErrorKind::MissingToken),
            (Some("Bearer"), ErrorKind::InvalidRequest),
            (Some("Bearer "), ErrorKind::InvalidRequest),
            (Some("Bearer a b"), ErrorKind::InvalidRequest),
            (Some("Bearer a\"b"), ErrorKind::InvalidRequest),
            (Some("Bearer =abc"), ErrorKind::InvalidRequest),
        ] {
            assert_eq!(
                parse_authorization(value).unwrap_err().kind(),
                &kind,
                "{value:?}"
            );
        }
    }

    #[test]
    fn repeated_credentials_headers_are_noted_and_debug_hides_them() {
        let parts = RequestParts::new("GET", "/")
            .authorization("Bearer a")
            .authorization("Bearer b");
        assert_eq!(parts.repeated, Some("Authorization"));
        let parts = RequestParts::new("GET", "/").dpop("x").dpop("y");
        assert_eq!(parts.repeated, Some("DPoP"));
        let shown = format!(
            "{:?}",
            RequestParts::new("GET", "/").authorization("Bearer secret")
        );
        assert!(!shown.contains("secret"), "{shown}");
    }
}
