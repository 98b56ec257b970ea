//! Wrapped data keys (crypto-shredding).

use async_trait::async_trait;

use super::StoreResult;
use crate::crypto::WrappedDataKey;
use crate::domain::*;

/// Wrapped data keys of the media envelope, and crypto-shredding.
#[async_trait]
pub trait DataKeyStore: Send + Sync + 'static {
    /// Stores a wrapped data key.
    async fn put_data_key(&self, tenant: TenantId, key: &WrappedDataKey) -> StoreResult<()>;
    /// [`StoreError::NotFound`](super::StoreError::NotFound) once the key was shredded.
    async fn get_data_key(&self, tenant: TenantId, id: KeyId) -> StoreResult<WrappedDataKey>;
    /// Crypto-shredding: destroys the wrapped key so every copy of the
    /// media encrypted with it becomes unreadable. Returns whether a key
    /// was destroyed (false if it was already gone). Backends overwrite
    /// the freed bytes where the engine allows it.
    async fn shred_data_key(&self, tenant: TenantId, id: KeyId) -> StoreResult<bool>;
}

/// Implementation detail of [`delegate_store_areas!`](crate::delegate_store_areas):
/// an impl of [`DataKeyStore`] that forwards every method to a field. The
/// signatures are the trait's, once more: a method added to or changed in
/// the trait without this list fails to compile wherever the macro is used
/// (first in this crate's own tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_data_key_store {
    ($ty:ty => $inner:ident, $hook:tt) => {
        $crate::__delegate_impl! {
            DataKeyStore for $ty => $inner, $hook;
            fn put_data_key(&self, tenant: TenantId, key: &WrappedDataKey) -> StoreResult<()>;
            fn get_data_key(&self, tenant: TenantId, id: KeyId) -> StoreResult<WrappedDataKey>;
            fn shred_data_key(&self, tenant: TenantId, id: KeyId) -> StoreResult<bool>;
        }
    };
}
