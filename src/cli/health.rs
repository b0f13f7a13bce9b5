//! `portcullis health`: asks a running server's `/readyz` and exits 0 when it
//! is ready (or degraded but serving), non-zero otherwise. The container
//! image's healthcheck: it needs no shell, curl or `/dev/tcp`.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use anyhow::Context as _;
use clap::Args;

use crate::config::Settings;

/// Options of `portcullis health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// URL to ask instead of /readyz on the configured listen address
    /// (0.0.0.0 and :: are asked on loopback).
    #[arg(long)]
    url: Option<String>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    timeout: u64,
}

/// The `/readyz` URL of a server configured with `settings`, on loopback
/// when it listens on every address.
#[must_use]
pub fn readyz_url(settings: &Settings) -> String {
    let listen = settings.listeners.listen;
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if settings.listeners.tls_cert_file.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{}/readyz", SocketAddr::new(ip, listen.port()))
}

/// Asks the server; `Ok` with its answer when it says 200, an error naming
/// the URL and the status (or why nothing answered) otherwise.
pub async fn run(settings: &Settings, args: HealthArgs) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        (1..=60).contains(&args.timeout),
        "--timeout must be between 1 and 60 seconds"
    );
    let own = args.url.is_none();
    let url = args.url.unwrap_or_else(|| readyz_url(settings));
    // The server's own certificate names its public host, not loopback: when
    // asking ourselves, the connection's certificate is not checked.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        .danger_accept_invalid_certs(own)
        .build()
        .context("the HTTP client could not be built")?;
    let response = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("{url} did not answer"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let answer = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    anyhow::ensure!(status.is_success(), "{url} answered {status}: {answer}");
    Ok(answer)
}
