//! Tokens: JWT access tokens (RFC 9068) — claims, signing, verification —
//! and opaque refresh tokens.

mod claims;
pub mod refresh;
mod signer;
pub mod verified;
pub mod verify;

pub use claims::{AccessTokenClaims, Audience};
pub use signer::{encode, SignError};
pub use verified::VerifiedTokens;
pub use verify::{verify, VerifyError};
