//! `POST /admin/apply`: the declarative document of `portcullis apply` over
//! REST, for a controller or a CI job. Secret references resolve on the
//! server (its environment and files: mounted Kubernetes Secrets).

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{auth::AdminPrincipal, clients::Body};
use crate::{
    clients::apply::{ApplyError, ApplyOptions, Origin, ProcessEnvironment, Source},
    http::{errors::ApiError, has_media_type, read_body, state::AppState, BodyError},
};

/// Query of `POST /admin/apply`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyQuery {
    dry_run: Option<bool>,
    prune: Option<bool>,
}

/// How the audit trail names documents sent over REST.
const API: &str = "api";

/// `POST /admin/apply?dry_run=&prune=`: reconcile the clients to the
/// document in the body (JSON or YAML) and answer the plan.
pub async fn apply(
    admin: AdminPrincipal,
    req: HttpRequest,
    query: Result<web::Query<ApplyQuery>, actix_web::Error>,
    body: Body,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = query.map_err(|e| ApiError::InvalidRequest(format!("invalid query: {e}")))?;
    let bytes = read_body(&req, body, &state.settings.listeners)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge(n) => ApiError::BodyTooLarge(n),
            BodyError::TimedOut(seconds) => ApiError::BodyTimeout(seconds),
            BodyError::Unreadable => {
                ApiError::InvalidRequest("the request body could not be read".into())
            }
        })?;
    if !["application/json", "application/yaml"]
        .iter()
        .any(|t| has_media_type(&req, t))
    {
        return Err(ApiError::UnsupportedMediaType);
    }
    let sources = [Source {
        name: API.to_owned(),
        bytes: bytes.to_vec(),
    }];
    let options = ApplyOptions {
        dry_run: query.dry_run.unwrap_or(false),
        prune: query.prune.unwrap_or(false),
    };
    let origin = Origin { file: API.into() };
    let plan = state
        .registry
        .apply_document(
            &admin.actor,
            &origin,
            &sources,
            &ProcessEnvironment,
            options,
            state.clock.now(),
        )
        .await
        .map_err(|e| match e {
            e @ ApplyError::Invalid(_) => ApiError::InvalidRequest(e.to_string()),
            e @ ApplyError::Conflict(_) => ApiError::StateConflict(e.to_string()),
            ApplyError::Registry(e) => e.into(),
        })?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(plan))
}
