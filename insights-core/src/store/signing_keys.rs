//! Registered signing keys (platform scope).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::*;

/// The registry of every node's signing keys (public halves only), shared
/// by every process on this database: evidence signed on one node is
/// verified against it on any other. Platform scope: no tenant.
#[async_trait]
pub trait SigningKeyStore: Send + Sync + 'static {
    /// Registers `key` unless its id is registered already, and returns
    /// the registered entry (which may be retired). An id registered with
    /// another public key is [`StoreError::Conflict`](super::StoreError::Conflict).
    async fn register_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<SigningKeyRecord>;
    /// Sets `valid_until` of a key that has none; returns whether it did.
    /// The key stays registered: evidence it signed keeps verifying.
    async fn retire_signing_key(&self, key_id: &str, at: DateTime<Utc>) -> StoreResult<bool>;
    /// Every registered key, oldest first.
    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
}

/// Implementation detail of [`delegate_store_areas!`](crate::delegate_store_areas):
/// an impl of [`SigningKeyStore`] that forwards every method to a field.
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_signing_key_store {
    ($ty:ty => $inner:ident, $hook:tt) => {
        $crate::__delegate_impl! {
            SigningKeyStore for $ty => $inner, $hook;
            fn register_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<SigningKeyRecord>;
            fn retire_signing_key(&self, key_id: &str, at: chrono::DateTime<chrono::Utc>) -> StoreResult<bool>;
            fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
        }
    };
}
