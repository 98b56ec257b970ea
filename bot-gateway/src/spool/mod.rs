//! The local encrypted spool: where a call's media lives from the moment
//! the recorder hands it over until the uploader has stored it, verified,
//! in the tenant's blob container.
//!
//! # Guarantees
//!
//! * **Never clear on disk.** Media is sealed with AES-256-GCM under the
//!   recording's own data key before it is written; the data key is on
//!   disk only wrapped by the tenant's key-encryption key (in the journal).
//!   Plaintext waits in memory only, in buffers zeroized after sealing.
//! * **Durable within a second.** A background thread seals every live
//!   stream's buffered audio into a record and fsyncs the file every
//!   `fsync_interval` (≤ 1 s, default 500 ms); [`SpoolRecording::sync`]
//!   does the same on demand. Audio handed to the spool at least one
//!   interval (plus one fsync) before a crash is recovered; anything
//!   fsync'd is never lost.
//! * **Every call survives a restart.** [`Spool::open`] recovers every
//!   entry: live ones are closed as *partial* with everything durable,
//!   finished ones wait for upload, half-deleted ones are deleted.
//!
//! # Layout
//!
//! ```text
//! <spool dir>/spool.lock               advisory lock: one process per spool
//! <spool dir>/<recording id>/journal.json
//! <spool dir>/<recording id>/media.spl one media log for all streams
//! <spool dir>/.new-<id>/               an entry being created (deleted on start)
//! <spool dir>/.trash-<id>/             an entry being deleted (deleted on start)
//! ```
//!
//! An entry appears atomically: it is built in `.new-<id>` (header of the
//! media log and the journal written and fsync'd), then renamed to `<id>`
//! and the spool directory fsync'd. It disappears atomically by the
//! reverse: journal set to `uploaded`, renamed to `.trash-<id>`, deleted.
//!
//! # The media log (`media.spl`, format version 1)
//!
//! Why not the blob envelope directly: envelope v1 has fixed-size chunks
//! (64 KiB), and a partly filled chunk cannot be made durable without
//! later rewriting it under the same nonce. The spool instead appends
//! variable-length records, each sealed on its own, and the uploader
//! converts the log to an envelope at upload.
//!
//! ```text
//! offset  length  field
//!      0       8  magic, ASCII "INSSPOOL"
//!      8       1  version, 0x01
//!      9      16  tenant id (UUID bytes)
//!     25      16  recording id
//!     41      16  data key id
//!     57       2  stream count N, u16 big-endian, 1 ..= 1024
//!     59       7  nonce prefix: 0x80 (the spool's nonce domain) then 6 random bytes
//!     66       8  created at, µs since the Unix epoch, i64 big-endian
//!     74    16 N  stream ids, in stream index order
//! 74+16N          record 0 || record 1 || ...
//! ```
//!
//! Record `i` (`i` = 0, 1, … counts all records of the file, all streams):
//!
//! ```text
//!      0       4  plaintext length P, u32 big-endian, 0 ..= 1 MiB
//!      4       2  stream index, u16 big-endian, < N
//!      6       1  flags: 0x01 = last record of its stream; other bits 0
//!      7       8  sealed at, µs since the Unix epoch, i64 big-endian
//!     15  P + 16  AES-256-GCM(key   = the recording's data key,
//!                             nonce = nonce prefix (7) || i as u32 BE (4) || flags (1),
//!                             aad   = "insights/spool-record/v1" || file header
//!                                     || i as u64 BE || record bytes 0..15,
//!                             plaintext) || 16-byte tag
//! ```
//!
//! * Each stream's plaintext is the concatenation of its records' plaintexts
//!   in file order; a cleanly finished stream ends with a record flagged
//!   *last* (possibly empty). A file is *complete* when every stream has
//!   its last record.
//! * Detected: any changed byte (the header and the record header are
//!   associated data), reordered or dropped records (the index is in the
//!   nonce and the AAD), records spliced from another recording (header),
//!   truncation of a finished stream (its last record is missing), data
//!   after a stream's last record.
//! * **No (key, nonce) pair is ever used twice.** The data key is fresh per
//!   recording and the log is written once, front to back, by one writer:
//!   each record index is sealed exactly once. A failed write is retried
//!   with the *same sealed bytes* (never re-sealed), and recovery never
//!   appends to a log: a log cut short by a crash is closed in the journal
//!   only. The nonce prefix starts with 0x80, the envelopes the uploader
//!   makes from the log use prefixes starting with 0x01, so the two
//!   nonce spaces under the key are disjoint.
//! * Readers take the longest prefix of whole, authentic records. After a
//!   crash the rest (a torn record, or zero-filled blocks) is reported as
//!   an invalid tail, counted in the journal and kept until upload.
//!
//! # The journal (`journal.json`)
//!
//! One JSON file per entry ([`journal::Journal`]): recording and tenant id,
//! state (`live` → `finished` → `uploaded`), created/started/finished
//! times, partial reason, the wrapped data key, participant and stream ids
//! with content types, per stream (once finished) the record count,
//! plaintext length and SHA-256 and whether it is complete, the valid
//! length of the log, and the expiry alarm progress. Rewritten
//! crash-safely (tmp → fsync → rename → fsync dir) on each state change,
//! which are rare (begin, finish, alarms, upload); audio writes never
//! touch it. There is no `uploading` state: every upload step is
//! idempotent, so a restart simply starts the upload again.
//!
//! # Recovery rules (on [`Spool::open`])
//!
//! * `.new-*` and `.trash-*` directories and temporary files: deleted (an
//!   entry under creation had accepted no audio yet).
//! * `uploaded`: the deletion is finished.
//! * `finished`: waits for upload.
//! * `live`: the process died during the call. The log is scanned, every
//!   authentic record kept, and the entry closed as partial
//!   (`recovered-after-restart`) with `finished_at` = the time the last
//!   durable record was sealed. A call whose media resumes after the
//!   restart starts a *new* spool entry (the old id is taken):
//!   continuing the old log would require appending after a torn tail.
//! * A recording of a *lost* gateway node, recovered here from the
//!   segments it staged in the blob store ([`crate::segments`]), enters
//!   the spool the same way: [`Spool::adoption`] gives a `.new-<id>`
//!   directory for the staged log, [`Spool::adopt`] scans it like a live
//!   log found on start, closes it as partial (`gateway-node-lost`) and
//!   renames it into place; the uploader then stores it like any other.
//! * A journal that cannot be read, or a data key that cannot be
//!   unwrapped: the entry is left untouched (nothing is deleted), logged
//!   and counted (`insights_spool_unrecoverable_entries`), and tried again
//!   on the next start.
//!
//! # Quota
//!
//! `quota_bytes` is a soft quota on admission. A new call is admitted only
//! if `used + reserved + call_reserve_bytes <= quota_bytes`, where `used`
//! is everything in the spool and `reserved` the part of each live call's
//! `call_reserve_bytes` headroom that it has not written yet. A refusal is
//! [`SpoolError::Full`] and counts `insights_spool_full_total`. Calls
//! already recording are never cut off by the quota; they may grow past
//! it (their headroom is what makes that safe). Only the disk itself
//! (ENOSPC) stops them: sealed data then waits in memory (up to 8 MiB per
//! call) and the write is retried every tick.
//!
//! # Expiry (seed §4.8.4: "preserved for a maximum of 24 hours or until
//! the communication has been restored")
//!
//! A finished entry's age counts from `finished_at`. At `warn_at_percent`
//! of `max_age` it raises a warning, at `max_age` it expires: each once,
//! persisted in the journal, with a log line, a counter
//! (`insights_spool_expiry_warnings_total`, `insights_spool_expired_total`),
//! the gauge `insights_spool_expired_entries` and an audit event in the
//! tenant's chain (appended by the uploader, retried until the metadata
//! store takes it). **An expired recording is kept and still retried, not
//! deleted**: deleting it would destroy the only copy of compliance
//! evidence because storage was down, and "until the communication has
//! been restored" covers exactly this case. The alarms make the breach of
//! the 24-hour promise visible to the operator, who decides.
//!
//! # Code map
//!
//! This file holds the configuration, the shared state and the entry
//! deletion protocol; `api` the handles the gateway uses ([`Spool`],
//! [`SpoolRecording`]), `recovery` what happens on open, `ticker` the
//! durability tick, alarms and gauges, `erase` removal on request (GDPR
//! erasure, [`insights_core::spool::SpoolCopies`]), `format` and `journal`
//! the two files of an entry, `writer` the per-recording writer.

mod api;
mod erase;
pub mod format;
pub mod journal;
mod recovery;
mod ticker;
mod writer;

pub use self::api::{Adoption, FinishedRecording, SpoolRecording, SpoolStream};
pub use self::erase::SpoolDir;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use insights_core::config::{ConfigError, Settings};
use insights_core::crypto::{CryptoError, DataKey, KeyProvider};
use insights_core::domain::{ParticipantId, RecordingId, StreamId, TenantId};

use self::format::FormatError;
use self::journal::Journal;
use self::writer::RecordingWriter;

/// Errors of the spool.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The spool is full: a new call is refused (calls already recording
    /// continue).
    #[error(
        "spool full: new call refused ({used} bytes used + {reserved} reserved for live calls + \
         {needed} for this call exceed the quota of {quota} bytes)"
    )]
    Full {
        used: u64,
        reserved: u64,
        needed: u64,
        quota: u64,
    },
    /// A spool entry for this recording exists already.
    #[error("recording {0} is already in the spool")]
    AlreadyExists(RecordingId),
    /// No spool entry for this recording.
    #[error("recording {0} is not in the spool")]
    NotFound(RecordingId),
    /// The recording is finished, closed or the spool shut down.
    #[error("the recording is closed")]
    Closed,
    /// No stream with this index.
    #[error("no stream {0} in this recording")]
    NoSuchStream(usize),
    /// The stream was ended already.
    #[error("stream {0} has ended")]
    StreamEnded(usize),
    /// A request that cannot be served (no streams, bad content type...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Another process holds the spool directory.
    #[error("spool directory {0} is in use by another process")]
    Locked(PathBuf),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("spool crypto: {0}")]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Disk I/O failed.
    #[error("spool I/O: {0}")]
    Io(String),
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> SpoolError {
    SpoolError::Io(format!("{what} {}: {e}", path.display()))
}

/// Resolved spool configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    pub quota_bytes: u64,
    pub call_reserve_bytes: u64,
    pub max_age: Duration,
    pub warn_age: Duration,
    pub fsync_interval: Duration,
    pub fsync_parallelism: usize,
}

impl SpoolConfig {
    /// From the platform settings (`[spool]`, `data_dir`), validated.
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let s = &settings.spool;
        s.validate()?;
        Ok(Self {
            dir: s.dir(&settings.data_dir),
            quota_bytes: s.quota_bytes,
            call_reserve_bytes: s.call_reserve_bytes,
            max_age: s.max_age(),
            warn_age: s.warn_age(),
            fsync_interval: s.fsync_interval(),
            fsync_parallelism: s.fsync_parallelism,
        })
    }

    /// Defaults (as `[spool]`'s) in `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        let s = insights_core::config::SpoolSettings::default();
        Self {
            dir: dir.into(),
            quota_bytes: s.quota_bytes,
            call_reserve_bytes: s.call_reserve_bytes,
            max_age: s.max_age(),
            warn_age: s.warn_age(),
            fsync_interval: s.fsync_interval(),
            fsync_parallelism: s.fsync_parallelism,
        }
    }
}

/// One stream of a new recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewStream {
    pub stream_id: StreamId,
    pub participant_id: Option<ParticipantId>,
    /// MIME type of what will be written, e.g. `audio/ogg`.
    pub content_type: String,
}

/// What [`Spool::begin`] needs. Stream 0 is the *primary* stream (the
/// recorder's main file: stereo for a two-party call, the mixed track of
/// a meeting); it becomes the recording's `media`. Further streams (one
/// per meeting participant) are stored next to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRecording {
    pub tenant_id: TenantId,
    pub recording_id: RecordingId,
    pub started_at: DateTime<Utc>,
    /// Participant ids (no personal data).
    pub participants: Vec<ParticipantId>,
    pub streams: Vec<NewStream>,
}

/// A spool entry as seen from outside (status, tests, the uploader).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    pub journal: Journal,
    /// Bytes of the media log.
    pub media_bytes: u64,
    /// Why the entry could not be recovered, if it could not.
    pub unrecoverable: Option<String>,
}

/// Which expiry alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlarmKind {
    /// `warn_at_percent` of the maximum age reached.
    Warning,
    /// The maximum age reached.
    Expired,
}

impl AlarmKind {
    /// Stable string form.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Warning => "spool-expiry-warning",
            Self::Expired => "spool-expired",
        }
    }
}

/// An alarm whose audit event is still to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmDue {
    pub recording_id: RecordingId,
    pub tenant_id: TenantId,
    pub kind: AlarmKind,
    pub raised_at: DateTime<Utc>,
    pub waiting_since: DateTime<Utc>,
}

struct Entry {
    journal: Journal,
    dir: PathBuf,
    /// Media log length (live: shared with the writer).
    media_len: Arc<AtomicU64>,
    live: Option<Live>,
    unrecoverable: Option<String>,
}

struct Live {
    writer: Arc<Mutex<RecordingWriter>>,
    key: Arc<DataKey>,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<RecordingId, Entry>,
    /// Headroom of `begin`s in progress.
    admitting: u64,
    /// Recordings whose `begin` is in progress.
    admitting_ids: std::collections::HashSet<RecordingId>,
}

struct Stop {
    stopped: Mutex<bool>,
    cv: Condvar,
}

struct Inner {
    cfg: SpoolConfig,
    keys: Arc<dyn KeyProvider>,
    state: Mutex<State>,
    used: Arc<AtomicU64>,
    work: tokio::sync::Notify,
    stop: Arc<Stop>,
    ticker: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Held while an entry's files are deleted (after upload, or on an
    /// erasure request), so the two never delete the same entry at once.
    removal: Mutex<()>,
    _lock: File,
}

impl Drop for Inner {
    fn drop(&mut self) {
        signal_stop(&self.stop);
    }
}

fn signal_stop(stop: &Stop) {
    if let Ok(mut s) = stop.stopped.lock() {
        *s = true;
    }
    stop.cv.notify_all();
}

fn delete_entry_dir(root: &Path, id: RecordingId) -> Result<(), SpoolError> {
    let dir = root.join(id.to_string());
    let trash = root.join(format!(".trash-{id}"));
    fs::rename(&dir, &trash).map_err(|e| io_err("cannot move to trash", &dir, e))?;
    insights_core::fsio::sync_dir(root).map_err(|e| io_err("cannot sync", root, e))?;
    fs::remove_dir_all(&trash).map_err(|e| io_err("cannot remove", &trash, e))?;
    insights_core::fsio::sync_dir(root).map_err(|e| io_err("cannot sync", root, e))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves consistent data here (every
    // critical section keeps the state valid at each step).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The local encrypted spool. Cheap to clone (one shared instance).
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.inner.cfg.dir)
            .finish_non_exhaustive()
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SpoolError> + Send + 'static,
) -> Result<T, SpoolError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SpoolError::Io(format!("spool task failed: {e}")))?
}
