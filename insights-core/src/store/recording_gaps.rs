//! Gaps of recordings (see [`RecordingGap`]): pauses asked for through
//! the API and applied by the gateway node holding the call.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::*;

/// The gaps of recordings. A recording has at most one open gap (no
/// `ended_at`) at a time.
#[async_trait]
pub trait RecordingGapStore: Send + Sync + 'static {
    /// Inserts a new gap of `gap.recording_id`; `Conflict` when the
    /// recording has an open one, `NotFound` when the recording does not
    /// exist in `tenant`.
    async fn open_recording_gap(
        &self,
        tenant: TenantId,
        gap: &RecordingGap,
    ) -> StoreResult<RecordingGap>;

    /// Asks to end the open gap of `recording` (by `by` at `at`); the gap
    /// as it is now. `NotFound` when no open gap waits for a resume.
    async fn request_gap_end(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        by: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<RecordingGap>;

    /// The gateway stopped writing media at `at`: sets `started_at` once;
    /// `false` when it was set already or the gap is closed.
    async fn mark_gap_started(
        &self,
        tenant: TenantId,
        gap: GapId,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Closes the open gap of `recording` at `at` (media written again, or
    /// the call ended); `false` when there was none.
    async fn close_recording_gap(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// The open gap of `recording`, if any (what the gateway polls).
    async fn current_recording_gap(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Option<RecordingGap>>;

    /// Every gap of `recording`, oldest first.
    async fn recording_gaps(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Vec<RecordingGap>>;
}

/// Implementation detail of [`delegate_store_areas!`](crate::delegate_store_areas):
/// an impl of [`RecordingGapStore`] that forwards every method to a field.
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_recording_gap_store {
    ($ty:ty => $inner:ident, $hook:tt) => {
        $crate::__delegate_impl! {
            RecordingGapStore for $ty => $inner, $hook;
            fn open_recording_gap(&self, tenant: TenantId, gap: &RecordingGap) -> StoreResult<RecordingGap>;
            fn request_gap_end(&self, tenant: TenantId, recording: RecordingId, by: &str, at: chrono::DateTime<chrono::Utc>) -> StoreResult<RecordingGap>;
            fn mark_gap_started(&self, tenant: TenantId, gap: GapId, at: chrono::DateTime<chrono::Utc>) -> StoreResult<bool>;
            fn close_recording_gap(&self, tenant: TenantId, recording: RecordingId, at: chrono::DateTime<chrono::Utc>) -> StoreResult<bool>;
            fn current_recording_gap(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<Option<RecordingGap>>;
            fn recording_gaps(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<Vec<RecordingGap>>;
        }
    };
}
