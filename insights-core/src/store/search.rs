//! Recording search.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::*;

/// Recording search: every filter of [`RecordingQuery`], full-text
/// matching of participants and transcripts, keyset pagination.
#[async_trait]
pub trait SearchStore: Send + Sync + 'static {
    /// Searches recordings; see [`RecordingQuery`] for the semantics.
    async fn search_recordings(
        &self,
        tenant: TenantId,
        query: &RecordingQuery,
    ) -> StoreResult<SearchPage>;
}

/// Implementation detail of [`delegate_store_areas!`](crate::delegate_store_areas):
/// an impl of [`SearchStore`] that forwards every method to a field. The
/// signatures are the trait's, once more: a method added to or changed in
/// the trait without this list fails to compile wherever the macro is used
/// (first in this crate's own tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_search_store {
    ($ty:ty => $inner:ident, $hook:tt) => {
        $crate::__delegate_impl! {
            SearchStore for $ty => $inner, $hook;
            fn search_recordings(&self, tenant: TenantId, query: &RecordingQuery) -> StoreResult<SearchPage>;
        }
    };
}
