//! Short-lived state shared by every API node (see
//! [`crate::domain::PendingSignIn`] and friends).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::crypto::WrappedDataKey;
use crate::domain::*;

/// Pending OIDC sign-ins and failed-login windows per client address
/// (platform scope: counted before a tenant is known; on PostgreSQL not
/// granted to `insights_app`), and export and access-bundle jobs (tenant
/// scope). Every operation is atomic in the database, so any number of
/// nodes may share it.
#[async_trait]
pub trait TransientStore: Send + Sync + 'static {
    /// Stores a started sign-in. Expired ones are forgotten first; when
    /// its client has `per_client` pending already, the oldest of them is
    /// dropped (nobody can fill the table and lock others out); when
    /// `max_pending` are pending in all, [`StoreError::Refused`](super::StoreError::Refused).
    /// A state hash stored already is a `Conflict`.
    async fn put_pending_sign_in(
        &self,
        p: &PendingSignIn,
        per_client: u32,
        max_pending: u32,
    ) -> StoreResult<()>;
    /// Takes the sign-in with this state hash: deleted and returned in one
    /// statement, so of concurrent callbacks (on any nodes) at most one
    /// gets it. `None` when unknown, used already or expired at `now`.
    async fn take_pending_sign_in(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<PendingSignIn>>;

    /// The failure window of a client address key, if one started after
    /// `since` (older windows are over).
    async fn address_window(
        &self,
        key: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<Option<AddressWindow>>;
    /// Counts one failed login of a client address key at `at`,
    /// atomically (concurrent counts on any nodes are never lost): a
    /// window that started `window` or longer before `at` restarts at `at`
    /// with this failure. Returns the window after the count. Windows over
    /// are forgotten.
    async fn count_address_failure(
        &self,
        key: &str,
        at: DateTime<Utc>,
        window: chrono::Duration,
    ) -> StoreResult<AddressWindow>;

    /// Stores a new job (`Conflict` if its id exists).
    async fn create_file_job(&self, tenant: TenantId, job: &FileJob) -> StoreResult<()>;
    /// One job of the tenant.
    async fn get_file_job(&self, tenant: TenantId, id: FileJobId) -> StoreResult<FileJob>;
    /// Every job of the tenant, oldest first.
    async fn list_file_jobs(&self, tenant: TenantId) -> StoreResult<Vec<FileJob>>;
    /// Renews a running job's lease and records its progress; `false`
    /// (nothing changed) once the job is not running any more or runs as
    /// another `attempt` (taken over).
    async fn renew_file_job(
        &self,
        tenant: TenantId,
        id: FileJobId,
        attempt: u32,
        done: u64,
        total: u64,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Ends a running job (its stored request is cleared); `false`
    /// (nothing changed) when it is not running any more (it was declared
    /// lost, or deleted) or runs as another `attempt` (taken over).
    async fn finish_file_job(
        &self,
        tenant: TenantId,
        id: FileJobId,
        attempt: u32,
        end: &FileJobEnd,
    ) -> StoreResult<bool>;
    /// Takes over a running job whose lease ran out before `at`, if it is
    /// still at `attempt`: its attempt goes up by one, its lease runs to
    /// `lease_until`, its progress restarts. Atomic: of concurrent callers
    /// (on any nodes) at most one gets the job (as it is now); the others
    /// get `None`, as does anyone when the lease has not run out.
    async fn take_over_file_job(
        &self,
        tenant: TenantId,
        id: FileJobId,
        attempt: u32,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Option<FileJob>>;
    /// Deletes a job and with it the only copy of its file's wrapped data
    /// key; returns whether it existed.
    async fn delete_file_job(&self, tenant: TenantId, id: FileJobId) -> StoreResult<bool>;
    /// Replaces the wrapped data key of a finished job's file with `new`
    /// (the same data key under another key-encryption key version), if
    /// the job is `done` and its key is still under `old_kek_id`; returns
    /// whether it changed (compare-and-swap, for `insights keys rotate`).
    async fn rewrap_file_job_key(
        &self,
        tenant: TenantId,
        id: FileJobId,
        old_kek_id: &str,
        new: &WrappedDataKey,
    ) -> StoreResult<bool>;
}

/// Implementation detail of [`delegate_store_areas!`](crate::delegate_store_areas):
/// an impl of [`TransientStore`] that forwards every method to a field.
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_transient_store {
    ($ty:ty => $inner:ident, $hook:tt) => {
        $crate::__delegate_impl! {
            TransientStore for $ty => $inner, $hook;
            fn put_pending_sign_in(&self, p: &PendingSignIn, per_client: u32, max_pending: u32) -> StoreResult<()>;
            fn take_pending_sign_in(&self, state_hash: &str, now: chrono::DateTime<chrono::Utc>) -> StoreResult<Option<PendingSignIn>>;
            fn address_window(&self, key: &str, since: chrono::DateTime<chrono::Utc>) -> StoreResult<Option<AddressWindow>>;
            fn count_address_failure(&self, key: &str, at: chrono::DateTime<chrono::Utc>, window: chrono::Duration) -> StoreResult<AddressWindow>;
            fn create_file_job(&self, tenant: TenantId, job: &FileJob) -> StoreResult<()>;
            fn get_file_job(&self, tenant: TenantId, id: FileJobId) -> StoreResult<FileJob>;
            fn list_file_jobs(&self, tenant: TenantId) -> StoreResult<Vec<FileJob>>;
            fn renew_file_job(&self, tenant: TenantId, id: FileJobId, attempt: u32, done: u64, total: u64, lease_until: chrono::DateTime<chrono::Utc>) -> StoreResult<bool>;
            fn finish_file_job(&self, tenant: TenantId, id: FileJobId, attempt: u32, end: &FileJobEnd) -> StoreResult<bool>;
            fn take_over_file_job(&self, tenant: TenantId, id: FileJobId, attempt: u32, at: chrono::DateTime<chrono::Utc>, lease_until: chrono::DateTime<chrono::Utc>) -> StoreResult<Option<FileJob>>;
            fn delete_file_job(&self, tenant: TenantId, id: FileJobId) -> StoreResult<bool>;
            fn rewrap_file_job_key(&self, tenant: TenantId, id: FileJobId, old_kek_id: &str, new: &WrappedDataKey) -> StoreResult<bool>;
        }
    };
}
