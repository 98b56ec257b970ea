//! Processing records of calls to external AI providers.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::*;

/// Processing records: the calls made to external AI providers.
#[async_trait]
pub trait ProcessingStore: Send + Sync + 'static {
    /// Records one call to an external AI provider. `call.tenant_id` must
    /// equal `tenant` (else `Invalid`); an unknown tenant is `NotFound`.
    /// Recording an id that exists already changes nothing (a retried
    /// write never duplicates a record). Records are kept when the
    /// recording they mention is deleted.
    async fn record_provider_call(&self, tenant: TenantId, call: &ProviderCall) -> StoreResult<()>;
    /// The tenant's records matching the query, ordered by (at, id).
    async fn list_provider_calls(
        &self,
        tenant: TenantId,
        query: &ProviderCallQuery,
    ) -> StoreResult<Vec<ProviderCall>>;
}

/// Implementation detail of [`delegate_store_areas!`](crate::delegate_store_areas):
/// an impl of [`ProcessingStore`] that forwards every method to a field. The
/// signatures are the trait's, once more: a method added to or changed in
/// the trait without this list fails to compile wherever the macro is used
/// (first in this crate's own tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_processing_store {
    ($ty:ty => $inner:ident, $hook:tt) => {
        $crate::__delegate_impl! {
            ProcessingStore for $ty => $inner, $hook;
            fn record_provider_call(&self, tenant: TenantId, call: &ProviderCall) -> StoreResult<()>;
            fn list_provider_calls(&self, tenant: TenantId, query: &ProviderCallQuery) -> StoreResult<Vec<ProviderCall>>;
        }
    };
}
