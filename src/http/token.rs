//! `POST /token` (RFC 6749 §4.4): parse → authenticate → grant → render.

use actix_web::{
    http::header::{self, HeaderValue},
    web, HttpRequest, HttpResponse,
};
use serde::Serialize;

use super::{has_media_type, read_body, BodyError};
use crate::{
    oauth::{
        client_auth::ClientCredentials, grant, request::FormParams, request::TokenRequest,
        OAuthError,
    },
    state::AppState,
};

/// RFC 6749 §5.1 successful response.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u32,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
}

/// The token endpoint.
pub async fn token(
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    if !has_media_type(&req, "application/x-www-form-urlencoded") {
        return Err(OAuthError::InvalidRequest(
            "the request body must be application/x-www-form-urlencoded",
        ));
    }
    let body = read_body(body, state.settings.max_body_bytes).map_err(|e| match e {
        BodyError::TooLarge(n) => OAuthError::BodyTooLarge(n),
        BodyError::Unreadable => OAuthError::InvalidRequest("the request body could not be read"),
    })?;
    let params = FormParams::parse(&body)?;
    let request = TokenRequest::parse(&params)?;
    let creds = ClientCredentials::extract(
        req.headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
        &params,
    )?;
    let now = state.clock.now();
    let client = grant::authenticate(&state, &creds, now).await?;
    let issued = grant::issue(&state, &client, request, now)?;
    let scope = issued.scope.to_string();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(TokenResponse {
            access_token: &issued.access_token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            scope: &scope,
        }))
}
