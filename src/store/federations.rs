//! [`FederationStore`]: the trusted external issuers, one JSON document per
//! federation (validated before it is written), the same SQL on both engines.

use std::future::Future;

use super::{
    storage::{delegate, Engine},
    Storage, StoreError,
};
use crate::federation::Federation;

/// Federation storage, fulfilled identically by both engines.
pub trait FederationStore: Send + Sync {
    /// Stores a new federation; `Conflict` if its id or issuer is taken.
    fn create_federation(
        &self,
        federation: &Federation,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every federation, ordered by id.
    fn federations(&self) -> impl Future<Output = Result<Vec<Federation>, StoreError>> + Send;
    /// Replaces a federation; `NotFound` if absent, `Conflict` if the issuer is taken.
    fn update_federation(
        &self,
        federation: &Federation,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Deletes a federation; `NotFound` if absent.
    fn delete_federation(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl FederationStore for Storage {
    async fn create_federation(&self, federation: &Federation) -> Result<(), StoreError> {
        delegate!(self, create_federation(federation))
    }
    async fn federations(&self) -> Result<Vec<Federation>, StoreError> {
        delegate!(self, federations())
    }
    async fn update_federation(&self, federation: &Federation) -> Result<(), StoreError> {
        delegate!(self, update_federation(federation))
    }
    async fn delete_federation(&self, id: &str) -> Result<(), StoreError> {
        delegate!(self, delete_federation(id))
    }
}

/// The document column of a federation.
pub(super) fn encode(federation: &Federation) -> Result<String, StoreError> {
    serde_json::to_string(federation).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A federation from its document column.
pub(super) fn decode(document: &str) -> Result<Federation, StoreError> {
    serde_json::from_str(document).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Expands to the [`FederationStore`] methods of an engine with a `pool`.
macro_rules! shared_federation_methods {
    () => {
        async fn create_federation(&self, federation: &Federation) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO federations (id, issuer, document, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&federation.id)
            .bind(&federation.issuer)
            .bind(super::federations::encode(federation)?)
            .bind(federation.created_at.timestamp())
            .bind(federation.updated_at.timestamp())
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        async fn federations(&self) -> Result<Vec<Federation>, StoreError> {
            let rows: Vec<(String,)> =
                sqlx::query_as("SELECT document FROM federations ORDER BY id")
                    .fetch_all(&self.pool)
                    .await?;
            rows.iter()
                .map(|(d,)| super::federations::decode(d))
                .collect()
        }

        async fn update_federation(&self, federation: &Federation) -> Result<(), StoreError> {
            let done = sqlx::query(
                "UPDATE federations SET issuer = $2, document = $3, updated_at = $4 WHERE id = $1",
            )
            .bind(&federation.id)
            .bind(&federation.issuer)
            .bind(super::federations::encode(federation)?)
            .bind(federation.updated_at.timestamp())
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        }

        async fn delete_federation(&self, id: &str) -> Result<(), StoreError> {
            let done = sqlx::query("DELETE FROM federations WHERE id = $1")
                .bind(id)
                .execute(&self.pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        }
    };
}
pub(super) use shared_federation_methods;
