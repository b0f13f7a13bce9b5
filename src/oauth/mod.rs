//! OAuth 2.0 protocol logic, free of web-framework types: the
//! [`TokenServer`] service with one method per endpoint, request parsing,
//! client authentication, scope and audience rules, the grants and issuance.
//!
//! Module map: [`server`] (the service and its request context), [`endpoints`] (one
//! method per endpoint), [`authenticate`] and
//! [`proof`] (client authentication), [`dpop`] (DPoP proofs), [`grant`] (dispatch and client
//! credentials), [`refresh`], [`federated`] (federated client assertions
//! and the JWT-bearer grant), [`exchange`] (token exchange), [`issuance`] (policy, quota, signing),
//! [`introspect`], [`revoke`], and the pure [`request`], [`client_auth`],
//! [`assertion`], [`scope`], [`audience`] and [`error`].

pub mod assertion;
pub mod audience;
pub mod authenticate;
pub mod client_auth;
pub mod dpop;
pub mod endpoints;
pub mod error;
pub mod exchange;
pub mod federated;
pub mod grant;
pub mod introspect;
pub mod issuance;
pub mod proof;
pub mod refresh;
pub mod request;
pub mod revoke;
pub mod revoked;
pub mod scope;
pub mod server;

pub use error::OAuthError;
pub use server::{Caller, Endpoint, FormPost, TokenServer};
