//! OAuth 2.0 protocol logic, free of web-framework types: request parsing,
//! client authentication, scope and audience rules, and the grants.

pub mod assertion;
pub mod audience;
pub mod client_auth;
pub mod error;
pub mod grant;
pub mod introspect;
pub mod refresh;
pub mod request;
pub mod revoke;
pub mod scope;

pub use error::OAuthError;
