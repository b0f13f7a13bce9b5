//! Client administration over REST (RFC 7591 registration, RFC 7592-style
//! read/update/delete), plus secret rotation and enable/disable.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::json;

use super::{auth::AdminPrincipal, page};
use crate::{
    clients::{members, whole::WholeNumber, ClientView, RegistrationRequest, RegistryError},
    config::ListenerSettings,
    http::state::AppState,
    http::{errors::ApiError, has_media_type, read_body, BodyError},
};

/// A request body, read by `json_body` within `request_timeout`.
pub type Body = web::Payload;

/// Reads a JSON body (at most `max_body_bytes`, within `request_timeout`);
/// an empty body is `T::default()` when `optional`.
pub(super) async fn json_body<T: DeserializeOwned + Default>(
    req: &HttpRequest,
    body: Body,
    listeners: &ListenerSettings,
    optional: bool,
    invalid: fn(String) -> ApiError,
) -> Result<T, ApiError> {
    let body = read_body(req, body, listeners).await.map_err(|e| match e {
        BodyError::TooLarge(n) => ApiError::BodyTooLarge(n),
        BodyError::TimedOut(seconds) => ApiError::BodyTimeout(seconds),
        BodyError::Unreadable => {
            ApiError::InvalidRequest("the request body could not be read".into())
        }
    })?;
    if optional && body.is_empty() {
        return Ok(T::default());
    }
    if !has_media_type(req, "application/json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    // Serde would also fill a struct from a JSON array, member by member.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(invalid("the request body must be a JSON object".into()));
    }
    serde_json::from_slice(&body)
        .map_err(|e| invalid(format!("the request body is not valid: {e}")))
}

/// Reads a registration body: a JSON object of accepted members
/// ([`members::parse`]), or `invalid_client_metadata` naming the problem.
async fn registration_body(
    req: &HttpRequest,
    body: Body,
    state: &AppState,
) -> Result<RegistrationRequest, ApiError> {
    let value: serde_json::Value = json_body(
        req,
        body,
        &state.settings.listeners,
        false,
        ApiError::InvalidClientMetadata,
    )
    .await?;
    members::parse(value).map_err(ApiError::InvalidClientMetadata)
}

fn path_id(path: &web::Path<String>) -> &str {
    path.as_str()
}

/// `POST /admin/clients`: register a client; the secret is in this response only.
pub async fn create(
    admin: AdminPrincipal,
    req: HttpRequest,
    body: Body,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let request = registration_body(&req, body, &state).await?;
    let (client, secret) = state
        .registry
        .create(&admin.actor, request, state.clock.now())
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/admin/clients/{}", client.id)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(ClientView::new(&client, secret.as_ref())))
}

/// Query of `GET /admin/clients`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<u32>,
    after: Option<String>,
}

impl ListQuery {
    fn limit(&self) -> Result<u32, ApiError> {
        let limit = self.limit.unwrap_or(50);
        if (1..=200).contains(&limit) {
            Ok(limit)
        } else {
            Err(ApiError::InvalidRequest(
                "limit must be between 1 and 200".into(),
            ))
        }
    }
}

/// `GET /admin/clients?limit=&after=`: a page of clients ordered by id.
pub async fn list(
    _: AdminPrincipal,
    query: Result<web::Query<ListQuery>, actix_web::Error>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = query.map_err(|e| ApiError::InvalidRequest(format!("invalid query: {e}")))?;
    let limit = query.limit()?;
    let after = query.after.as_deref().filter(|a| !a.is_empty());
    // One more than the page tells whether another page follows.
    let clients = state
        .registry
        .list(after, limit + 1)
        .await
        .map_err(|e| match e {
            RegistryError::InvalidMetadata(m) => ApiError::InvalidRequest(format!("after: {m}")),
            e => e.into(),
        })?;
    let (clients, next_after) = page(clients, limit, |c| c.id.to_string());
    let views: Vec<ClientView> = clients.iter().map(|c| ClientView::new(c, None)).collect();
    Ok(HttpResponse::Ok().json(json!({ "clients": views, "next_after": next_after })))
}

/// `GET /admin/clients/{client_id}`.
pub async fn show(
    _: AdminPrincipal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let client = state.registry.get(path_id(&path)).await?;
    Ok(HttpResponse::Ok().json(ClientView::new(&client, None)))
}

/// `PUT /admin/clients/{client_id}`: replace the metadata (omitted fields take defaults).
pub async fn update(
    admin: AdminPrincipal,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let request = registration_body(&req, body, &state).await?;
    let client = state
        .registry
        .update(&admin.actor, path_id(&path), request, state.clock.now())
        .await?;
    Ok(HttpResponse::Ok().json(ClientView::new(&client, None)))
}

/// `DELETE /admin/clients/{client_id}`.
pub async fn delete(
    admin: AdminPrincipal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state
        .registry
        .delete(&admin.actor, path_id(&path), state.clock.now())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Body of a secret rotation.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// Seconds the previous secret(s) stay valid; 0 (default) ends them now.
    #[serde(default)]
    grace_period: WholeNumber,
}

/// `POST /admin/clients/{client_id}/secret`: issue a new secret.
pub async fn rotate_secret(
    admin: AdminPrincipal,
    req: HttpRequest,
    path: web::Path<String>,
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
    let (secret, until) = state
        .registry
        .rotate_secret(&admin.actor, path_id(&path), request.grace_period.0, now)
        .await
        .map_err(|e| match e {
            RegistryError::InvalidMetadata(m) => ApiError::InvalidRequest(m),
            e => e.into(),
        })?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(new_secret(path_id(&path), &secret, until)))
}

/// The one response that shows a rotated secret.
fn new_secret(
    client_id: &str,
    secret: &crate::clients::PlainSecret,
    previous_until: chrono::DateTime<chrono::Utc>,
) -> serde_json::Value {
    json!({
        "client_id": client_id,
        "client_secret": secret.expose(),
        "client_secret_expires_at": 0,
        "previous_secrets_expire_at": previous_until.timestamp(),
    })
}

/// `POST /admin/clients/{client_id}/disable`.
pub async fn disable(
    admin: AdminPrincipal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let client = state
        .registry
        .set_enabled(&admin.actor, path_id(&path), false, state.clock.now())
        .await?;
    Ok(HttpResponse::Ok().json(ClientView::new(&client, None)))
}

/// `POST /admin/clients/{client_id}/enable`.
pub async fn enable(
    admin: AdminPrincipal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let client = state
        .registry
        .set_enabled(&admin.actor, path_id(&path), true, state.clock.now())
        .await?;
    Ok(HttpResponse::Ok().json(ClientView::new(&client, None)))
}

/// `POST /admin/clients/{client_id}/revoke-tokens`: every live token of the
/// client stops working — its refresh tokens, and (on introspection) every
/// access token issued until now.
pub async fn revoke_tokens(
    admin: AdminPrincipal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let families = state
        .registry
        .revoke_tokens(&admin.actor, path_id(&path), now)
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "client_id": path_id(&path),
        "refresh_token_families_revoked": families,
        "access_tokens_issued_before": now.timestamp(),
    })))
}

/// `POST /admin/clients/{client_id}/unlock`: lift a lockout now.
pub async fn unlock(
    admin: AdminPrincipal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let client = state
        .registry
        .unlock(&admin.actor, path_id(&path), state.clock.now())
        .await?;
    state.oauth.lockout.unlock(client.id.as_str());
    Ok(HttpResponse::Ok().json(ClientView::new(&client, None)))
}
