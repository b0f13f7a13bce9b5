//! The admin REST API: RFC 7591/7592 shaped client management behind an
//! admin bearer token.

pub mod auth;
pub mod clients;
