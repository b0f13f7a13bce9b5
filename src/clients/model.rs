//! The client model, generated from the field table in `clients::fields`:
//! [`Client`], the validated [`ClientMetadata`] it is registered with, the
//! [`ClientState`] the server keeps about it, and the RFC 7591
//! [`RegistrationRequest`] (validated in `clients::metadata`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{credentials::KeyMaterial, fields::client_fields, whole::WholeNumber};
// Re-exported so that `clients::model::…` paths keep naming them.
pub use super::{
    id::ClientId,
    methods::{AuthMethod, GrantType},
};
use crate::{certs::SubjectMatcher, oauth::scope::ScopeSet};

/// How a client field is written as an RFC 7591 metadata member: its JSON
/// type in a [`RegistrationRequest`] and its value there.
pub trait Member {
    /// The member's JSON type.
    type Wire;
    /// The member describing the field; `None` when it is absent.
    fn to_member(&self) -> Option<Self::Wire>;
}

impl Member for String {
    type Wire = String;
    fn to_member(&self) -> Option<String> {
        Some(self.clone())
    }
}

impl Member for bool {
    type Wire = bool;
    fn to_member(&self) -> Option<bool> {
        Some(*self)
    }
}

/// Counts and lifetimes are accepted as any JSON integer (`300` or
/// `300.0`) and range-checked.
impl Member for u32 {
    type Wire = WholeNumber;
    fn to_member(&self) -> Option<WholeNumber> {
        Some(WholeNumber(i64::from(*self)))
    }
}

/// Space-separated scopes.
impl Member for ScopeSet {
    type Wire = String;
    fn to_member(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl Member for Vec<String> {
    type Wire = Vec<String>;
    fn to_member(&self) -> Option<Vec<String>> {
        Some(self.clone())
    }
}

impl Member for Vec<GrantType> {
    type Wire = Vec<String>;
    fn to_member(&self) -> Option<Vec<String>> {
        Some(self.iter().map(|g| g.as_str().to_owned()).collect())
    }
}

impl Member for AuthMethod {
    type Wire = String;
    fn to_member(&self) -> Option<String> {
        Some(self.as_str().to_owned())
    }
}

/// An absent field is an absent member.
impl<T: Member> Member for Option<T> {
    type Wire = T::Wire;
    fn to_member(&self) -> Option<T::Wire> {
        self.as_ref().and_then(Member::to_member)
    }
}

/// Generates the client types from the [`client_fields!`] table.
macro_rules! client_model {
    (
        identity {
            $(#[$id_doc:meta])* $id:ident: $id_ty:ty => $id_member:ident, column $id_column:ident;
        }
        metadata {
            $(
                $(#[$doc:meta])* $field:ident: $ty:ty => $member:ident $(, column $column:ident)?;
            )*
        }
        key_material {
            $(#[$keys_doc:meta])* $keys:ident: $keys_ty:ty, column $keys_column:ident;
        }
        state {
            $(
                $(#[$state_doc:meta])* $state:ident: $state_ty:ty, written by [$($by:ident),*];
            )*
        }
    ) => {
        /// A registered client.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct Client {
            $(#[$id_doc])*
            pub $id: $id_ty,
            $($(#[$doc])* pub $field: $ty,)*
            $(#[$keys_doc])*
            pub $keys: $keys_ty,
            $($(#[$state_doc])* pub $state: $state_ty,)*
        }

        /// Validated metadata, ready to become a [`Client`].
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct ClientMetadata {
            /// Requested id, if any.
            pub $id_member: Option<$id_ty>,
            $($(#[$doc])* pub $field: $ty,)*
            $(#[$keys_doc])*
            pub $keys: $keys_ty,
        }

        /// What the server, not the registration metadata, decides about a client.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct ClientState {
            $($(#[$state_doc])* pub $state: $state_ty,)*
        }

        impl ClientMetadata {
            /// The client `id` registered with this metadata, in `state`.
            #[must_use]
            pub fn into_client(self, $id: $id_ty, state: ClientState) -> Client {
                Client {
                    $id,
                    $($field: self.$field,)*
                    $keys: self.$keys,
                    $($state: state.$state,)*
                }
            }
        }

        impl Client {
            /// What the server decided about the client, to keep when it is
            /// registered anew.
            #[must_use]
            pub fn state(&self) -> ClientState {
                ClientState {
                    $($state: Clone::clone(&self.$state),)*
                }
            }
        }

        /// RFC 7591 client metadata as submitted (create or full update), or as
        /// a client is registered (`From<&Client>`). Unknown members are
        /// ignored; `client_secret` is refused (secrets are generated).
        #[derive(Clone, Debug, Default, Deserialize, Serialize)]
        pub struct RegistrationRequest {
            /// Requested client id; generated when absent.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub $id_member: Option<String>,
            $(
                $(#[$doc])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $member: Option<<$ty as Member>::Wire>,
            )*
            /// Inline JWK set (`private_key_jwt`, `self_signed_tls_client_auth`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub jwks: Option<serde_json::Value>,
            /// URL of the client's JWK set.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub jwks_uri: Option<String>,
            /// The algorithm the client's assertions must be signed with.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub token_endpoint_auth_signing_alg: Option<String>,
            /// RFC 8705 §2.1.2: expected subject DN (RFC 4514).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tls_client_auth_subject_dn: Option<String>,
            /// Expected DNS name SAN.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tls_client_auth_san_dns: Option<String>,
            /// Expected URI SAN (a SPIFFE ID, for example).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tls_client_auth_san_uri: Option<String>,
            /// Expected IP address SAN.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tls_client_auth_san_ip: Option<String>,
            /// Expected e-mail SAN.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tls_client_auth_san_email: Option<String>,
            /// Present only to be refused with a clear message.
            #[serde(default, skip_serializing)]
            pub client_secret: Option<serde_json::Value>,
        }

        impl From<&Client> for RegistrationRequest {
            /// The metadata that would register `client` as it is (for partial
            /// updates, and the members of its view).
            fn from(client: &Client) -> Self {
                let keys = &client.$keys;
                Self {
                    $id_member: Some(client.$id.to_string()),
                    $($member: Member::to_member(&client.$field),)*
                    jwks: keys.jwks.clone(),
                    jwks_uri: keys.jwks_uri.clone(),
                    token_endpoint_auth_signing_alg: keys.signing_alg.clone(),
                    tls_client_auth_subject_dn: subject(keys, "tls_client_auth_subject_dn"),
                    tls_client_auth_san_dns: subject(keys, "tls_client_auth_san_dns"),
                    tls_client_auth_san_uri: subject(keys, "tls_client_auth_san_uri"),
                    tls_client_auth_san_ip: subject(keys, "tls_client_auth_san_ip"),
                    tls_client_auth_san_email: subject(keys, "tls_client_auth_san_email"),
                    client_secret: None,
                }
            }
        }
    };
}

client_fields!(client_model);

/// The registered certificate subject, if it is of kind `member`.
fn subject(keys: &KeyMaterial, member: &str) -> Option<String> {
    keys.tls_subject
        .as_ref()
        .filter(|m| m.metadata_name() == member)
        .map(SubjectMatcher::value)
}

impl ClientState {
    /// The state of a client registered at `now`: enabled, neither locked nor
    /// revoked.
    #[must_use]
    pub fn registered(now: DateTime<Utc>) -> Self {
        Self {
            enabled: true,
            created_at: now,
            updated_at: now,
            ..Self::default()
        }
    }
}

impl Client {
    /// A client registered at `now` with the RFC 7591 defaults (the
    /// `client_credentials` grant, `client_secret_basic`) and nothing else set.
    #[must_use]
    pub fn new(id: ClientId, now: DateTime<Utc>) -> Self {
        let metadata = ClientMetadata {
            grant_types: vec![GrantType::ClientCredentials],
            ..ClientMetadata::default()
        };
        metadata.into_client(id, ClientState::registered(now))
    }
}
