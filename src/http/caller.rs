//! Who is calling: the caller's address (the forwarded one only behind a
//! trusted proxy) and TLS client certificate, packed as the protocol layer's
//! [`Caller`].
//!
//! With `forwarded_client_cert` on and the peer a trusted proxy, the client
//! certificate is the one in Envoy's `x-forwarded-client-cert`, or none: the
//! proxy's own TLS certificate is never taken as the client's, and several
//! header lines (a client-sent one the proxy appended to) are refused.
//! From anyone else, the header is ignored and the certificate is this
//! connection's.

use std::{net::IpAddr, sync::Arc};

use actix_web::{HttpMessage, HttpRequest};

use super::state::AppState;
use crate::{
    certs::{parse_xfcc, CertError, ClientCertificate},
    oauth::{Caller, Endpoint},
    tls::PeerCertificates,
};

/// The request id the observing middleware gave `req` (accepted from
/// `X-Request-Id` or generated).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The request id of `req`.
#[must_use]
pub fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions().get::<RequestId>().map(|r| r.0.clone())
}

/// Envoy's header carrying the client certificate it verified.
const XFCC: &str = "x-forwarded-client-cert";

/// The caller's address (the forwarded one only behind a trusted proxy).
#[must_use]
pub fn caller_ip(req: &HttpRequest, state: &AppState) -> IpAddr {
    let peer = req
        .peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    state.proxies.client_ip(peer, forwarded)
}

/// The client's TLS certificate. The header from anyone but a trusted proxy
/// (with `forwarded_client_cert` on) is ignored; from a trusted proxy it is
/// the only source.
fn client_certificate(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Option<Arc<ClientCertificate>>, CertError> {
    let behind_proxy = state.settings.listeners.forwarded_client_cert
        && req
            .peer_addr()
            .is_some_and(|p| state.proxies.trusts(p.ip()));
    if behind_proxy {
        let mut lines = req.headers().get_all(XFCC);
        let Some(header) = lines.next() else {
            // The proxy's own handshake certificate is not the client's.
            return Ok(None);
        };
        if lines.next().is_some() {
            return Err(CertError::Xfcc(
                "several x-forwarded-client-cert header lines; the proxy must replace the header (forward_client_cert_details: SANITIZE_SET), not append to it".into(),
            ));
        }
        let text = header
            .to_str()
            .map_err(|_| CertError::Xfcc("the header is not ASCII".into()))?;
        let chain = parse_xfcc(text)?;
        return ClientCertificate::from_chain(chain).map(|c| Some(Arc::new(c)));
    }
    if req.headers().contains_key(XFCC) {
        tracing::debug!("x-forwarded-client-cert from an untrusted peer ignored");
    }
    req.conn_data::<PeerCertificates>()
        .map(PeerCertificates::certificate)
        .transpose()
}

/// The caller of an OAuth endpoint; reads the clock (once per request).
#[must_use]
pub fn caller(req: &HttpRequest, state: &AppState, endpoint: Endpoint) -> Caller {
    Caller {
        ip: caller_ip(req, state),
        certificate: client_certificate(req, state),
        endpoint,
        request_id: request_id(req),
        now: state.clock.now(),
    }
}
