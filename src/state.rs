//! [`AppState`]: what every request handler can reach.

use std::sync::Arc;

use crate::{
    clients::{Registry, SecretVerifier},
    clock::Clock,
    config::Settings,
    http::admin::auth::AdminTokens,
    keys::{KeyManager, KeySet},
    store::Storage,
};

/// Shared, cheaply clonable server state.
#[derive(Clone)]
pub struct AppState {
    /// Storage engine.
    pub store: Storage,
    /// Client registry operations.
    pub registry: Registry,
    /// Signing keys and the JWKS.
    pub keys: Arc<KeySet>,
    /// The signing-key lifecycle.
    pub key_manager: Arc<KeyManager>,
    /// The time source.
    pub clock: Clock,
    /// Settings.
    pub settings: Arc<Settings>,
    /// The issuer identifier (configured, or derived from the bound address).
    pub issuer: String,
    /// Bounded argon2 verification.
    pub verifier: SecretVerifier,
    /// Hashes of the admin bearer tokens.
    pub admin_tokens: Arc<AdminTokens>,
}
