//! The HTTP layer: the route table, body limits, and thin handlers that parse,
//! call into [`crate::oauth`] or [`crate::clients`], and render.

pub mod admin;
pub mod caller;
pub mod discovery;
pub mod drain;
pub mod errors;
pub mod health;
pub mod metadata_cache;
pub mod metrics;
pub mod observe;
pub mod state;
pub mod token;

use std::time::Duration;

use actix_web::{
    http::{Method, StatusCode},
    web, FromRequest, HttpRequest, HttpResponse, Route,
};

use crate::config::ListenerSettings;

/// One route: method, path pattern (actix and OpenAPI share the `{name}` syntax), handler.
struct RouteDef {
    method: Method,
    path: &'static str,
    route: fn() -> Route,
}

macro_rules! route {
    ($method:ident, $path:literal, $handler:path) => {
        RouteDef {
            method: Method::$method,
            path: $path,
            route: || web::method(Method::$method).to($handler),
        }
    };
}

/// The route table: the single list both [`configure`] and the OpenAPI
/// consistency test read.
fn routes() -> Vec<RouteDef> {
    vec![
        route!(GET, "/healthz", health::healthz),
        route!(GET, "/readyz", health::readyz),
        route!(
            GET,
            "/.well-known/oauth-authorization-server",
            discovery::metadata
        ),
        route!(
            GET,
            "/.well-known/openid-configuration",
            discovery::metadata
        ),
        route!(GET, "/.well-known/jwks.json", discovery::jwks),
        route!(POST, "/token", token::token),
        route!(POST, "/introspect", token::introspection),
        route!(POST, "/revoke", token::revocation),
        route!(GET, "/metrics", metrics::metrics),
        route!(GET, "/admin/keys", admin::keys::list),
        route!(POST, "/admin/keys/rotate", admin::keys::rotate),
        route!(POST, "/admin/clients", admin::clients::create),
        route!(GET, "/admin/clients", admin::clients::list),
        route!(GET, "/admin/clients/{client_id}", admin::clients::show),
        route!(PUT, "/admin/clients/{client_id}", admin::clients::update),
        route!(DELETE, "/admin/clients/{client_id}", admin::clients::delete),
        route!(
            POST,
            "/admin/clients/{client_id}/secret",
            admin::clients::rotate_secret
        ),
        route!(
            POST,
            "/admin/clients/{client_id}/disable",
            admin::clients::disable
        ),
        route!(
            POST,
            "/admin/clients/{client_id}/enable",
            admin::clients::enable
        ),
        route!(
            POST,
            "/admin/clients/{client_id}/revoke-tokens",
            admin::clients::revoke_tokens
        ),
        route!(
            POST,
            "/admin/clients/{client_id}/unlock",
            admin::clients::unlock
        ),
        route!(POST, "/admin/federations", admin::federations::create),
        route!(GET, "/admin/federations", admin::federations::list),
        route!(
            GET,
            "/admin/federations/{federation_id}",
            admin::federations::show
        ),
        route!(
            PUT,
            "/admin/federations/{federation_id}",
            admin::federations::update
        ),
        route!(
            DELETE,
            "/admin/federations/{federation_id}",
            admin::federations::delete
        ),
        route!(
            POST,
            "/admin/federations/{federation_id}/disable",
            admin::federations::disable
        ),
        route!(
            POST,
            "/admin/federations/{federation_id}/enable",
            admin::federations::enable
        ),
        route!(GET, "/admin/audit", admin::audit::list),
        route!(POST, "/admin/apply", admin::apply::apply),
    ]
}

/// `(method, path)` of every route the server serves.
#[must_use]
pub fn route_table() -> Vec<(Method, &'static str)> {
    routes().into_iter().map(|r| (r.method, r.path)).collect()
}

/// The pattern of the route a request matched, as resource data: the
/// metrics label without walking the route table again per request.
#[derive(Clone, Copy, Debug)]
pub struct RoutePattern(pub &'static str);

/// Which routes a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plane {
    /// Everything (one listener).
    All,
    /// OAuth, discovery and health: the main listener when `admin_listen` is set.
    Public,
    /// The admin API and `/metrics`: the `admin_listen` listener.
    Admin,
}

impl Plane {
    fn serves(self, path: &str) -> bool {
        let admin = path.starts_with("/admin") || path == "/metrics";
        match self {
            Self::All => true,
            Self::Public => !admin,
            Self::Admin => admin || path == "/healthz" || path == "/readyz",
        }
    }
}

/// Registers the routes of `plane`. Several methods on one path share one
/// resource, so an unsupported method gets a JSON 405 rather than falling through.
pub fn configure(cfg: &mut web::ServiceConfig, max_body_bytes: usize, plane: Plane) {
    let mut paths: Vec<&'static str> = Vec::new();
    let table: Vec<RouteDef> = routes()
        .into_iter()
        .filter(|r| plane.serves(r.path))
        .collect();
    for def in &table {
        if !paths.contains(&def.path) {
            paths.push(def.path);
        }
    }
    cfg.app_data(web::PayloadConfig::new(max_body_bytes));
    for path in paths {
        let mut resource = web::resource(path)
            .app_data(RoutePattern(path))
            .default_service(web::to(method_not_allowed));
        for def in table.iter().filter(|d| d.path == path) {
            resource = resource.route((def.route)());
        }
        cfg.service(resource);
    }
    cfg.default_service(web::to(not_found));
}

async fn not_found() -> HttpResponse {
    errors::json_error(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let pattern = req.match_pattern();
    let allowed: Vec<String> = routes()
        .into_iter()
        .filter(|r| pattern.as_deref() == Some(r.path))
        .map(|r| r.method.to_string())
        .collect();
    let mut response = errors::json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    );
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allowed.join(", ")) {
        response
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    response
}

/// Why a request body could not be read.
pub enum BodyError {
    /// Larger than the configured limit.
    TooLarge(usize),
    /// Not received within the deadline (`request_timeout` seconds).
    TimedOut(u64),
    /// Any other failure while reading.
    Unreadable,
}

/// Reads the request body as the `Bytes` extractor does (decompressed, at
/// most `max_body_bytes`), within `request_timeout` seconds from the end of
/// the head: a client trickling or stalling its body cannot hold the
/// connection indefinitely.
pub async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    listeners: &ListenerSettings,
) -> Result<web::Bytes, BodyError> {
    let limit = listeners.max_body_bytes;
    let mut payload = payload.into_inner();
    let deadline = listeners.request_timeout;
    let read = <web::Bytes as FromRequest>::from_request(req, &mut payload);
    let body = tokio::time::timeout(Duration::from_secs(deadline), read)
        .await
        .map_err(|_| BodyError::TimedOut(deadline))?;
    body.map_err(|e| match e.as_error::<actix_web::error::PayloadError>() {
        Some(actix_web::error::PayloadError::Overflow) => BodyError::TooLarge(limit),
        _ if e.to_string().contains("overflow") => BodyError::TooLarge(limit),
        _ => BodyError::Unreadable,
    })
}

/// `408` with `invalid_request` (the code of both APIs for a malformed
/// request) for a body that did not arrive in time; the connection is closed.
#[must_use]
pub fn body_timed_out(seconds: u64) -> HttpResponse {
    let mut response = errors::json_error(
        StatusCode::REQUEST_TIMEOUT,
        "invalid_request",
        &format!("the request body was not received within {seconds} s"),
    );
    response
        .head_mut()
        .set_connection_type(actix_web::http::ConnectionType::Close);
    response
}

/// Whether the request's media type (parameters ignored) is `expected`.
#[must_use]
pub fn has_media_type(req: &HttpRequest, expected: &str) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(expected))
}
