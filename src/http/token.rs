//! The OAuth endpoints that take form posts from authenticated clients:
//! `POST /token` (RFC 6749 §4.4, §6), `POST /introspect` (RFC 7662) and
//! `POST /revoke` (RFC 7009). Each reads the form and the caller, calls the
//! [`crate::oauth::TokenServer`], and renders with `Cache-Control: no-store`.

use actix_web::{
    http::header::{self, HeaderValue},
    web, HttpRequest, HttpResponse, HttpResponseBuilder,
};
use serde::Serialize;

use super::{
    body_timed_out, caller::caller, has_media_type, read_body, state::AppState, BodyError,
};
use crate::{
    oauth::{
        dpop::DpopHeader, issuance::IssuedToken, request::FormParams, Endpoint, FormPost,
        OAuthError,
    },
    token::refresh::RefreshToken,
};

/// RFC 6749 §5.1 successful response (`token_type` `DPoP` for a DPoP-bound
/// token, RFC 9449 §5).
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u32,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    /// RFC 8693 §2.2.1, for token exchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_token_type: Option<&'static str>,
}

/// The form post as read: the `Authorization` header and the form body, or
/// why the body could not be used; the `408` answer when the body did not
/// arrive within `request_timeout`.
async fn form_post<'a>(
    req: &'a HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<FormPost<'a>, HttpResponse> {
    let form = if has_media_type(req, "application/x-www-form-urlencoded") {
        match read_body(req, payload, &state.settings.listeners).await {
            Ok(body) => FormParams::parse(&body),
            Err(BodyError::TimedOut(seconds)) => return Err(body_timed_out(seconds)),
            Err(BodyError::TooLarge(n)) => Err(OAuthError::BodyTooLarge(n)),
            Err(BodyError::Unreadable) => Err(OAuthError::InvalidRequest(
                "the request body could not be read",
            )),
        }
    } else {
        Err(OAuthError::InvalidRequest(
            "the request body must be application/x-www-form-urlencoded",
        ))
    };
    Ok(FormPost {
        authorization: req
            .headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
        dpop: dpop_header(req),
        form,
    })
}

/// The `DPoP` header (RFC 9449 §4.1): absent, one, or repeated.
fn dpop_header(req: &HttpRequest) -> DpopHeader<'_> {
    let mut values = req.headers().get_all("dpop");
    match (values.next(), values.next()) {
        (None, _) => DpopHeader::Absent,
        (Some(one), None) => DpopHeader::One(one.as_bytes()),
        (Some(_), Some(_)) => DpopHeader::Repeated,
    }
}

fn no_store() -> HttpResponseBuilder {
    let mut builder = HttpResponse::Ok();
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    builder
}

fn render(issued: &IssuedToken) -> HttpResponse {
    let mut response = no_store();
    if let Some(nonce) = &issued.dpop_nonce {
        response.insert_header(("DPoP-Nonce", nonce.as_str()));
    }
    response.json(TokenResponse {
        access_token: &issued.access_token,
        token_type: issued.token_type,
        expires_in: issued.expires_in,
        scope: &issued.scope.to_string(),
        refresh_token: issued.refresh_token.as_ref().map(RefreshToken::expose),
        issued_token_type: issued.issued_token_type,
    })
}

/// The token endpoint.
pub async fn token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let post = match form_post(&req, payload, &state).await {
        Ok(post) => post,
        Err(timed_out) => return Ok(timed_out),
    };
    let caller = caller(&req, &state, Endpoint::Token);
    let issued = state.oauth.token(post, &caller).await?;
    Ok(render(&issued))
}

/// The introspection endpoint.
pub async fn introspection(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let post = match form_post(&req, payload, &state).await {
        Ok(post) => post,
        Err(timed_out) => return Ok(timed_out),
    };
    let caller = caller(&req, &state, Endpoint::Introspect);
    let answer = state.oauth.introspect(post, &caller).await?;
    Ok(no_store().json(answer))
}

/// The revocation endpoint: 200 with an empty body, also for unknown tokens.
pub async fn revocation(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let post = match form_post(&req, payload, &state).await {
        Ok(post) => post,
        Err(timed_out) => return Ok(timed_out),
    };
    let caller = caller(&req, &state, Endpoint::Revoke);
    state.oauth.revoke(post, &caller).await?;
    Ok(no_store().finish())
}
