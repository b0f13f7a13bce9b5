//! Workload identity federation: external issuers whose tokens this server
//! trusts (a Kubernetes cluster's service-account tokens, SPIFFE JWT-SVIDs,
//! GitHub Actions OIDC tokens), managed like clients, and the verification
//! and mapping of their tokens to Portcullis clients. The token endpoint
//! uses them for client authentication ([RFC 7523 §2.2]), the JWT-bearer
//! grant ([RFC 7523 §2.1]) and token exchange ([RFC 8693]); that protocol
//! code lives in [`crate::oauth::federated`] and [`crate::oauth::exchange`].
//!
//! Module map: [`model`] (the stored resource and its validation),
//! [`rules`] and [`rego`] (mapping), [`verify`] (pure token checks),
//! [`keys`] (key sources through the client-JWKS fetcher), [`registry`]
//! (administration and the in-memory directory).
//!
//! [RFC 7523 §2.1]: https://www.rfc-editor.org/rfc/rfc7523#section-2.1
//! [RFC 7523 §2.2]: https://www.rfc-editor.org/rfc/rfc7523#section-2.2
//! [RFC 8693]: https://www.rfc-editor.org/rfc/rfc8693

pub mod keys;
pub mod model;
pub mod registry;
pub mod rego;
pub mod rules;
pub mod verify;

pub use keys::FederationKeys;
pub use model::{discovery_url, Federation, FederationLimits, FederationRequest, KeySource};
pub use registry::{Directory, FederationError, FederationRegistry};
