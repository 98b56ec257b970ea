//! The blob store: one trait, implemented by the local filesystem
//! (embedded default) and Azure Blob Storage backends in
//! `insights-stores`, proven by one contract suite in `tests`.
//!
//! Blob stores only ever hold ciphertext (see [`crate::crypto`]).

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use tokio::io::AsyncRead;

/// Errors of a blob store.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob not found")]
    NotFound,
    #[error("container not found")]
    ContainerNotFound,
    #[error("invalid blob name: {0}")]
    InvalidName(String),
    /// The requested range lies outside the object.
    #[error("range {start}..{end} not satisfiable for an object of {size} bytes")]
    RangeNotSatisfiable { start: u64, end: u64, size: u64 },
    /// What was read back after an upload differs from what was sent.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    #[error("blob store I/O error")]
    Io(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Result alias for blob calls.
pub type BlobResult<T> = Result<T, BlobError>;

/// What a completed, verified upload stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutOutcome {
    pub byte_size: u64,
    /// SHA-256 of the stored bytes, lower-case hex.
    pub sha256: String,
}

/// Object metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobMeta {
    pub byte_size: u64,
}

/// An uncommitted block staged for an object (see
/// [`BlobStore::put_block`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StagedBlock {
    /// The index the block was staged under.
    pub index: u32,
    pub byte_size: u64,
}

/// Ciphertext object storage, one container per tenant.
///
/// Besides whole objects ([`put`](Self::put)), an object can be built from
/// blocks staged over time (Azure's Put Block / Put Block List): staged
/// blocks are invisible (not listed, not readable) until
/// [`commit_blocks`](Self::commit_blocks) makes the object of the named
/// blocks, in order, and discards every other staged block of that key.
/// The segmented upload of live calls uses them.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Short backend name (`local`, `azure`) for health output.
    fn backend(&self) -> &'static str;
    /// Checks that the store is reachable.
    async fn health(&self) -> BlobResult<()>;
    /// Creates the container if it does not exist (idempotent).
    async fn ensure_container(&self, container: &str) -> BlobResult<()>;
    /// Stores `data` under `key`, streaming (large objects in blocks), then
    /// checks that the stored object has the size and SHA-256 of what was
    /// read from `data`. An existing object is replaced only once the new
    /// one is complete; a failed put leaves no partial object visible.
    async fn put(
        &self,
        container: &str,
        key: &str,
        data: &mut (dyn AsyncRead + Send + Unpin),
    ) -> BlobResult<PutOutcome>;
    async fn head(&self, container: &str, key: &str) -> BlobResult<BlobMeta>;
    /// Bytes `range` of the object; the range must lie inside it.
    async fn get_range(&self, container: &str, key: &str, range: Range<u64>) -> BlobResult<Bytes>;
    /// The whole object as a stream of chunks.
    async fn get_stream(
        &self,
        container: &str,
        key: &str,
    ) -> BlobResult<BoxStream<'static, BlobResult<Bytes>>>;
    /// Deletes the object; deleting a missing object is not an error.
    async fn delete(&self, container: &str, key: &str) -> BlobResult<()>;
    /// Keys under `prefix`, sorted.
    async fn list(&self, container: &str, prefix: &str) -> BlobResult<Vec<String>>;
    /// Stages `data` as the uncommitted block `index` of `key` (replacing
    /// a block staged under the same index). Nothing is visible until
    /// [`commit_blocks`](Self::commit_blocks).
    async fn put_block(
        &self,
        container: &str,
        key: &str,
        index: u32,
        data: Bytes,
    ) -> BlobResult<()>;
    /// The uncommitted blocks of `key`, by index (none if nothing is
    /// staged).
    async fn staged_blocks(&self, container: &str, key: &str) -> BlobResult<Vec<StagedBlock>>;
    /// Makes `key` the concatenation of the staged blocks `indexes`, in
    /// that order (replacing an existing object), and discards every other
    /// staged block of `key`. An index that is not staged fails with
    /// [`BlobError::NotFound`] and changes nothing. `indexes` empty
    /// commits an empty object (and so discards every staged block).
    async fn commit_blocks(
        &self,
        container: &str,
        key: &str,
        indexes: &[u32],
    ) -> BlobResult<BlobMeta>;
}

/// Checks a blob key: 1–512 characters, `/`-separated segments of
/// `[A-Za-z0-9._-]`, no empty, `.` or `..` segment. Keys are ids chosen by
/// us, never user input, so the rule can be strict.
pub fn validate_key(key: &str) -> BlobResult<()> {
    let ok = !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        });
    if ok {
        Ok(())
    } else {
        Err(BlobError::InvalidName(key.to_owned()))
    }
}

/// Checks a container name with Azure's rules: 3–63 characters of
/// lower-case letters, digits and single hyphens, starting and ending
/// with a letter or digit.
pub fn validate_container(name: &str) -> BlobResult<()> {
    let ok = (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(BlobError::InvalidName(name.to_owned()))
    }
}

/// Where a recording's objects live in its tenant's container, and which
/// envelope object id each is bound to. Shared by the uploader that
/// writes them, the custody check and the API that plays them.
pub mod layout {
    use uuid::Uuid;

    use crate::domain::{FileJobId, FileJobKind, RecordingId, StreamId};

    /// The blob key prefix of a recording (a "folder").
    pub fn recording_prefix(id: RecordingId) -> String {
        format!("recordings/{id}")
    }

    /// The blob key of stream `index` (its `MediaStream::track`).
    pub fn stream_blob_key(id: RecordingId, index: u16, content_type: &str) -> String {
        let ext = match content_type {
            "audio/ogg" | "audio/opus" => "ogg",
            "audio/wav" | "audio/x-wav" | "audio/wave" => "wav",
            _ => "bin",
        };
        format!("recordings/{id}/stream-{index}.{ext}.env")
    }

    /// The blob key of the recording's spool media log staged while its
    /// call runs (segmented upload: uncommitted blocks, committed only
    /// by a node recovering the recording; removed once it is stored).
    pub fn segment_log_key(id: RecordingId) -> String {
        format!("recordings/{id}/spool.log")
    }

    /// The blob key of the recording's signed manifest.
    pub fn manifest_key(id: RecordingId) -> String {
        format!("recordings/{id}/manifest.json")
    }

    /// The envelope object id of a stream: the recording id for the
    /// primary stream (what readers of `Recording::media` expect), the
    /// stream id for the others, so one stream's blob can never pass for
    /// another's.
    pub fn envelope_object_id(recording: RecordingId, index: u16, stream: StreamId) -> Uuid {
        if index == 0 {
            recording.as_uuid()
        } else {
            stream.as_uuid()
        }
    }

    /// The blob key of a [`FileJob`](crate::domain::FileJob)'s sealed
    /// file (`exports/<id>.xlsx.env`, `bundles/<id>.zip.env`); its
    /// envelope object id is the job id.
    pub fn file_job_key(kind: FileJobKind, id: FileJobId) -> String {
        match kind {
            FileJobKind::Export => format!("exports/{id}.xlsx.env"),
            FileJobKind::AccessBundle => format!("bundles/{id}.zip.env"),
        }
    }

    /// The blob key of one attempt of a file job (see
    /// [`FileJob::attempt`](crate::domain::FileJob::attempt)): the first
    /// is [`file_job_key`]; a re-run after a takeover writes
    /// `exports/<id>.<attempt>.xlsx.env` (`bundles/…`), so the run it
    /// replaced, should it still be alive, can never overwrite or delete
    /// its file.
    pub fn file_job_attempt_key(kind: FileJobKind, id: FileJobId, attempt: u32) -> String {
        match (kind, attempt) {
            (_, 0 | 1) => file_job_key(kind, id),
            (FileJobKind::Export, n) => format!("exports/{id}.{n}.xlsx.env"),
            (FileJobKind::AccessBundle, n) => format!("bundles/{id}.{n}.zip.env"),
        }
    }
}
