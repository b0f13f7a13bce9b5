//! [`TokenRequest`]: a token request parsed from its raw form pairs
//! (RFC 6749 §3.2, §4.4.2). Empty values count as omitted (§3.1); every
//! parameter but `resource` (RFC 8707) may appear at most once; unknown
//! parameters are ignored.

use std::{borrow::Cow, fmt};

use super::{scope::ScopeSet, OAuthError};

/// The form parameters of a request, decoded. `Debug` shows the parameter
/// names only: values may be secrets (`client_secret`, `client_assertion`,
/// `refresh_token`, `token`).
#[derive(Default)]
pub struct FormParams(Vec<(String, String)>);

impl fmt::Debug for FormParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FormParams")
            .field(&self.0.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

impl FormParams {
    /// Decodes an `application/x-www-form-urlencoded` body.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        if std::str::from_utf8(body).is_err() {
            return Err(OAuthError::InvalidRequest("the request body is not UTF-8"));
        }
        let pairs = url::form_urlencoded::parse(body)
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v): (Cow<'_, str>, Cow<'_, str>)| (k.into_owned(), v.into_owned()))
            .collect();
        Ok(Self(pairs))
    }

    /// The single value of `name`; `invalid_request` if it repeats.
    pub fn single(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        let mut values = self
            .0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(OAuthError::InvalidRequest(repeated(name)));
        }
        Ok(first)
    }

    /// Every value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn repeated(name: &str) -> &'static str {
    match name {
        "grant_type" => "grant_type must not be repeated",
        "scope" => "scope must not be repeated",
        "client_id" => "client_id must not be repeated",
        "client_secret" => "client_secret must not be repeated",
        "refresh_token" => "refresh_token must not be repeated",
        "token" => "token must not be repeated",
        "token_type_hint" => "token_type_hint must not be repeated",
        _ => "a request parameter is repeated",
    }
}

/// A parsed token request. `Debug` redacts the refresh token.
#[derive(PartialEq, Eq)]
pub enum TokenRequest {
    /// `grant_type=client_credentials` (RFC 6749 §4.4.2).
    ClientCredentials {
        /// Requested scope; `None` means the client's registered scopes.
        scope: Option<ScopeSet>,
        /// Requested resources (RFC 8707), possibly several.
        resources: Vec<String>,
    },
    /// `grant_type=refresh_token` (RFC 6749 §6).
    RefreshToken {
        /// The presented refresh token.
        refresh_token: String,
        /// Requested (narrower) scope; `None` means the grant's scope.
        scope: Option<ScopeSet>,
        /// Requested resources, within the grant's audiences.
        resources: Vec<String>,
    },
}

/// A token named by an introspection (RFC 7662 §2.1) or revocation
/// (RFC 7009 §2.1) request. `Debug` redacts the token.
#[derive(PartialEq, Eq)]
pub struct TokenReference {
    /// The token.
    pub token: String,
    /// `token_type_hint`, when it names a type we know; other values are ignored.
    pub hint: Option<TokenHint>,
}

/// Token types a hint can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenHint {
    /// `access_token`.
    AccessToken,
    /// `refresh_token`.
    RefreshToken,
}

/// What `Debug` shows in place of a token or secret.
const REDACTED: &str = "[redacted]";

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientCredentials { scope, resources } => f
                .debug_struct("ClientCredentials")
                .field("scope", scope)
                .field("resources", resources)
                .finish(),
            Self::RefreshToken {
                refresh_token: _,
                scope,
                resources,
            } => f
                .debug_struct("RefreshToken")
                .field("refresh_token", &REDACTED)
                .field("scope", scope)
                .field("resources", resources)
                .finish(),
        }
    }
}

impl fmt::Debug for TokenReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenReference")
            .field("token", &REDACTED)
            .field("hint", &self.hint)
            .finish()
    }
}

impl TokenReference {
    /// Parses `token` (required, once) and `token_type_hint` (optional, once).
    pub fn parse(params: &FormParams) -> Result<Self, OAuthError> {
        for name in ["client_id", "client_secret"] {
            params.single(name)?;
        }
        let hint = match params.single("token_type_hint")? {
            Some("access_token") => Some(TokenHint::AccessToken),
            Some("refresh_token") => Some(TokenHint::RefreshToken),
            _ => None,
        };
        let token = params
            .single("token")?
            .ok_or(OAuthError::InvalidRequest("token is required"))?;
        Ok(Self {
            token: token.to_owned(),
            hint,
        })
    }
}

impl TokenRequest {
    /// The grant's wire name.
    #[must_use]
    pub fn grant_name(&self) -> &'static str {
        match self {
            Self::ClientCredentials { .. } => "client_credentials",
            Self::RefreshToken { .. } => "refresh_token",
        }
    }

    /// Parses the grant-specific parameters.
    pub fn parse(params: &FormParams) -> Result<Self, OAuthError> {
        for name in [
            "grant_type",
            "scope",
            "client_id",
            "client_secret",
            "refresh_token",
        ] {
            params.single(name)?;
        }
        match params.single("grant_type")? {
            None => Err(OAuthError::InvalidRequest("grant_type is required")),
            Some("client_credentials") => {
                let scope = parse_scope(params)?;
                let resources = params.all("resource").map(str::to_owned).collect();
                Ok(Self::ClientCredentials { scope, resources })
            }
            Some("refresh_token") => {
                let refresh_token = params
                    .single("refresh_token")?
                    .ok_or(OAuthError::InvalidRequest("refresh_token is required"))?
                    .to_owned();
                Ok(Self::RefreshToken {
                    refresh_token,
                    scope: parse_scope(params)?,
                    resources: params.all("resource").map(str::to_owned).collect(),
                })
            }
            Some(_) => Err(OAuthError::UnsupportedGrantType),
        }
    }
}

fn parse_scope(params: &FormParams) -> Result<Option<ScopeSet>, OAuthError> {
    Ok(params
        .single("scope")?
        .map(ScopeSet::parse)
        .transpose()
        .map_err(|_| OAuthError::InvalidScope("scope is malformed"))?
        .filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<TokenRequest, OAuthError> {
        TokenRequest::parse(&FormParams::parse(body.as_bytes())?)
    }

    #[test]
    fn client_credentials_with_scope_and_several_resources() {
        let r = parse(
            "grant_type=client_credentials&scope=b+a&resource=https%3A%2F%2Fx&resource=https://y",
        )
        .unwrap();
        assert_eq!(
            r,
            TokenRequest::ClientCredentials {
                scope: Some(ScopeSet::parse("a b").unwrap()),
                resources: vec!["https://x".into(), "https://y".into()],
            }
        );
    }

    #[test]
    fn empty_values_count_as_omitted_and_unknown_parameters_are_ignored() {
        let r = parse("grant_type=client_credentials&scope=&foo=bar").unwrap();
        assert_eq!(
            r,
            TokenRequest::ClientCredentials {
                scope: None,
                resources: vec![]
            }
        );
    }

    #[test]
    fn refresh_requests_need_the_token_once() {
        let r = parse("grant_type=refresh_token&refresh_token=abc&scope=a").unwrap();
        assert_eq!(
            r,
            TokenRequest::RefreshToken {
                refresh_token: "abc".into(),
                scope: Some(ScopeSet::parse("a").unwrap()),
                resources: vec![]
            }
        );
        assert_eq!(
            parse("grant_type=refresh_token").unwrap_err().code(),
            "invalid_request"
        );
        let twice = parse("grant_type=refresh_token&refresh_token=a&refresh_token=b");
        assert_eq!(twice.unwrap_err().code(), "invalid_request");
    }

    #[test]
    fn token_references_take_a_known_hint_or_none() {
        let p = |b: &str| TokenReference::parse(&FormParams::parse(b.as_bytes()).unwrap());
        assert_eq!(
            p("token=t&token_type_hint=refresh_token").unwrap().hint,
            Some(TokenHint::RefreshToken)
        );
        assert_eq!(p("token=t&token_type_hint=weird").unwrap().hint, None);
        assert_eq!(
            p("token_type_hint=access_token").unwrap_err().code(),
            "invalid_request"
        );
        assert_eq!(p("token=a&token=b").unwrap_err().code(), "invalid_request");
    }

    #[test]
    fn debug_shows_no_secret_value() {
        let secret = "s3cr3t-value-never-logged";
        let body = format!(
            "grant_type=refresh_token&refresh_token={secret}&client_id=c&client_secret={secret}&client_assertion={secret}"
        );
        let params = FormParams::parse(body.as_bytes()).unwrap();
        let shown = format!("{params:?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains("client_secret") && shown.contains("refresh_token"));
        let request = TokenRequest::parse(&params).unwrap();
        let shown = format!("{request:?}");
        assert!(
            !shown.contains(secret) && shown.contains("[redacted]"),
            "{shown}"
        );
        let reference = TokenReference::parse(
            &FormParams::parse(format!("token={secret}").as_bytes()).unwrap(),
        )
        .unwrap();
        let shown = format!("{reference:?}");
        assert!(
            !shown.contains(secret) && shown.contains("[redacted]"),
            "{shown}"
        );
    }

    #[test]
    fn bad_requests_get_the_right_code() {
        let cases = [
            ("", "invalid_request"),
            ("scope=a", "invalid_request"),
            (
                "grant_type=client_credentials&grant_type=client_credentials",
                "invalid_request",
            ),
            (
                "grant_type=client_credentials&scope=a&scope=b",
                "invalid_request",
            ),
            (
                "grant_type=client_credentials&client_id=a&client_id=b",
                "invalid_request",
            ),
            ("grant_type=password", "unsupported_grant_type"),
            ("grant_type=client_credentials&scope=a%22b", "invalid_scope"),
        ];
        for (body, code) in cases {
            assert_eq!(parse(body).unwrap_err().code(), code, "{body}");
        }
        assert_eq!(
            FormParams::parse(b"grant_type=\xff").unwrap_err().code(),
            "invalid_request"
        );
    }
}
