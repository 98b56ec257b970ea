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

mod erase;
pub mod format;
pub(crate) mod fsio;
pub mod journal;
mod writer;

pub use self::erase::SpoolDir;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use insights_core::config::{ConfigError, Settings};
use insights_core::crypto::{CryptoError, DataKey, KeyProvider};
use insights_core::domain::{KeyId, ParticipantId, RecordingId, StreamId, TenantId};

use self::format::{FileHeader, FormatError, MAX_STREAMS, RecordSealer};
use self::journal::{
    Alarms, EntryState, JOURNAL_FILE, JOURNAL_VERSION, Journal, JournalStream, MEDIA_FILE,
    PartialReason, StreamSummary,
};
use self::writer::{RecordingWriter, WriterState};

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

fn hex32(b: &[u8; 32]) -> String {
    hex::encode(b)
}

impl Spool {
    /// Opens (creating) the spool directory, takes its lock, recovers
    /// every entry (see the module docs) and starts the durability tick.
    pub async fn open(cfg: SpoolConfig, keys: Arc<dyn KeyProvider>) -> Result<Self, SpoolError> {
        let dir = cfg.dir.clone();
        let (lock_file, found) = blocking(move || scan_dir(&dir)).await?;
        let mut entries = BTreeMap::new();
        for (id, found) in found {
            let entry = match found {
                Found::Entry(entry) => entry,
                Found::Live(journal, path) => recover_live(&keys, journal, path).await,
            };
            entries.insert(id, entry);
        }
        let used = fsio::tree_size(&cfg.dir);
        let stop = Arc::new(Stop {
            stopped: Mutex::new(false),
            cv: Condvar::new(),
        });
        let inner = Arc::new(Inner {
            cfg,
            keys,
            state: Mutex::new(State {
                entries,
                admitting: 0,
                admitting_ids: Default::default(),
            }),
            used: Arc::new(AtomicU64::new(used)),
            work: tokio::sync::Notify::new(),
            stop: stop.clone(),
            ticker: Mutex::new(None),
            removal: Mutex::new(()),
            _lock: lock_file,
        });
        let weak = Arc::downgrade(&inner);
        let interval = inner.cfg.fsync_interval;
        let handle = std::thread::Builder::new()
            .name("spool-sync".into())
            .spawn(move || ticker(weak, stop, interval))
            .map_err(|e| SpoolError::Io(format!("cannot start the spool sync thread: {e}")))?;
        *lock(&inner.ticker) = Some(handle);
        let spool = Self { inner };
        spool.inner.publish_metrics();
        let n = lock(&spool.inner.state).entries.len();
        tracing::info!(dir = %spool.inner.cfg.dir.display(), entries = n, "spool opened");
        Ok(spool)
    }

    /// The configuration.
    pub fn config(&self) -> &SpoolConfig {
        &self.inner.cfg
    }

    /// The key provider the spool wraps data keys with.
    pub fn keys(&self) -> &Arc<dyn KeyProvider> {
        &self.inner.keys
    }

    /// Starts spooling a recording: checks the quota, creates and wraps
    /// its data key, creates its entry durably. Refused with
    /// [`SpoolError::Full`] when the spool is full.
    #[tracing::instrument(skip_all, fields(recording = %req.recording_id, tenant = %req.tenant_id))]
    pub async fn begin(&self, req: NewRecording) -> Result<SpoolRecording, SpoolError> {
        if req.streams.is_empty() || req.streams.len() > MAX_STREAMS {
            return Err(SpoolError::Invalid(format!(
                "a recording has 1-{MAX_STREAMS} streams"
            )));
        }
        if let Some(s) = req
            .streams
            .iter()
            .find(|s| s.content_type.trim().is_empty())
        {
            return Err(SpoolError::Invalid(format!(
                "stream {} has no content type",
                s.stream_id
            )));
        }
        let reserve = self.inner.cfg.call_reserve_bytes;
        let id = req.recording_id;
        self.inner.admit(id, reserve)?;
        let result = self.begin_admitted(req).await;
        let mut st = lock(&self.inner.state);
        st.admitting = st.admitting.saturating_sub(reserve);
        st.admitting_ids.remove(&id);
        drop(st);
        match result {
            Ok((rec, entry)) => {
                lock(&self.inner.state)
                    .entries
                    .insert(rec.recording_id, entry);
                self.inner.publish_metrics();
                Ok(rec)
            }
            Err(e) => Err(e),
        }
    }

    async fn begin_admitted(
        &self,
        req: NewRecording,
    ) -> Result<(SpoolRecording, Entry), SpoolError> {
        let key = DataKey::generate(KeyId::new());
        let wrapped = match self.inner.keys.wrap(req.tenant_id, &key).await {
            Err(CryptoError::NoKek(_)) => {
                self.inner.keys.ensure_kek(req.tenant_id).await?;
                self.inner.keys.wrap(req.tenant_id, &key).await?
            }
            r => r?,
        };
        let now = insights_core::domain::now();
        let header = FileHeader::new(
            req.tenant_id,
            req.recording_id,
            key.id,
            req.streams.iter().map(|s| s.stream_id).collect(),
            now,
        )?;
        let journal = Journal {
            version: JOURNAL_VERSION,
            recording_id: req.recording_id,
            tenant_id: req.tenant_id,
            state: EntryState::Live,
            created_at: now,
            started_at: req.started_at,
            finished_at: None,
            partial: None,
            data_key: wrapped,
            participants: req.participants,
            streams: req
                .streams
                .into_iter()
                .map(|s| JournalStream {
                    stream_id: s.stream_id,
                    participant_id: s.participant_id,
                    content_type: s.content_type,
                    summary: None,
                })
                .collect(),
            valid_len: None,
            discarded_tail_bytes: 0,
            alarms: Alarms::default(),
        };
        let key = Arc::new(key);
        let sealer = RecordSealer::new(&key, header)?;
        let root = self.inner.cfg.dir.clone();
        let j = journal.clone();
        let (file, dir, sealer) = blocking(move || {
            create_entry(&root, &j, sealer.header_bytes()).map(|(f, d)| (f, d, sealer))
        })
        .await?;
        let header_len = sealer.header_bytes().len() as u64;
        self.inner
            .used
            .fetch_add(header_len + 512, Ordering::Relaxed);
        let media_len = Arc::new(AtomicU64::new(header_len));
        let writer = Arc::new(Mutex::new(RecordingWriter::new(
            file,
            sealer,
            header_len,
            media_len.clone(),
            self.inner.used.clone(),
        )));
        let streams = journal.streams.len();
        let recording_id = journal.recording_id;
        let entry = Entry {
            journal,
            dir,
            media_len,
            live: Some(Live {
                writer: writer.clone(),
                key,
            }),
            unrecoverable: None,
        };
        tracing::info!(streams, "recording spooled");
        Ok((
            SpoolRecording {
                inner: self.inner.clone(),
                recording_id,
                writer,
                streams,
                done: false,
            },
            entry,
        ))
    }

    /// Every entry.
    pub fn entries(&self) -> Vec<EntryInfo> {
        lock(&self.inner.state)
            .entries
            .values()
            .map(|e| EntryInfo {
                journal: e.journal.clone(),
                media_bytes: e.media_len.load(Ordering::Relaxed),
                unrecoverable: e.unrecoverable.clone(),
            })
            .collect()
    }

    /// One entry.
    pub fn entry(&self, id: RecordingId) -> Option<EntryInfo> {
        lock(&self.inner.state).entries.get(&id).map(|e| EntryInfo {
            journal: e.journal.clone(),
            media_bytes: e.media_len.load(Ordering::Relaxed),
            unrecoverable: e.unrecoverable.clone(),
        })
    }

    /// Entries ready for upload (finished), oldest first.
    pub fn finished(&self) -> Vec<Journal> {
        let mut v: Vec<Journal> = lock(&self.inner.state)
            .entries
            .values()
            .filter(|e| e.journal.state == EntryState::Finished)
            .map(|e| e.journal.clone())
            .collect();
        v.sort_by_key(|j| (j.finished_at, j.recording_id));
        v
    }

    /// Path of an entry's media log.
    pub fn media_path(&self, id: RecordingId) -> PathBuf {
        self.inner.cfg.dir.join(id.to_string()).join(MEDIA_FILE)
    }

    /// Bytes on disk.
    pub fn used_bytes(&self) -> u64 {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// Resolves when an entry became ready for upload (or spuriously).
    pub async fn work_available(&self) {
        self.inner.work.notified().await
    }

    /// Marks an entry uploaded and deletes its spool copy: the journal says
    /// `uploaded` first, so a crash during deletion is finished on start.
    /// Only call once blob, manifest and metadata are all stored.
    pub async fn mark_uploaded(&self, id: RecordingId) -> Result<(), SpoolError> {
        let inner = self.inner.clone();
        blocking(move || inner.remove_uploaded(id)).await?;
        self.inner.publish_metrics();
        Ok(())
    }

    /// Raises expiry alarms that are due (persisting them and counting
    /// the metrics once each) and returns the alarms whose audit event is
    /// still to be written.
    pub async fn check_alarms(&self, now: DateTime<Utc>) -> Result<Vec<AlarmDue>, SpoolError> {
        let inner = self.inner.clone();
        let due = blocking(move || inner.check_alarms(now)).await?;
        self.inner.publish_metrics();
        Ok(due)
    }

    /// Records that an alarm's audit event was appended.
    pub async fn mark_alarm_audited(
        &self,
        id: RecordingId,
        kind: AlarmKind,
    ) -> Result<(), SpoolError> {
        let inner = self.inner.clone();
        blocking(move || {
            inner.update_journal(id, |j| match kind {
                AlarmKind::Warning => j.alarms.warn_audited = true,
                AlarmKind::Expired => j.alarms.expired_audited = true,
            })
        })
        .await
    }

    /// One durability tick now (seal and fsync every live recording;
    /// close abandoned ones). The background thread does this every
    /// `fsync_interval`.
    pub fn sync_all(&self) {
        self.inner.tick();
    }

    /// Stops the durability thread after a last tick (live recordings
    /// stay live: a restart closes them as partial). Idempotent.
    pub fn shutdown(&self) {
        self.inner.tick();
        signal_stop(&self.inner.stop);
        if let Some(h) = lock(&self.inner.ticker).take() {
            let _ = h.join();
        }
    }
}

/// What the directory scan found for one recording.
enum Found {
    Entry(Entry),
    Live(Journal, PathBuf),
}

fn lock_spool(dir: &Path) -> Result<File, SpoolError> {
    fsio::create_dir_private(dir).map_err(|e| io_err("cannot create spool directory", dir, e))?;
    let path = dir.join("spool.lock");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io_err("cannot open", &path, e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(fs::TryLockError::WouldBlock) => Err(SpoolError::Locked(dir.to_path_buf())),
        Err(fs::TryLockError::Error(e)) => Err(io_err("cannot lock", &path, e)),
    }
}

fn scan_dir(dir: &Path) -> Result<(File, Vec<(RecordingId, Found)>), SpoolError> {
    let lock_file = lock_spool(dir)?;
    let mut found = Vec::new();
    let mut changed = false;
    let rd = fs::read_dir(dir).map_err(|e| io_err("cannot list", dir, e))?;
    for item in rd {
        let item = item.map_err(|e| io_err("cannot list", dir, e))?;
        let name = item.file_name().to_string_lossy().into_owned();
        let path = item.path();
        if name == "spool.lock" {
            continue;
        }
        if name.starts_with(".new-") || name.starts_with(".trash-") {
            tracing::info!(path = %path.display(), "removing an interrupted spool entry change");
            fs::remove_dir_all(&path).map_err(|e| io_err("cannot remove", &path, e))?;
            changed = true;
            continue;
        }
        let Ok(id) = name.parse::<RecordingId>() else {
            tracing::warn!(path = %path.display(), "unknown file in the spool directory; left alone");
            continue;
        };
        if !path.is_dir() {
            tracing::warn!(path = %path.display(), "unknown file in the spool directory; left alone");
            continue;
        }
        remove_temp_files(&path);
        let media_len = fs::metadata(path.join(MEDIA_FILE))
            .map(|m| m.len())
            .unwrap_or(0);
        let journal = match Journal::read(&path.join(JOURNAL_FILE)) {
            Ok(j) if j.recording_id == id => j,
            Ok(_) => {
                found.push((
                    id,
                    Found::Entry(unreadable(
                        id,
                        path,
                        media_len,
                        "journal names another recording".into(),
                    )),
                ));
                continue;
            }
            Err(e) => {
                found.push((id, Found::Entry(unreadable(id, path, media_len, e))));
                continue;
            }
        };
        match journal.state {
            EntryState::Uploaded => {
                delete_entry_dir(dir, id)?;
                changed = true;
            }
            EntryState::Finished => found.push((
                id,
                Found::Entry(Entry {
                    journal,
                    dir: path,
                    media_len: Arc::new(AtomicU64::new(media_len)),
                    live: None,
                    unrecoverable: None,
                }),
            )),
            EntryState::Live => found.push((id, Found::Live(journal, path))),
        }
    }
    if changed {
        fsio::sync_dir(dir).map_err(|e| io_err("cannot sync", dir, e))?;
    }
    Ok((lock_file, found))
}

/// An entry whose journal cannot be read: kept as it is (nothing is
/// deleted), reported, tried again on the next start.
fn unreadable(id: RecordingId, dir: PathBuf, media_len: u64, problem: String) -> Entry {
    tracing::error!(recording = %id, problem = %problem, "spool entry cannot be read; left untouched");
    metrics::counter!("insights_spool_recovery_failures_total").increment(1);
    let mut journal = placeholder_journal();
    journal.recording_id = id;
    Entry {
        journal,
        dir,
        media_len: Arc::new(AtomicU64::new(media_len)),
        live: None,
        unrecoverable: Some(problem),
    }
}

fn placeholder_journal() -> Journal {
    Journal {
        version: JOURNAL_VERSION,
        recording_id: RecordingId(uuid::Uuid::nil()),
        tenant_id: TenantId(uuid::Uuid::nil()),
        state: EntryState::Live,
        created_at: DateTime::<Utc>::default(),
        started_at: DateTime::<Utc>::default(),
        finished_at: None,
        partial: None,
        data_key: insights_core::crypto::WrappedDataKey {
            id: KeyId(uuid::Uuid::nil()),
            tenant_id: TenantId(uuid::Uuid::nil()),
            kek_id: String::new(),
            wrapped: Vec::new(),
            created_at: DateTime::<Utc>::default(),
        },
        participants: Vec::new(),
        streams: Vec::new(),
        valid_len: None,
        discarded_tail_bytes: 0,
        alarms: Alarms::default(),
    }
}

fn remove_temp_files(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for item in rd.flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".tmp-") {
                let _ = fs::remove_file(item.path());
            }
        }
    }
}

fn delete_entry_dir(root: &Path, id: RecordingId) -> Result<(), SpoolError> {
    let dir = root.join(id.to_string());
    let trash = root.join(format!(".trash-{id}"));
    fs::rename(&dir, &trash).map_err(|e| io_err("cannot move to trash", &dir, e))?;
    fsio::sync_dir(root).map_err(|e| io_err("cannot sync", root, e))?;
    fs::remove_dir_all(&trash).map_err(|e| io_err("cannot remove", &trash, e))?;
    fsio::sync_dir(root).map_err(|e| io_err("cannot sync", root, e))
}

/// Creates an entry atomically; returns the media log (positioned after
/// its fsync'd header) and the entry directory.
fn create_entry(
    root: &Path,
    journal: &Journal,
    header: &[u8],
) -> Result<(File, PathBuf), SpoolError> {
    let id = journal.recording_id;
    let dir = root.join(id.to_string());
    if dir.exists() {
        return Err(SpoolError::AlreadyExists(id));
    }
    let tmp = root.join(format!(".new-{id}"));
    let _ = fs::remove_dir_all(&tmp);
    fsio::create_dir_private(&tmp).map_err(|e| io_err("cannot create", &tmp, e))?;
    let media = tmp.join(MEDIA_FILE);
    let mut file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(&media)
        .map_err(|e| io_err("cannot create", &media, e))?;
    file.write_all(header)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_err("cannot write", &media, e))?;
    journal
        .write(&tmp.join(JOURNAL_FILE))
        .map_err(|e| io_err("cannot write journal in", &tmp, e))?;
    fs::rename(&tmp, &dir).map_err(|e| io_err("cannot rename", &tmp, e))?;
    fsio::sync_dir(root).map_err(|e| io_err("cannot sync", root, e))?;
    Ok((file, dir))
}

/// Closes a live entry found on start as partial.
async fn recover_live(keys: &Arc<dyn KeyProvider>, journal: Journal, dir: PathBuf) -> Entry {
    let id = journal.recording_id;
    let media_len = fs::metadata(dir.join(MEDIA_FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    let key = match keys.unwrap(&journal.data_key).await {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(recording = %id, error = %e, "cannot recover a spooled recording: data key not available; left for the next start");
            metrics::counter!("insights_spool_recovery_failures_total").increment(1);
            return Entry {
                journal,
                dir,
                media_len: Arc::new(AtomicU64::new(media_len)),
                live: None,
                unrecoverable: Some(format!("data key: {e}")),
            };
        }
    };
    let d = dir.clone();
    let j = journal.clone();
    let closed = tokio::task::spawn_blocking(move || {
        close_from_disk(&d, j, &key, Some(PartialReason::RecoveredAfterRestart))
    })
    .await
    .map_err(|e| SpoolError::Io(format!("recovery task failed: {e}")))
    .and_then(|r| r);
    match closed {
        Ok(journal) => {
            tracing::warn!(
                recording = %id,
                valid_bytes = journal.valid_len.unwrap_or(0),
                discarded_bytes = journal.discarded_tail_bytes,
                "recording was live when the process stopped; closed as partial with all durable audio"
            );
            metrics::counter!("insights_spool_recovered_total").increment(1);
            Entry {
                journal,
                dir,
                media_len: Arc::new(AtomicU64::new(media_len)),
                live: None,
                unrecoverable: None,
            }
        }
        Err(e) => {
            tracing::error!(recording = %id, error = %e, "cannot recover a spooled recording; left for the next start");
            metrics::counter!("insights_spool_recovery_failures_total").increment(1);
            Entry {
                journal,
                dir,
                media_len: Arc::new(AtomicU64::new(media_len)),
                live: None,
                unrecoverable: Some(e.to_string()),
            }
        }
    }
}

/// Scans the media log and writes the journal as finished: partial with
/// `reason`, or complete (`None`, after a clean finish; `finished_at` now).
fn close_from_disk(
    dir: &Path,
    journal: Journal,
    key: &DataKey,
    reason: Option<PartialReason>,
) -> Result<Journal, SpoolError> {
    let journal = summarize(dir, journal, key, reason)?;
    journal
        .write(&dir.join(JOURNAL_FILE))
        .map_err(|e| io_err("cannot write journal in", dir, e))?;
    Ok(journal)
}

/// The journal as finished from what the media log holds (not written).
fn summarize(
    dir: &Path,
    mut journal: Journal,
    key: &DataKey,
    reason: Option<PartialReason>,
) -> Result<Journal, SpoolError> {
    let path = dir.join(MEDIA_FILE);
    let file = File::open(&path).map_err(|e| io_err("cannot open", &path, e))?;
    let len = file
        .metadata()
        .map_err(|e| io_err("cannot stat", &path, e))?
        .len();
    let scan = match format::scan(io::BufReader::new(file), key, len, |_, _| {}) {
        Ok(s) => Some(s),
        // The header itself is torn: the process died between creating
        // the file and its fsync; no audio was ever accepted.
        Err(FormatError::BadHeader(e)) if len < 74 + 16 * journal.streams.len() as u64 => {
            tracing::warn!(recording = %journal.recording_id, problem = %e, "media log header incomplete; recording has no audio");
            None
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(scan) = &scan {
        scan.header.check(
            journal.tenant_id,
            journal.recording_id,
            journal.data_key.id,
            &journal.stream_ids(),
        )?;
    }
    for (i, s) in journal.streams.iter_mut().enumerate() {
        let st = scan.as_ref().and_then(|sc| sc.streams.get(i));
        s.summary = Some(StreamSummary {
            records: st.map_or(0, |x| x.records),
            plaintext_len: st.map_or(0, |x| x.plaintext_len),
            plaintext_sha256: hex32(&st.map_or_else(empty_sha, |x| x.plaintext_sha256)),
            complete: st.is_some_and(|x| x.complete),
        });
    }
    let valid_len = scan.as_ref().map_or(0, |s| s.valid_len);
    journal.valid_len = Some(valid_len);
    journal.discarded_tail_bytes = len.saturating_sub(valid_len);
    journal.finished_at = Some(match reason {
        None => insights_core::domain::now(),
        Some(_) => scan
            .as_ref()
            .and_then(|s| s.last_sealed_at)
            .unwrap_or(journal.created_at),
    });
    journal.partial = reason;
    journal.state = EntryState::Finished;
    Ok(journal)
}

/// The journal of a cleanly finished log, checked against what the
/// writer handed over, written.
fn finished_journal(
    dir: &Path,
    journal: Journal,
    key: &DataKey,
    written: &[writer::WrittenStream],
) -> Result<Journal, SpoolError> {
    let journal = summarize(dir, journal, key, None)?;
    for (i, w) in written.iter().enumerate() {
        let s = journal.streams[i].summary.as_ref();
        if s.map(|s| (s.plaintext_len, s.plaintext_sha256.clone()))
            != Some((w.plaintext_len, hex32(&w.sha256)))
        {
            return Err(SpoolError::Io(format!(
                "stream {i} read back differs from what was written (disk corruption?)"
            )));
        }
    }
    journal
        .write(&dir.join(JOURNAL_FILE))
        .map_err(|e| io_err("cannot write journal in", dir, e))?;
    Ok(journal)
}

fn empty_sha() -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest([]).into()
}

impl Inner {
    fn admit(&self, id: RecordingId, reserve: u64) -> Result<(), SpoolError> {
        let mut st = lock(&self.state);
        if st.entries.contains_key(&id) || st.admitting_ids.contains(&id) {
            return Err(SpoolError::AlreadyExists(id));
        }
        let used = self.used.load(Ordering::Relaxed);
        let reserved: u64 = st
            .entries
            .values()
            .filter(|e| e.live.is_some())
            .map(|e| reserve.saturating_sub(e.media_len.load(Ordering::Relaxed)))
            .sum::<u64>()
            + st.admitting;
        if used.saturating_add(reserved).saturating_add(reserve) > self.cfg.quota_bytes {
            metrics::counter!("insights_spool_full_total").increment(1);
            tracing::warn!(
                used,
                reserved,
                quota = self.cfg.quota_bytes,
                "spool full: new call refused"
            );
            return Err(SpoolError::Full {
                used,
                reserved,
                needed: reserve,
                quota: self.cfg.quota_bytes,
            });
        }
        st.admitting += reserve;
        st.admitting_ids.insert(id);
        Ok(())
    }

    fn tick(&self) {
        let writers: Vec<(RecordingId, Arc<Mutex<RecordingWriter>>)> = lock(&self.state)
            .entries
            .iter()
            .filter_map(|(id, e)| e.live.as_ref().map(|l| (*id, l.writer.clone())))
            .collect();
        let to_close: Mutex<Vec<(RecordingId, PartialReason)>> = Mutex::new(Vec::new());
        let sync_one = |(id, w): &(RecordingId, Arc<Mutex<RecordingWriter>>)| {
            let prepared = {
                let mut g = lock(w);
                if g.state == WriterState::Closed {
                    return;
                }
                if g.state == WriterState::Abandoned {
                    lock(&to_close).push((*id, PartialReason::Abandoned));
                    return;
                }
                g.prepare_sync()
            };
            let result = match prepared {
                Ok(None) => Ok(()),
                Ok(Some((file, len))) => {
                    // fsync outside the lock: writers keep appending.
                    let r = file.sync_data();
                    lock(w).synced(len, r)
                }
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::error!(recording = %id, error = %e, "spool sync failed");
                if lock(w).is_failed() {
                    lock(&to_close).push((*id, PartialReason::WriteFailed));
                }
            }
        };
        let par = self.cfg.fsync_parallelism.max(1);
        if par == 1 || writers.len() < 2 {
            writers.iter().for_each(sync_one);
        } else {
            let per = writers.len().div_ceil(par);
            std::thread::scope(|s| {
                for chunk in writers.chunks(per) {
                    s.spawn(|| chunk.iter().for_each(sync_one));
                }
            });
        }
        for (id, reason) in to_close.into_inner().unwrap_or_else(|p| p.into_inner()) {
            if let Err(e) = self.close_partial(id, reason) {
                tracing::error!(recording = %id, error = %e, "cannot close a recording as partial");
            }
        }
        self.publish_metrics();
    }

    /// Closes a live entry whose writer is gone or failed, as partial.
    fn close_partial(&self, id: RecordingId, reason: PartialReason) -> Result<(), SpoolError> {
        let (live, journal, dir) = {
            let mut st = lock(&self.state);
            let Some(e) = st.entries.get_mut(&id) else {
                return Ok(());
            };
            let Some(live) = e.live.take() else {
                return Ok(());
            };
            (live, e.journal.clone(), e.dir.clone())
        };
        lock(&live.writer).close_partial();
        let journal = match close_from_disk(&dir, journal, &live.key, Some(reason)) {
            Ok(j) => j,
            Err(e) => {
                // Leave it live on disk: the next start recovers it.
                let mut st = lock(&self.state);
                if let Some(entry) = st.entries.get_mut(&id) {
                    entry.unrecoverable = Some(e.to_string());
                }
                return Err(e);
            }
        };
        tracing::warn!(recording = %id, reason = reason.as_str(), "recording closed as partial");
        if let Some(e) = lock(&self.state).entries.get_mut(&id) {
            e.journal = journal;
        }
        self.work.notify_one();
        Ok(())
    }

    /// A clean finish: the writer has written and fsync'd the last records.
    fn finish(
        &self,
        id: RecordingId,
        written: Vec<writer::WrittenStream>,
    ) -> Result<Journal, SpoolError> {
        let (live, journal, dir) = {
            let mut st = lock(&self.state);
            let e = st.entries.get_mut(&id).ok_or(SpoolError::NotFound(id))?;
            let live = e.live.take().ok_or(SpoolError::Closed)?;
            (live, e.journal.clone(), e.dir.clone())
        };
        // Self-check before the journal says "finished": what the file
        // holds is what was handed over.
        let journal = finished_journal(&dir, journal, &live.key, &written).inspect_err(|e| {
            tracing::error!(recording = %id, error = %e, "cannot close a finished recording; the next start recovers it");
        })?;
        if let Some(e) = lock(&self.state).entries.get_mut(&id) {
            e.journal = journal.clone();
        }
        self.work.notify_one();
        Ok(journal)
    }

    fn update_journal(
        &self,
        id: RecordingId,
        change: impl FnOnce(&mut Journal),
    ) -> Result<(), SpoolError> {
        let mut st = lock(&self.state);
        let e = st.entries.get_mut(&id).ok_or(SpoolError::NotFound(id))?;
        let mut j = e.journal.clone();
        change(&mut j);
        j.write(&e.dir.join(JOURNAL_FILE))
            .map_err(|err| io_err("cannot write journal in", &e.dir, err))?;
        e.journal = j;
        Ok(())
    }

    fn remove_uploaded(&self, id: RecordingId) -> Result<(), SpoolError> {
        let _removal = lock(&self.removal);
        self.update_journal(id, |j| j.state = EntryState::Uploaded)?;
        let dir = self.cfg.dir.join(id.to_string());
        let size = fsio::tree_size(&dir);
        delete_entry_dir(&self.cfg.dir, id)?;
        lock(&self.state).entries.remove(&id);
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(size))
            });
        Ok(())
    }

    fn check_alarms(&self, now: DateTime<Utc>) -> Result<Vec<AlarmDue>, SpoolError> {
        let warn = chrono::Duration::from_std(self.cfg.warn_age).unwrap_or(chrono::TimeDelta::MAX);
        let max = chrono::Duration::from_std(self.cfg.max_age).unwrap_or(chrono::TimeDelta::MAX);
        let candidates: Vec<(RecordingId, DateTime<Utc>, Alarms)> = lock(&self.state)
            .entries
            .iter()
            .filter(|(_, e)| {
                e.journal.state == EntryState::Finished
                    || (e.unrecoverable.is_some() && !e.journal.tenant_id.0.is_nil())
            })
            .map(|(id, e)| {
                let since = e.journal.finished_at.unwrap_or(e.journal.created_at);
                (*id, since, e.journal.alarms.clone())
            })
            .collect();
        let mut due = Vec::new();
        for (id, since, mut alarms) in candidates {
            let age = now - since;
            let mut changed = false;
            if age >= warn && alarms.warned_at.is_none() {
                alarms.warned_at = Some(now);
                changed = true;
                metrics::counter!("insights_spool_expiry_warnings_total").increment(1);
                tracing::warn!(recording = %id, waiting_secs = age.num_seconds(), "spooled recording not uploaded yet: nearing the maximum spool age");
            }
            if age >= max && alarms.expired_at.is_none() {
                alarms.expired_at = Some(now);
                changed = true;
                metrics::counter!("insights_spool_expired_total").increment(1);
                tracing::error!(recording = %id, waiting_secs = age.num_seconds(), "spooled recording exceeded the maximum spool age; kept and still retried");
            }
            if changed {
                let a = alarms.clone();
                self.update_journal(id, move |j| j.alarms = a)?;
            }
            let tenant = lock(&self.state)
                .entries
                .get(&id)
                .map(|e| e.journal.tenant_id);
            let Some(tenant_id) = tenant else { continue };
            if let (Some(at), false) = (alarms.warned_at, alarms.warn_audited) {
                due.push(AlarmDue {
                    recording_id: id,
                    tenant_id,
                    kind: AlarmKind::Warning,
                    raised_at: at,
                    waiting_since: since,
                });
            }
            if let (Some(at), false) = (alarms.expired_at, alarms.expired_audited) {
                due.push(AlarmDue {
                    recording_id: id,
                    tenant_id,
                    kind: AlarmKind::Expired,
                    raised_at: at,
                    waiting_since: since,
                });
            }
        }
        Ok(due)
    }

    fn publish_metrics(&self) {
        let st = lock(&self.state);
        let now = Utc::now();
        let live = st.entries.values().filter(|e| e.live.is_some()).count();
        let oldest = st
            .entries
            .values()
            .map(|e| (now - e.journal.created_at).num_milliseconds().max(0))
            .max()
            .unwrap_or(0);
        let expired = st
            .entries
            .values()
            .filter(|e| e.journal.alarms.expired_at.is_some())
            .count();
        let unrecoverable = st
            .entries
            .values()
            .filter(|e| e.unrecoverable.is_some())
            .count();
        let entries = st.entries.len();
        drop(st);
        metrics::gauge!("insights_spool_bytes").set(self.used.load(Ordering::Relaxed) as f64);
        metrics::gauge!("insights_spool_entries").set(entries as f64);
        metrics::gauge!("insights_calls_active").set(live as f64);
        metrics::gauge!("insights_spool_oldest_entry_age_seconds").set(oldest as f64 / 1000.0);
        metrics::gauge!("insights_spool_expired_entries").set(expired as f64);
        metrics::gauge!("insights_spool_unrecoverable_entries").set(unrecoverable as f64);
    }
}

fn ticker(weak: Weak<Inner>, stop: Arc<Stop>, interval: Duration) {
    loop {
        {
            let stopped = lock(&stop.stopped);
            let (stopped, _) = stop
                .cv
                .wait_timeout_while(stopped, interval, |s| !*s)
                .unwrap_or_else(|p| p.into_inner());
            if *stopped {
                return;
            }
        }
        let Some(inner) = weak.upgrade() else { return };
        inner.tick();
    }
}

/// A recording being written to the spool. Writing is synchronous and
/// cheap (it buffers; sealing and appending happen every 64 KiB per
/// stream and at each tick); call it from the media thread or
/// `spawn_blocking`. Dropping it without [`SpoolRecording::finish`]
/// closes the recording as partial at the next tick.
pub struct SpoolRecording {
    inner: Arc<Inner>,
    recording_id: RecordingId,
    writer: Arc<Mutex<RecordingWriter>>,
    streams: usize,
    done: bool,
}

impl std::fmt::Debug for SpoolRecording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpoolRecording")
            .field("recording_id", &self.recording_id)
            .field("streams", &self.streams)
            .finish_non_exhaustive()
    }
}

/// The result of a clean finish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedRecording {
    pub journal: Journal,
}

impl SpoolRecording {
    /// The recording id.
    pub fn recording_id(&self) -> RecordingId {
        self.recording_id
    }

    /// Number of streams.
    pub fn stream_count(&self) -> usize {
        self.streams
    }

    /// A writer handle for one stream (implements `std::io::Write`).
    pub fn stream(&self, index: usize) -> Result<SpoolStream, SpoolError> {
        if index >= self.streams {
            return Err(SpoolError::NoSuchStream(index));
        }
        Ok(SpoolStream {
            writer: self.writer.clone(),
            index,
        })
    }

    /// Appends `data` to stream `index`.
    pub fn write(&self, index: usize, data: &[u8]) -> Result<(), SpoolError> {
        lock(&self.writer).write(index, data)
    }

    /// Ends one stream (e.g. a participant left); the others go on.
    pub fn end_stream(&self, index: usize) -> Result<(), SpoolError> {
        lock(&self.writer).end_stream(index)
    }

    /// Makes everything written so far durable now (seal + fsync),
    /// blocking. The spool does this by itself every `fsync_interval`.
    pub fn sync(&self) -> Result<(), SpoolError> {
        lock(&self.writer).sync_now()
    }

    /// Finishes the recording (blocking): the rest of every stream and
    /// its last record are written and fsync'd, the log read back and
    /// checked, the journal set to `finished`; the uploader is woken.
    pub fn finish_blocking(mut self) -> Result<FinishedRecording, SpoolError> {
        self.done = true;
        let written = {
            let mut w = lock(&self.writer);
            match w.finish() {
                Ok(written) => written,
                Err(e) => {
                    // The tick closes it as partial with what is durable.
                    if w.state == WriterState::Open {
                        w.state = WriterState::Abandoned;
                    }
                    return Err(e);
                }
            }
        };
        let journal = self.inner.finish(self.recording_id, written)?;
        self.inner.publish_metrics();
        tracing::info!(recording = %self.recording_id, "recording finished in the spool");
        Ok(FinishedRecording { journal })
    }

    /// [`Self::finish_blocking`] on the blocking pool.
    pub async fn finish(self) -> Result<FinishedRecording, SpoolError> {
        blocking(move || self.finish_blocking()).await
    }
}

impl Drop for SpoolRecording {
    fn drop(&mut self) {
        if !self.done {
            let mut w = lock(&self.writer);
            if w.state == WriterState::Open {
                w.state = WriterState::Abandoned;
            }
        }
    }
}

/// Writes one stream of a [`SpoolRecording`]. `flush` is a no-op: the
/// spool makes data durable on its own tick (or on
/// [`SpoolRecording::sync`]).
#[derive(Clone)]
pub struct SpoolStream {
    writer: Arc<Mutex<RecordingWriter>>,
    index: usize,
}

impl SpoolStream {
    /// Appends `data`.
    pub fn write_data(&self, data: &[u8]) -> Result<(), SpoolError> {
        lock(&self.writer).write(self.index, data)
    }
}

impl io::Write for SpoolStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_data(data).map_err(io::Error::other)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
