//! `GET /metrics`: Prometheus text (the `OpenMetrics` format). A scrape reads
//! only memory: the key status as of the last key check, the pool's counters
//! and this process's quota counts.

use actix_web::{web, HttpResponse};

use super::state::AppState;
use crate::metrics::Scrape;

/// Renders every metric (see [`crate::metrics`]).
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let now = state.clock.now();
    let status = state.key_manager.cached_status();
    let scrape = Scrape {
        keys: &status,
        pool: state.oauth.store.pool_stats(),
        quota_usage: state.oauth.quotas.usage(now),
        client_labels: state.settings.limits.metrics_client_labels,
        audit_journal: state.oauth.audit.gauges(),
        database: (
            state.oauth.store.health().is_up(),
            state.oauth.store.health().breaker_state(),
        ),
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
