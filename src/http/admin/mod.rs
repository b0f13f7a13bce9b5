//! The admin REST API behind an admin bearer token: RFC 7591/7592 shaped
//! client management, and signing-key status and rotation.

pub mod audit;
pub mod auth;
pub mod clients;
pub mod keys;
