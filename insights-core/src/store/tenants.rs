//! Tenants and the backend itself (platform scope).

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::*;

/// Platform scope: which backend this is, whether it answers, and the
/// tenants (the one table not filtered by a tenant).
#[async_trait]
pub trait TenantStore: Send + Sync + 'static {
    /// Short backend name (`sqlite`, `postgres`) for health output.
    fn backend(&self) -> &'static str;
    /// Cheap round trip to the database.
    async fn health(&self) -> StoreResult<()>;
    /// Creates a tenant. Names and directory tenant ids are unique:
    /// a duplicate is [`StoreError::Conflict`](super::StoreError::Conflict).
    async fn create_tenant(&self, new: NewTenant) -> StoreResult<Tenant>;
    /// All tenants ordered by name.
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    /// One tenant by id.
    async fn get_tenant(&self, id: TenantId) -> StoreResult<Tenant>;
    /// One tenant by its unique name.
    async fn tenant_by_name(&self, name: &str) -> StoreResult<Tenant>;
    /// Maps a Teams/Entra tenant id to our tenant.
    async fn tenant_by_directory_id(&self, directory_tenant_id: uuid::Uuid) -> StoreResult<Tenant>;
    /// Replaces the tenant's settings.
    async fn update_tenant_settings(
        &self,
        id: TenantId,
        settings: &TenantSettings,
    ) -> StoreResult<()>;
}

/// Implementation detail of [`delegate_store_areas!`](crate::delegate_store_areas):
/// an impl of [`TenantStore`] that forwards every method to a field. The
/// signatures are the trait's, once more: a method added to or changed in
/// the trait without this list fails to compile wherever the macro is used
/// (first in this crate's own tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_tenant_store {
    ($ty:ty => $inner:ident, $hook:tt) => {
        $crate::__delegate_impl! {
            TenantStore for $ty => $inner, $hook;
            sync {
                fn backend(&self) -> &'static str;
            }
            fn health(&self) -> StoreResult<()>;
            fn create_tenant(&self, new: NewTenant) -> StoreResult<Tenant>;
            fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
            fn get_tenant(&self, id: TenantId) -> StoreResult<Tenant>;
            fn tenant_by_name(&self, name: &str) -> StoreResult<Tenant>;
            fn tenant_by_directory_id(&self, directory_tenant_id: uuid::Uuid) -> StoreResult<Tenant>;
            fn update_tenant_settings(&self, id: TenantId, settings: &TenantSettings) -> StoreResult<()>;
        }
    };
}
