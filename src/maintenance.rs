//! Background work of a running server: client-change notices (PostgreSQL),
//! key checks (rotation, retention,
//! reloading other replicas' changes), purging expired token state, syncing
//! token-quota counts across replicas, trimming rate-limiter memory,
//! reloading the policy file when it changes, exporting the audit trail and
//! removing audit events past their retention.

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    audit::{export, retention},
    keys::KeyManager,
    oauth::TokenServer,
    store::{ClientChange, Store},
};

/// What the background tasks work on: the protocol service (store, caches,
/// quotas, limits, policy, audit, clock) and the signing-key lifecycle.
#[derive(Clone)]
pub struct Background {
    /// The OAuth protocol service.
    pub oauth: Arc<TokenServer>,
    /// The signing-key lifecycle.
    pub key_manager: Arc<KeyManager>,
}

/// How often quota counts are synced and the policy file is checked.
const FAST: Duration = Duration::from_secs(2);
/// How often audit events past their retention are removed.
const AUDIT_RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Starts the background tasks; the caller aborts them at shutdown.
#[must_use]
pub fn spawn(state: &Background) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![every(FAST, state.clone(), |s| fast_tick(s.oauth))];
    if let Some(changes) = state.oauth.store.subscribe_client_changes() {
        tasks.push(tokio::spawn(follow_client_changes(
            changes,
            Arc::clone(&state.oauth),
        )));
    }
    let key_refresh = state.oauth.settings.keys.key_refresh_interval;
    if key_refresh > 0 {
        tasks.push(every(
            Duration::from_secs(key_refresh),
            state.clone(),
            key_tick,
        ));
    }
    let exporter = export::spawn(
        state.oauth.store.clone(),
        &state.oauth.settings.audit.audit_export,
    );
    let written = exporter.as_ref().and_then(|e| e.written.clone());
    tasks.extend(exporter.map(|e| e.task));
    if state.oauth.settings.audit.audit_retention > 0 {
        tasks.push(every(AUDIT_RETENTION_EVERY, state.clone(), move |s| {
            let up_to = written
                .as_ref()
                .map_or(i64::MAX, |w| w.load(Ordering::Acquire));
            audit_retention_tick(s.oauth, up_to)
        }));
    }
    tasks
}

/// Removes audit events past their retention, none beyond `up_to` (what
/// the file export has written).
pub async fn audit_retention_tick(state: Arc<TokenServer>, up_to: i64) {
    let retention = state.settings.audit.audit_retention;
    let now = state.clock.now();
    match retention::purge(&state.store, retention, up_to, retention::CHUNK, now).await {
        Ok(p) => {
            if let Some(c) = p.checkpoint {
                tracing::info!(
                    removed = p.removed,
                    checkpoint = c.id,
                    last_id = c.last_id,
                    "audit events past their retention removed"
                );
            }
        }
        Err(e) => {
            tracing::error!(error.cause_chain = ?e, "removing old audit events failed; will retry");
        }
    }
}

fn every<F, Fut>(period: Duration, state: Background, work: F) -> JoinHandle<()>
where
    F: Fn(Background) -> Fut + Send + 'static,
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

/// Drops clients from the cache when any replica announces a change. Whenever
/// the subscription is (re)established or lost, the whole cache is dropped,
/// since notices may have been missed.
async fn follow_client_changes(mut changes: mpsc::Receiver<ClientChange>, state: Arc<TokenServer>) {
    while let Some(change) = changes.recv().await {
        match change {
            ClientChange::Changed(id) => state.clients.invalidate(&id),
            ClientChange::Subscribed | ClientChange::Lost => state.clients.clear(),
        }
    }
}

/// Rotate when due, drop expired keys, reload keys changed by other replicas
/// (the bound on how long a replica signs with a key another one retired),
/// and purge expired revocations and refresh families.
pub async fn key_tick(state: Background) {
    let oauth = &state.oauth;
    let now = oauth.clock.now();
    match state.key_manager.tick(now).await {
        Ok(changes) => {
            oauth
                .audit
                .record_key_changes(&changes, "system", now)
                .await;
        }
        Err(e) => tracing::error!(error.cause_chain = ?e, "signing key check failed; will retry"),
    }
    match oauth.store.purge_expired_tokens(now).await {
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
pub async fn fast_tick(state: Arc<TokenServer>) {
    if let Err(e) = state.quotas.sync(&state.store, state.clock.now()).await {
        tracing::error!(error.cause_chain = ?e, "token-quota sync failed; will retry");
    }
    state.limits.retain_recent();
    if let Some(policy) = &state.policy {
        let policy = Arc::clone(policy);
        let _ = tokio::task::spawn_blocking(move || policy.reload_if_changed()).await;
    }
}
