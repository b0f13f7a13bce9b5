//! Signing-key administration: the lifecycle status and manual rotation.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{auth::AdminPrincipal, clients::json_body, clients::Body};
use crate::{http::errors::ApiError, http::state::AppState, keys::manager::RotateError};

/// `GET /admin/keys`: every key with its state and transition times (never
/// private material), the rotation schedule, and the safety signal.
pub async fn list(_: AdminPrincipal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let status = state
        .key_manager
        .status(now)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let s = &state.settings;
    Ok(HttpResponse::Ok().json(json!({
        "keys": status.keys,
        "next_rotation_at": status.next_rotation_at,
        "key_rotation_interval": s.keys.key_rotation_interval,
        "key_prepublish": s.keys.key_prepublish,
        "retired_key_retention": s.tokens.retired_key_retention(),
        "jwks_max_age": s.tokens.jwks_max_age,
        "consumers_seen_last_day": status.consumers_seen_last_day,
        "consumers_missing_next_key": status.consumers_missing_next_key,
    })))
}

/// Body of a manual rotation.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// Remove the current key from the JWKS at once (it leaked).
    #[serde(default)]
    compromised: bool,
    /// Refuse while the rotation could break verifiers.
    #[serde(default)]
    safe: bool,
}

/// `POST /admin/keys/rotate`: promote the published next key now.
pub async fn rotate(
    admin: AdminPrincipal,
    req: HttpRequest,
    body: Body,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let request: RotateRequest = json_body(
        &req,
        body,
        &state.settings.listeners,
        true,
        ApiError::InvalidRequest,
    )
    .await?;
    let now = state.clock.now();
    let report = state
        .key_manager
        .rotate(now, request.compromised, request.safe)
        .await
        .map_err(|e| match e {
            RotateError::Unsafe(warnings) => ApiError::RotationUnsafe(warnings.join("; ")),
            RotateError::Keys(e) => ApiError::Internal(e.into()),
        })?;
    state
        .oauth
        .audit
        .record_rotation(&report, request.compromised, &admin.actor, now)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(HttpResponse::Ok().json(report))
}
