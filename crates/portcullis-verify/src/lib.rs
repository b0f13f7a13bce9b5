//! # portcullis-verify
//!
//! Verification of Portcullis access tokens for
//! resource servers: RFC 9068 JWTs signed ES256 (default), EdDSA, RS256 or
//! PS256 with keys from the issuer's JWKS.
//!
//! What it does for every request:
//!
//! - **Keys**: the JWKS is found through the issuer's RFC 8414 metadata
//!   (or configured), parsed into ring verification keys once per fetch,
//!   cached for the response's `Cache-Control: max-age`, revalidated with
//!   `If-None-Match`, renewed in the background before it expires, and
//!   refetched on an unknown `kid` at most every
//!   [`JwksConfig::refetch_interval`] seconds. Fetches are bounded in size
//!   and time.
//! - **Token**: `typ` is `at+jwt` (RFC 9068 §4), `alg` is on the allow-list
//!   and fits the key (`none` and `HS*` never pass), the signature verifies,
//!   `iss` is the issuer exactly, `aud` contains this resource, `exp`/`nbf`/`iat`
//!   hold within the leeway, and the required scopes are granted.
//! - **Sender constraints**: `cnf.x5t#S256` (RFC 8705) against the TLS client
//!   certificate or a trusted proxy's `x-forwarded-client-cert`; `cnf.jkt`
//!   (RFC 9449) against a DPoP proof (`typ`, `alg`, public `jwk`, signature,
//!   `htm`, `htu`, `iat`, `ath`, `jti` replay, optional server nonce). A
//!   DPoP-bound token sent as `Bearer` is refused.
//! - **Revocation**: optional RFC 7662 introspection with a short cache.
//! - **Answers**: [`Verifier::error_response`] gives the status and RFC 6750 /
//!   RFC 9449 `WWW-Authenticate` challenges; [`ProtectedResourceMetadata`]
//!   builds the RFC 9728 document.
//!
//! ## Framework-free use
//!
//! ```no_run
//! use portcullis_verify::{RequestParts, Requirements, Verifier, VerifierConfig};
//!
//! # async fn handle() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = VerifierConfig::new("https://auth.example.com", "https://api.example.com");
//! config.required_scopes = vec!["orders:read".into()];
//! let verifier = Verifier::new(config)?;
//! verifier.warm_up().await?; // optional: fetch the keys now
//!
//! let parts = RequestParts::new("GET", "https://api.example.com/orders")
//!     .authorization("Bearer eyJhbGciOiJFUzI1NiIs...");
//! match verifier.verify_with(&parts, &Requirements::new().scope("orders:write")).await {
//!     Ok(token) => println!("client {}", token.claims().client_id),
//!     Err(err) => {
//!         let answer = verifier.error_response(&err);
//!         println!("{} {:?}", answer.status, answer.headers); // e.g. 401 WWW-Authenticate: Bearer error="invalid_token", …
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! ## axum / tower (feature `axum` or `tower`)
//!
//! ```ignore
//! use axum::{routing::get, Extension, Router};
//! use portcullis_verify::{tower::VerifyLayer, VerifiedToken, Verifier, VerifierConfig};
//!
//! let verifier = Verifier::new(VerifierConfig::new("https://auth.example.com", "https://api.example.com"))?;
//! let app = Router::new()
//!     .route("/orders", get(|Extension(token): Extension<VerifiedToken>| async move {
//!         format!("hello {}", token.claims().sub)
//!     }))
//!     .layer(VerifyLayer::new(verifier));
//! ```
//!
//! ## actix-web (feature `actix`)
//!
//! ```ignore
//! use actix_web::{web, App, HttpServer};
//! use portcullis_verify::{actix::Verify, VerifiedToken, Verifier, VerifierConfig};
//!
//! let verifier = Verifier::new(VerifierConfig::new("https://auth.example.com", "https://api.example.com"))?;
//! HttpServer::new(move || {
//!     App::new()
//!         .wrap(Verify::new(verifier.clone()))
//!         .route("/orders", web::get().to(|token: web::ReqData<VerifiedToken>| async move {
//!             format!("hello {}", token.claims().sub)
//!         }))
//! });
//! ```
//!
//! Complete servers are in `examples/` (`axum_resource_server`, `actix_resource_server`).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod binding;
mod claims;
mod clock;
mod config;
mod dpop;
mod error;
mod fetch;
mod introspect;
mod jwk;
mod jws;
mod keys;
mod metadata;
mod request;
mod ttl_cache;
mod verified;
mod verifier;

#[cfg(feature = "actix")]
pub mod actix;
#[cfg(feature = "tower")]
pub mod tower;

pub use binding::certificate_thumbprint;
pub use claims::{AccessTokenClaims, Actor, Audience, Confirmation};
pub use clock::Clock;
pub use config::{DpopConfig, IntrospectionConfig, JwksConfig, NonceConfig, VerifierConfig};
pub use dpop::{ath, normalize_htu};
pub use error::{ErrorKind, ErrorResponse, VerifyError};
pub use jwk::{jwk_thumbprint, Algorithm};
pub use keys::KeyCacheStats;
pub use metadata::ProtectedResourceMetadata;
pub use request::{RequestParts, Requirements, Scheme};
pub use verified::VerifiedToken;
pub use verifier::{ConfigError, Verifier};

/// The client certificate of a connection (DER), for the middleware: put it
/// in the request extensions (tower) or connection data (actix-web) when
/// accepting TLS connections, and certificate-bound tokens are checked against it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCertificate(pub Vec<u8>);
