//! Four-eyes access requests.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::*;

/// Four-eyes access requests: a user asks to open a recording, another
/// decides.
#[async_trait]
pub trait ApprovalStore: Send + Sync + 'static {
    /// Stores a new request (status pending). The recording must exist in
    /// this tenant (else `NotFound`).
    async fn create_access_request(&self, tenant: TenantId, r: &AccessRequest) -> StoreResult<()>;
    /// One access request by id.
    async fn get_access_request(
        &self,
        tenant: TenantId,
        id: AccessRequestId,
    ) -> StoreResult<AccessRequest>;
    /// Requests newest first; `status` and `requested_by` narrow the list.
    async fn list_access_requests(
        &self,
        tenant: TenantId,
        status: Option<AccessRequestStatus>,
        requested_by: Option<&str>,
    ) -> StoreResult<Vec<AccessRequest>>;
    /// Decides a pending request atomically and returns it. A request that
    /// is no longer pending is a `Conflict`; a decision by the requester
    /// themselves is `Invalid`.
    async fn decide_access_request(
        &self,
        tenant: TenantId,
        id: AccessRequestId,
        decision: &AccessDecision,
    ) -> StoreResult<AccessRequest>;

    /// Stores a new pending governance change (two-person governance).
    async fn create_governance_change(
        &self,
        tenant: TenantId,
        change: &GovernanceChange,
    ) -> StoreResult<()>;

    /// One governance change by id.
    async fn get_governance_change(
        &self,
        tenant: TenantId,
        id: GovernanceChangeId,
    ) -> StoreResult<GovernanceChange>;

    /// Governance changes newest first; `status` narrows the list.
    async fn list_governance_changes(
        &self,
        tenant: TenantId,
        status: Option<ChangeStatus>,
    ) -> StoreResult<Vec<GovernanceChange>>;

    /// Decides a pending change atomically (`approve`: approved, else
    /// rejected) and returns it. A change that is no longer pending is a
    /// `Conflict`; a decision by the requester is `Invalid`.
    async fn decide_governance_change(
        &self,
        tenant: TenantId,
        id: GovernanceChangeId,
        approve: bool,
        by: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<GovernanceChange>;
}

/// Implementation detail of [`delegate_store_areas!`](crate::delegate_store_areas):
/// an impl of [`ApprovalStore`] that forwards every method to a field. The
/// signatures are the trait's, once more: a method added to or changed in
/// the trait without this list fails to compile wherever the macro is used
/// (first in this crate's own tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_approval_store {
    ($ty:ty => $inner:ident, $hook:tt) => {
        $crate::__delegate_impl! {
            ApprovalStore for $ty => $inner, $hook;
            fn create_access_request(&self, tenant: TenantId, r: &AccessRequest) -> StoreResult<()>;
            fn get_access_request(&self, tenant: TenantId, id: AccessRequestId) -> StoreResult<AccessRequest>;
            fn list_access_requests(&self, tenant: TenantId, status: Option<AccessRequestStatus>, requested_by: Option<&str>) -> StoreResult<Vec<AccessRequest>>;
            fn decide_access_request(&self, tenant: TenantId, id: AccessRequestId, decision: &AccessDecision) -> StoreResult<AccessRequest>;
            fn create_governance_change(&self, tenant: TenantId, change: &GovernanceChange) -> StoreResult<()>;
            fn get_governance_change(&self, tenant: TenantId, id: GovernanceChangeId) -> StoreResult<GovernanceChange>;
            fn list_governance_changes(&self, tenant: TenantId, status: Option<ChangeStatus>) -> StoreResult<Vec<GovernanceChange>>;
            fn decide_governance_change(&self, tenant: TenantId, id: GovernanceChangeId, approve: bool, by: &str, at: chrono::DateTime<chrono::Utc>) -> StoreResult<GovernanceChange>;
        }
    };
}
