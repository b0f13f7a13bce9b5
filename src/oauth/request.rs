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
        "assertion" => "assertion must not be repeated",
        "subject_token" => "subject_token must not be repeated",
        "subject_token_type" => "subject_token_type must not be repeated",
        "actor_token" => "actor_token must not be repeated",
        "actor_token_type" => "actor_token_type must not be repeated",
        "requested_token_type" => "requested_token_type must not be repeated",
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
    /// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1).
    JwtBearer {
        /// The assertion: a federated token.
        assertion: String,
        /// Requested scope; `None` means what the mapping allows.
        scope: Option<ScopeSet>,
        /// Requested resources (RFC 8707).
        resources: Vec<String>,
    },
    /// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693 §2.1).
    TokenExchange(Box<ExchangeRequest>),
}

/// `grant_type` of the JWT-bearer authorization grant (RFC 7523 §2.1).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// `grant_type` of token exchange (RFC 8693 §2.1).
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3 token type of an access token.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 §3 token type of a JWT.
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The parameters of a token exchange (RFC 8693 §2.1). `Debug` redacts the tokens.
#[derive(PartialEq, Eq)]
pub struct ExchangeRequest {
    /// The token whose subject the new token is for.
    pub subject_token: String,
    /// The token of the party acting for the subject (delegation), if any.
    pub actor_token: Option<String>,
    /// Requested (narrower) scope; `None` means the subject token's.
    pub scope: Option<ScopeSet>,
    /// Target audiences: every `resource` and `audience` value.
    pub resources: Vec<String>,
}

impl fmt::Debug for ExchangeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeRequest")
            .field("subject_token", &REDACTED)
            .field("actor_token", &self.actor_token.as_ref().map(|_| REDACTED))
            .field("scope", &self.scope)
            .field("resources", &self.resources)
            .finish()
    }
}

impl ExchangeRequest {
    /// Parses the RFC 8693 §2.1 parameters: `subject_token` and its type
    /// required; `actor_token` and its type together; token types and the
    /// `requested_token_type` an access token or a JWT.
    fn parse(params: &FormParams) -> Result<Self, OAuthError> {
        let supported = |t: &str| t == ACCESS_TOKEN_TYPE || t == JWT_TOKEN_TYPE;
        let subject_token = params
            .single("subject_token")?
            .ok_or(OAuthError::InvalidRequest("subject_token is required"))?;
        match params.single("subject_token_type")? {
            None => return Err(OAuthError::InvalidRequest("subject_token_type is required")),
            Some(t) if !supported(t) => {
                return Err(OAuthError::InvalidRequest(
                    "subject_token_type must be urn:ietf:params:oauth:token-type:access_token or urn:ietf:params:oauth:token-type:jwt",
                ))
            }
            Some(_) => {}
        }
        let actor_token = params.single("actor_token")?;
        match (actor_token, params.single("actor_token_type")?) {
            (Some(_), None) => {
                return Err(OAuthError::InvalidRequest(
                    "actor_token_type is required with actor_token",
                ))
            }
            (None, Some(_)) => {
                return Err(OAuthError::InvalidRequest(
                    "actor_token_type is given without actor_token",
                ))
            }
            (Some(_), Some(t)) if !supported(t) => {
                return Err(OAuthError::InvalidRequest(
                    "actor_token_type must be urn:ietf:params:oauth:token-type:access_token or urn:ietf:params:oauth:token-type:jwt",
                ))
            }
            _ => {}
        }
        if params
            .single("requested_token_type")?
            .is_some_and(|t| !supported(t))
        {
            return Err(OAuthError::InvalidRequest(
                "requested_token_type must be urn:ietf:params:oauth:token-type:access_token (a JWT access token)",
            ));
        }
        Ok(Self {
            subject_token: subject_token.to_owned(),
            actor_token: actor_token.map(str::to_owned),
            scope: parse_scope(params)?,
            resources: params
                .all("resource")
                .chain(params.all("audience"))
                .map(str::to_owned)
                .collect(),
        })
    }
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
            Self::JwtBearer {
                assertion: _,
                scope,
                resources,
            } => f
                .debug_struct("JwtBearer")
                .field("assertion", &REDACTED)
                .field("scope", scope)
                .field("resources", resources)
                .finish(),
            Self::TokenExchange(exchange) => exchange.fmt(f),
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
            Self::JwtBearer { .. } => JWT_BEARER_GRANT,
            Self::TokenExchange(_) => TOKEN_EXCHANGE_GRANT,
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
            Some(JWT_BEARER_GRANT) => {
                let assertion = params
                    .single("assertion")?
                    .ok_or(OAuthError::InvalidRequest("assertion is required"))?
                    .to_owned();
                Ok(Self::JwtBearer {
                    assertion,
                    scope: parse_scope(params)?,
                    resources: params.all("resource").map(str::to_owned).collect(),
                })
            }
            Some(TOKEN_EXCHANGE_GRANT) => Ok(Self::TokenExchange(Box::new(
                ExchangeRequest::parse(params)?,
            ))),
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
    fn jwt_bearer_and_token_exchange_requests_parse_and_their_bad_forms_are_named() {
        let r = parse(&format!(
            "grant_type={JWT_BEARER_GRANT}&assertion=a.b.c&scope=read"
        ))
        .unwrap();
        assert_eq!(r.grant_name(), JWT_BEARER_GRANT);
        let r = parse(&format!(
            "grant_type={TOKEN_EXCHANGE_GRANT}&subject_token=s&subject_token_type={ACCESS_TOKEN_TYPE}\
             &actor_token=a&actor_token_type={JWT_TOKEN_TYPE}&audience=https://x&resource=https://y"
        ))
        .unwrap();
        let TokenRequest::TokenExchange(x) = &r else {
            panic!("not an exchange")
        };
        assert_eq!(x.resources, ["https://y", "https://x"]);
        assert!(!format!("{r:?}").contains("subject_token: \"s\""), "{r:?}");
        let st = format!("subject_token=s&subject_token_type={ACCESS_TOKEN_TYPE}");
        let cases = [
            format!("grant_type={JWT_BEARER_GRANT}"),
            format!("grant_type={JWT_BEARER_GRANT}&assertion=a&assertion=b"),
            format!("grant_type={TOKEN_EXCHANGE_GRANT}&subject_token_type={ACCESS_TOKEN_TYPE}"),
            format!("grant_type={TOKEN_EXCHANGE_GRANT}&subject_token=s"),
            format!("grant_type={TOKEN_EXCHANGE_GRANT}&subject_token=s&subject_token_type=urn:x"),
            format!("grant_type={TOKEN_EXCHANGE_GRANT}&{st}&actor_token=a"),
            format!("grant_type={TOKEN_EXCHANGE_GRANT}&{st}&actor_token_type={JWT_TOKEN_TYPE}"),
            format!("grant_type={TOKEN_EXCHANGE_GRANT}&{st}&actor_token=a&actor_token_type=urn:saml"),
            format!("grant_type={TOKEN_EXCHANGE_GRANT}&{st}&requested_token_type=urn:ietf:params:oauth:token-type:refresh_token"),
            format!("grant_type={TOKEN_EXCHANGE_GRANT}&{st}&subject_token=t"),
        ];
        for body in cases {
            assert_eq!(
                parse(&body).unwrap_err().code(),
                "invalid_request",
                "{body}"
            );
        }
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
