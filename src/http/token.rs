//! The OAuth endpoints that take form posts from authenticated clients:
//! `POST /token` (RFC 6749 §4.4, §6), `POST /introspect` (RFC 7662) and
//! `POST /revoke` (RFC 7009). Each parses, authenticates, calls into
//! [`crate::oauth`], and renders with `Cache-Control: no-store`.

use actix_web::{
    http::header::{self, HeaderValue},
    web, HttpRequest, HttpResponse, HttpResponseBuilder,
};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{has_media_type, read_body, BodyError};
use crate::{
    clients::Client,
    oauth::{
        client_auth::ClientCredentials,
        grant, introspect,
        request::{FormParams, TokenReference, TokenRequest},
        revoke, OAuthError,
    },
    state::AppState,
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
    now: DateTime<Utc>,
}

/// Reads the form body, then authenticates the client (Basic or post).
async fn client_form(
    req: &HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
    state: &AppState,
    before_auth: impl FnOnce(&FormParams) -> Result<(), OAuthError>,
) -> Result<ClientForm, OAuthError> {
    if !has_media_type(req, "application/x-www-form-urlencoded") {
        return Err(OAuthError::InvalidRequest(
            "the request body must be application/x-www-form-urlencoded",
        ));
    }
    let body = read_body(body, state.settings.max_body_bytes).map_err(|e| match e {
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
    let now = state.clock.now();
    let client = grant::authenticate(state, &creds, now).await?;
    Ok(ClientForm {
        params,
        client,
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

/// The token endpoint.
pub async fn token(
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let mut request = None;
    let form = client_form(&req, body, &state, |params| {
        request = Some(TokenRequest::parse(params)?);
        Ok(())
    })
    .await?;
    let request = request.ok_or(OAuthError::InvalidRequest("grant_type is required"))?;
    let issued = grant::issue(&state, &form.client, request, form.now).await?;
    let scope = issued.scope.to_string();
    Ok(no_store().json(TokenResponse {
        access_token: &issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        scope: &scope,
        refresh_token: issued.refresh_token.as_ref().map(RefreshToken::expose),
    }))
}

/// The introspection endpoint.
pub async fn introspection(
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let form = client_form(&req, body, &state, |_| Ok(())).await?;
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
    let form = client_form(&req, body, &state, |_| Ok(())).await?;
    let reference = TokenReference::parse(&form.params)?;
    revoke::revoke(&state, &form.client, &reference, form.now).await?;
    Ok(no_store().finish())
}
