//! Background work of a running server: the database prober (a ping every
//! second, which notices outages and recovery without traffic), refreshing
//! the in-memory view of revoked access tokens,
//! client-change notices (PostgreSQL), key checks (rotation, retention,
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
/// How often the revoked-token view is refreshed from the database.
const REVOKED_REFRESH: Duration = crate::oauth::revoked::REFRESH;
/// How often folded authentication failures are audited.
const DENIAL_WINDOWS: Duration = Duration::from_millis(250);
/// How often the database is pinged.
const PROBE: Duration = Duration::from_secs(1);

/// Starts the background tasks; the caller aborts them at shutdown.
#[must_use]
pub fn spawn(state: &Background) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![
        every(FAST, state.clone(), |s| fast_tick(s.oauth)),
        every(REVOKED_REFRESH, state.clone(), |s| refresh_revoked(s.oauth)),
        every(DENIAL_WINDOWS, state.clone(), |s| async move {
            let now = s.oauth.clock.now();
            s.oauth.audit.close_denial_windows(Some(now)).await;
        }),
        every(PROBE, state.clone(), |s| async move {
            // The outcome is recorded by the guard (breaker, last contact, up/down).
            let _ = s.oauth.store.probe().await;
        }),
    ];
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
        state.oauth.store.background(),
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
    let store = state.store.background();
    match retention::purge(&store, retention, up_to, retention::CHUNK, now).await {
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

/// Drops clients from the cache when any replica announces a change. While
/// the subscription is lost, notices may be missed: the cache is marked
/// stale (kept, and served within the outage grace while the database is
/// unreachable); once it is (re)established, every stale entry is re-read.
async fn follow_client_changes(mut changes: mpsc::Receiver<ClientChange>, state: Arc<TokenServer>) {
    while let Some(change) = changes.recv().await {
        match change {
            ClientChange::Changed(id) => state.clients.invalidate(&id),
            ClientChange::Lost => state.clients.mark_stale(),
            ClientChange::Subscribed => {
                state.clients.mark_stale();
                match state
                    .clients
                    .reconcile(&state.store, state.clock.now())
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(clients = n, "client cache reconciled with the database");
                    }
                    Err(e) => tracing::warn!(
                        error.cause_chain = ?e,
                        "client cache reconciliation stopped; stale entries are re-read on use"
                    ),
                }
            }
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
    match state.quotas.sync(&state.store, state.clock.now()).await {
        Ok(()) => {}
        // Counting goes on per process; the counts are added once it is back.
        Err(e) if e.is_unavailable() => {
            tracing::debug!(error.cause_chain = ?e, "token-quota sync deferred: database unavailable");
        }
        Err(e) => tracing::error!(error.cause_chain = ?e, "token-quota sync failed; will retry"),
    }
    store_local_replays(&state).await;
    state.limits.retain_recent();
    if let Some(policy) = &state.policy {
        let policy = Arc::clone(policy);
        let _ = tokio::task::spawn_blocking(move || policy.reload_if_changed()).await;
    }
}

/// Adds other processes' revocations to the in-memory view and drops the
/// entries of expired tokens. On failure the view is kept (and stops
/// answering once it is older than [`crate::oauth::revoked::STALE`]).
pub async fn refresh_revoked(state: Arc<TokenServer>) {
    let now = state.clock.now();
    if let Err(e) = state.revoked.refresh(&state.store, now).await {
        state.revoked.drop_expired(now);
        if e.is_unavailable() {
            tracing::debug!(error.cause_chain = ?e, "revoked-token view not refreshed: database unavailable");
        } else {
            tracing::error!(error.cause_chain = ?e, "refreshing the revoked-token view failed; will retry");
        }
    }
}

/// Writes the assertion ids accepted during an outage to the database once
/// it answers again, so other replicas refuse their replays too.
async fn store_local_replays(state: &TokenServer) {
    let now = state.clock.now();
    for (client, jti, until) in state.replays.pending(now) {
        match state.store.record_assertion_jti(&client, &jti, until).await {
            Ok(_) => state.replays.stored(&client, &jti),
            Err(e) => {
                tracing::debug!(error.cause_chain = ?e, "assertion ids not stored yet; will retry");
                return;
            }
        }
    }
}
