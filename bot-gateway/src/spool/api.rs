//! What the rest of the gateway calls: [`Spool`] (open, begin, the
//! uploader's view, alarms, shutdown), [`SpoolRecording`] and
//! [`SpoolStream`] (writing a call), and the creation of an entry.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use chrono::{DateTime, Utc};
use insights_core::crypto::{DataKey, KeyProvider};
use insights_core::domain::{KeyId, RecordingId};
use insights_core::fsio;

use super::format::{FileHeader, MAX_STREAMS, RecordSealer};
use super::journal::{
    Alarms, EntryState, JOURNAL_FILE, JOURNAL_VERSION, Journal, JournalStream, MEDIA_FILE,
    PartialReason,
};
use super::recovery::{Found, finished_journal, recover_live, scan_dir};
use super::ticker::ticker;
use super::writer::{self, RecordingWriter, WriterState};
use super::{
    AlarmDue, AlarmKind, Entry, EntryInfo, Inner, Live, NewRecording, Spool, SpoolConfig,
    SpoolError, State, Stop, blocking, delete_entry_dir, io_err, lock, signal_stop,
};

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
        // Never creates the tenant's KEK: a missing or unusable one refuses
        // the recording (the provider raised the alarm; the session
        // reports `failed` to Teams).
        let wrapped = self.inner.keys.wrap(req.tenant_id, &key).await?;
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

/// A recording lost on another gateway node, being taken into this spool
/// ([`Spool::adoption`] → write the media log → [`Spool::adopt`]). Its
/// directory is `.new-<id>` until adopted: dropped without adopting, or
/// after a crash, it is deleted (as on every start).
#[derive(Debug)]
pub struct Adoption {
    id: RecordingId,
    tmp: PathBuf,
    done: bool,
}

impl Adoption {
    /// Where the media log goes (a new file, mode 0600, to be written and
    /// fsync'd by the caller).
    pub fn media_path(&self) -> PathBuf {
        self.tmp.join(MEDIA_FILE)
    }
}

impl Drop for Adoption {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

impl Spool {
    /// Starts adopting recording `id` lost on another node: a private
    /// `.new-<id>` directory for its media log. Refused if the spool has
    /// the recording already.
    pub async fn adoption(&self, id: RecordingId) -> Result<Adoption, SpoolError> {
        {
            let st = lock(&self.inner.state);
            if st.entries.contains_key(&id) || st.admitting_ids.contains(&id) {
                return Err(SpoolError::AlreadyExists(id));
            }
        }
        let root = self.inner.cfg.dir.clone();
        blocking(move || {
            if root.join(id.to_string()).exists() {
                return Err(SpoolError::AlreadyExists(id));
            }
            let tmp = root.join(format!(".new-{id}"));
            let _ = fs::remove_dir_all(&tmp);
            fsio::create_dir_private(&tmp).map_err(|e| io_err("cannot create", &tmp, e))?;
            Ok(Adoption {
                id,
                tmp,
                done: false,
            })
        })
        .await
    }

    /// Adopts the recording whose media log `adoption` holds (fsync'd):
    /// `journal` is its journal as begun on the lost node. The log is
    /// scanned like a log found live on start (every authentic record
    /// kept, a torn tail counted), the entry closed as partial with
    /// `reason` and atomically added to the spool (rename of the
    /// directory), finished: the uploader then stores it like any other.
    /// Not subject to the quota (it is evidence already recorded).
    pub async fn adopt(
        &self,
        mut adoption: Adoption,
        journal: Journal,
        reason: PartialReason,
    ) -> Result<Journal, SpoolError> {
        let id = adoption.id;
        if journal.recording_id != id {
            return Err(SpoolError::Invalid(
                "the journal names another recording".into(),
            ));
        }
        let key = self.inner.keys.unwrap(&journal.data_key).await?;
        let journal = Journal {
            state: EntryState::Live,
            finished_at: None,
            partial: None,
            valid_len: None,
            discarded_tail_bytes: 0,
            alarms: Alarms::default(),
            streams: journal
                .streams
                .into_iter()
                .map(|s| JournalStream { summary: None, ..s })
                .collect(),
            ..journal
        };
        let root = self.inner.cfg.dir.clone();
        let tmp = adoption.tmp.clone();
        let (journal, dir, size) = blocking(move || {
            journal
                .write(&tmp.join(JOURNAL_FILE))
                .map_err(|e| io_err("cannot write journal in", &tmp, e))?;
            let journal = super::recovery::close_from_disk(&tmp, journal, &key, Some(reason))?;
            let dir = root.join(id.to_string());
            if dir.exists() {
                return Err(SpoolError::AlreadyExists(id));
            }
            fs::rename(&tmp, &dir).map_err(|e| io_err("cannot rename", &tmp, e))?;
            fsio::sync_dir(&root).map_err(|e| io_err("cannot sync", &root, e))?;
            let size = fsio::tree_size(&dir);
            Ok((journal, dir, size))
        })
        .await?;
        adoption.done = true;
        let media_len = fs::metadata(dir.join(MEDIA_FILE)).map_or(0, |m| m.len());
        self.inner.used.fetch_add(size, Ordering::Relaxed);
        lock(&self.inner.state).entries.insert(
            id,
            Entry {
                journal: journal.clone(),
                dir,
                media_len: Arc::new(AtomicU64::new(media_len)),
                live: None,
                unrecoverable: None,
            },
        );
        self.inner.publish_metrics();
        self.inner.work.notify_one();
        tracing::warn!(
            recording = %id,
            reason = reason.as_str(),
            valid_bytes = journal.valid_len.unwrap_or(0),
            "recording of a lost gateway node adopted as partial"
        );
        Ok(journal)
    }
}

/// Creates an entry atomically; returns the media log (positioned after
/// its fsync'd header) and the entry directory.
pub(super) fn create_entry(
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

impl Inner {
    pub(super) fn admit(&self, id: RecordingId, reserve: u64) -> Result<(), SpoolError> {
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

    /// A clean finish: the writer has written and fsync'd the last records.
    pub(super) fn finish(
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

    pub(super) fn update_journal(
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

    pub(super) fn remove_uploaded(&self, id: RecordingId) -> Result<(), SpoolError> {
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
}

/// A recording being written to the spool. Writing is synchronous and
/// cheap (it buffers; sealing and appending happen every 16 KiB per
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
