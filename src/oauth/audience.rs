//! Audience selection with resource indicators ([RFC 8707 §2](https://www.rfc-editor.org/rfc/rfc8707#section-2)).

use super::OAuthError;
use crate::clients::{metadata::is_absolute_uri, Client};

/// The audiences of a token: the requested `resource` values, each of which
/// must be an absolute URI in the client's allow-list; without any, the
/// client's default audience.
pub fn resolve(client: &Client, resources: &[String]) -> Result<Vec<String>, OAuthError> {
    if resources.is_empty() {
        return client
            .default_audience
            .clone()
            .map(|a| vec![a])
            .ok_or(OAuthError::InvalidTarget(
                "no resource was requested and the client has no default audience",
            ));
    }
    let mut audiences: Vec<String> = Vec::with_capacity(resources.len());
    for r in resources {
        if !is_absolute_uri(r) {
            return Err(OAuthError::InvalidTarget(
                "resource must be an absolute URI without a fragment",
            ));
        }
        if !client.allowed_audiences.iter().any(|a| a == r) {
            return Err(OAuthError::InvalidTarget(
                "a requested resource is not allowed for this client",
            ));
        }
        if !audiences.contains(r) {
            audiences.push(r.clone());
        }
    }
    Ok(audiences)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::ClientId;

    fn client(allowed: &[&str], default: Option<&str>) -> Client {
        let t = chrono::DateTime::from_timestamp(0, 0).unwrap();
        Client {
            allowed_audiences: allowed.iter().map(|s| (*s).to_owned()).collect(),
            default_audience: default.map(str::to_owned),
            ..Client::new(ClientId::parse("c").unwrap(), t)
        }
    }

    #[test]
    fn requested_resources_must_be_allowed_absolute_uris() {
        let c = client(&["https://a", "https://b"], Some("https://a"));
        assert_eq!(resolve(&c, &[]).unwrap(), vec!["https://a"]);
        assert_eq!(
            resolve(&c, &["https://b".into(), "https://b".into()]).unwrap(),
            vec!["https://b"]
        );
        for bad in ["https://c", "relative/path", "https://a#frag"] {
            assert_eq!(
                resolve(&c, &[bad.to_owned()]).unwrap_err().code(),
                "invalid_target",
                "{bad}"
            );
        }
    }

    #[test]
    fn without_resource_or_default_there_is_no_audience() {
        assert_eq!(
            resolve(&client(&[], None), &[]).unwrap_err().code(),
            "invalid_target"
        );
    }
}
