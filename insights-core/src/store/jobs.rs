//! The durable job queue of the AI pipeline.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::*;

/// Durable work items of the AI pipeline (see [`Job`]). Enqueue and
/// listing are tenant scoped; claiming is across tenants (a worker serves
/// every tenant), so claim, renew, complete, fail and release work on job
/// rows only (ids, states, times: no personal data) and are fenced by the
/// [`JobLease`] of the claim.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Adds a job unless one of the same kind is pending (queued or
    /// running) for the recording: then that one is returned
    /// (`created = false`). `NotFound` if the recording does not exist
    /// in this tenant; `Invalid` if `max_attempts` is 0.
    async fn enqueue_job(&self, tenant: TenantId, job: &NewJob) -> StoreResult<Enqueued>;
    /// Claims the most overdue job of the requested kinds in any tenant:
    /// queued with `run_after <= now`, or running with an expired lease
    /// (its worker is gone). The job becomes running under a fresh lease
    /// and its attempt count goes up by one. Running jobs whose lease
    /// expired on their last attempt are dead-lettered instead. Two
    /// concurrent claims never return the same job.
    async fn claim_job(&self, req: &ClaimRequest) -> StoreResult<Option<ClaimedJob>>;
    /// Extends the lease to `until`; `false` if the lease was lost (the
    /// job was claimed by another worker, or is no longer running).
    async fn renew_job_lease(
        &self,
        lease: &JobLease,
        until: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool>;
    /// Marks the job succeeded; `false` if the lease was lost.
    async fn complete_job(
        &self,
        lease: &JobLease,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool>;
    /// Records a failed attempt: queued again at `retry_at` while attempts
    /// remain and the failure is transient, else dead with the reason.
    /// Returns the new state, `None` if the lease was lost.
    async fn fail_job(
        &self,
        lease: &JobLease,
        failure: &JobFailure,
    ) -> StoreResult<Option<JobState>>;
    /// Gives a running job back unfinished (graceful shutdown): queued
    /// again at once, and the attempt does not count. `false` if the lease
    /// was lost.
    async fn release_job(
        &self,
        lease: &JobLease,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool>;
    /// One job of this tenant.
    async fn get_job(&self, tenant: TenantId, id: JobId) -> StoreResult<Job>;
    /// The recording's jobs, oldest first (`NotFound` for a recording that
    /// does not exist in this tenant).
    async fn list_jobs(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<Vec<Job>>;
}

/// Implementation detail of [`delegate_store_areas!`](crate::delegate_store_areas):
/// an impl of [`JobStore`] that forwards every method to a field. The
/// signatures are the trait's, once more: a method added to or changed in
/// the trait without this list fails to compile wherever the macro is used
/// (first in this crate's own tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_job_store {
    ($ty:ty => $inner:ident, $hook:tt) => {
        $crate::__delegate_impl! {
            JobStore for $ty => $inner, $hook;
            fn enqueue_job(&self, tenant: TenantId, job: &NewJob) -> StoreResult<Enqueued>;
            fn claim_job(&self, req: &ClaimRequest) -> StoreResult<Option<ClaimedJob>>;
            fn renew_job_lease(&self, lease: &JobLease, until: chrono::DateTime<chrono::Utc>) -> StoreResult<bool>;
            fn complete_job(&self, lease: &JobLease, now: chrono::DateTime<chrono::Utc>) -> StoreResult<bool>;
            fn fail_job(&self, lease: &JobLease, failure: &JobFailure) -> StoreResult<Option<JobState>>;
            fn release_job(&self, lease: &JobLease, now: chrono::DateTime<chrono::Utc>) -> StoreResult<bool>;
            fn get_job(&self, tenant: TenantId, id: JobId) -> StoreResult<Job>;
            fn list_jobs(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<Vec<Job>>;
        }
    };
}
