//! `/healthz` (the process answers) and `/readyz` (the database answers —
//! or the server is serving from memory within `outage_grace` — a signing
//! key is loaded, and the server is not draining for shutdown).
//!
//! During a database outage `/readyz` stays 200 with status `degraded` while
//! cached clients are still served: every replica shares the one database,
//! so taking them all out of a load balancer would only turn a partial
//! outage into a total one. Beyond the grace it answers 503, and so it does
//! while the audit journal refuses events (full or unwritable): this replica
//! issues nothing then, and others may still have room.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::http::state::AppState;

/// Liveness.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "status": "ok" }))
}

/// Readiness, from memory (the background prober pings the database every
/// second): `ready` (200) when the database is reachable; `degraded` (200)
/// when it is not but cached clients are served within `outage_grace`, with
/// the seconds of grace left; `unavailable` (503) beyond the grace or while
/// the audit journal refuses events; 503 with status `draining` once
/// shutdown has begun (SIGTERM), so load balancers stop sending traffic
/// before the listeners close.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let health = state.oauth.store.health();
    let database = health.is_up();
    let grace_left = health.grace_left(state.clock.now());
    let draining = state.draining.load(Ordering::Relaxed);
    let journal = state.oauth.audit.gauges().writable;
    let kid = state.oauth.keys.current().kid().to_owned();
    let (status, ready) = match (draining, journal, database, grace_left) {
        (true, ..) => ("draining", false),
        (false, true, true, _) => ("ready", true),
        (false, true, false, Some(_)) => ("degraded", true),
        // The journal refuses events, or the grace is used up.
        (false, false, ..) | (false, true, false, None) => ("unavailable", false),
    };
    let mut body = json!({
        "status": status,
        "database": if database { "ok" } else { "unreachable" },
        "audit_journal": if journal { "ok" } else { "refusing" },
        "signing_key": kid,
    });
    if !database {
        body["database_breaker"] = json!(health.breaker_state().as_str());
        body["outage_grace_remaining"] = json!(grace_left.map_or(0, |d| d.num_seconds()));
    }
    let mut response = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}
