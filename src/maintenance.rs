//! Background work of a running server: client-change notices (PostgreSQL),
//! key checks (rotation, retention,
//! reloading other replicas' changes), purging expired token state, syncing
//! token-quota counts across replicas, trimming rate-limiter memory, and
//! reloading the policy file when it changes.

use std::{sync::Arc, time::Duration};

use tokio::task::JoinHandle;

use crate::{
    audit::AuditEvent,
    keys::lifecycle::KeyChange,
    state::AppState,
    store::{Storage, Store, CLIENT_CHANNEL},
};

/// How often quota counts are synced and the policy file is checked.
const FAST: Duration = Duration::from_secs(2);

/// Starts the background tasks; the caller aborts them at shutdown.
#[must_use]
pub fn spawn(state: &AppState) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![every(FAST, state.clone(), fast_tick)];
    if let Storage::Postgres(pg) = &state.store {
        tasks.push(tokio::spawn(listen_for_client_changes(
            pg.pool().clone(),
            state.clone(),
        )));
    }
    if state.settings.keys.key_refresh_interval > 0 {
        tasks.push(every(
            Duration::from_secs(state.settings.keys.key_refresh_interval),
            state.clone(),
            key_tick,
        ));
    }
    tasks
}

fn every<F, Fut>(period: Duration, state: AppState, work: F) -> JoinHandle<()>
where
    F: Fn(AppState) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            interval.tick().await;
            work(state.clone()).await;
        }
    })
}

/// Drops clients from the cache when any replica announces a change
/// (`NOTIFY portcullis_clients`). Whenever the subscription is (re)established
/// or lost, the whole cache is dropped, since notices may have been missed.
async fn listen_for_client_changes(pool: sqlx::PgPool, state: AppState) {
    loop {
        match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(CLIENT_CHANNEL).await {
                    tracing::error!(error.cause_chain = ?e, "could not subscribe to client changes");
                } else {
                    state.clients.clear();
                    loop {
                        match listener.recv().await {
                            Ok(notice) => state.clients.invalidate(notice.payload()),
                            Err(e) => {
                                tracing::warn!(error.cause_chain = ?e, "client-change subscription lost; cache dropped");
                                state.clients.clear();
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error.cause_chain = ?e, "could not listen for client changes; retrying");
            }
        }
        state.clients.clear();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Rotate when due, drop expired keys, reload keys changed by other replicas
/// (the bound on how long a replica signs with a key another one retired),
/// and purge expired revocations and refresh families.
pub async fn key_tick(state: AppState) {
    let now = state.clock.now();
    match state.key_manager.tick(now).await {
        Ok(changes) => audit_key_changes(&state, &changes, "system").await,
        Err(e) => tracing::error!(error.cause_chain = ?e, "signing key check failed; will retry"),
    }
    match state.store.purge_expired_tokens(now).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            purged = n,
            "expired revocations and refresh families purged"
        ),
        Err(e) => {
            tracing::error!(error.cause_chain = ?e, "purging expired tokens failed; will retry");
        }
    }
}

/// Sync quota counts, trim limiter memory, reload the policy if it changed.
pub async fn fast_tick(state: AppState) {
    if let Err(e) = state.quotas.sync(&state.store, state.clock.now()).await {
        tracing::error!(error.cause_chain = ?e, "token-quota sync failed; will retry");
    }
    state.limits.retain_recent();
    if let Some(policy) = &state.policy {
        let policy = Arc::clone(policy);
        let _ = tokio::task::spawn_blocking(move || policy.reload_if_changed()).await;
    }
}

/// Records key changes in the audit trail.
pub async fn audit_key_changes(state: &AppState, changes: &[KeyChange], actor: &str) {
    for change in changes {
        let (kind, key_id) = change.summary();
        let event = AuditEvent::new(kind, actor, state.clock.now())
            .details(serde_json::json!({ "kid": key_id }));
        state.audit.record(event).await;
    }
}
