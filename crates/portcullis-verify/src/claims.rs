//! Access-token claims (RFC 9068 §2.2) as typed fields: the registered
//! claims, `scope`, `act` (RFC 8693 §4.1), `cnf` (RFC 8705 §3.1, RFC 9449 §6).
//! Other claims stay in the payload and are read on demand
//! ([`VerifiedToken::custom`](crate::VerifiedToken::custom)).

use std::fmt;

use serde::{
    de::{self, SeqAccess, Visitor},
    Deserialize, Deserializer, Serialize,
};

/// The claims of a verified access token ([RFC 9068 §2.2](https://www.rfc-editor.org/rfc/rfc9068#section-2.2)).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct AccessTokenClaims {
    /// Issuer identifier (checked against the configured issuer).
    pub iss: String,
    /// Subject: for client-credentials tokens, the client itself.
    pub sub: String,
    /// Audience(s) (checked to contain the configured audience).
    pub aud: Audience,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Not before, seconds since the epoch, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Unique token id.
    pub jti: String,
    /// The OAuth client the token was issued to.
    pub client_id: String,
    /// Granted scopes, space-separated (RFC 9068 §2.2.3.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The acting party of a token-exchange token ([RFC 8693 §4.1](https://www.rfc-editor.org/rfc/rfc8693#section-4.1)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// Confirmation: the key or certificate the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

impl AccessTokenClaims {
    /// The granted scopes, one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
    }

    /// Whether `scope` was granted.
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }
}

/// `act`: who acts on behalf of the subject; nested for delegation chains,
/// the outermost being the current actor ([RFC 8693 §4.1](https://www.rfc-editor.org/rfc/rfc8693#section-4.1)).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Actor {
    /// The actor's subject.
    pub sub: String,
    /// The actor's issuer, when it differs from the token's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The actor's OAuth client, when named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The prior actor in the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// The chain of actors, current first.
    pub fn chain(&self) -> impl Iterator<Item = &Actor> {
        std::iter::successors(Some(self), |a| a.act.as_deref())
    }
}

/// `cnf`: the proof-of-possession key the token is bound to.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Confirmation {
    /// SHA-256 thumbprint (base64url) of the client's certificate ([RFC 8705 §3.1](https://www.rfc-editor.org/rfc/rfc8705#section-3.1)).
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
    /// RFC 7638 thumbprint of the client's DPoP key ([RFC 9449 §6.1](https://www.rfc-editor.org/rfc/rfc9449#section-6.1)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
}

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `audience` is among them.
    #[must_use]
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(a) => a == audience,
            Self::Many(v) => v.iter().any(|a| a == audience),
        }
    }
}

// Hand-written because serde's untagged enums buffer their input: this is on
// every verification's path.
impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Audience;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Audience, E> {
                Ok(Audience::One(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Audience, E> {
                Ok(Audience::One(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(2).min(16));
                while let Some(a) = seq.next_element::<String>()? {
                    v.push(a);
                }
                Ok(Audience::Many(v))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(v: serde_json::Value) -> Result<AccessTokenClaims, serde_json::Error> {
        serde_json::from_value(v)
    }

    fn base() -> serde_json::Value {
        json!({"iss": "https://as", "sub": "svc", "aud": "https://api", "exp": 20, "iat": 10,
               "jti": "j1", "client_id": "svc", "scope": "read  write"})
    }

    #[test]
    fn typed_claims_read_scope_audience_actor_chain_and_confirmation() {
        let mut v = base();
        v["aud"] = json!(["https://a", "https://api"]);
        v["act"] = json!({"sub": "gateway", "act": {"sub": "edge", "client_id": "edge-c"}});
        v["cnf"] = json!({"x5t#S256": "abc", "jkt": "def"});
        v["tenant"] = json!("acme");
        let c = claims(v).unwrap();
        assert!(c.aud.contains("https://api") && !c.aud.contains("https://b"));
        assert_eq!(c.scopes().collect::<Vec<_>>(), ["read", "write"]);
        assert!(c.has_scope("write") && !c.has_scope("admin") && !c.has_scope(""));
        let chain: Vec<_> = c
            .act
            .as_ref()
            .unwrap()
            .chain()
            .map(|a| a.sub.as_str())
            .collect();
        assert_eq!(chain, ["gateway", "edge"]);
        let cnf = c.cnf.unwrap();
        assert_eq!(
            (cnf.x5t_s256.as_deref(), cnf.jkt.as_deref()),
            (Some("abc"), Some("def"))
        );
    }

    #[test]
    fn missing_or_mistyped_required_claims_are_errors() {
        for key in ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"] {
            let mut v = base();
            v.as_object_mut().unwrap().remove(key);
            assert!(claims(v).is_err(), "without {key}");
        }
        for (key, bad) in [
            ("aud", json!(5)),
            ("aud", json!([1])),
            ("exp", json!("20")),
            ("scope", json!(["a"])),
        ] {
            let mut v = base();
            v[key] = bad.clone();
            assert!(claims(v).is_err(), "{key} = {bad}");
        }
        assert!(claims(base()).unwrap().cnf.is_none());
    }
}
