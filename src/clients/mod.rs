//! OAuth clients: the registered model, secrets, and the registry operations
//! shared by the admin REST API and the CLI.

pub mod cache;
pub mod credentials;
pub mod jwks;
pub mod model;
pub mod registry;
pub mod secret;
pub mod view;

pub use cache::ClientCache;
pub use credentials::KeyMaterial;
pub use model::{AuthMethod, Client, ClientId, GrantType, Limits, RegistrationRequest};
pub use registry::{Registry, RegistryError};
pub use secret::{PlainSecret, SecretHash, SecretVerifier};
pub use view::ClientView;
