//! RFC 9728 protected-resource metadata: the document a resource server
//! serves at `/.well-known/oauth-protected-resource` so clients learn which
//! authorization server, scopes and token kinds it accepts.

use serde::Serialize;

use crate::Verifier;

/// An RFC 9728 §2 protected-resource metadata document.
///
/// ```
/// use portcullis_verify::ProtectedResourceMetadata;
/// let doc = ProtectedResourceMetadata::new("https://api.example.com")
///     .authorization_server("https://auth.example.com")
///     .scopes(["orders:read", "orders:write"]);
/// let json = serde_json::to_value(&doc).unwrap();
/// assert_eq!(json["authorization_servers"][0], "https://auth.example.com");
/// assert_eq!(json["bearer_methods_supported"][0], "header");
/// ```
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProtectedResourceMetadata {
    /// The resource identifier (what tokens carry in `aud`).
    pub resource: String,
    /// Issuers whose tokens the resource accepts.
    pub authorization_servers: Vec<String>,
    /// Scopes the resource uses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// How tokens may be sent: only `header` here.
    pub bearer_methods_supported: Vec<String>,
    /// DPoP proof algorithms accepted (RFC 9449 §5.1), when DPoP is.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// Whether every token must be DPoP-bound.
    pub dpop_bound_access_tokens_required: bool,
    /// Whether certificate-bound tokens (RFC 8705) are accepted.
    pub tls_client_certificate_bound_access_tokens: bool,
    /// Human-readable name of the resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
}

impl ProtectedResourceMetadata {
    /// A document for `resource` with nothing else declared.
    #[must_use]
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            bearer_methods_supported: vec!["header".to_owned()],
            dpop_signing_alg_values_supported: Vec::new(),
            dpop_bound_access_tokens_required: false,
            tls_client_certificate_bound_access_tokens: false,
            resource_name: None,
        }
    }

    /// The document that describes what `verifier` accepts: its audience,
    /// issuer, DPoP settings; certificate-bound tokens are declared accepted.
    #[must_use]
    pub fn for_verifier(verifier: &Verifier) -> Self {
        let cfg = verifier.config();
        let mut doc = Self::new(cfg.audience.clone()).authorization_server(cfg.issuer.clone());
        if let Some(dpop) = &cfg.dpop {
            doc.dpop_signing_alg_values_supported = dpop
                .algorithms
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect();
            doc.dpop_bound_access_tokens_required = dpop.required;
        }
        doc.tls_client_certificate_bound_access_tokens = true;
        doc
    }

    /// Adds an authorization server.
    #[must_use]
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// Declares the scopes the resource uses.
    #[must_use]
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes_supported
            .extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Names the resource.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// Declares whether certificate-bound tokens are accepted.
    #[must_use]
    pub fn certificate_bound_tokens(mut self, accepted: bool) -> Self {
        self.tls_client_certificate_bound_access_tokens = accepted;
        self
    }

    /// The document as JSON text.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
