//! Data-subject requests (GDPR).

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::*;

/// Data-subject requests (GDPR): finding a person's participations,
/// pseudonymising them, and the erasure request records.
#[async_trait]
pub trait SubjectStore: Send + Sync + 'static {
    /// Participant rows of the tenant matching any key exactly (see
    /// [`SubjectKeys`]), ordered by (started_at, recording, participant),
    /// at most `limit` (0: no limit). Empty keys match nothing.
    async fn find_subject_participants(
        &self,
        tenant: TenantId,
        keys: &SubjectKeys,
        limit: u32,
    ) -> StoreResult<Vec<ParticipantHit>>;
    /// Pseudonymises a participant for erasure: `display_name` becomes
    /// `label`; phone number, URI, email and directory link are cleared
    /// (search indexes follow), and so is the recording's `dtmf`
    /// attribute (SIPREC DTMF digits: PINs, account numbers, not
    /// attributable to one party). `NotFound` unless the participant belongs
    /// to this recording of this tenant; refused while the recording is on
    /// legal hold.
    async fn erase_participant_identity(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        participant: ParticipantId,
        label: &str,
    ) -> StoreResult<()>;
    /// Inserts or replaces an erasure request (matched by id).
    /// `record.tenant_id` must equal `tenant` (else `Invalid`).
    async fn put_erasure_request(
        &self,
        tenant: TenantId,
        record: &ErasureRecord,
    ) -> StoreResult<()>;
    /// One erasure request by id.
    async fn get_erasure_request(
        &self,
        tenant: TenantId,
        id: uuid::Uuid,
    ) -> StoreResult<ErasureRecord>;
    /// The tenant's erasure requests, newest first.
    async fn list_erasure_requests(&self, tenant: TenantId) -> StoreResult<Vec<ErasureRecord>>;
    /// Run once an erasure has changed the store: makes what it removed
    /// physically unrecoverable from the backend's own files where the
    /// backend keeps residue. SQLite merges every full-text index
    /// (FTS5 `optimize`: deleted terms live on in old index segments until
    /// merged) and checkpoints the WAL with `TRUNCATE` (old page images
    /// stay in the WAL file otherwise); `secure_delete` zeroes the freed
    /// pages. Other backends may do nothing.
    async fn purge_erased_residue(&self) -> StoreResult<()>;
}

/// Implementation detail of [`delegate_store_areas!`](crate::delegate_store_areas):
/// an impl of [`SubjectStore`] that forwards every method to a field. The
/// signatures are the trait's, once more: a method added to or changed in
/// the trait without this list fails to compile wherever the macro is used
/// (first in this crate's own tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_subject_store {
    ($ty:ty => $inner:ident, $hook:tt) => {
        $crate::__delegate_impl! {
            SubjectStore for $ty => $inner, $hook;
            fn find_subject_participants(&self, tenant: TenantId, keys: &SubjectKeys, limit: u32) -> StoreResult<Vec<ParticipantHit>>;
            fn erase_participant_identity(&self, tenant: TenantId, recording: RecordingId, participant: ParticipantId, label: &str) -> StoreResult<()>;
            fn put_erasure_request(&self, tenant: TenantId, record: &ErasureRecord) -> StoreResult<()>;
            fn get_erasure_request(&self, tenant: TenantId, id: uuid::Uuid) -> StoreResult<ErasureRecord>;
            fn list_erasure_requests(&self, tenant: TenantId) -> StoreResult<Vec<ErasureRecord>>;
            fn purge_erased_residue(&self) -> StoreResult<()>;
        }
    };
}
