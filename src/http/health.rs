//! `/healthz` (the process answers) and `/readyz` (the database answers and a
//! signing key is loaded).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::{http::state::AppState, store::Store};

/// Liveness.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "status": "ok" }))
}

/// Readiness: 200 when the database answers within two seconds, else 503.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = matches!(
        tokio::time::timeout(Duration::from_secs(2), state.oauth.store.ping()).await,
        Ok(Ok(()))
    );
    let kid = state.oauth.keys.current().kid().to_owned();
    let body = json!({
        "status": if database { "ready" } else { "unavailable" },
        "database": if database { "ok" } else { "unreachable" },
        "signing_key": kid,
    });
    let mut response = if database {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}
