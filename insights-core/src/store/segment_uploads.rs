//! Segment uploads of live calls (see [`SegmentUpload`]): which gateway
//! node stages which recording's spool in the blob store, with a lease
//! per node and a fencing epoch per row.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::*;

/// The segment uploads of gateway nodes. Tenant methods see one tenant's
/// rows; the two platform methods (renewing a node's leases, finding
/// lapsed ones) work across tenants, as the job queue's claim does.
#[async_trait]
pub trait SegmentUploadStore: Send + Sync + 'static {
    /// Inserts the row of a recording whose segments `upload.node` starts
    /// to stage (epoch 1, nothing staged). A row already there is
    /// returned unchanged (the caller compares the node: another node's
    /// row means the recording was taken over).
    async fn begin_segment_upload(
        &self,
        tenant: TenantId,
        upload: &SegmentUpload,
    ) -> StoreResult<SegmentUpload>;

    /// Fenced: records that `node`, holding the row at `epoch`, has staged
    /// `blocks` blocks (`staged_len` bytes) and extends its lease; `false`
    /// when `node` no longer holds the row at that epoch.
    #[allow(clippy::too_many_arguments)]
    async fn record_segments(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        node: &str,
        epoch: i64,
        blocks: u32,
        staged_len: u64,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// The row of `recording`, if any.
    async fn segment_upload(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Option<SegmentUpload>>;

    /// Deletes the row (the recording is stored or erased): only if `node`
    /// holds it, or whoever does when `node` is `None` (erasure). `false`
    /// when nothing was deleted.
    async fn delete_segment_upload(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        node: Option<&str>,
    ) -> StoreResult<bool>;

    /// Fenced: retires the row `node` holds at `epoch` (its recording was
    /// stored after a takeover): journal emptied, nothing staged, lease
    /// until [`retired_lease_until`](crate::domain::retired_lease_until),
    /// never renewed, never lapsing. `false` when `node` does not hold it
    /// at that epoch.
    async fn retire_segment_upload(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        node: &str,
        epoch: i64,
    ) -> StoreResult<bool>;

    /// Takes over a row whose lease ran out at `now`, still at `epoch` (as
    /// the caller saw it): `node` holds it until `lease_until`, epoch + 1.
    /// `None` when another node was first or the holder renewed.
    async fn take_over_segment_upload(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        epoch: i64,
        node: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Option<SegmentUpload>>;

    /// Platform scope: extends the lease of every row `node` holds (not
    /// retired) to `lease_until` (the node's heartbeat); the number of
    /// rows.
    async fn renew_segment_leases(
        &self,
        node: &str,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<u64>;

    /// Platform scope: rows of every tenant whose lease ran out before
    /// `now`, oldest lease first, at most `limit`.
    async fn lapsed_segment_uploads(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<SegmentUpload>>;

    /// Platform scope: every row `node` holds, not retired (what a
    /// restarted node had staged before).
    async fn node_segment_uploads(&self, node: &str) -> StoreResult<Vec<SegmentUpload>>;
}

/// Implementation detail of [`delegate_store_areas!`](crate::delegate_store_areas):
/// an impl of [`SegmentUploadStore`] that forwards every method to a field.
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_segment_upload_store {
    ($ty:ty => $inner:ident, $hook:tt) => {
        $crate::__delegate_impl! {
            SegmentUploadStore for $ty => $inner, $hook;
            fn begin_segment_upload(&self, tenant: TenantId, upload: &SegmentUpload) -> StoreResult<SegmentUpload>;
            fn record_segments(&self, tenant: TenantId, recording: RecordingId, node: &str, epoch: i64, blocks: u32, staged_len: u64, lease_until: chrono::DateTime<chrono::Utc>) -> StoreResult<bool>;
            fn segment_upload(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<Option<SegmentUpload>>;
            fn delete_segment_upload(&self, tenant: TenantId, recording: RecordingId, node: Option<&str>) -> StoreResult<bool>;
            fn retire_segment_upload(&self, tenant: TenantId, recording: RecordingId, node: &str, epoch: i64) -> StoreResult<bool>;
            fn take_over_segment_upload(&self, tenant: TenantId, recording: RecordingId, epoch: i64, node: &str, now: chrono::DateTime<chrono::Utc>, lease_until: chrono::DateTime<chrono::Utc>) -> StoreResult<Option<SegmentUpload>>;
            fn renew_segment_leases(&self, node: &str, lease_until: chrono::DateTime<chrono::Utc>) -> StoreResult<u64>;
            fn lapsed_segment_uploads(&self, now: chrono::DateTime<chrono::Utc>, limit: u32) -> StoreResult<Vec<SegmentUpload>>;
            fn node_segment_uploads(&self, node: &str) -> StoreResult<Vec<SegmentUpload>>;
        }
    };
}
