//! Listeners: the addresses the server binds, the issuer it calls itself,
//! HTTPS, the limits applied to every request, and the proxies it believes.

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;

use super::{
    de::{comma_strings, optional_socket_addr, socket_addr},
    ConfigError,
};

/// Where and how the server listens (`listen`, `issuer`, `admin_listen`,
/// `tls_*`, `workers`, request limits, `trusted_proxies`,
/// `shutdown_drain_delay`, …).
#[derive(Clone, Debug, Deserialize)]
pub struct ListenerSettings {
    /// Address and port the HTTP listener binds to.
    #[serde(default = "defaults::listen", deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// Public issuer URL; defaults to `http://` + the bound listen address.
    #[serde(default)]
    pub issuer: Option<String>,
    /// A second listener for the admin API and `/metrics`; when set, they are
    /// served only there.
    #[serde(default, deserialize_with = "optional_socket_addr")]
    pub admin_listen: Option<SocketAddr>,
    /// PEM certificate chain for HTTPS on `listen` (with `tls_key_file`);
    /// without both, the listener speaks plain HTTP.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// Seconds between checks of the certificate files for a new certificate.
    #[serde(default = "defaults::tls_reload_interval")]
    pub tls_reload_interval: u64,
    /// HTTP worker threads; 0 means the number of CPU cores.
    #[serde(default)]
    pub workers: usize,
    /// Largest accepted request body in bytes.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// Largest total size of a request's headers in bytes (larger: 431).
    #[serde(default = "defaults::max_header_bytes")]
    pub max_header_bytes: usize,
    /// Seconds a client has to send its request headers (slow clients get 408).
    #[serde(default = "defaults::request_timeout")]
    pub request_timeout: u64,
    /// Proxies (addresses or networks) whose `X-Forwarded-For` is believed.
    #[serde(default, deserialize_with = "comma_strings")]
    pub trusted_proxies: Vec<String>,
    /// Believe Envoy's `x-forwarded-client-cert` header from `trusted_proxies`
    /// (a sidecar or gateway that terminates TLS); ignored from anyone else.
    #[serde(default)]
    pub forwarded_client_cert: bool,
    /// Base URL of a host name that requests client certificates, advertised
    /// as RFC 8705 `mtls_endpoint_aliases` (defaults to the issuer).
    #[serde(default)]
    pub mtls_endpoint_base: Option<String>,
    /// Seconds between SIGTERM (or SIGINT) and the listeners closing, during
    /// which `/readyz` answers 503 and everything else is served as usual,
    /// so load balancers stop sending traffic first (0: close at once).
    #[serde(default = "defaults::shutdown_drain_delay")]
    pub shutdown_drain_delay: u64,
}

mod defaults {
    use std::net::SocketAddr;

    pub fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    }
    pub fn tls_reload_interval() -> u64 {
        10
    }
    pub fn max_body_bytes() -> usize {
        16 * 1024
    }
    pub fn max_header_bytes() -> usize {
        16 * 1024
    }
    pub fn request_timeout() -> u64 {
        10
    }
    pub fn shutdown_drain_delay() -> u64 {
        5
    }
}

impl ListenerSettings {
    /// Request limits in range, proxies parseable, TLS files in pairs and
    /// present, issuer URLs well formed.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.max_body_bytes < 1024 || self.max_body_bytes > 1024 * 1024 {
            return invalid("max_body_bytes must be between 1024 and 1048576".into());
        }
        crate::protect::client_ip::TrustedProxies::parse(&self.trusted_proxies)
            .map_err(ConfigError::Invalid)?;
        if self.max_header_bytes < 1024 || self.max_header_bytes > 64 * 1024 {
            return invalid("max_header_bytes must be between 1024 and 65536".into());
        }
        if self.request_timeout == 0 || self.request_timeout > 300 {
            return invalid("request_timeout must be between 1 and 300 seconds".into());
        }
        if self
            .admin_listen
            .is_some_and(|a| a == self.listen && a.port() != 0)
        {
            return invalid("admin_listen must differ from listen".into());
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return invalid("tls_cert_file and tls_key_file must be set together".into());
        }
        for path in [&self.tls_cert_file, &self.tls_key_file]
            .into_iter()
            .flatten()
        {
            if !path.exists() {
                return invalid(format!("{} does not exist", path.display()));
            }
        }
        if self.tls_reload_interval == 0 || self.tls_reload_interval > 3600 {
            return invalid("tls_reload_interval must be between 1 and 3600 seconds".into());
        }
        if self.shutdown_drain_delay > 300 {
            return invalid("shutdown_drain_delay must be between 0 and 300 seconds".into());
        }
        if let Some(base) = &self.mtls_endpoint_base {
            validate_issuer(base)
                .map_err(|e| ConfigError::Invalid(format!("mtls_endpoint_base: {e}")))?;
        }
        if self.forwarded_client_cert && self.trusted_proxies.is_empty() {
            return invalid(
                "forwarded_client_cert needs trusted_proxies: the header is believed only from them"
                    .into(),
            );
        }
        if let Some(issuer) = &self.issuer {
            validate_issuer(issuer).map_err(ConfigError::Invalid)?;
        }
        Ok(())
    }

    /// Whether the public listener speaks HTTPS.
    #[must_use]
    pub fn tls_enabled(&self) -> bool {
        self.tls_cert_file.is_some()
    }
}

/// An issuer is an `http`/`https` URL without query or fragment (RFC 8414 §2).
fn validate_issuer(issuer: &str) -> Result<(), String> {
    let url = url::Url::parse(issuer).map_err(|e| format!("issuer is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("issuer must be an http or https URL".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("issuer must not have a query or fragment".into());
    }
    if issuer.ends_with('/') {
        return Err("issuer must not end with '/'".into());
    }
    Ok(())
}
