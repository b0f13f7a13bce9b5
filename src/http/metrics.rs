//! `GET /metrics`: Prometheus text (the `OpenMetrics` format).

use actix_web::{web, HttpResponse};
use prometheus_client::{
    encoding::text::encode,
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{keys::KeyState, state::AppState};

/// Renders the gauges that describe the signing keys and the rotation safety signal.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let status = match state.key_manager.stored_status(state.clock.now()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error.cause_chain = ?e, "metrics could not read the key status");
            return super::errors::json_error(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "metrics are temporarily unavailable",
            );
        }
    };
    let mut registry = Registry::with_prefix("portcullis");
    let keys = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
    registry.register(
        "signing_keys",
        "Signing keys by lifecycle state",
        keys.clone(),
    );
    for state_name in [KeyState::Next, KeyState::Current, KeyState::Retired] {
        let n = status.keys.iter().filter(|k| k.state == state_name).count();
        keys.get_or_create(&vec![("state", state_name.as_str())])
            .set(n as i64);
    }
    let seen = Gauge::<i64>::default();
    seen.set(status.consumers_seen_last_day as i64);
    registry.register(
        "jwks_consumers_seen",
        "JWKS consumers seen in the last 24 hours",
        seen,
    );
    let missing = Gauge::<i64>::default();
    missing.set(status.consumers_missing_next_key.len() as i64);
    registry.register(
        "jwks_consumers_missing_next_key",
        "JWKS consumers seen in the last 24 hours whose JWKS lacks the next signing key",
        missing,
    );
    let next = Gauge::<i64>::default();
    next.set(status.next_rotation_at.map_or(0, |t| t.timestamp()));
    registry.register(
        "next_key_rotation_timestamp_seconds",
        "Earliest time of the next scheduled key rotation (0: none scheduled)",
        next,
    );
    let mut body = String::new();
    if encode(&mut body, &registry).is_err() {
        return super::errors::json_error(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "metrics could not be encoded",
        );
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}
