//! [`Application`]: connect, load keys, bind, and serve. Binding happens before
//! the server runs, so tests bind port 0 and learn the port without sleeping.

use std::{
    net::TcpListener,
    sync::{atomic::AtomicBool, Arc},
    time::Duration,
};

use actix_web::{dev::Server, middleware::from_fn, web, App, HttpServer};
use anyhow::Context;

use crate::{
    audit::{journal::Journal, AuditSink, Auditor},
    certs::TrustAnchors,
    clients::{jwks::ClientJwks, ClientCache, Registry, SecretVerifier},
    clock::Clock,
    config::Settings,
    federation::{Directory, FederationKeys, FederationLimits, FederationRegistry},
    http::{self, admin::tokens::AdminTokens, state::AppState, Plane},
    keys::{KekRing, KeyManager},
    maintenance::{self, Background},
    metrics::Metrics,
    oauth::{dpop::nonce::Nonces, revoked::RevokedJtis, TokenServer},
    policy::Policy,
    protect::{client_ip::TrustedProxies, lockout::Lockout, quota::Quotas, rate_limit::RateLimits},
    store::Storage,
    tls::{self, ReloadingCert, TlsFiles},
    token::VerifiedTokens,
};

/// A built, bound, not yet running server.
pub struct Application {
    port: u16,
    admin_port: Option<u16>,
    server: Server,
    admin_server: Option<Server>,
    state: AppState,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Binds the public listener and, when configured, the admin one.
fn bind_listeners(settings: &Settings) -> anyhow::Result<(TcpListener, Option<TcpListener>)> {
    let listen = settings.listeners.listen;
    let listener =
        TcpListener::bind(listen).with_context(|| format!("could not listen on {listen}"))?;
    let admin = match settings.listeners.admin_listen {
        Some(a) => Some(TcpListener::bind(a).with_context(|| format!("could not listen on {a}"))?),
        None => None,
    };
    Ok((listener, admin))
}

impl Application {
    /// Connects to the database (applying migrations), loads or creates the
    /// KEK and the signing keys, loads the policy, and binds the listeners.
    /// The admin tokens, KEKs and database URL are then dropped from the
    /// settings (see [`Settings::forget_secrets`]).
    pub async fn build(mut settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        let journal = Journal::open(
            &settings.journal.audit_journal_dir,
            settings.journal.audit_journal_max_bytes,
        )?;
        let store = Storage::open(
            &settings.database.database_url,
            settings.database.database_max_connections,
            settings.database.guard(),
            clock.clone(),
        )
        .await
        .context("could not open the database")?;
        if settings.database.is_sqlite() {
            tracing::warn!(
                database = store.engine(),
                "using the embedded SQLite database: a development setup for one process; use PostgreSQL in production"
            );
        }
        let key_manager = Arc::new(start_keys(&store, &settings, &clock).await?);
        let revoked = RevokedJtis::load(&store.background(), clock.now())
            .await
            .context("could not load the revoked access tokens")?;
        let policy = load_policy(&settings)?;
        let (listener, admin_listener) = bind_listeners(&settings)?;
        let addr = listener.local_addr()?;
        let tls = load_tls(&settings)?;
        let issuer = settings.listeners.issuer.clone().unwrap_or_else(|| {
            let scheme = if tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{addr}")
        });
        let admin_tokens = admin_tokens(&settings);
        // Connected, KEKs loaded, admin tokens hashed: the settings the
        // server keeps hold no secret from here on.
        settings.forget_secrets();
        let settings = Arc::new(settings);
        let mut oauth = token_server(
            &settings,
            store,
            journal,
            &key_manager,
            policy,
            issuer,
            &clock,
        )?;
        oauth.revoked = Arc::new(revoked);
        let oauth = Arc::new(oauth);
        let state = AppState {
            registry: Registry::new(
                oauth.store.clone(),
                settings
                    .tokens
                    .client_limits(settings.client_auth.jwks_uri_allow_loopback),
                Auditor::Sink(oauth.audit.clone()),
            )
            .with_cache(Arc::clone(&oauth.clients))
            .with_verifier(oauth.verifier.clone()),
            federations: federation_registry(&settings, &oauth),
            metadata: Arc::default(),
            proxies: Arc::new(
                TrustedProxies::parse(&settings.listeners.trusted_proxies)
                    .map_err(anyhow::Error::msg)?,
            ),
            oauth,
            key_manager,
            clock,
            admin_tokens: Arc::new(admin_tokens),
            settings,
            draining: Arc::new(AtomicBool::new(false)),
        };
        let (plane, admin_port, admin_server) = match admin_listener {
            Some(l) => {
                let port = l.local_addr()?.port();
                (
                    Plane::Public,
                    Some(port),
                    Some(serve(l, state.clone(), Plane::Admin, tls.as_ref())?),
                )
            }
            None => (Plane::All, None, None),
        };
        let server = serve(listener, state.clone(), plane, tls.as_ref())?;
        let mut tasks = maintenance::spawn(&Background {
            oauth: Arc::clone(&state.oauth),
            key_manager: Arc::clone(&state.key_manager),
        });
        if let Some(cert) = tls {
            let every = Duration::from_secs(state.settings.listeners.tls_reload_interval);
            let metrics = state.oauth.metrics.clone();
            tasks.push(cert.spawn_reloader(every, move || metrics.tls_reload_failed()));
        }
        tracing::info!(%addr, admin_port, issuer = %state.oauth.issuer, "portcullis listening");
        Ok(Self {
            port: addr.port(),
            admin_port,
            server,
            admin_server,
            state,
            tasks,
        })
    }

    /// The bound port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin listener's port, when `admin_listen` is set.
    #[must_use]
    pub fn admin_port(&self) -> Option<u16> {
        self.admin_port
    }

    /// Handles that stop the listeners (what a signal does): an embedding
    /// program or a test stops the server with them.
    #[must_use]
    pub fn handles(&self) -> Vec<actix_web::dev::ServerHandle> {
        let mut handles = vec![self.server.handle()];
        handles.extend(self.admin_server.as_ref().map(Server::handle));
        handles
    }

    /// The server state (tests reach the clock and the store through it).
    #[must_use]
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or SIGINT. Then `/readyz` answers 503 for
    /// `shutdown_drain_delay` seconds while everything else is still served
    /// (a second signal cuts the delay short), then the listeners close,
    /// in-flight requests finish, and every journaled audit event (for up to
    /// ten seconds; the rest stays in the journal for the next start) and
    /// token count is written before returning.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handles = self.handles();
        let delay = Duration::from_secs(self.state.settings.listeners.shutdown_drain_delay);
        let signals = tokio::spawn(crate::http::drain::on_signal(
            Arc::clone(&self.state.draining),
            delay,
            handles,
        ));
        let result = match self.admin_server {
            Some(admin) => {
                let (a, b) = tokio::join!(self.server, admin);
                a.and(b)
            }
            None => self.server.await,
        };
        signals.abort();
        for task in self.tasks {
            task.abort();
        }
        let oauth = &self.state.oauth;
        oauth.audit.close_denial_windows(None).await;
        if tokio::time::timeout(Duration::from_secs(10), oauth.audit.flush())
            .await
            .is_err()
        {
            tracing::warn!(
                "audit events not yet in the database stay in the journal and are applied at the next start"
            );
        }
        if let Err(e) = oauth.quotas.sync(&oauth.store, oauth.clock.now()).await {
            tracing::error!(error.cause_chain = ?e, "final token-quota sync failed");
        }
        tracing::info!("portcullis stopped");
        result
    }
}

/// Federation administration over the server's store, audit sink and directory.
fn federation_registry(settings: &Settings, oauth: &TokenServer) -> FederationRegistry {
    FederationRegistry::new(
        oauth.store.clone(),
        FederationLimits {
            allow_loopback: settings.client_auth.jwks_uri_allow_loopback,
        },
        Auditor::Sink(oauth.audit.clone()),
    )
    .with_directory(Arc::clone(&oauth.federations))
}

/// The OAuth protocol service over the opened store and loaded keys.
fn token_server(
    settings: &Arc<Settings>,
    store: Storage,
    journal: Journal,
    key_manager: &KeyManager,
    policy: Option<Arc<Policy>>,
    issuer: String,
    clock: &Clock,
) -> anyhow::Result<TokenServer> {
    let secs = |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1_000_000));
    let metrics = Metrics::default();
    let client_jwks = Arc::new(ClientJwks::new(settings, clock.clone())?);
    Ok(TokenServer {
        // The audit writer retries on its own: it may wait longer per call.
        audit: AuditSink::start(store.background(), journal, metrics.clone())
            .context("could not start the audit journal writer")?,
        verifier: SecretVerifier::new(settings.limits.argon2_permits()),
        clients: Arc::new(
            ClientCache::new()
                .map_err(|_| anyhow::anyhow!("the system random generator failed"))?,
        ),
        limits: Arc::new(RateLimits::new(settings, clock.clone())),
        lockout: Arc::new(Lockout::new(
            settings.limits.lockout_threshold,
            secs(settings.limits.lockout_window),
            secs(settings.limits.lockout_duration),
        )),
        quotas: Arc::new(Quotas::new(
            settings.limits.token_quota_per_hour,
            settings.limits.token_quota_per_day,
        )),
        replays: Arc::default(),
        verified: VerifiedTokens::new(crate::token::verified::CAPACITY),
        // Replaced by the view loaded from the database.
        revoked: Arc::default(),
        dpop_nonces: Nonces::new(
            key_manager.derive_hmac_key("dpop-nonce"),
            settings.dpop.dpop_nonce_lifetime,
        ),
        metrics,
        policy,
        federation_keys: Arc::new(FederationKeys::new(
            Arc::clone(&client_jwks),
            settings,
            clock.clone(),
        )),
        federations: Arc::new(Directory::new(store.clone(), clock.clone())),
        client_jwks,
        client_ca: load_client_ca(settings)?,
        store,
        keys: key_manager.key_set(),
        issuer,
        settings: Arc::clone(settings),
        clock: clock.clone(),
    })
}

fn load_policy(settings: &Settings) -> anyhow::Result<Option<Arc<Policy>>> {
    let Some(path) = &settings.tokens.policy_file else {
        return Ok(None);
    };
    let policy = Policy::load(
        path.clone(),
        settings.tokens.policy_claims.clone(),
        Duration::from_millis(settings.tokens.policy_timeout_ms),
    )
    .map_err(anyhow::Error::msg)?;
    Ok(Some(Arc::new(policy)))
}

fn admin_tokens(settings: &Settings) -> AdminTokens {
    let tokens = AdminTokens::new(&settings.admin.admin_tokens);
    if tokens.is_empty() {
        tracing::warn!("no admin tokens configured (PORTCULLIS_ADMIN_TOKENS): the admin API refuses every request");
    }
    tokens
}

async fn start_keys(
    store: &Storage,
    settings: &Settings,
    clock: &Clock,
) -> anyhow::Result<KeyManager> {
    let (ring, generated) = KekRing::load(settings)?;
    if generated {
        tracing::warn!(
            path = %settings.keys.kek_file.display(),
            kek_id = ring.primary().id(),
            "generated a new key-encryption key: development setup only; back this file up, \
             or provision the KEK (PORTCULLIS_KEK or kek_file) in production"
        );
    }
    // Key changes generate keys under the database lock (RSA takes long):
    // the lifecycle runs with the background deadline.
    Ok(KeyManager::start(store.background(), ring, settings, clock.now()).await?)
}

/// The CAs `tls_client_auth` certificates must chain to, when configured.
fn load_client_ca(settings: &Settings) -> anyhow::Result<Option<Arc<TrustAnchors>>> {
    Ok(settings
        .client_auth
        .tls_client_ca_file
        .as_deref()
        .map(TrustAnchors::load)
        .transpose()?
        .map(Arc::new))
}

/// The server certificate, when HTTPS is configured.
fn load_tls(settings: &Settings) -> anyhow::Result<Option<Arc<ReloadingCert>>> {
    let (Some(cert), Some(key)) = (
        &settings.listeners.tls_cert_file,
        &settings.listeners.tls_key_file,
    ) else {
        if !settings.listeners.listen.ip().is_loopback() {
            tracing::warn!(
                listen = %settings.listeners.listen,
                "serving plain HTTP on a non-loopback address: set tls_cert_file and tls_key_file, \
                 or terminate TLS in front of the server"
            );
        }
        return Ok(None);
    };
    let files = TlsFiles {
        cert: cert.clone(),
        key: key.clone(),
    };
    Ok(Some(ReloadingCert::load(files)?))
}

fn serve(
    listener: TcpListener,
    state: AppState,
    plane: Plane,
    tls: Option<&Arc<ReloadingCert>>,
) -> std::io::Result<Server> {
    let settings = Arc::clone(&state.settings);
    let max_body = settings.listeners.max_body_bytes;
    let data = web::Data::new(state);
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(http::observe::observe))
            .app_data(data.clone())
            .configure(|cfg| http::configure(cfg, max_body, plane))
    })
    // A client that has not sent its request head within this time gets 408.
    .client_request_timeout(Duration::from_secs(settings.listeners.request_timeout))
    .client_disconnect_timeout(Duration::from_secs(2))
    .keep_alive(Duration::from_secs(75))
    // Signals are handled by `run_until_stopped`, which drains first.
    .disable_signals()
    .shutdown_timeout(30);
    if settings.listeners.workers > 0 {
        server = server.workers(settings.listeners.workers);
    }
    let server = match tls {
        Some(cert) => server
            .on_connect(tls::on_connect)
            .listen_rustls_0_23(listener, cert.server_config())?,
        None => server.listen(listener)?,
    };
    Ok(server.run())
}
