//! Recordings with their participants and media streams.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::*;

/// Recordings with their participants and media streams: what the bot
/// gateway writes while a call runs and the uploader completes.
#[async_trait]
pub trait RecordingStore: Send + Sync + 'static {
    /// Inserts a recording with its participants and streams.
    /// `recording.tenant_id` must equal `tenant` (else `Invalid`).
    async fn insert_recording(&self, tenant: TenantId, recording: &Recording) -> StoreResult<()>;
    /// A recording with its participants (in insertion order) and streams.
    async fn get_recording(&self, tenant: TenantId, id: RecordingId) -> StoreResult<Recording>;
    /// The recordings of this tenant among `ids` (missing ones skipped),
    /// with participants and streams, ordered by (started_at, id): a few
    /// queries for any number of recordings.
    async fn get_recordings(
        &self,
        tenant: TenantId,
        ids: &[RecordingId],
    ) -> StoreResult<Vec<Recording>>;
    /// Finds the recording of a platform call id (Graph call id).
    async fn recording_by_external_call_id(
        &self,
        tenant: TenantId,
        call_id: &str,
    ) -> StoreResult<Recording>;
    /// Adds a participant to an existing recording (roster updates).
    async fn add_participant(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        p: &Participant,
    ) -> StoreResult<()>;
    /// Adds a participant to an existing recording unless the same person
    /// is stored on it already, decided atomically in the store (the legs
    /// of one meeting, on any nodes, each store who they see: each person
    /// is stored once). The same person: the same Entra object id
    /// (`object_id`, compared and stored lower-case), directory user or
    /// phone number. Such a participant is kept and returned, marked a
    /// recorded user if `p` is one (never unmarked) and given `p`'s
    /// directory user and `object_id` where it had none; otherwise `p` is
    /// stored with `object_id` and returned. A party without any of the
    /// three is always stored.
    async fn add_participant_once(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        p: &Participant,
        object_id: Option<&str>,
    ) -> StoreResult<Participant>;
    /// Entitles the recorded users of `from` to `to` (a meeting's
    /// continuation): each is stored on `to` like
    /// [`add_participant_once`](Self::add_participant_once) (joined at 0,
    /// with their object id), in one transaction. Returns how many were
    /// added (not found on `to`). `NotFound` when `to` does not exist.
    async fn copy_recorded_users(
        &self,
        tenant: TenantId,
        from: RecordingId,
        to: RecordingId,
    ) -> StoreResult<u32>;
    /// Merges `attributes` into the recording's attributes: each named one
    /// is set (replacing a former value), the others are kept.
    async fn merge_recording_attributes(
        &self,
        tenant: TenantId,
        id: RecordingId,
        attributes: &std::collections::BTreeMap<String, serde_json::Value>,
    ) -> StoreResult<()>;
    /// Adds a media stream to an existing recording.
    async fn add_stream(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        s: &MediaStream,
    ) -> StoreResult<()>;
    /// Sets the lifecycle status; `ended_at`/`result_code` are kept when
    /// `None`. Sets `duration_ms` from `ended_at - started_at`.
    ///
    /// The status only moves forward: when the recording's current status
    /// may not precede `status` ([`RecordingStatus::may_follow`]), e.g. a
    /// late call-end `spooled` after the uploader's `stored`, the status is
    /// kept (the other fields are still set). Decided atomically in the
    /// store, so it holds against concurrent writers.
    async fn update_recording_status(
        &self,
        tenant: TenantId,
        id: RecordingId,
        status: RecordingStatus,
        ended_at: Option<chrono::DateTime<chrono::Utc>>,
        result_code: Option<&str>,
    ) -> StoreResult<()>;
    /// Records where the encrypted media lives (or `None` once deleted).
    async fn set_recording_media(
        &self,
        tenant: TenantId,
        id: RecordingId,
        media: Option<&MediaObject>,
    ) -> StoreResult<()>;
    /// Sets the recording's `legal_hold` flag as given (see
    /// [`GovernanceStore::apply_legal_holds`] for the flag derived from holds).
    async fn set_legal_hold_flag(
        &self,
        tenant: TenantId,
        id: RecordingId,
        held: bool,
    ) -> StoreResult<()>;
    /// Records what the call learns about a stored participant while it
    /// runs: `recorded_user = true` marks them as a policy-recorded user
    /// (never unmarked: `false` leaves the flag as it is); `left_ms` is
    /// when they left (ms after the start), `None` while present (a
    /// rejoin clears it). `NotFound` unless the participant belongs to
    /// this recording of this tenant.
    async fn update_participant_presence(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        participant: ParticipantId,
        recorded_user: bool,
        left_ms: Option<i64>,
    ) -> StoreResult<()>;
    /// Deletes a recording with its participants, streams, transcript,
    /// insights and search-index entries. Refused while on legal hold.
    async fn delete_recording(&self, tenant: TenantId, id: RecordingId) -> StoreResult<()>;
    /// Stores the Entra object id of a participant who is a user of the
    /// tenant's directory (so that a later directory sync can link them:
    /// [`DirectoryStore::link_participants_to_directory`](super::DirectoryStore::link_participants_to_directory)).
    /// `NotFound` unless the participant belongs to this recording of
    /// this tenant.
    async fn set_participant_object_id(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        participant: ParticipantId,
        object_id: &str,
    ) -> StoreResult<()>;
    /// How many of the tenant's recordings are not yet stored (status
    /// `recording` or `spooled`): their data keys, wrapped when the call
    /// began, still live only in a node's spool.
    async fn count_unstored_recordings(&self, tenant: TenantId) -> StoreResult<u64>;
}

/// Implementation detail of [`delegate_store_areas!`](crate::delegate_store_areas):
/// an impl of [`RecordingStore`] that forwards every method to a field. The
/// signatures are the trait's, once more: a method added to or changed in
/// the trait without this list fails to compile wherever the macro is used
/// (first in this crate's own tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_recording_store {
    ($ty:ty => $inner:ident, $hook:tt) => {
        $crate::__delegate_impl! {
            RecordingStore for $ty => $inner, $hook;
            fn insert_recording(&self, tenant: TenantId, recording: &Recording) -> StoreResult<()>;
            fn get_recording(&self, tenant: TenantId, id: RecordingId) -> StoreResult<Recording>;
            fn get_recordings(&self, tenant: TenantId, ids: &[RecordingId]) -> StoreResult<Vec<Recording>>;
            fn recording_by_external_call_id(&self, tenant: TenantId, call_id: &str) -> StoreResult<Recording>;
            fn add_participant(&self, tenant: TenantId, recording: RecordingId, p: &Participant) -> StoreResult<()>;
            fn add_participant_once(&self, tenant: TenantId, recording: RecordingId, p: &Participant, object_id: Option<&str>) -> StoreResult<Participant>;
            fn copy_recorded_users(&self, tenant: TenantId, from: RecordingId, to: RecordingId) -> StoreResult<u32>;
            fn add_stream(&self, tenant: TenantId, recording: RecordingId, s: &MediaStream) -> StoreResult<()>;
            fn merge_recording_attributes(&self, tenant: TenantId, id: RecordingId, attributes: &std::collections::BTreeMap<String, serde_json::Value>) -> StoreResult<()>;
            fn update_recording_status(&self, tenant: TenantId, id: RecordingId, status: RecordingStatus, ended_at: Option<chrono::DateTime<chrono::Utc>>, result_code: Option<&str>) -> StoreResult<()>;
            fn set_recording_media(&self, tenant: TenantId, id: RecordingId, media: Option<&MediaObject>) -> StoreResult<()>;
            fn set_legal_hold_flag(&self, tenant: TenantId, id: RecordingId, held: bool) -> StoreResult<()>;
            fn update_participant_presence(&self, tenant: TenantId, recording: RecordingId, participant: ParticipantId, recorded_user: bool, left_ms: Option<i64>) -> StoreResult<()>;
            fn delete_recording(&self, tenant: TenantId, id: RecordingId) -> StoreResult<()>;
            fn set_participant_object_id(&self, tenant: TenantId, recording: RecordingId, participant: ParticipantId, object_id: &str) -> StoreResult<()>;
            fn count_unstored_recordings(&self, tenant: TenantId) -> StoreResult<u64>;
        }
    };
}
