//! tower middleware (axum, hyper, tonic): verifies every request, inserts the
//! [`VerifiedToken`] into the request extensions, and answers failures with
//! the right status and `WWW-Authenticate` challenges (empty body).
//!
//! The request URI used for DPoP `htu` is the request's own when absolute,
//! else [`VerifierConfig::public_origin`](crate::VerifierConfig::public_origin)
//! plus the path, else the `Host` header (`https` when a
//! [`PeerCertificate`] extension shows a TLS connection). Put the client
//! certificate in the extensions as a [`PeerCertificate`] to check
//! certificate-bound tokens.
//!
//! ```ignore
//! let app = axum::Router::new()
//!     .route("/orders", get(list_orders))
//!     .layer(VerifyLayer::with_requirements(verifier, Requirements::new().scope("orders:read")));
//! ```

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::{PeerCertificate, RequestParts, Requirements, VerifiedToken, Verifier, VerifyError};

/// A [`Layer`] verifying access tokens with a [`Verifier`].
#[derive(Clone)]
pub struct VerifyLayer {
    verifier: Verifier,
    requirements: Arc<Requirements>,
}

impl VerifyLayer {
    /// Verification with the verifier's configured requirements.
    #[must_use]
    pub fn new(verifier: Verifier) -> Self {
        Self::with_requirements(verifier, Requirements::default())
    }

    /// Verification with a route's `requirements` on top.
    #[must_use]
    pub fn with_requirements(verifier: Verifier, requirements: Requirements) -> Self {
        Self {
            verifier,
            requirements: Arc::new(requirements),
        }
    }
}

impl<S> Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyService {
            inner,
            verifier: self.verifier.clone(),
            requirements: Arc::clone(&self.requirements),
        }
    }
}

/// The [`Service`] made by [`VerifyLayer`].
#[derive(Clone)]
pub struct VerifyService<S> {
    inner: S,
    verifier: Verifier,
    requirements: Arc<Requirements>,
}

impl<S, B, R> Service<Request<B>> for VerifyService<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    R: Default,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The clone that was driven to readiness serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let requirements = Arc::clone(&self.requirements);
        Box::pin(async move {
            // The head is held across the verification; the body (maybe not `Sync`) waits aside.
            let (mut head, body) = req.into_parts();
            let result = verify(&verifier, &requirements, &head).await;
            match result {
                Ok(token) => {
                    head.extensions.insert(token);
                    inner.call(Request::from_parts(head, body)).await
                }
                Err(err) => Ok(error_response(&verifier, &err)),
            }
        })
    }
}

async fn verify(
    verifier: &Verifier,
    requirements: &Requirements,
    req: &http::request::Parts,
) -> Result<VerifiedToken, VerifyError> {
    let cfg = verifier.config();
    let peer = req.extensions.get::<PeerCertificate>();
    let uri = if req.uri.scheme().is_some() {
        req.uri.to_string()
    } else {
        let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
        match (
            &cfg.public_origin,
            req.headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok()),
        ) {
            (Some(origin), _) => format!("{}{path}", origin.trim_end_matches('/')),
            (None, Some(host)) => format!(
                "{}://{host}{path}",
                if peer.is_some() { "https" } else { "http" }
            ),
            (None, None) => path.to_owned(),
        }
    };
    let mut parts = RequestParts::new(req.method.as_str(), &uri);
    for value in req.headers.get_all(http::header::AUTHORIZATION) {
        // A value that is not text is malformed, not absent.
        parts = parts.authorization(value.to_str().unwrap_or("Bearer !"));
    }
    for value in req.headers.get_all("dpop") {
        parts = parts.dpop(value.to_str().unwrap_or("!"));
    }
    if let Some(PeerCertificate(der)) = peer {
        parts = parts.peer_certificate(der);
    }
    if cfg.trust_forwarded_client_cert {
        if let Some(xfcc) = req
            .headers
            .get("x-forwarded-client-cert")
            .and_then(|v| v.to_str().ok())
        {
            parts = parts.forwarded_client_cert(xfcc);
        }
    }
    verifier.verify_with(&parts, requirements).await
}

fn error_response<R: Default>(verifier: &Verifier, err: &VerifyError) -> Response<R> {
    let answer = verifier.error_response(err);
    let mut response = Response::new(R::default());
    *response.status_mut() =
        http::StatusCode::from_u16(answer.status).unwrap_or(http::StatusCode::UNAUTHORIZED);
    for (name, value) in answer.headers {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            response.headers_mut().append(name, value);
        }
    }
    response
}
