//! The OAuth endpoints that take form posts from authenticated clients:
//! `POST /token` (RFC 6749 §4.4, §6), `POST /introspect` (RFC 7662) and
//! `POST /revoke` (RFC 7009). Each reads the form and the caller, calls the
//! [`crate::oauth::TokenServer`], and renders with `Cache-Control: no-store`.

use actix_web::{
    http::header::{self, HeaderValue},
    web, HttpRequest, HttpResponse, HttpResponseBuilder,
};

use super::{
    body_timed_out, caller::caller, has_media_type, read_body, state::AppState, BodyError,
};
use crate::oauth::{
    dpop::DpopHeader, issuance::IssuedToken, request::FormParams, Endpoint, FormPost, OAuthError,
};

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

/// The RFC 6749 §5.1 successful response (`token_type` `DPoP` for a
/// DPoP-bound token, RFC 9449 §5; `issued_token_type` for token exchange,
/// RFC 8693 §2.2.1), written field by field: the same JSON a serialised
/// struct gives, without scanning the (escape-free) JWT byte by byte.
fn render(issued: &IssuedToken) -> HttpResponse {
    let mut response = no_store();
    if let Some(nonce) = &issued.dpop_nonce {
        response.insert_header(("DPoP-Nonce", nonce.as_str()));
    }
    response
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(token_response_json(issued))
}

/// The body of a successful token response.
fn token_response_json(issued: &IssuedToken) -> String {
    use std::fmt::Write as _;
    let mut body = String::with_capacity(issued.access_token.len() + 192);
    body.push_str("{\"access_token\":");
    push_json_str(&mut body, &issued.access_token);
    body.push_str(",\"token_type\":");
    push_json_str(&mut body, issued.token_type);
    body.push_str(",\"expires_in\":");
    let _ = write!(body, "{}", issued.expires_in);
    if !issued.scope.is_empty() {
        body.push_str(",\"scope\":");
        push_json_str(&mut body, &issued.scope.to_string());
    }
    if let Some(refresh) = &issued.refresh_token {
        body.push_str(",\"refresh_token\":");
        push_json_str(&mut body, refresh.expose());
    }
    if let Some(kind) = issued.issued_token_type {
        body.push_str(",\"issued_token_type\":");
        push_json_str(&mut body, kind);
    }
    body.push('}');
    body
}

/// `s` as a JSON string: as it is between quotes when it needs no escape
/// (printable ASCII without `"` and `\`: JWTs, scopes, refresh tokens),
/// else escaped by `serde_json`.
fn push_json_str(out: &mut String, s: &str) {
    // Every byte is looked at, without branches (no early exit, no lazy
    // operators), which lets the check run on whole vectors: a token is
    // hundreds of bytes.
    #[allow(clippy::needless_bitwise_bool)]
    let plain = s.bytes().fold(true, |plain, b| {
        plain & (0x20..0x7f).contains(&b) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else if let Ok(escaped) = serde_json::to_string(s) {
        out.push_str(&escaped);
    }
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
    // Boxed: the grant's future is large, and moving it by value through
    // the handler's own future costs a copy per poll point (~2 % of a core).
    let issued = Box::pin(state.oauth.token(post, &caller)).await?;
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

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::*;
    use crate::{oauth::scope::ScopeSet, token::refresh::RefreshToken};

    /// The response as the RFC 6749 §5.1 struct serialises it.
    #[derive(Serialize)]
    struct TokenResponse<'a> {
        access_token: &'a str,
        token_type: &'static str,
        expires_in: u32,
        #[serde(skip_serializing_if = "str::is_empty")]
        scope: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        refresh_token: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        issued_token_type: Option<&'static str>,
    }

    fn issued(access_token: &str, scope: &str, refresh: bool, exchange: bool) -> IssuedToken {
        IssuedToken {
            access_token: access_token.to_owned(),
            jti: "j".into(),
            expires_in: 0,
            scope: ScopeSet::parse(scope).unwrap(),
            refresh_token: refresh.then(|| RefreshToken::generate().unwrap()),
            token_type: "Bearer",
            dpop_nonce: None,
            issued_token_type: exchange.then_some("urn:ietf:params:oauth:token-type:access_token"),
            provenance: serde_json::Map::new(),
        }
    }

    #[test]
    fn the_token_response_is_the_serialised_struct() {
        for (token, scope, refresh, exchange, ttl) in [
            ("eyJh.eyJz.c2ln", "read write", false, false, 300),
            ("eyJh.eyJz.c2ln", "", true, true, 0),
            ("not \"a\" jwt\\\n\u{e9}", "a!#[]~", false, false, u32::MAX),
        ] {
            let mut i = issued(token, scope, refresh, exchange);
            i.expires_in = ttl;
            let expected = serde_json::to_string(&TokenResponse {
                access_token: &i.access_token,
                token_type: i.token_type,
                expires_in: i.expires_in,
                scope: &i.scope.to_string(),
                refresh_token: i.refresh_token.as_ref().map(RefreshToken::expose),
                issued_token_type: i.issued_token_type,
            })
            .unwrap();
            assert_eq!(token_response_json(&i), expected);
        }
    }
}
