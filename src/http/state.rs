//! [`AppState`]: what every request handler can reach — the OAuth protocol
//! service, plus the parts only the web layer and the admin API use.

use std::sync::{atomic::AtomicBool, Arc};

use super::{admin::tokens::AdminTokens, metadata_cache::MetadataCache};
use crate::{
    clients::Registry, clock::Clock, config::Settings, federation::FederationRegistry,
    keys::KeyManager, oauth::TokenServer, protect::client_ip::TrustedProxies,
};

/// Shared, cheaply clonable server state of the web layer.
#[derive(Clone)]
pub struct AppState {
    /// The OAuth protocol service (store, keys, limits, audit, metrics, issuer).
    pub oauth: Arc<TokenServer>,
    /// Client registry operations (admin API).
    pub registry: Registry,
    /// Federation administration (admin API).
    pub federations: FederationRegistry,
    /// The signing-key lifecycle (admin API, metadata, metrics).
    pub key_manager: Arc<KeyManager>,
    /// The time source: each handler reads it once.
    pub clock: Clock,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Hashes of the admin bearer tokens.
    pub admin_tokens: Arc<AdminTokens>,
    /// The rendered metadata document.
    pub metadata: Arc<MetadataCache>,
    /// Proxies whose `X-Forwarded-For` (and client-certificate header) is believed.
    pub proxies: Arc<TrustedProxies>,
    /// Set on SIGTERM or SIGINT: the server is draining, `/readyz` answers 503.
    pub draining: Arc<AtomicBool>,
}
