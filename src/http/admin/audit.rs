//! `GET /admin/audit`: the audit trail, filtered and paginated.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{auth::AdminPrincipal, page};
use crate::{
    audit::AuditFilter,
    http::errors::ApiError,
    http::state::AppState,
    store::{Store, StoreError},
};

/// How long the listing waits for this process's queued events to be written.
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Query of `GET /admin/audit`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    client_id: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    until: Option<String>,
    after: Option<i64>,
    limit: Option<u32>,
}

fn time(value: Option<&str>, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .and_then(|secs| DateTime::from_timestamp(secs, 0))
                .or_else(|| {
                    DateTime::parse_from_rfc3339(v)
                        .ok()
                        .map(|t| t.with_timezone(&Utc))
                })
                .ok_or_else(|| {
                    ApiError::InvalidRequest(format!(
                        "{name} must be RFC 3339 or seconds since the epoch"
                    ))
                })
        })
        .transpose()
}

impl AuditQuery {
    /// The filter the query asks for, and the page size.
    fn filter(&self) -> Result<(AuditFilter, u32), ApiError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::InvalidRequest(
                "limit must be between 1 and 1000".into(),
            ));
        }
        let filter = AuditFilter {
            client_id: self.client_id.clone(),
            kind: self.kind.clone(),
            since: time(self.since.as_deref(), "since")?,
            until: time(self.until.as_deref(), "until")?,
            after_id: self.after.unwrap_or(0).max(0),
            // One more than the page tells whether another page follows.
            limit: limit + 1,
        };
        Ok((filter, limit))
    }
}

/// Events in chain order; `next_after` is the cursor of the next page.
pub async fn list(
    _: AdminPrincipal,
    query: Result<web::Query<AuditQuery>, actix_web::Error>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q = query.map_err(|e| ApiError::InvalidRequest(format!("invalid query: {e}")))?;
    let (filter, limit) = q.filter()?;
    // During an outage, answer 503 at once rather than wait for the flush.
    let store = state.oauth.store.background();
    store
        .check_available()
        .map_err(|e| ApiError::Internal(e.into()))?;
    // Events recorded by this process so far are visible in the answer.
    if tokio::time::timeout(FLUSH_WAIT, state.oauth.audit.flush())
        .await
        .is_err()
    {
        let late = StoreError::Unavailable("the audit trail could not be written in time");
        return Err(ApiError::Internal(late.into()));
    }
    // A large trail may take a while to filter: the background deadline.
    let events = store
        .audit_events(&filter)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let (events, next_after) = page(events, limit, |e| e.id);
    Ok(HttpResponse::Ok().json(json!({ "events": events, "next_after": next_after })))
}
