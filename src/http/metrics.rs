//! `GET /metrics`: Prometheus text (the `OpenMetrics` format).

use actix_web::{web, HttpResponse};

use super::{errors::unavailable, state::AppState};
use crate::metrics::Scrape;

/// Renders every metric (see [`crate::metrics`]).
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let now = state.clock.now();
    let status = match state.key_manager.stored_status(now).await {
        Ok(s) => s,
        Err(e) => return unavailable("metrics are temporarily unavailable", &e),
    };
    let scrape = Scrape {
        keys: &status,
        pool: state.oauth.store.pool_stats(),
        quota_usage: state.oauth.quotas.usage(now),
    };
    match state.oauth.metrics.render(&scrape) {
        Ok(body) => HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .body(body),
        Err(_) => super::errors::json_error(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "metrics could not be encoded",
        ),
    }
}
