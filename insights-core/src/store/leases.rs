//! Leases of the periodic jobs and their interval runs (platform scope).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::*;

/// One lease row per periodic job, shared by every node on this
/// database, and the record of each interval's run. Times are the
/// store's clock (PostgreSQL's `now()`), so nodes' clocks need not agree.
///
/// Fenced methods take the [`Lease`] the caller holds and refuse
/// ([`StoreError::Refused`](super::StoreError::Refused) with
/// [`LEASE_LOST`]) unless, in the same transaction as their write, the
/// row still has that holder and token and has not expired; on
/// PostgreSQL the row is locked (`FOR SHARE`) until the write commits, so
/// no takeover can commit in between.
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Takes `job`'s lease for `holder` for `ttl` when nobody holds it or
    /// it expired (the fencing token grows by one), or extends it when
    /// `holder` holds it still (same token). `None` while another
    /// holder's lease is valid.
    async fn acquire_lease(
        &self,
        job: &str,
        holder: &str,
        ttl: Duration,
    ) -> StoreResult<Option<Lease>>;
    /// Extends a lease still held (same holder and token, not expired) to
    /// `ttl` from now; `None` when it was lost.
    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> StoreResult<Option<Lease>>;
    /// Gives a held lease up (it expires now), so another node need not
    /// wait for the expiry. A lease no longer held is left alone.
    async fn release_lease(&self, lease: &Lease) -> StoreResult<()>;
    /// The lease row of `job`, if any (expired or not).
    async fn get_lease(&self, job: &str) -> StoreResult<Option<Lease>>;
    /// Whether `lease` is still held and will be for at least `margin`.
    async fn check_lease(&self, lease: &Lease, margin: Duration) -> StoreResult<bool>;
    /// Fenced: records that `lease.job`'s interval starting at
    /// `interval_start` runs now under `lease`, unless it finished.
    async fn claim_scheduled_run(
        &self,
        lease: &Lease,
        interval_start: DateTime<Utc>,
    ) -> StoreResult<RunClaim>;
    /// Fenced: marks the interval's run finished.
    async fn finish_scheduled_run(
        &self,
        lease: &Lease,
        interval_start: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Every recorded run of `job`, oldest interval first.
    async fn list_scheduled_runs(&self, job: &str) -> StoreResult<Vec<ScheduledRun>>;
    /// Fenced: appends an audit event (like
    /// [`AuditStore::append_audit`](super::AuditStore::append_audit)) only
    /// while `lease` is held, in one transaction with the lease check.
    async fn append_audit_fenced(
        &self,
        tenant: TenantId,
        lease: &Lease,
        event: NewAuditEvent,
    ) -> StoreResult<AuditEvent>;
}

/// Implementation detail of [`delegate_store_areas!`](crate::delegate_store_areas):
/// an impl of [`LeaseStore`] that forwards every method to a field.
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_lease_store {
    ($ty:ty => $inner:ident, $hook:tt) => {
        $crate::__delegate_impl! {
            LeaseStore for $ty => $inner, $hook;
            fn acquire_lease(&self, job: &str, holder: &str, ttl: std::time::Duration) -> StoreResult<Option<Lease>>;
            fn renew_lease(&self, lease: &Lease, ttl: std::time::Duration) -> StoreResult<Option<Lease>>;
            fn release_lease(&self, lease: &Lease) -> StoreResult<()>;
            fn get_lease(&self, job: &str) -> StoreResult<Option<Lease>>;
            fn check_lease(&self, lease: &Lease, margin: std::time::Duration) -> StoreResult<bool>;
            fn claim_scheduled_run(&self, lease: &Lease, interval_start: chrono::DateTime<chrono::Utc>) -> StoreResult<RunClaim>;
            fn finish_scheduled_run(&self, lease: &Lease, interval_start: chrono::DateTime<chrono::Utc>) -> StoreResult<()>;
            fn list_scheduled_runs(&self, job: &str) -> StoreResult<Vec<ScheduledRun>>;
            fn append_audit_fenced(&self, tenant: TenantId, lease: &Lease, event: NewAuditEvent) -> StoreResult<AuditEvent>;
        }
    };
}
