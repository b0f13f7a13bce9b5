//! The integration suite: real servers over HTTP against real SQLite and
//! PostgreSQL. Every server test runs once per engine.

// Tests fail by panicking: unwrap and expect are how they say what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Bad-input tables are long by nature and read best as one table.
#![allow(clippy::too_many_lines, clippy::type_complexity)]
// Metric samples are whole-number counts compared exactly; request fixtures favour plain idioms.
#![allow(clippy::float_cmp, clippy::format_collect, clippy::map_unwrap_or)]

mod admin_clients;
mod apply;
mod audit;
mod audit_export;
mod audit_migration;
mod audit_retention;
mod audit_storage;
mod cache;
mod cli;
mod client_actions;
mod container;
mod crash;
mod discovery;
mod dpop;
mod dpop_interop;
mod drain;
mod exchange;
mod federation;
mod health;
mod helpers;
mod introspection;
mod issuers;
mod journal;
mod keys;
mod layering;
mod mtls;
mod openapi;
mod outage;
mod pg_cluster;
mod pki;
mod policy;
mod private_key_jwt;
mod protection;
mod refresh;
mod revocation;
mod rotation;
mod secrets;
mod security_a;
mod security_b;
mod security_c;
mod store;
mod token;
mod verify_crate;
