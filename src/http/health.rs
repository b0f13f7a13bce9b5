//! `/healthz` (the process answers) and `/readyz` (the database answers, a
//! signing key is loaded, and the server is not draining for shutdown).

use std::{sync::atomic::Ordering, time::Duration};

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::{http::state::AppState, store::Store};

/// Liveness.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "status": "ok" }))
}

/// Readiness: 200 when the database answers within two seconds, else 503;
/// 503 with status `draining` once shutdown has begun (SIGTERM), so load
/// balancers stop sending traffic before the listeners close.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = matches!(
        tokio::time::timeout(Duration::from_secs(2), state.oauth.store.ping()).await,
        Ok(Ok(()))
    );
    let draining = state.draining.load(Ordering::Relaxed);
    let kid = state.oauth.keys.current().kid().to_owned();
    let status = match (draining, database) {
        (true, _) => "draining",
        (false, true) => "ready",
        (false, false) => "unavailable",
    };
    let body = json!({
        "status": status,
        "database": if database { "ok" } else { "unreachable" },
        "signing_key": kid,
    });
    let mut response = if database && !draining {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}
