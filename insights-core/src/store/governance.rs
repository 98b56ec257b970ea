//! Retention policies, legal holds, governance sweeps, the tenant's
//! recording policy and its completeness reconciliation.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::*;

/// Retention policies, legal holds and the sweeps that apply them.
#[async_trait]
pub trait GovernanceStore: Send + Sync + 'static {
    /// Inserts or replaces a retention policy (matched by id).
    async fn upsert_retention_policy(
        &self,
        tenant: TenantId,
        p: &RetentionPolicy,
    ) -> StoreResult<()>;
    /// The tenant's retention policies.
    async fn list_retention_policies(&self, tenant: TenantId) -> StoreResult<Vec<RetentionPolicy>>;
    /// Deletes a retention policy.
    async fn delete_retention_policy(
        &self,
        tenant: TenantId,
        id: RetentionPolicyId,
    ) -> StoreResult<()>;
    /// Places a legal hold.
    async fn create_legal_hold(&self, tenant: TenantId, hold: &LegalHold) -> StoreResult<()>;
    /// Holds ordered by placed_at; `active_only` skips lifted ones.
    async fn list_legal_holds(
        &self,
        tenant: TenantId,
        active_only: bool,
    ) -> StoreResult<Vec<LegalHold>>;
    /// Lifts an active hold, recording who lifted it.
    async fn lift_legal_hold(&self, tenant: TenantId, id: LegalHoldId, by: &str)
    -> StoreResult<()>;
    /// Recordings for governance sweeps (retention, legal holds): oldest
    /// first by (`started_at`, id), keyset-paged, with participants and
    /// streams, and no total count (see [`GovernanceQuery`]).
    async fn list_recordings_for_governance(
        &self,
        tenant: TenantId,
        query: &GovernanceQuery,
    ) -> StoreResult<Vec<Recording>>;
    /// Re-evaluates the recording's `legal_hold` flag from the tenant's
    /// active holds ([`HoldScope::covers`], the one rule) and stores it,
    /// atomically with respect to concurrent hold changes and roster
    /// updates; returns the new flag. `NotFound` for a recording that is
    /// not in this tenant. The store also does this by itself whenever a
    /// recording is inserted or gains a participant, so recordings made
    /// after a hold was placed are held too.
    async fn apply_legal_holds(&self, tenant: TenantId, id: RecordingId) -> StoreResult<bool>;
    /// The tenant's recording policy; `None` when none was ever stored
    /// (the tenant then has [`RecordingPolicy::default_for`]).
    async fn recording_policy(&self, tenant: TenantId) -> StoreResult<Option<RecordingPolicy>>;
    /// Stores the tenant's recording policy, replacing the one there.
    /// `Invalid` when it belongs to another tenant or does not validate.
    async fn put_recording_policy(
        &self,
        tenant: TenantId,
        policy: &RecordingPolicy,
    ) -> StoreResult<()>;
    /// Stores a completeness reconciliation run and its calls: each call
    /// replaces the one stored under its `call_id` (a later run of the
    /// same period corrects an earlier one), in one transaction.
    /// `Invalid` when the run belongs to another tenant.
    async fn put_completeness(
        &self,
        tenant: TenantId,
        run: &CompletenessRun,
        calls: &[CallCompleteness],
    ) -> StoreResult<()>;
    /// The reconciled calls that started in `[from, to)`, oldest first
    /// (at most 100 000).
    async fn list_completeness_calls(
        &self,
        tenant: TenantId,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<CallCompleteness>>;
    /// The tenant's latest reconciliation runs, newest first.
    async fn list_completeness_runs(
        &self,
        tenant: TenantId,
        limit: u32,
    ) -> StoreResult<Vec<CompletenessRun>>;
    /// The tenant's completeness settings; `None` when never stored (the
    /// installation default threshold applies).
    async fn completeness_threshold(
        &self,
        tenant: TenantId,
    ) -> StoreResult<Option<CompletenessThreshold>>;
    /// Stores the tenant's completeness settings. `Invalid` when they
    /// belong to another tenant or the threshold is above 1000.
    async fn put_completeness_threshold(
        &self,
        tenant: TenantId,
        settings: &CompletenessThreshold,
    ) -> StoreResult<()>;
}

/// Implementation detail of [`delegate_store_areas!`](crate::delegate_store_areas):
/// an impl of [`GovernanceStore`] that forwards every method to a field. The
/// signatures are the trait's, once more: a method added to or changed in
/// the trait without this list fails to compile wherever the macro is used
/// (first in this crate's own tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_governance_store {
    ($ty:ty => $inner:ident, $hook:tt) => {
        $crate::__delegate_impl! {
            GovernanceStore for $ty => $inner, $hook;
            fn upsert_retention_policy(&self, tenant: TenantId, p: &RetentionPolicy) -> StoreResult<()>;
            fn list_retention_policies(&self, tenant: TenantId) -> StoreResult<Vec<RetentionPolicy>>;
            fn delete_retention_policy(&self, tenant: TenantId, id: RetentionPolicyId) -> StoreResult<()>;
            fn create_legal_hold(&self, tenant: TenantId, hold: &LegalHold) -> StoreResult<()>;
            fn list_legal_holds(&self, tenant: TenantId, active_only: bool) -> StoreResult<Vec<LegalHold>>;
            fn lift_legal_hold(&self, tenant: TenantId, id: LegalHoldId, by: &str) -> StoreResult<()>;
            fn list_recordings_for_governance(&self, tenant: TenantId, query: &GovernanceQuery) -> StoreResult<Vec<Recording>>;
            fn apply_legal_holds(&self, tenant: TenantId, id: RecordingId) -> StoreResult<bool>;
            fn recording_policy(&self, tenant: TenantId) -> StoreResult<Option<RecordingPolicy>>;
            fn put_recording_policy(&self, tenant: TenantId, policy: &RecordingPolicy) -> StoreResult<()>;
            fn put_completeness(&self, tenant: TenantId, run: &CompletenessRun, calls: &[CallCompleteness]) -> StoreResult<()>;
            fn list_completeness_calls(&self, tenant: TenantId, from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>) -> StoreResult<Vec<CallCompleteness>>;
            fn list_completeness_runs(&self, tenant: TenantId, limit: u32) -> StoreResult<Vec<CompletenessRun>>;
            fn completeness_threshold(&self, tenant: TenantId) -> StoreResult<Option<CompletenessThreshold>>;
            fn put_completeness_threshold(&self, tenant: TenantId, settings: &CompletenessThreshold) -> StoreResult<()>;
        }
    };
}

/// A page of recordings for governance sweeps
/// ([`GovernanceStore::list_recordings_for_governance`]). Every filter is
/// optional and they combine with AND; results are ordered by
/// (`started_at`, id) ascending.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GovernanceQuery {
    /// `started_at < started_before` (a retention cutoff, or a hold's `to`).
    pub started_before: Option<chrono::DateTime<chrono::Utc>>,
    /// `started_at >= started_from` (a hold's `from`).
    pub started_from: Option<chrono::DateTime<chrono::Utc>>,
    /// Only these recordings (`Some(vec![])` matches nothing).
    pub ids: Option<Vec<RecordingId>>,
    /// Only recordings in which this directory user took part.
    pub user_id: Option<UserId>,
    /// Only recordings whose flag is this.
    pub legal_hold: Option<bool>,
    /// Keyset cursor: only recordings after this (`started_at`, id).
    pub after: Option<(chrono::DateTime<chrono::Utc>, RecordingId)>,
    /// Page size, clamped to 1..=1000.
    pub limit: u32,
}
