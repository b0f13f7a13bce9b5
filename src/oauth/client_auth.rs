//! What a client presents at the token, introspection and revocation
//! endpoints to authenticate: HTTP Basic (`client_secret_basic`), form fields
//! (`client_secret_post`), a JWT assertion (`private_key_jwt`), or only its
//! `client_id` with a TLS client certificate (`tls_client_auth`,
//! `self_signed_tls_client_auth`). Exactly one method per request
//! (RFC 6749 §2.3, §2.3.1; RFC 7521 §4.2 and RFC 7523 §2.2 for assertions;
//! RFC 8705 §2 for certificates).

use base64::{engine::general_purpose::STANDARD, Engine as _};
use secrecy::SecretString;

use super::{
    assertion::{claimed_client, JWT_BEARER},
    request::FormParams,
    OAuthError,
};
use crate::clients::AuthMethod;

/// What a client presented to prove who it is.
pub enum Credential {
    /// A shared secret, by HTTP Basic or in the form body.
    Secret {
        /// The presented secret.
        secret: SecretString,
        /// Whether it came by HTTP Basic.
        basic: bool,
    },
    /// A signed JWT (`private_key_jwt`, RFC 7523 §2.2).
    Assertion(String),
    /// Only `client_id`: the TLS client certificate is the proof (RFC 8705 §2).
    Certificate,
}

/// Credentials a client presented.
pub struct ClientCredentials {
    /// The claimed client id.
    pub client_id: String,
    /// The proof.
    pub credential: Credential,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("method", &self.presented_method())
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// Whether the client tried HTTP Basic (for `WWW-Authenticate`).
    #[must_use]
    pub fn basic_attempted(&self) -> bool {
        matches!(self.credential, Credential::Secret { basic: true, .. })
    }

    /// The method the presentation implies (certificates: either mTLS method).
    #[must_use]
    pub fn presented_method(&self) -> &'static str {
        match &self.credential {
            Credential::Secret { basic: true, .. } => AuthMethod::ClientSecretBasic.as_str(),
            Credential::Secret { basic: false, .. } => AuthMethod::ClientSecretPost.as_str(),
            Credential::Assertion(_) => AuthMethod::PrivateKeyJwt.as_str(),
            Credential::Certificate => "tls_client_auth",
        }
    }

    /// Whether a client registered for `method` may authenticate this way.
    #[must_use]
    pub fn fits(&self, method: AuthMethod) -> bool {
        match &self.credential {
            Credential::Secret { basic: true, .. } => method == AuthMethod::ClientSecretBasic,
            Credential::Secret { basic: false, .. } => method == AuthMethod::ClientSecretPost,
            Credential::Assertion(_) => method == AuthMethod::PrivateKeyJwt,
            Credential::Certificate => method.uses_certificate(),
        }
    }

    /// Extracts the credentials from the `Authorization` header value (if any)
    /// and the form parameters. Exactly one method may be used (RFC 6749 §2.3).
    pub fn extract(authorization: Option<&[u8]>, params: &FormParams) -> Result<Self, OAuthError> {
        let form_id = params.single("client_id")?;
        let form_secret = params.single("client_secret")?;
        let assertion_type = params.single("client_assertion_type")?;
        let assertion = params.single("client_assertion")?;
        let methods = usize::from(authorization.is_some())
            + usize::from(form_secret.is_some())
            + usize::from(assertion_type.is_some() || assertion.is_some());
        if methods > 1 {
            return Err(OAuthError::InvalidRequest(
                "the client used more than one authentication method; use exactly one",
            ));
        }
        if let Some(header) = authorization {
            let (id, secret) = parse_basic(header)?;
            if form_id.is_some_and(|f| f != id) {
                return Err(OAuthError::InvalidRequest(
                    "client_id in the body does not match HTTP Basic",
                ));
            }
            return Ok(Self {
                client_id: id,
                credential: Credential::Secret {
                    secret,
                    basic: true,
                },
            });
        }
        if assertion_type.is_some() || assertion.is_some() {
            return Self::assertion(form_id, assertion_type, assertion);
        }
        match (form_id, form_secret) {
            (Some(id), Some(secret)) => Ok(Self {
                client_id: id.to_owned(),
                credential: Credential::Secret {
                    secret: SecretString::from(secret.to_owned()),
                    basic: false,
                },
            }),
            (Some(id), None) if !id.is_empty() => Ok(Self {
                client_id: id.to_owned(),
                credential: Credential::Certificate,
            }),
            _ => Err(OAuthError::InvalidClient {
                basic_attempted: true,
                description:
                    "client authentication is required (HTTP Basic, client_secret, client_assertion or a TLS client certificate with client_id)",
            }),
        }
    }

    fn assertion(
        form_id: Option<&str>,
        assertion_type: Option<&str>,
        assertion: Option<&str>,
    ) -> Result<Self, OAuthError> {
        if assertion_type != Some(JWT_BEARER) {
            return Err(OAuthError::InvalidRequest(
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ));
        }
        let Some(jwt) = assertion.filter(|a| !a.is_empty()) else {
            return Err(OAuthError::InvalidRequest(
                "client_assertion is required with client_assertion_type",
            ));
        };
        let client_id = match form_id {
            Some(id) => id.to_owned(),
            None => claimed_client(jwt).ok_or(OAuthError::InvalidClient {
                basic_attempted: false,
                description: "client_assertion is not a well-formed JWT naming the client in sub",
            })?,
        };
        Ok(Self {
            client_id,
            credential: Credential::Assertion(jwt.to_owned()),
        })
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
    if !s.bytes().any(|b| b == b'+' || b == b'%') {
        return Ok(s.to_owned());
    }
    // The copy may hold the secret: wiped when dropped, like the decoded header.
    let spaced = zeroize::Zeroizing::new(s.replace('+', " "));
    percent_encoding::percent_decode_str(&spaced)
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
        let Credential::Secret { secret, basic } = &c.credential else {
            panic!("not a secret")
        };
        assert_eq!(secret.expose_secret(), "p:ss word");
        assert!(basic);
        assert!(c.fits(AuthMethod::ClientSecretBasic));
    }

    #[test]
    fn basic_credentials_decode_only_what_is_encoded() {
        for (raw, id, secret) in [
            ("plain-id:plain.secret_~", "plain-id", "plain.secret_~"),
            ("a+b:c%2Bd+e", "a b", "c+d e"),
            ("%C3%A9:%25", "\u{e9}", "%"),
        ] {
            let c = extract(Some(&basic(raw)), "").unwrap();
            assert_eq!(c.client_id, id, "{raw}");
            let Credential::Secret { secret: s, .. } = &c.credential else {
                panic!("not a secret")
            };
            assert_eq!(s.expose_secret(), secret, "{raw}");
        }
        for raw in ["id:%FF", "%C3:x"] {
            assert!(
                matches!(
                    extract(Some(&basic(raw)), ""),
                    Err(OAuthError::InvalidRequest(m)) if m.contains("UTF-8")
                ),
                "{raw}"
            );
        }
    }

    #[test]
    fn post_credentials_come_from_the_body() {
        let c = extract(None, "client_id=a&client_secret=b").unwrap();
        assert_eq!(c.client_id, "a");
        assert!(c.fits(AuthMethod::ClientSecretPost) && !c.fits(AuthMethod::ClientSecretBasic));
    }

    #[test]
    fn an_assertion_names_its_client_or_comes_with_client_id() {
        let jwt = format!(
            "{}.{}.sig",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256"}"#),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"sub":"svc","iss":"svc"}"#)
        );
        let body = format!("client_assertion_type={JWT_BEARER}&client_assertion={jwt}");
        let c = extract(None, &body).unwrap();
        assert_eq!(c.client_id, "svc");
        assert!(c.fits(AuthMethod::PrivateKeyJwt));
        let c = extract(None, &format!("{body}&client_id=other")).unwrap();
        assert_eq!(
            c.client_id, "other",
            "the claims check refuses the mismatch later"
        );
    }

    #[test]
    fn client_id_alone_means_a_certificate() {
        let c = extract(None, "client_id=svc").unwrap();
        assert!(matches!(c.credential, Credential::Certificate));
        assert!(c.fits(AuthMethod::TlsClientAuth) && c.fits(AuthMethod::SelfSignedTlsClientAuth));
        assert!(!c.fits(AuthMethod::ClientSecretPost));
    }

    #[test]
    fn malformed_or_ambiguous_credentials_are_refused() {
        let cases: [(Option<Vec<u8>>, &str, &str); 12] = [
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
            (None, "", "invalid_client"),
            (None, "client_id=", "invalid_client"),
            (
                None,
                "client_assertion_type=urn:other&client_assertion=a.b.c",
                "invalid_request",
            ),
            (
                None,
                "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "invalid_request",
            ),
            (
                Some(basic("a:b")),
                "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=x",
                "invalid_request",
            ),
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
