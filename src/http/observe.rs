//! The middleware every request passes: a request id (accepted from
//! `X-Request-Id` or generated, echoed back, in every log line and audit event
//! of the request), one access-log line, and the request metrics.

use std::time::Instant;

use actix_web::{
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::header::{HeaderName, HeaderValue},
    http::{Method, StatusCode},
    middleware::Next,
    web, Error, HttpMessage,
};
use tracing::Instrument;

use super::{caller::RequestId, errors, state::AppState, RoutePattern};
use crate::telemetry::REQUEST_ID;

/// A caller-supplied id is kept when it is 1–128 visible ASCII characters.
fn accepted(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| s.to_owned())
}

/// The method as a metrics label: RFC 9110's methods by name, any other `other`
/// (a made-up method must not add a series).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Total size of the request's header names and values, in bytes.
fn header_bytes(req: &ServiceRequest) -> usize {
    req.headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum()
}

/// The request-id, logging and metrics middleware. It also refuses requests
/// whose headers exceed `max_header_bytes` with a JSON 431.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if let Some(state) = req.app_data::<web::Data<AppState>>() {
        let limit = state.settings.listeners.max_header_bytes;
        if header_bytes(&req) > limit {
            let response = errors::json_error(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "invalid_request",
                &format!("request headers exceed {limit} bytes"),
            );
            return Ok(req.into_response(response).map_into_right_body());
        }
    }
    let header = HeaderName::from_static("x-request-id");
    let id = req
        .headers()
        .get(&header)
        .and_then(accepted)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = method_label(req.method());
    let span =
        tracing::info_span!("request", request_id = %id, method = %method, path = %req.path());
    let started = Instant::now();
    let mut res = REQUEST_ID
        .scope(id.clone(), next.call(req).instrument(span.clone()))
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    let status = res.status().as_u16();
    let endpoint = res
        .request()
        .app_data::<RoutePattern>()
        .map_or("unmatched", |p| p.0);
    if let Some(state) = res.request().app_data::<web::Data<AppState>>() {
        state
            .oauth
            .metrics
            .observe_request(endpoint, method, status, seconds);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(header, v);
    }
    span.in_scope(|| tracing::info!(status, latency_ms = seconds * 1000.0, "request served"));
    Ok(res.map_into_left_body())
}
