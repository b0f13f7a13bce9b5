//! JWT access tokens (RFC 9068): their claims and their signing.

mod claims;
mod signer;

pub use claims::{AccessTokenClaims, Audience};
pub use signer::{encode, SignError};
