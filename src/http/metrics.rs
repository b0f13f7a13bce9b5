//! `GET /metrics`: Prometheus text (the `OpenMetrics` format).

use crate::{metrics::Scrape, state::AppState};
use actix_web::{web, HttpResponse};

/// Renders every metric (see [`crate::metrics`]).
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
    let scrape = Scrape {
        keys: &status,
        pool: state.store.pool_stats(),
        quota_usage: state.quotas.usage(state.clock.now()),
    };
    let Ok(body) = state.metrics.render(&scrape) else {
        return super::errors::json_error(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "metrics could not be encoded",
        );
    };
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}
