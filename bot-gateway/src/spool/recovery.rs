//! What [`Spool::open`](super::Spool::open) does with what it finds (see
//! the recovery rules in the module docs): the lock, the directory scan,
//! live entries closed as partial, and the scan of a media log that
//! closes an entry (also after a clean finish).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use chrono::{DateTime, Utc};
use insights_core::crypto::{DataKey, KeyProvider};
use insights_core::domain::{KeyId, RecordingId, TenantId};
use insights_core::fsio;

use super::format::{self, FormatError};
use super::journal::{
    Alarms, EntryState, JOURNAL_FILE, JOURNAL_VERSION, Journal, MEDIA_FILE, PartialReason,
    StreamSummary,
};
use super::writer;
use super::{Entry, SpoolError, delete_entry_dir, io_err};

/// What the directory scan found for one recording.
pub(super) enum Found {
    Entry(Entry),
    Live(Journal, PathBuf),
}

pub(super) fn lock_spool(dir: &Path) -> Result<File, SpoolError> {
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

pub(super) fn scan_dir(dir: &Path) -> Result<(File, Vec<(RecordingId, Found)>), SpoolError> {
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

/// Closes a live entry found on start as partial.
pub(super) async fn recover_live(
    keys: &Arc<dyn KeyProvider>,
    journal: Journal,
    dir: PathBuf,
) -> Entry {
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
pub(super) fn close_from_disk(
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
pub(super) fn finished_journal(
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

fn hex32(b: &[u8; 32]) -> String {
    hex::encode(b)
}
