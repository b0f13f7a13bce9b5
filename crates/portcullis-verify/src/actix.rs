//! actix-web middleware: verifies every request, inserts the
//! [`VerifiedToken`] into the request extensions (extract it with
//! `web::ReqData<VerifiedToken>`), and answers failures with the right status
//! and `WWW-Authenticate` challenges (empty body).
//!
//! The request URI used for DPoP `htu` is
//! [`VerifierConfig::public_origin`](crate::VerifierConfig::public_origin)
//! plus the path when configured, else the `Host` header with the scheme of
//! the listener. Store the client certificate as a [`PeerCertificate`]
//! connection datum (`HttpServer::on_connect`) to check certificate-bound tokens.
//!
//! ```ignore
//! App::new()
//!     .wrap(Verify::with_requirements(verifier, Requirements::new().scope("orders:read")))
//!     .route("/orders", web::get().to(list_orders))
//! ```

use std::{future::ready, rc::Rc, sync::Arc};

use actix_web::{
    body::EitherBody,
    dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform},
    http::{header, StatusCode},
    HttpMessage as _, HttpResponse,
};
use futures_util::future::LocalBoxFuture;

use crate::{PeerCertificate, RequestParts, Requirements, VerifiedToken, Verifier, VerifyError};

/// The middleware factory: `App::new().wrap(Verify::new(verifier))`.
#[derive(Clone)]
pub struct Verify {
    verifier: Verifier,
    requirements: Arc<Requirements>,
}

impl Verify {
    /// Verification with the verifier's configured requirements.
    #[must_use]
    pub fn new(verifier: Verifier) -> Self {
        Self::with_requirements(verifier, Requirements::default())
    }

    /// Verification with a scope's `requirements` on top.
    #[must_use]
    pub fn with_requirements(verifier: Verifier, requirements: Requirements) -> Self {
        Self {
            verifier,
            requirements: Arc::new(requirements),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Verify
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = VerifyMiddleware<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(VerifyMiddleware {
            service: Rc::new(service),
            verifier: self.verifier.clone(),
            requirements: Arc::clone(&self.requirements),
        }))
    }
}

/// The service made by [`Verify`].
pub struct VerifyMiddleware<S> {
    service: Rc<S>,
    verifier: Verifier,
    requirements: Arc<Requirements>,
}

impl<S, B> Service<ServiceRequest> for VerifyMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let verifier = self.verifier.clone();
        let requirements = Arc::clone(&self.requirements);
        Box::pin(async move {
            match verify(&verifier, &requirements, &req).await {
                Ok(token) => {
                    req.extensions_mut().insert(token);
                    service
                        .call(req)
                        .await
                        .map(ServiceResponse::map_into_left_body)
                }
                Err(err) => {
                    let response = error_response(&verifier, &err);
                    Ok(req.into_response(response).map_into_right_body())
                }
            }
        })
    }
}

async fn verify(
    verifier: &Verifier,
    requirements: &Requirements,
    req: &ServiceRequest,
) -> Result<VerifiedToken, VerifyError> {
    let cfg = verifier.config();
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let uri = match (
        &cfg.public_origin,
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok()),
    ) {
        (Some(origin), _) => format!("{}{path}", origin.trim_end_matches('/')),
        (None, Some(host)) => {
            format!(
                "{}://{host}{path}",
                if req.app_config().secure() {
                    "https"
                } else {
                    "http"
                }
            )
        }
        (None, None) => path.to_owned(),
    };
    let mut parts = RequestParts::new(req.method().as_str(), &uri);
    for value in req.headers().get_all(header::AUTHORIZATION) {
        parts = parts.authorization(value.to_str().unwrap_or("Bearer !"));
    }
    for value in req.headers().get_all("dpop") {
        parts = parts.dpop(value.to_str().unwrap_or("!"));
    }
    let peer = req.conn_data::<PeerCertificate>();
    if let Some(PeerCertificate(der)) = peer {
        parts = parts.peer_certificate(der);
    }
    if cfg.trust_forwarded_client_cert {
        if let Some(xfcc) = req
            .headers()
            .get("x-forwarded-client-cert")
            .and_then(|v| v.to_str().ok())
        {
            parts = parts.forwarded_client_cert(xfcc);
        }
    }
    verifier.verify_with(&parts, requirements).await
}

fn error_response(verifier: &Verifier, err: &VerifyError) -> HttpResponse {
    let answer = verifier.error_response(err);
    let mut response = HttpResponse::build(
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::UNAUTHORIZED),
    );
    for (name, value) in answer.headers {
        response.append_header((name, value));
    }
    response.finish()
}
