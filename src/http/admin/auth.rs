//! Admin authentication: `Authorization: Bearer <admin token>`, checked
//! against the configured tokens' digests ([`super::tokens::AdminTokens`]),
//! within the admin rate limit.

use std::future::{ready, Ready};

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};

use super::tokens::AdminTokens;
use crate::{http::errors::ApiError, http::state::AppState};

/// Proof that the request carries a valid admin token, within the admin rate limit.
#[derive(Debug)]
pub struct AdminPrincipal {
    /// The audit trail's name for this admin.
    pub actor: String,
}

impl FromRequest for AdminPrincipal {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return ready(Err(ApiError::Unauthorized));
        };
        let ip = crate::http::caller::caller_ip(req, state);
        if let Err(limited) = state.oauth.limits.check_admin(ip) {
            state.oauth.metrics.rate_limited(limited.limit);
            return ready(Err(ApiError::RateLimited(limited)));
        }
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty());
        ready(match token {
            Some(t) if state.admin_tokens.verify(t.as_bytes()) => Ok(Self {
                actor: AdminTokens::actor(t.as_bytes()),
            }),
            _ => Err(ApiError::Unauthorized),
        })
    }
}
