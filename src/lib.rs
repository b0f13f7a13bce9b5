//! Portcullis: an OAuth 2.0 authorization server for service-to-service traffic.
//!
//! Services exchange client credentials for short-lived JWT access tokens
//! ([RFC 6749 §4.4], [RFC 9068]); resource servers verify them against the JWKS;
//! operators manage clients over an RFC 7591 shaped admin API or the CLI.
//!
//! Layout: [`http`] is the thin actix-web layer; [`oauth`] holds the protocol
//! logic, free of web-framework types; [`store`] is the storage contract with a
//! PostgreSQL and a SQLite engine; [`keys`] and [`token`] own signing.
//!
//! [RFC 6749 §4.4]: https://www.rfc-editor.org/rfc/rfc6749#section-4.4
//! [RFC 9068]: https://www.rfc-editor.org/rfc/rfc9068

pub mod audit;
pub mod certs;
pub mod cli;
pub mod clients;
pub mod clock;
pub mod config;
pub mod federation;
pub mod http;
pub mod keys;
pub mod maintenance;
pub mod metrics;
pub mod oauth;
pub mod policy;
pub mod priority;
pub mod protect;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod token;
