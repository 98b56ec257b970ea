//! Meeting claims: which recording the bot legs of one meeting join, and
//! which gateway node records it, shared by every node on this database.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::*;

/// The claims of meetings (call chains) by gateway nodes. A meeting with
/// several policy-recorded users gets one bot leg per recorded user, and
/// the legs may land on different nodes: the claim, unique per (tenant,
/// chain key), makes them agree on one recording, and its lease says
/// which node records it (the primary).
#[async_trait]
pub trait MeetingClaimStore: Send + Sync + 'static {
    /// Claims `chain_key` of `tenant` in one atomic step and returns the
    /// claim as it stands afterwards:
    /// * no claim yet: `node` holds it for `recording_id` until
    ///   `lease_until` (epoch 1), and the caller creates that recording;
    /// * a claim whose lease ran out at `at` (its holder is presumed
    ///   dead): `node` takes it over for `recording_id`, which continues
    ///   the lost one (holder, lease and recording replaced, epoch + 1,
    ///   what was replaced kept in `previous`);
    /// * a live claim: returned unchanged (the caller's leg joins its
    ///   recording as a standby).
    ///
    /// The caller tells the cases apart by comparing the returned holder
    /// and recording id with its own.
    async fn claim_meeting(
        &self,
        tenant: TenantId,
        chain_key: &str,
        recording_id: RecordingId,
        node: &str,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<MeetingClaim>;

    /// Extends the lease of `node`'s claim taken at `epoch`; `false` when
    /// `node` no longer holds it at that epoch (taken over or released).
    async fn renew_meeting_claim(
        &self,
        tenant: TenantId,
        chain_key: &str,
        node: &str,
        epoch: i64,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// [`renew_meeting_claim`](Self::renew_meeting_claim) for several
    /// claims of one tenant in one transaction (one commit, one fsync on
    /// SQLite): a gateway node renews all of its primaries at each
    /// heartbeat this way. `claims` are (chain key, epoch) pairs; the
    /// answer says, claim by claim in the same order, whether `node`
    /// still holds it.
    async fn renew_meeting_claims(
        &self,
        tenant: TenantId,
        node: &str,
        claims: &[(String, i64)],
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Vec<bool>>;

    /// Deletes `node`'s claim (its recording ended); `false` when `node`
    /// does not hold it.
    async fn release_meeting_claim(
        &self,
        tenant: TenantId,
        chain_key: &str,
        node: &str,
    ) -> StoreResult<bool>;

    /// The claim of `chain_key`, if there is one.
    async fn meeting_claim(
        &self,
        tenant: TenantId,
        chain_key: &str,
    ) -> StoreResult<Option<MeetingClaim>>;

    /// Marks `failover.recording_id` as the continuation of
    /// `failover.continues` (idempotent: a mark already stored for the
    /// continuation is kept). A recording of another tenant, or none, is
    /// [`StoreError::NotFound`](super::StoreError::NotFound).
    async fn record_meeting_failover(
        &self,
        tenant: TenantId,
        failover: &MeetingFailover,
    ) -> StoreResult<()>;

    /// The failover marks naming `recording` on either side, oldest
    /// first.
    async fn meeting_failovers(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Vec<MeetingFailover>>;
}

/// Implementation detail of [`delegate_store_areas!`](crate::delegate_store_areas):
/// an impl of [`MeetingClaimStore`] that forwards every method to a field.
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_meeting_claim_store {
    ($ty:ty => $inner:ident, $hook:tt) => {
        $crate::__delegate_impl! {
            MeetingClaimStore for $ty => $inner, $hook;
            fn claim_meeting(&self, tenant: TenantId, chain_key: &str, recording_id: RecordingId, node: &str, at: chrono::DateTime<chrono::Utc>, lease_until: chrono::DateTime<chrono::Utc>) -> StoreResult<MeetingClaim>;
            fn renew_meeting_claim(&self, tenant: TenantId, chain_key: &str, node: &str, epoch: i64, lease_until: chrono::DateTime<chrono::Utc>) -> StoreResult<bool>;
            fn renew_meeting_claims(&self, tenant: TenantId, node: &str, claims: &[(String, i64)], lease_until: chrono::DateTime<chrono::Utc>) -> StoreResult<Vec<bool>>;
            fn release_meeting_claim(&self, tenant: TenantId, chain_key: &str, node: &str) -> StoreResult<bool>;
            fn meeting_claim(&self, tenant: TenantId, chain_key: &str) -> StoreResult<Option<MeetingClaim>>;
            fn record_meeting_failover(&self, tenant: TenantId, failover: &MeetingFailover) -> StoreResult<()>;
            fn meeting_failovers(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<Vec<MeetingFailover>>;
        }
    };
}
