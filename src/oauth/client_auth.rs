//! Client authentication at the token endpoint (RFC 6749 §2.3.1): HTTP Basic
//! (`client_secret_basic`) or form fields (`client_secret_post`), never both.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use secrecy::SecretString;

use super::{request::FormParams, OAuthError};
use crate::clients::AuthMethod;

/// Credentials a client presented.
pub struct ClientCredentials {
    /// The claimed client id.
    pub client_id: String,
    /// The presented secret.
    pub secret: SecretString,
    /// How they were presented.
    pub method: AuthMethod,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// Whether the client tried HTTP Basic (for `WWW-Authenticate`).
    #[must_use]
    pub fn basic_attempted(&self) -> bool {
        self.method == AuthMethod::ClientSecretBasic
    }

    /// Extracts the credentials from the `Authorization` header value (if any)
    /// and the form parameters.
    pub fn extract(authorization: Option<&[u8]>, params: &FormParams) -> Result<Self, OAuthError> {
        let form_id = params.single("client_id")?;
        let form_secret = params.single("client_secret")?;
        if let Some(header) = authorization {
            let (id, secret) = parse_basic(header)?;
            if form_secret.is_some() {
                return Err(OAuthError::InvalidRequest(
                    "the client authenticated with both HTTP Basic and client_secret; use exactly one method",
                ));
            }
            if form_id.is_some_and(|f| f != id) {
                return Err(OAuthError::InvalidRequest(
                    "client_id in the body does not match HTTP Basic",
                ));
            }
            return Ok(Self {
                client_id: id,
                secret,
                method: AuthMethod::ClientSecretBasic,
            });
        }
        match (form_id, form_secret) {
            (Some(id), Some(secret)) => Ok(Self {
                client_id: id.to_owned(),
                secret: SecretString::from(secret.to_owned()),
                method: AuthMethod::ClientSecretPost,
            }),
            _ => Err(OAuthError::InvalidClient {
                basic_attempted: true,
                description:
                    "client authentication is required (HTTP Basic or client_id and client_secret)",
            }),
        }
    }
}

/// Decodes `Basic base64(urlencode(id) ":" urlencode(secret))`.
fn parse_basic(header: &[u8]) -> Result<(String, SecretString), OAuthError> {
    let header = std::str::from_utf8(header)
        .map_err(|_| OAuthError::InvalidRequest("malformed Authorization header"))?;
    let Some((scheme, encoded)) = header.trim().split_once(' ') else {
        return Err(OAuthError::InvalidRequest("malformed Authorization header"));
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::InvalidRequest(
            "only the Basic authorization scheme is accepted here",
        ));
    }
    let decoded =
        zeroize::Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|_| {
            OAuthError::InvalidRequest("HTTP Basic credentials are not valid base64")
        })?);
    let text = std::str::from_utf8(&decoded)
        .map_err(|_| OAuthError::InvalidRequest("HTTP Basic credentials are not valid UTF-8"))?;
    let (id, secret) = text.split_once(':').ok_or(OAuthError::InvalidRequest(
        "HTTP Basic credentials must be client_id:client_secret",
    ))?;
    let id = form_decode(id)?;
    if id.is_empty() {
        return Err(OAuthError::InvalidRequest(
            "HTTP Basic credentials have an empty client_id",
        ));
    }
    Ok((id, SecretString::from(form_decode(secret)?)))
}

/// Reverses the `application/x-www-form-urlencoded` encoding RFC 6749 §2.3.1
/// applies to the id and secret before Basic encoding.
fn form_decode(s: &str) -> Result<String, OAuthError> {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| OAuthError::InvalidRequest("HTTP Basic credentials are not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn basic(raw: &str) -> Vec<u8> {
        format!("Basic {}", STANDARD.encode(raw)).into_bytes()
    }

    fn extract(header: Option<&[u8]>, body: &str) -> Result<ClientCredentials, OAuthError> {
        ClientCredentials::extract(header, &FormParams::parse(body.as_bytes()).unwrap())
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let c = extract(Some(&basic("my%20client:p%3Ass+word")), "").unwrap();
        assert_eq!(c.client_id, "my client");
        assert_eq!(c.secret.expose_secret(), "p:ss word");
        assert_eq!(c.method, AuthMethod::ClientSecretBasic);
    }

    #[test]
    fn post_credentials_come_from_the_body() {
        let c = extract(None, "client_id=a&client_secret=b").unwrap();
        assert_eq!(
            (c.client_id.as_str(), c.method),
            ("a", AuthMethod::ClientSecretPost)
        );
    }

    #[test]
    fn malformed_or_ambiguous_credentials_are_refused() {
        let cases: [(Option<Vec<u8>>, &str, &str); 8] = [
            (Some(b"Basic %%%".to_vec()), "", "invalid_request"),
            (Some(basic("no-colon")), "", "invalid_request"),
            (Some(basic(":secret")), "", "invalid_request"),
            (Some(b"Bearer abc".to_vec()), "", "invalid_request"),
            (Some(b"Basic".to_vec()), "", "invalid_request"),
            (
                Some(basic("a:b")),
                "client_id=a&client_secret=b",
                "invalid_request",
            ),
            (Some(basic("a:b")), "client_id=other", "invalid_request"),
            (None, "client_id=a", "invalid_client"),
        ];
        for (header, body, code) in cases {
            let err = extract(header.as_deref(), body).unwrap_err();
            assert_eq!(err.code(), code, "{header:?} {body}");
        }
        assert!(
            extract(Some(&basic("a:b")), "client_id=a").is_ok(),
            "matching client_id is allowed"
        );
    }
}
