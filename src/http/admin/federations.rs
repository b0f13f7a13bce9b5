//! Federation administration over REST: trusted external token issuers
//! (workload identity federation), created, listed, shown, replaced,
//! enabled, disabled and deleted like clients; every change audited.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde_json::json;

use super::{
    auth::AdminPrincipal,
    clients::{json_body, Body},
};
use crate::{
    federation::{Federation, FederationRequest},
    http::{errors::ApiError, state::AppState},
};

async fn request(
    req: &HttpRequest,
    body: Body,
    state: &AppState,
) -> Result<FederationRequest, ApiError> {
    json_body(
        req,
        body,
        &state.settings.listeners,
        false,
        ApiError::InvalidRequest,
    )
    .await
}

/// `POST /admin/federations`: register a federation.
pub async fn create(
    admin: AdminPrincipal,
    req: HttpRequest,
    body: Body,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let request = request(&req, body, &state).await?;
    let federation = state
        .federations
        .create(&admin.actor, request, state.clock.now())
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/admin/federations/{}", federation.id),
        ))
        .json(federation.view()))
}

/// `GET /admin/federations`: every federation, ordered by id.
pub async fn list(_: AdminPrincipal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let all = state.federations.list().await?;
    let views: Vec<_> = all.iter().map(Federation::view).collect();
    Ok(HttpResponse::Ok().json(json!({ "federations": views })))
}

/// `GET /admin/federations/{federation_id}`.
pub async fn show(
    _: AdminPrincipal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let federation = state.federations.get(&path).await?;
    Ok(HttpResponse::Ok().json(federation.view()))
}

/// `PUT /admin/federations/{federation_id}`: replace (omitted members take defaults).
pub async fn update(
    admin: AdminPrincipal,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let request = request(&req, body, &state).await?;
    let federation = state
        .federations
        .update(&admin.actor, &path, request, state.clock.now())
        .await?;
    Ok(HttpResponse::Ok().json(federation.view()))
}

/// `DELETE /admin/federations/{federation_id}`.
pub async fn delete(
    admin: AdminPrincipal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state
        .federations
        .delete(&admin.actor, &path, state.clock.now())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /admin/federations/{federation_id}/disable`: its tokens are refused.
pub async fn disable(
    admin: AdminPrincipal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let f = state
        .federations
        .set_enabled(&admin.actor, &path, false, state.clock.now())
        .await?;
    Ok(HttpResponse::Ok().json(f.view()))
}

/// `POST /admin/federations/{federation_id}/enable`.
pub async fn enable(
    admin: AdminPrincipal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let f = state
        .federations
        .set_enabled(&admin.actor, &path, true, state.clock.now())
        .await?;
    Ok(HttpResponse::Ok().json(f.view()))
}
