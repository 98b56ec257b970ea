//! Transcript segments and insights.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::*;

/// Transcripts (segments) and AI insights of a recording.
#[async_trait]
pub trait TranscriptStore: Send + Sync + 'static {
    /// Stores segments; a segment whose id already exists is replaced, so
    /// a retried job never duplicates. Marks the recording `has_transcript`.
    async fn put_transcript_segments(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        segments: &[TranscriptSegment],
    ) -> StoreResult<()>;
    /// Segments ordered by (start_ms, id).
    async fn list_transcript(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Vec<TranscriptSegment>>;
    /// Replaces the recording's whole transcript with `segments` in one
    /// transaction (the search index follows), so a retried or re-run
    /// transcription never duplicates segments. Concurrent replaces of one
    /// recording are serialised. Sets `has_transcript` to whether any
    /// segment is left.
    async fn replace_transcript(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        segments: &[TranscriptSegment],
    ) -> StoreResult<()>;
    /// Stores insights (replacing by id). Every citation must name a
    /// segment of this recording (else `Invalid`).
    async fn put_insights(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        insights: &[Insight],
    ) -> StoreResult<()>;
    /// Insights ordered by (kind, created_at, id).
    async fn list_insights(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Vec<Insight>>;
    /// Deletes every insight of the recording; returns how many.
    async fn delete_insights(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<u64>;
}

/// Implementation detail of [`delegate_store_areas!`](crate::delegate_store_areas):
/// an impl of [`TranscriptStore`] that forwards every method to a field. The
/// signatures are the trait's, once more: a method added to or changed in
/// the trait without this list fails to compile wherever the macro is used
/// (first in this crate's own tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_transcript_store {
    ($ty:ty => $inner:ident, $hook:tt) => {
        $crate::__delegate_impl! {
            TranscriptStore for $ty => $inner, $hook;
            fn put_transcript_segments(&self, tenant: TenantId, recording: RecordingId, segments: &[TranscriptSegment]) -> StoreResult<()>;
            fn list_transcript(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<Vec<TranscriptSegment>>;
            fn replace_transcript(&self, tenant: TenantId, recording: RecordingId, segments: &[TranscriptSegment]) -> StoreResult<()>;
            fn put_insights(&self, tenant: TenantId, recording: RecordingId, insights: &[Insight]) -> StoreResult<()>;
            fn list_insights(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<Vec<Insight>>;
            fn delete_insights(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<u64>;
        }
    };
}
