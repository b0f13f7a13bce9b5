//! Discovery: the RFC 8414 metadata document (also served at the OpenID
//! Connect path for tools that only know that one) and the JWKS (RFC 7517),
//! served from the pre-rendered bytes with `Cache-Control` and `ETag`. The
//! JWKS is rate-limited per source address (`429 rate_limited`).

use std::{collections::BTreeSet, net::IpAddr};

use actix_web::{
    http::{
        header::{self, HeaderValue},
        StatusCode,
    },
    web, HttpRequest, HttpResponse, HttpResponseBuilder,
};
use serde_json::json;

use super::{caller::caller_ip, errors::json_error, state::AppState};
use crate::{
    clients::{AuthMethod, GrantType},
    keys::{Algorithm, JwksDocument},
};

/// `GET /.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.
pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    let now = state.clock.now();
    let body = state.metadata.get(now).unwrap_or_else(|| {
        let body = render_metadata(&state);
        state.metadata.put(now, body.clone());
        body
    });
    public(HttpResponse::Ok(), &state)
        .content_type("application/json")
        .body(body)
}

/// A response that caches may keep for `jwks_max_age`.
fn public(mut response: HttpResponseBuilder, state: &AppState) -> HttpResponseBuilder {
    response.insert_header((
        header::CACHE_CONTROL,
        format!("public, max-age={}", state.settings.tokens.jwks_max_age),
    ));
    response
}

fn render_metadata(state: &AppState) -> web::Bytes {
    // Only the scopes the operator made public: the registered ones would
    // tell anyone what every client may do.
    let scopes: BTreeSet<&str> = state
        .settings
        .tokens
        .public_scopes
        .iter()
        .map(String::as_str)
        .collect();
    let issuer = &state.oauth.issuer;
    let settings = &state.settings;
    let mut auth_methods = vec![
        AuthMethod::ClientSecretBasic.as_str(),
        AuthMethod::ClientSecretPost.as_str(),
        AuthMethod::PrivateKeyJwt.as_str(),
        AuthMethod::FederatedJwt.as_str(),
    ];
    // Certificates reach the server over its own TLS or from a trusted proxy.
    let mtls = settings.listeners.tls_enabled() || settings.listeners.forwarded_client_cert;
    if mtls {
        if state.oauth.client_ca.is_some() {
            auth_methods.push(AuthMethod::TlsClientAuth.as_str());
        }
        auth_methods.push(AuthMethod::SelfSignedTlsClientAuth.as_str());
    }
    let assertion_algs = &settings.client_auth.assertion_signing_algs;
    let mtls_base = settings
        .listeners
        .mtls_endpoint_base
        .as_deref()
        .unwrap_or(issuer);
    let algs: Vec<&str> = state
        .oauth
        .keys
        .algorithms()
        .into_iter()
        .map(Algorithm::as_str)
        .collect();
    let mut body = json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "registration_endpoint": format!("{issuer}/admin/clients"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "response_types_supported": [],
        "grant_types_supported": [
            GrantType::ClientCredentials.as_str(),
            GrantType::RefreshToken.as_str(),
            GrantType::JwtBearer.as_str(),
            GrantType::TokenExchange.as_str(),
        ],
        "token_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "access_token_signing_alg_values_supported": algs,
        "tls_client_certificate_bound_access_tokens": mtls,
        "dpop_signing_alg_values_supported": settings.dpop.dpop_signing_algs,
    });
    if !scopes.is_empty() {
        body["scopes_supported"] = json!(scopes);
    }
    if mtls {
        body["mtls_endpoint_aliases"] = json!({
            "token_endpoint": format!("{mtls_base}/token"),
            "introspection_endpoint": format!("{mtls_base}/introspect"),
            "revocation_endpoint": format!("{mtls_base}/revoke"),
        });
    }
    body.to_string().into()
}

/// `GET /.well-known/jwks.json`: public keys only; `304` when `If-None-Match`
/// matches; `429` beyond the per-address limit. Records which version the
/// caller holds (the rotation safety signal).
pub async fn jwks(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let ip = caller_ip(&req, &state);
    if let Err(limited) = state.oauth.limits.check_jwks(ip) {
        state.oauth.metrics.rate_limited(limited.limit);
        let mut response = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            &format!(
                "too many requests ({}); retry after {} s",
                limited.limit, limited.retry_after
            ),
        );
        if let Ok(retry) = HeaderValue::from_str(&limited.retry_after.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, retry);
        }
        return response;
    }
    let doc = state.oauth.keys.jwks();
    record_consumer(&req, ip, &state, &doc);
    let held = if_none_match(&req, &doc.etag);
    let mut response = public(
        if held {
            HttpResponse::NotModified()
        } else {
            HttpResponse::Ok()
        },
        &state,
    );
    if let Ok(etag) = HeaderValue::from_str(&doc.etag) {
        response.insert_header((header::ETAG, etag));
    }
    if held {
        return response.finish();
    }
    response.content_type("application/json").body(doc.body)
}

/// Whether the caller already holds the version `etag` (`If-None-Match`).
fn if_none_match(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim() == "*"
                || v.split(',')
                    .any(|t| t.trim().trim_start_matches("W/") == etag)
        })
}

/// Records which JWKS version this consumer (the caller's address — the
/// forwarded one behind a trusted proxy — and `User-Agent`) holds.
fn record_consumer(req: &HttpRequest, ip: IpAddr, state: &AppState, doc: &JwksDocument) {
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    state
        .key_manager
        .consumers()
        .record(ip, user_agent, &doc.etag, &doc.kids, state.clock.now());
}
