//! Wrapped data keys (crypto-shredding).

use async_trait::async_trait;

use super::StoreResult;
use crate::crypto::{WrappedDataKey, WrappedKek};
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

    /// Up to `limit` of the tenant's wrapped data keys whose KEK id is not
    /// `kek_id`, oldest first (key rotation rewraps them).
    async fn data_keys_not_under(
        &self,
        tenant: TenantId,
        kek_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<WrappedDataKey>>;
    /// How many of the tenant's wrapped data keys have a KEK id other
    /// than `kek_id`.
    async fn count_data_keys_not_under(&self, tenant: TenantId, kek_id: &str) -> StoreResult<u64>;
    /// Replaces the wrapping of a data key (same id, same key, another
    /// KEK) if it is still wrapped under `old_kek_id`; returns whether it
    /// was replaced (false: shredded, or rewrapped already).
    async fn rewrap_data_key(
        &self,
        tenant: TenantId,
        key: &WrappedDataKey,
        old_kek_id: &str,
    ) -> StoreResult<bool>;

    /// Stores a version of the tenant's key-encryption key (`database`
    /// key provider). Never replaces one: returns false if the tenant
    /// already has this version (another node created it first).
    async fn put_kek(&self, tenant: TenantId, kek: &WrappedKek) -> StoreResult<bool>;
    /// The tenant's stored KEK versions, oldest first.
    async fn list_keks(&self, tenant: TenantId) -> StoreResult<Vec<WrappedKek>>;
    /// Destroys the tenant's KEK versions older than `version` (the end of
    /// a rotation); returns how many.
    async fn delete_keks_before(&self, tenant: TenantId, version: u32) -> StoreResult<u64>;
    /// Every stored KEK of every tenant (platform scope: the start-up
    /// check of the root key, `insights keys` commands).
    async fn all_keks(&self) -> StoreResult<Vec<WrappedKek>>;
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
            fn data_keys_not_under(&self, tenant: TenantId, kek_id: &str, limit: u32) -> StoreResult<Vec<WrappedDataKey>>;
            fn count_data_keys_not_under(&self, tenant: TenantId, kek_id: &str) -> StoreResult<u64>;
            fn rewrap_data_key(&self, tenant: TenantId, key: &WrappedDataKey, old_kek_id: &str) -> StoreResult<bool>;
            fn put_kek(&self, tenant: TenantId, kek: &WrappedKek) -> StoreResult<bool>;
            fn list_keks(&self, tenant: TenantId) -> StoreResult<Vec<WrappedKek>>;
            fn delete_keks_before(&self, tenant: TenantId, version: u32) -> StoreResult<u64>;
            fn all_keks(&self) -> StoreResult<Vec<WrappedKek>>;
        }
    };
}
