//! The client metadata options of `portcullis client create` and `update`,
//! and how they change a registration.

// The doc comments here are the --help texts, where backticks would show.
#![allow(clippy::doc_markdown)]

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::clients::{whole::WholeNumber, RegistrationRequest};

/// Client metadata options shared by `create` and `update`.
#[derive(Debug, Args)]
pub struct ClientFields {
    /// Human-readable name.
    #[arg(long)]
    name: Option<String>,
    /// Allowed scopes, space-separated.
    #[arg(long)]
    scope: Option<String>,
    /// Allowed audience (repeat for several).
    #[arg(long = "audience")]
    audiences: Vec<String>,
    /// Default audience.
    #[arg(long)]
    default_audience: Option<String>,
    /// Access-token lifetime in seconds.
    #[arg(long)]
    ttl: Option<i64>,
    /// client_secret_basic (default), client_secret_post, private_key_jwt,
    /// tls_client_auth or self_signed_tls_client_auth.
    #[arg(long)]
    auth_method: Option<String>,
    /// File holding the client's public JWK set ({"keys": [...]}).
    #[arg(long)]
    jwks_file: Option<PathBuf>,
    /// URL of the client's JWK set.
    #[arg(long)]
    jwks_uri: Option<String>,
    /// private_key_jwt: the one algorithm its assertions must use.
    #[arg(long)]
    signing_alg: Option<String>,
    /// tls_client_auth: the certificate's subject DN (RFC 4514).
    #[arg(long)]
    tls_subject_dn: Option<String>,
    /// tls_client_auth: a DNS name SAN of the certificate.
    #[arg(long)]
    tls_san_dns: Option<String>,
    /// tls_client_auth: a URI SAN of the certificate (a SPIFFE ID, say).
    #[arg(long)]
    tls_san_uri: Option<String>,
    /// tls_client_auth: an IP address SAN of the certificate.
    #[arg(long)]
    tls_san_ip: Option<String>,
    /// tls_client_auth: an e-mail SAN of the certificate.
    #[arg(long)]
    tls_san_email: Option<String>,
    /// Bind access tokens to the client's certificate (true or false).
    #[arg(long)]
    certificate_bound_tokens: Option<bool>,
    /// Require DPoP proofs: access tokens bound to the client's DPoP key (true or false).
    #[arg(long)]
    dpop_bound_tokens: Option<bool>,
    /// Grant type (repeat for several): client_credentials (default), refresh_token.
    #[arg(long = "grant-type")]
    grant_types: Vec<String>,
    /// Allow (true) or forbid (false) calling the introspection endpoint.
    #[arg(long)]
    allow_introspection: Option<bool>,
}

impl ClientFields {
    pub(crate) fn apply_to(
        self,
        mut r: RegistrationRequest,
    ) -> anyhow::Result<RegistrationRequest> {
        // A new method starts without the old one's keys and certificate subject.
        if self.auth_method.is_some() && self.auth_method != r.token_endpoint_auth_method {
            r.jwks = None;
            r.jwks_uri = None;
            r.token_endpoint_auth_signing_alg = None;
            r.tls_client_auth_subject_dn = None;
            r.tls_client_auth_san_dns = None;
            r.tls_client_auth_san_uri = None;
            r.tls_client_auth_san_ip = None;
            r.tls_client_auth_san_email = None;
        }
        r.token_endpoint_auth_signing_alg = self.signing_alg.or(r.token_endpoint_auth_signing_alg);
        if let Some(path) = &self.jwks_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("could not read {}", path.display()))?;
            r.jwks = Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", path.display()))?,
            );
            r.jwks_uri = None;
        }
        if self.jwks_uri.is_some() {
            r.jwks_uri = self.jwks_uri;
            r.jwks = None;
        }
        let subjects = [
            self.tls_subject_dn,
            self.tls_san_dns,
            self.tls_san_uri,
            self.tls_san_ip,
            self.tls_san_email,
        ];
        if subjects.iter().any(Option::is_some) {
            let [dn, dns, uri, ip, email] = subjects;
            r.tls_client_auth_subject_dn = dn;
            r.tls_client_auth_san_dns = dns;
            r.tls_client_auth_san_uri = uri;
            r.tls_client_auth_san_ip = ip;
            r.tls_client_auth_san_email = email;
        }
        r.tls_client_certificate_bound_access_tokens = self
            .certificate_bound_tokens
            .or(r.tls_client_certificate_bound_access_tokens);
        r.dpop_bound_access_tokens = self.dpop_bound_tokens.or(r.dpop_bound_access_tokens);
        r.client_name = self.name.or(r.client_name);
        r.scope = self.scope.or(r.scope);
        if !self.audiences.is_empty() {
            r.allowed_audiences = Some(self.audiences);
        }
        r.default_audience = self.default_audience.or(r.default_audience);
        r.access_token_ttl = self.ttl.map(WholeNumber).or(r.access_token_ttl);
        r.token_endpoint_auth_method = self.auth_method.or(r.token_endpoint_auth_method);
        if !self.grant_types.is_empty() {
            r.grant_types = Some(self.grant_types);
        }
        r.allow_introspection = self.allow_introspection.or(r.allow_introspection);
        Ok(r)
    }
}
