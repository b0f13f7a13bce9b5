//! OAuth clients: the registered model, secrets, and the registry operations
//! shared by the admin REST API and the CLI.
//!
//! A client's fields are defined once, in [`fields`]; the model, the
//! registration metadata, the view and the storage columns derive from it.

pub mod apply;
pub mod cache;
pub mod credentials;
pub mod fetch_guard;
pub mod fields;
pub mod id;
pub mod import;
pub mod jwks;
pub mod members;
pub mod metadata;
pub mod methods;
pub mod model;
pub mod registry;
pub mod secret;
pub mod view;
pub mod whole;

pub use cache::ClientCache;
pub use credentials::KeyMaterial;
pub use metadata::Limits;
pub use model::{AuthMethod, Client, ClientId, GrantType, RegistrationRequest};
pub use registry::{Registry, RegistryError};
pub use secret::{PlainSecret, SecretHash, SecretVerifier};
pub use view::ClientView;
