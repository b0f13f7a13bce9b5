//! [`TokenRequest`]: a token request parsed from its raw form pairs
//! (RFC 6749 §3.2, §4.4.2). Empty values count as omitted (§3.1); every
//! parameter but `resource` (RFC 8707) may appear at most once; unknown
//! parameters are ignored.

use std::borrow::Cow;

use super::{scope::ScopeSet, OAuthError};

/// The form parameters of a request, decoded.
#[derive(Debug, Default)]
pub struct FormParams(Vec<(String, String)>);

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
        _ => "a request parameter is repeated",
    }
}

/// A parsed token request.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenRequest {
    /// `grant_type=client_credentials` (RFC 6749 §4.4.2).
    ClientCredentials {
        /// Requested scope; `None` means the client's registered scopes.
        scope: Option<ScopeSet>,
        /// Requested resources (RFC 8707), possibly several.
        resources: Vec<String>,
    },
}

impl TokenRequest {
    /// Parses the grant-specific parameters.
    pub fn parse(params: &FormParams) -> Result<Self, OAuthError> {
        for name in ["grant_type", "scope", "client_id", "client_secret"] {
            params.single(name)?;
        }
        match params.single("grant_type")? {
            None => Err(OAuthError::InvalidRequest("grant_type is required")),
            Some("client_credentials") => {
                let scope = params
                    .single("scope")?
                    .map(ScopeSet::parse)
                    .transpose()
                    .map_err(|_| OAuthError::InvalidScope("scope is malformed"))?
                    .filter(|s| !s.is_empty());
                let resources = params.all("resource").map(str::to_owned).collect();
                Ok(Self::ClientCredentials { scope, resources })
            }
            Some(_) => Err(OAuthError::UnsupportedGrantType),
        }
    }
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
