//! [`Application`]: connect, load keys, bind, and serve. Binding happens before
//! the server runs, so tests bind port 0 and learn the port without sleeping.

use std::{net::TcpListener, sync::Arc};

use actix_web::{dev::Server, middleware::Logger, web, App, HttpServer};
use anyhow::Context;

use crate::{
    clients::{Registry, SecretVerifier},
    clock::Clock,
    config::Settings,
    http::{self, admin::auth::AdminTokens},
    keys::{KekRing, KeyManager},
    state::AppState,
    store::{Storage, Store},
};

/// A built, bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
    key_task: Option<tokio::task::JoinHandle<()>>,
}

impl Application {
    /// Connects to the database (applying migrations), loads or creates the
    /// KEK and the signing key, and binds the listener.
    pub async fn build(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        let store = Storage::connect(&settings.database_url, settings.database_max_connections)
            .await
            .context("could not open the database")?;
        if settings.is_sqlite() {
            tracing::warn!(
                database = store.engine(),
                "using the embedded SQLite database: a development setup for one process; use PostgreSQL in production"
            );
        }
        let (ring, generated) = KekRing::load(&settings)?;
        if generated {
            tracing::warn!(
                path = %settings.kek_file.display(),
                kek_id = ring.primary().id(),
                "generated a new key-encryption key: development setup only; back this file up, \
                 or provision the KEK (PORTCULLIS_KEK or kek_file) in production"
            );
        }
        let key_manager =
            Arc::new(KeyManager::start(store.clone(), ring, &settings, clock.now()).await?);
        let listener = TcpListener::bind(settings.listen)
            .with_context(|| format!("could not listen on {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let issuer = settings
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let admin_tokens = AdminTokens::new(&settings.admin_tokens);
        if admin_tokens.is_empty() {
            tracing::warn!("no admin tokens configured (PORTCULLIS_ADMIN_TOKENS): the admin API refuses every request");
        }
        let state = AppState {
            registry: Registry::new(store.clone(), settings.client_limits()),
            store,
            keys: key_manager.key_set(),
            key_manager,
            clock,
            verifier: SecretVerifier::new(settings.argon2_permits()),
            admin_tokens: Arc::new(admin_tokens),
            issuer,
            settings: Arc::new(settings),
        };
        let server = serve(listener, state.clone())?;
        let key_task = spawn_key_checks(&state);
        tracing::info!(%addr, issuer = %state.issuer, "portcullis listening");
        Ok(Self {
            port: addr.port(),
            server,
            state,
            key_task,
        })
    }

    /// The bound port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server state (tests reach the clock and the store through it).
    #[must_use]
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or SIGINT, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        if let Some(task) = self.key_task {
            task.abort();
        }
        result
    }
}

/// Every `key_refresh_interval`: rotate when due, drop expired keys, reload
/// keys changed by other replicas (the bound on how long a replica keeps
/// signing with a key another one retired), and purge expired revocations
/// and refresh families.
fn spawn_key_checks(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    let every = state.settings.key_refresh_interval;
    if every == 0 {
        return None;
    }
    let (manager, clock) = (Arc::clone(&state.key_manager), state.clock.clone());
    let store = state.store.clone();
    Some(tokio::spawn(async move {
        let mut interval = tokio::time::interval(std::time::Duration::from_secs(every));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            interval.tick().await;
            let now = clock.now();
            if let Err(e) = manager.tick(now).await {
                tracing::error!(error.cause_chain = ?e, "signing key check failed; will retry");
            }
            match store.purge_expired_tokens(now).await {
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
    }))
}

fn serve(listener: TcpListener, state: AppState) -> std::io::Result<Server> {
    let settings = Arc::clone(&state.settings);
    let max_body = settings.max_body_bytes;
    let data = web::Data::new(state);
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(Logger::new("%a \"%r\" %s %b %Dms"))
            .app_data(data.clone())
            .configure(|cfg| http::configure(cfg, max_body))
    })
    .client_request_timeout(std::time::Duration::from_secs(10))
    .shutdown_timeout(30);
    if settings.workers > 0 {
        server = server.workers(settings.workers);
    }
    Ok(server.listen(listener)?.run())
}
