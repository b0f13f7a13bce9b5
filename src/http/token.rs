//! The OAuth endpoints that take form posts from authenticated clients:
//! `POST /token` (RFC 6749 §4.4, §6), `POST /introspect` (RFC 7662) and
//! `POST /revoke` (RFC 7009). Each parses, authenticates, calls into
//! [`crate::oauth`], and renders with `Cache-Control: no-store`.

use actix_web::{
    http::header::{self, HeaderValue},
    web, HttpRequest, HttpResponse, HttpResponseBuilder,
};
use std::{net::IpAddr, sync::Arc};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::{has_media_type, read_body, BodyError};
use crate::{
    audit::AuditEvent,
    certs::{parse_xfcc, CertError, ClientCertificate},
    clients::Client,
    oauth::{
        client_auth::ClientCredentials,
        grant::{self, RequestContext},
        introspect,
        request::{FormParams, TokenReference, TokenRequest},
        revoke, OAuthError,
    },
    state::AppState,
    tls::PeerCertificates,
    token::refresh::RefreshToken,
};

/// RFC 6749 §5.1 successful response.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u32,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
}

/// A form post from a client: its parameters, and the client, authenticated.
struct ClientForm {
    params: FormParams,
    client: Client,
    ctx: RequestContext,
    now: DateTime<Utc>,
}

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

/// The client's TLS certificate: from Envoy's `x-forwarded-client-cert` when
/// that is enabled and the peer is a trusted proxy (which terminated TLS),
/// otherwise from this connection's handshake. The header from anyone else is
/// ignored.
fn client_certificate(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Option<Arc<ClientCertificate>>, CertError> {
    if let Some(header) = req.headers().get(XFCC) {
        let trusted = state.settings.listeners.forwarded_client_cert
            && req
                .peer_addr()
                .is_some_and(|p| state.proxies.trusts(p.ip()));
        if trusted {
            let text = header
                .to_str()
                .map_err(|_| CertError::Xfcc("the header is not ASCII".into()))?;
            let chain = parse_xfcc(text)?;
            return ClientCertificate::from_chain(chain).map(|c| Some(Arc::new(c)));
        }
        tracing::debug!("x-forwarded-client-cert from an untrusted peer ignored");
    }
    req.conn_data::<PeerCertificates>()
        .map(PeerCertificates::certificate)
        .transpose()
}

/// Envoy's header carrying the client certificate it verified.
const XFCC: &str = "x-forwarded-client-cert";

/// Applies the per-address limit, reads the form body, then authenticates the
/// client (Basic or post). `claimed` receives the client id the caller named.
async fn client_form(
    req: &HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
    state: &AppState,
    claimed: &mut Option<String>,
    before_auth: impl FnOnce(&FormParams) -> Result<(), OAuthError>,
) -> Result<ClientForm, OAuthError> {
    let ip = caller_ip(req, state);
    state.limits.check_ip(ip).map_err(|l| {
        state.metrics.rate_limited(l.limit);
        OAuthError::RateLimited(l)
    })?;
    if !has_media_type(req, "application/x-www-form-urlencoded") {
        return Err(OAuthError::InvalidRequest(
            "the request body must be application/x-www-form-urlencoded",
        ));
    }
    let body = read_body(body, state.settings.listeners.max_body_bytes).map_err(|e| match e {
        BodyError::TooLarge(n) => OAuthError::BodyTooLarge(n),
        BodyError::Unreadable => OAuthError::InvalidRequest("the request body could not be read"),
    })?;
    let params = FormParams::parse(&body)?;
    before_auth(&params)?;
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    let creds = ClientCredentials::extract(authorization, &params)?;
    *claimed = Some(creds.client_id.clone());
    // A certificate that cannot be used matters only to clients that need one.
    let certificate = client_certificate(req, state);
    let presented = certificate.as_ref().map(Option::as_deref);
    let now = state.clock.now();
    let client = grant::authenticate(state, &creds, presented, req.path(), now).await?;
    let ctx = RequestContext {
        ip,
        auth_method: client.auth_method,
        certificate: certificate.ok().flatten(),
    };
    Ok(ClientForm {
        params,
        client,
        ctx,
        now,
    })
}

fn no_store() -> HttpResponseBuilder {
    let mut builder = HttpResponse::Ok();
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    builder
}

/// The token endpoint. Every outcome but a rate-limit refusal is audited.
pub async fn token(
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let mut claimed = None;
    let mut grant_name = "unknown";
    let outcome = async {
        let mut request = None;
        let form = client_form(&req, body, &state, &mut claimed, |params| {
            let parsed = TokenRequest::parse(params)?;
            grant_name = parsed.grant_name();
            request = Some(parsed);
            Ok(())
        })
        .await?;
        let request = request.ok_or(OAuthError::InvalidRequest("grant_type is required"))?;
        let issued = grant::issue(&state, &form.client, request, form.ctx, form.now).await?;
        Ok::<_, OAuthError>((form.client, issued))
    }
    .await;
    let now = state.clock.now();
    match outcome {
        Ok((client, issued)) => {
            state.metrics.token_issued(grant_name);
            let event = AuditEvent::new("token_issued", format!("client:{}", client.id), now)
                .client(client.id.as_str())
                .details(json!({
                    "grant_type": grant_name,
                    "auth_method": client.auth_method.as_str(),
                    "jti": issued.jti,
                    "scope": issued.scope.to_string(),
                    "expires_in": issued.expires_in,
                    "refresh_token_issued": issued.refresh_token.is_some(),
                }));
            state.audit.record(event).await;
            let scope = issued.scope.to_string();
            Ok(no_store().json(TokenResponse {
                access_token: &issued.access_token,
                token_type: "Bearer",
                expires_in: issued.expires_in,
                scope: &scope,
                refresh_token: issued.refresh_token.as_ref().map(RefreshToken::expose),
            }))
        }
        Err(e) => {
            state.metrics.token_denied(e.code());
            if !matches!(e, OAuthError::RateLimited(_)) {
                let actor = claimed
                    .as_deref()
                    .map_or_else(|| "anonymous".to_owned(), |c| format!("client:{c}"));
                let mut event = AuditEvent::new("token_denied", actor, now)
                    .reason(e.code())
                    .details(
                        json!({ "grant_type": grant_name, "error_description": e.to_string() }),
                    );
                if let Some(c) = claimed {
                    event = event.client(c);
                }
                state.audit.record(event).await;
            }
            Err(e)
        }
    }
}

/// The introspection endpoint.
pub async fn introspection(
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let form = client_form(&req, body, &state, &mut None, |_| Ok(())).await?;
    let reference = TokenReference::parse(&form.params)?;
    let answer = introspect::introspect(&state, &form.client, &reference, form.now).await?;
    Ok(no_store().json(answer))
}

/// The revocation endpoint: 200 with an empty body, also for unknown tokens.
pub async fn revocation(
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let form = client_form(&req, body, &state, &mut None, |_| Ok(())).await?;
    let reference = TokenReference::parse(&form.params)?;
    revoke::revoke(&state, &form.client, &reference, form.now).await?;
    Ok(no_store().finish())
}
