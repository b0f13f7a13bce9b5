//! RFC 9068 §2.2 access-token claims.

use serde::{Deserialize, Serialize};

/// `aud`: one string when there is one audience, an array otherwise
/// (RFC 7519 §4.1.3), so single-audience verifiers see the common form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl From<Vec<String>> for Audience {
    fn from(mut v: Vec<String>) -> Self {
        if v.len() == 1 {
            Self::One(v.remove(0))
        } else {
            Self::Many(v)
        }
    }
}

/// The claims of a Portcullis access token ([RFC 9068 §2.2](https://www.rfc-editor.org/rfc/rfc9068#section-2.2)).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessTokenClaims {
    /// Issuer identifier.
    pub iss: String,
    /// Subject: the client itself in the client-credentials grant.
    pub sub: String,
    /// Audience(s): the resources the token is meant for (RFC 8707).
    pub aud: Audience,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before (equal to `iat`).
    pub nbf: i64,
    /// Unique token id.
    pub jti: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scopes, space-separated; omitted when none were granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Claims a token policy added (names from `policy_claims` only).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_audience_serializes_as_a_string_and_several_as_an_array() {
        let one = serde_json::to_value(Audience::from(vec!["https://a".to_owned()])).unwrap();
        assert_eq!(one, serde_json::json!("https://a"));
        let many = serde_json::to_value(Audience::from(vec![
            "https://a".to_owned(),
            "https://b".to_owned(),
        ]))
        .unwrap();
        assert_eq!(many, serde_json::json!(["https://a", "https://b"]));
    }
}
