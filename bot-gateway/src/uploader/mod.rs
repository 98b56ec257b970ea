//! The uploader: a background task moving finished recordings from the
//! spool to the tenant's blob container, with their metadata and a signed
//! chain-of-custody manifest.
//!
//! # One upload, step by step (every step idempotent)
//!
//! 1. The recording's metadata row must exist (the webhook inserts it);
//!    until it does, the upload is retried.
//! 2. The wrapped data key is stored (`put_data_key`; the same key
//!    already there is fine, even rewrapped by a KEK rotation since).
//! 3. Each stream's spool records are authenticated, decrypted and
//!    re-encrypted into a blob envelope (format v1, 64 KiB chunks),
//!    streamed into `BlobStore::put` at a deterministic key (see
//!    [`crate::custody`]). The envelope's nonce prefix is derived from the
//!    stream's identity and content (`0x01 ‖ stream index ‖ 4 bytes of
//!    SHA-256 over the spool header, stream index and plaintext hash`), so
//!    a retry produces the *same bytes*: a re-upload overwrites the same
//!    object with identical content, never a second copy, and metadata
//!    written by an earlier attempt stays true. (The same nonce under the
//!    same key is used again only for the same plaintext, which reveals
//!    nothing; the spool's own nonces start with 0x80.) The store checks
//!    size and SHA-256 of what it stored against what it read; the
//!    uploader also compares them with what it produced, and the
//!    plaintext length, hash and record count with what the spool's
//!    journal says.
//! 4. The signed manifest is stored next to the blobs.
//! 5. The metadata is written: `set_recording_media` (the primary stream)
//!    and status `stored` (with `ended_at` from the spool when the
//!    webhook did not set one).
//! 6. Only then is the spool copy deleted.
//!
//! A crash or failure between any two steps leaves nothing unreferenced
//! for good: the next attempt rewrites the same keys and the metadata.
//! No orphans, no duplicates.
//!
//! # Erased recordings
//!
//! The uploader never stores media of a recording a data-subject erasure
//! has erased:
//!
//! * Before anything is written, it reads the recording's erasure outcome
//!   (the `gdpr-erasure` audit events naming the recording). Media erased
//!   (`deleted`, `pseudonymized`), or the recording row gone after an
//!   erasure: the spool copy is deleted through the spool's own protocol
//!   and nothing is stored. Media kept by the erasure
//!   (`pseudonymized-media-deferred`, no waiver): the media is stored as
//!   evidence until retention deletes it, but no transcription is queued
//!   (it would bring the erased subject's words back).
//! * An erasure that runs while an upload is in flight deletes the spool
//!   copy first (under the spool's removal lock, which the final
//!   `mark_uploaded` shares) and the blobs afterwards. The uploader checks
//!   that the spool copy it read is still there before it records the
//!   metadata, and `mark_uploaded` fails once it is gone; either way the
//!   uploader then deletes every blob it put and clears what it recorded.
//!   So whichever comes first, nothing of the recording stays in blob
//!   storage.
//!
//! # Segments of live calls
//!
//! With the node's segmented upload ([`Uploader::with_segments`], see
//! [`crate::segments`]), before storing a recording the uploader asks
//! whether another gateway node took its segments over (this node was
//! presumed lost): then that node stores it, and this one only deletes
//! its spool copy (`insights_uploads_total{result="taken-over"}`). Once
//! the spool copy is gone (stored, erased or taken over), the recording's
//! staged segments are removed.
//!
//! # Retries
//!
//! A failed attempt is retried after an exponential backoff with jitter
//! (`backoff_initial_ms` doubling up to `backoff_max_ms`, each delay drawn
//! uniformly from its upper half), per recording. Uploads run up to
//! `upload_concurrency` at a time. The uploader also raises the spool's
//! expiry alarms and appends their audit events.
//!
//! # Metrics
//!
//! `insights_uploads_total{result="ok|failed|erased"}`,
//! `insights_upload_seconds` (histogram of successful uploads).

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use insights_core::blob::{BlobError, BlobStore};
use insights_core::config::SpoolSettings;
use insights_core::crypto::{DataKey, EnvelopeWriter, Header, KeyProvider};
use insights_core::domain::{
    AuditAction, AuditQuery, ErasureOutcome as Erasure, JobKind, MediaObject, NewAuditEvent,
    NewJob, RecordingId, RecordingStatus, Tenant, TenantId,
};
use insights_core::spool::{SpoolCopies, SpoolCopiesError};
use insights_core::store::{MetadataStore, StoreError};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::custody::{
    InstallationKey, MANIFEST_FORMAT, Manifest, ManifestRecord, ManifestStream, SignedManifest,
    envelope_object_id, manifest_key, stream_blob_key,
};
use crate::segments::{Segments, UploadRight};
use crate::spool::format::{FileHeader, RecordReader, UPLOAD_NONCE_DOMAIN};
use crate::spool::journal::{EntryState, Journal};
use crate::spool::{AlarmDue, AlarmKind, Spool, SpoolError};

/// The audit action under which a spool expiry alarm is recorded.
pub fn spool_alarm_audit_action(kind: AlarmKind) -> AuditAction {
    match kind {
        AlarmKind::Warning => AuditAction::SpoolExpiryWarning,
        AlarmKind::Expired => AuditAction::SpoolExpired,
    }
}

/// Bytes per message between the converter and the blob upload.
const PIPE_CHUNK: usize = 256 * 1024;

/// Uploader settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploaderConfig {
    pub concurrency: usize,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub scan_interval: Duration,
    /// How long shutdown waits for uploads in flight before abandoning
    /// them (safe: every step is idempotent).
    pub shutdown_grace: Duration,
}

impl UploaderConfig {
    /// From `[spool]`.
    pub fn from_settings(s: &SpoolSettings) -> Self {
        Self {
            concurrency: s.upload_concurrency.max(1),
            backoff_initial: Duration::from_millis(s.backoff_initial_ms),
            backoff_max: Duration::from_millis(s.backoff_max_ms),
            scan_interval: Duration::from_millis(s.scan_interval_ms),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Default for UploaderConfig {
    fn default() -> Self {
        Self::from_settings(&SpoolSettings::default())
    }
}

/// Why one upload attempt failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the recording's metadata does not exist yet")]
    MetadataMissing,
    #[error("metadata store: {0}")]
    Store(#[from] StoreError),
    #[error("blob store: {0}")]
    Blob(#[from] BlobError),
    #[error("spool: {0}")]
    Spool(#[from] SpoolError),
    #[error("crypto: {0}")]
    Crypto(#[from] insights_core::crypto::CryptoError),
    /// What was stored or read differs from what the spool says.
    #[error("integrity: {0}")]
    Integrity(String),
    #[error("not ready: {0}")]
    NotReady(String),
    /// The recording's spool copy was removed by an erasure during the
    /// upload (never returned: the uploader cleans up and reports `Ok`).
    #[error("the recording was erased during the upload")]
    ErasedMeanwhile,
    #[error("dropping an erased recording's spool copy: {0}")]
    SpoolCopies(#[from] SpoolCopiesError),
    #[error("segments: {0}")]
    Segments(#[from] crate::segments::SegmentError),
}

/// How an upload ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Done {
    Stored,
    /// Erased: nothing (left) stored, the spool copy deleted.
    Erased,
    /// Another gateway node took the recording's segments over (this
    /// node was presumed lost): the spool copy deleted, that node stores
    /// it.
    TakenOver,
}

/// Counters of a running uploader (also exported as metrics).
#[derive(Debug, Default)]
pub struct UploaderStats {
    pub uploaded: AtomicU64,
    /// Recordings not stored because an erasure erased them.
    pub erased: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub alarms_audited: AtomicU64,
}

/// What one stream's upload stored.
#[derive(Clone, Debug)]
struct StreamUpload {
    key: String,
    size: u64,
    sha256: String,
    plaintext_len: u64,
    plaintext_sha256: String,
    records: Vec<ManifestRecord>,
}

struct Ctx {
    spool: Spool,
    store: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    keys: Arc<dyn KeyProvider>,
    signer: Arc<InstallationKey>,
    containers: tokio::sync::Mutex<HashSet<String>>,
    /// The segmented upload of this node, if it runs.
    segments: Option<Segments>,
}

/// The background uploader. Build with [`Uploader::new`], run with
/// [`Uploader::run`] until the shutdown token is cancelled.
pub struct Uploader {
    ctx: Arc<Ctx>,
    cfg: UploaderConfig,
    stats: Arc<UploaderStats>,
}

impl Uploader {
    pub fn new(
        spool: Spool,
        store: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        signer: Arc<InstallationKey>,
        cfg: UploaderConfig,
    ) -> Self {
        let keys = spool.keys().clone();
        Self {
            ctx: Arc::new(Ctx {
                spool,
                store,
                blobs,
                keys,
                signer,
                containers: tokio::sync::Mutex::new(HashSet::new()),
                segments: None,
            }),
            cfg,
            stats: Arc::new(UploaderStats::default()),
        }
    }

    /// With the segmented upload of this node ([`crate::segments`]):
    /// before storing a recording the uploader checks that no other node
    /// took its segments over (else it drops the local copy), and once
    /// the spool copy is gone it has the segments removed.
    pub fn with_segments(mut self, segments: Segments) -> Self {
        if let Some(ctx) = Arc::get_mut(&mut self.ctx) {
            ctx.segments = Some(segments);
        }
        self
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<UploaderStats> {
        self.stats.clone()
    }

    /// One upload attempt of one finished recording, now.
    pub async fn upload_once(&self, id: RecordingId) -> Result<(), UploadError> {
        self.ctx.upload(id).await.map(|_| ())
    }

    /// Runs until `shutdown` is cancelled: uploads finished recordings
    /// (woken as they finish, and every `scan_interval`), retries with
    /// backoff, raises expiry alarms. On shutdown, waits up to
    /// `shutdown_grace` for uploads in flight.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut retry: HashMap<RecordingId, (u32, Instant)> = HashMap::new();
        let mut running: JoinSet<(RecordingId, Result<Done, UploadError>, Duration)> =
            JoinSet::new();
        let mut in_flight: HashSet<RecordingId> = HashSet::new();
        let mut next_alarm_check = Instant::now();
        tracing::info!("uploader started");
        loop {
            if Instant::now() >= next_alarm_check {
                self.process_alarms().await;
                next_alarm_check = Instant::now() + self.cfg.scan_interval;
            }
            let now = Instant::now();
            let mut next_due: Option<Instant> = None;
            for j in self.ctx.spool.finished() {
                let id = j.recording_id;
                if in_flight.contains(&id) {
                    continue;
                }
                if let Some((_, at)) = retry.get(&id)
                    && *at > now
                {
                    next_due = Some(next_due.map_or(*at, |d: Instant| d.min(*at)));
                    continue;
                }
                if in_flight.len() >= self.cfg.concurrency {
                    break;
                }
                in_flight.insert(id);
                let ctx = self.ctx.clone();
                running.spawn(async move {
                    let t = Instant::now();
                    let r = ctx.upload(id).await;
                    (id, r, t.elapsed())
                });
            }
            let wake = next_due
                .unwrap_or(next_alarm_check)
                .min(next_alarm_check)
                .max(Instant::now() + Duration::from_millis(5));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(done) = running.join_next(), if !running.is_empty() => {
                    match done {
                        Ok((id, result, took)) => {
                            in_flight.remove(&id);
                            self.settle(id, result, took, &mut retry);
                        }
                        Err(e) => tracing::error!(error = %e, "upload task failed"),
                    }
                }
                _ = self.ctx.spool.work_available() => {}
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
        tracing::info!(in_flight = running.len(), "uploader stopping");
        let grace = tokio::time::sleep(self.cfg.shutdown_grace);
        tokio::pin!(grace);
        while !running.is_empty() {
            tokio::select! {
                Some(done) = running.join_next() => {
                    if let Ok((id, result, took)) = done {
                        self.settle(id, result, took, &mut retry);
                    }
                }
                _ = &mut grace => {
                    // Safe: every upload step is idempotent.
                    running.abort_all();
                    break;
                }
            }
        }
        tracing::info!("uploader stopped");
    }

    fn settle(
        &self,
        id: RecordingId,
        result: Result<Done, UploadError>,
        took: Duration,
        retry: &mut HashMap<RecordingId, (u32, Instant)>,
    ) {
        match result {
            Ok(Done::TakenOver) => {
                retry.remove(&id);
                metrics::counter!("insights_uploads_total", "result" => "taken-over").increment(1);
                tracing::warn!(recording = %id, "recording taken over by another gateway node; local copy dropped");
            }
            Ok(Done::Erased) => {
                retry.remove(&id);
                self.stats.erased.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("insights_uploads_total", "result" => "erased").increment(1);
            }
            Ok(Done::Stored) => {
                retry.remove(&id);
                self.stats.uploaded.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("insights_uploads_total", "result" => "ok").increment(1);
                metrics::histogram!("insights_upload_seconds").record(took.as_secs_f64());
                tracing::info!(recording = %id, secs = took.as_secs_f64(), "recording uploaded");
            }
            Err(e) => {
                let attempts = retry.get(&id).map_or(0, |(a, _)| *a) + 1;
                let delay = backoff(&self.cfg, attempts);
                retry.insert(id, (attempts, Instant::now() + delay));
                self.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("insights_uploads_total", "result" => "failed").increment(1);
                tracing::warn!(recording = %id, attempts, retry_in_ms = delay.as_millis() as u64, error = %e, "upload failed; will retry");
            }
        }
    }

    async fn process_alarms(&self) {
        let due = match self.ctx.spool.check_alarms(Utc::now()).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot check spool expiry");
                return;
            }
        };
        for alarm in due {
            match self.ctx.append_alarm(&alarm).await {
                Ok(()) => {
                    self.stats.alarms_audited.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = self
                        .ctx
                        .spool
                        .mark_alarm_audited(alarm.recording_id, alarm.kind)
                        .await
                    {
                        tracing::error!(recording = %alarm.recording_id, error = %e, "cannot record that an alarm was audited");
                    }
                }
                Err(e) => {
                    tracing::warn!(recording = %alarm.recording_id, error = %e, "cannot append the spool alarm's audit event yet; will retry");
                }
            }
        }
    }
}

/// Exponential backoff with jitter: the `attempts`-th retry waits a
/// uniformly random time in the upper half of
/// `min(max, initial · 2^(attempts-1))` (the shared
/// [`Backoff::random_delay`](insights_core::backoff::Backoff::random_delay)).
pub fn backoff(cfg: &UploaderConfig, attempts: u32) -> Duration {
    insights_core::backoff::Backoff::new(cfg.backoff_initial, cfg.backoff_max)
        .random_delay(attempts)
}

/// `io::Write` into the upload pipe, hashing what it sends.
struct PipeWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
    sha: Sha256,
    size: u64,
}

impl PipeWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(PIPE_CHUNK),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::other("the upload stopped reading"))
    }
}

impl io::Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.sha.update(data);
        self.size += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIPE_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Converts stream `index` of a spool log into an envelope written to
/// `out`. Returns (what the pipe sent: size, sha; plaintext len, sha;
/// records).
fn convert_stream(
    path: PathBuf,
    valid_len: u64,
    key: &DataKey,
    journal: &Journal,
    index: u16,
    tx: mpsc::Sender<io::Result<Bytes>>,
) -> Result<StreamUpload, UploadError> {
    let fail = |tx: &mpsc::Sender<io::Result<Bytes>>, msg: String| {
        let _ = tx.blocking_send(Err(io::Error::other(msg.clone())));
        UploadError::Integrity(msg)
    };
    let file = std::fs::File::open(&path)
        .map_err(|e| fail(&tx, format!("cannot open {}: {e}", path.display())))?;
    let mut reader = RecordReader::new(io::BufReader::new(file), key, valid_len)
        .map_err(|e| fail(&tx, format!("spool log: {e}")))?;
    reader
        .header()
        .check(
            journal.tenant_id,
            journal.recording_id,
            journal.data_key.id,
            &journal.stream_ids(),
        )
        .map_err(|e| fail(&tx, format!("spool log: {e}")))?;
    let spool_header = reader.header().clone();
    let summary = journal.streams[usize::from(index)]
        .summary
        .clone()
        .ok_or_else(|| fail(&tx, "the stream has no summary".into()))?;
    let header = upload_header(journal, &spool_header, index, &summary.plaintext_sha256)
        .map_err(|e| fail(&tx, e.to_string()))?;
    let pipe = PipeWriter {
        tx: tx.clone(),
        buf: Vec::with_capacity(PIPE_CHUNK),
        sha: Sha256::new(),
        size: 0,
    };
    let mut env = EnvelopeWriter::new(pipe, key, &header)?;
    let mut plain_sha = Sha256::new();
    let mut plain_len = 0u64;
    let mut records = Vec::new();
    loop {
        match reader.next_record() {
            Ok((info, plain)) => {
                if info.header.stream != index {
                    continue;
                }
                plain_sha.update(plain);
                plain_len += plain.len() as u64;
                io::Write::write_all(&mut env, plain)
                    .map_err(|e| fail(&tx, format!("envelope: {e}")))?;
                records.push(ManifestRecord {
                    index: info.index,
                    plaintext_len: info.header.plaintext_len,
                    sealed_at: info.header.sealed_at_micros,
                    last: info.header.is_last(),
                    sha256: hex::encode(info.sha256),
                });
            }
            Err(crate::spool::format::End::Eof) => break,
            Err(crate::spool::format::End::Invalid { error, .. }) => {
                // Inside the valid length everything authenticated when
                // the entry was finished: this is corruption since then.
                return Err(fail(
                    &tx,
                    format!("spool log changed since it was finished: {error}"),
                ));
            }
        }
    }
    let plain_sha = hex::encode(plain_sha.finalize());
    if plain_len != summary.plaintext_len
        || plain_sha != summary.plaintext_sha256
        || records.len() as u64 != summary.records
    {
        return Err(fail(
            &tx,
            format!(
                "stream {index}: spool holds {plain_len} bytes in {} records, the journal says {} in {}",
                records.len(),
                summary.plaintext_len,
                summary.records
            ),
        ));
    }
    let mut pipe = env
        .finish()
        .map_err(|e| fail(&tx, format!("envelope: {e}")))?;
    pipe.send()
        .map_err(|e| UploadError::Integrity(e.to_string()))?;
    Ok(StreamUpload {
        key: String::new(),
        size: pipe.size,
        sha256: hex::encode(pipe.sha.clone().finalize()),
        plaintext_len: plain_len,
        plaintext_sha256: plain_sha,
        records,
    })
}

/// The deterministic envelope header of an uploaded stream (see the
/// module docs).
fn upload_header(
    journal: &Journal,
    spool_header: &FileHeader,
    index: u16,
    plaintext_sha256: &str,
) -> Result<Header, insights_core::crypto::CryptoError> {
    let mut h = Sha256::new();
    h.update(b"insights/upload-envelope-nonce/v1");
    h.update(spool_header.encode());
    h.update(index.to_be_bytes());
    h.update(plaintext_sha256.as_bytes());
    let d = h.finalize();
    let idx = index.to_be_bytes();
    let prefix = [UPLOAD_NONCE_DOMAIN, idx[0], idx[1], d[0], d[1], d[2], d[3]];
    let stream_id = journal.streams[usize::from(index)].stream_id;
    Header::from_parts(
        journal.tenant_id,
        envelope_object_id(journal.recording_id, index, stream_id),
        journal.data_key.id,
        insights_core::crypto::envelope::DEFAULT_CHUNK_SIZE,
        prefix,
    )
}

impl Ctx {
    async fn ensure_container(&self, tenant: TenantId) -> Result<String, UploadError> {
        let container = Tenant::container_name(tenant);
        let mut known = self.containers.lock().await;
        if !known.contains(&container) {
            self.blobs.ensure_container(&container).await?;
            known.insert(container.clone());
        }
        Ok(container)
    }

    /// The recording's erasure outcome, from the `gdpr-erasure` audit
    /// events that name it (append-only, written by every erasure).
    async fn erasure_outcome(
        &self,
        tenant: TenantId,
        id: RecordingId,
    ) -> Result<Erasure, UploadError> {
        let events = self
            .store
            .list_audit(
                tenant,
                &AuditQuery {
                    action: Some(AuditAction::GdprErasure),
                    recording_id: Some(id),
                    ..AuditQuery::default()
                },
            )
            .await?;
        Ok(Erasure::from_events(&events))
    }

    /// Deletes an erased recording's spool copy; nothing is stored.
    async fn drop_erased(&self, tenant: TenantId, id: RecordingId) -> Result<Done, UploadError> {
        let removed = self.spool.remove_recording(tenant, id).await?;
        tracing::info!(
            recording = %id,
            bytes = removed.bytes,
            "recording erased: spool copy deleted, nothing stored"
        );
        Ok(Done::Erased)
    }

    /// Deletes every blob of the recording and clears the media the
    /// upload recorded: an erasure removed the spool copy meanwhile.
    /// Retried a few times (the store just answered the upload).
    async fn purge(&self, tenant: TenantId, container: &str, id: RecordingId) {
        let prefix = insights_core::blob::layout::recording_prefix(id);
        let mut left = true;
        for attempt in 0..5u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            let keys = match self.blobs.list(container, &prefix).await {
                Ok(k) => k,
                Err(BlobError::ContainerNotFound) => Vec::new(),
                Err(e) => {
                    tracing::warn!(recording = %id, error = %e, "cannot list an erased recording's blobs; retrying");
                    continue;
                }
            };
            let mut failed = false;
            for k in keys {
                match self.blobs.delete(container, &k).await {
                    Ok(()) | Err(BlobError::NotFound) | Err(BlobError::ContainerNotFound) => {}
                    Err(e) => {
                        failed = true;
                        tracing::warn!(recording = %id, error = %e, "cannot delete an erased recording's blob; retrying");
                    }
                }
            }
            if !failed {
                left = false;
                break;
            }
        }
        if left {
            tracing::error!(recording = %id, "blobs of an erased recording may remain; run the erasure again");
        }
        if let Ok(rec) = self.store.get_recording(tenant, id).await
            && rec.media.is_some()
        {
            let cleared = async {
                self.store.set_recording_media(tenant, id, None).await?;
                self.store
                    .update_recording_status(tenant, id, RecordingStatus::MediaDeleted, None, None)
                    .await
            }
            .await;
            if let Err(e) = cleared {
                tracing::error!(recording = %id, error = %e, "cannot clear an erased recording's media");
            }
        }
        tracing::info!(recording = %id, "recording erased during its upload: what was stored is deleted");
    }

    #[tracing::instrument(skip(self), fields(recording = %id))]
    async fn upload(&self, id: RecordingId) -> Result<Done, UploadError> {
        let tenant = self
            .spool
            .entry(id)
            .ok_or(SpoolError::NotFound(id))?
            .journal
            .tenant_id;
        let done = self.upload_entry(id).await?;
        // The spool copy is gone: the staged segments go too.
        if let Some(s) = &self.segments {
            s.finished(tenant, id).await;
        }
        Ok(done)
    }

    async fn upload_entry(&self, id: RecordingId) -> Result<Done, UploadError> {
        let entry = self.spool.entry(id).ok_or(SpoolError::NotFound(id))?;
        let j = entry.journal;
        if j.state != EntryState::Finished {
            return Err(UploadError::NotReady(format!("entry is {:?}", j.state)));
        }
        let tenant = j.tenant_id;
        let rec = match self.store.get_recording(tenant, id).await {
            Ok(r) => r,
            Err(StoreError::NotFound) => {
                // Deleted by an erasure, or not inserted yet by the webhook.
                if self.erasure_outcome(tenant, id).await? != Erasure::None {
                    return self.drop_erased(tenant, id).await;
                }
                return Err(UploadError::MetadataMissing);
            }
            Err(e) => return Err(e.into()),
        };
        let erased = self.erasure_outcome(tenant, id).await?;
        if erased == Erasure::MediaGone {
            return self.drop_erased(tenant, id).await;
        }
        // Another node took the segments over (this one was presumed
        // lost): it stores the recording, this copy goes.
        if let Some(s) = &self.segments
            && s.may_upload(tenant, id).await? == UploadRight::TakenOver
        {
            let removed = self.spool.remove_recording(tenant, id).await?;
            tracing::warn!(recording = %id, bytes = removed.bytes, "recording taken over by another gateway node; spool copy deleted");
            return Ok(Done::TakenOver);
        }
        let container = self.ensure_container(tenant).await?;
        let result = self.store_media(id, j, rec, &container, erased).await;
        match result {
            Err(_) if self.spool.entry(id).is_none() => {
                // The erasure removed the spool copy while we stored it.
                self.purge(tenant, &container, id).await;
                Ok(Done::Erased)
            }
            other => other.map(|()| Done::Stored),
        }
    }

    async fn store_media(
        &self,
        id: RecordingId,
        j: Journal,
        rec: insights_core::domain::Recording,
        container: &str,
        erased: Erasure,
    ) -> Result<(), UploadError> {
        let tenant = j.tenant_id;
        let container = container.to_owned();
        let key = Arc::new(self.keys.unwrap(&j.data_key).await?);

        // The wrapped key, idempotently.
        match self.store.put_data_key(tenant, &j.data_key).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                let stored = self.store.get_data_key(tenant, j.data_key.id).await?;
                // A rotation may have rewrapped it under a newer KEK version
                // since an earlier attempt stored it: the same key if its
                // bytes are the same.
                let same = (stored.wrapped == j.data_key.wrapped
                    && stored.kek_id == j.data_key.kek_id)
                    || self.keys.unwrap(&stored).await?.bytes() == key.bytes();
                if !same {
                    return Err(UploadError::Integrity(
                        "another data key with this id is stored".into(),
                    ));
                }
            }
            Err(e) => return Err(e.into()),
        }

        let path = self.spool.media_path(id);
        let valid_len = j
            .valid_len
            .ok_or_else(|| UploadError::NotReady("no valid length".into()))?;
        let mut uploads = Vec::with_capacity(j.streams.len());
        for (i, s) in j.streams.iter().enumerate() {
            let index =
                u16::try_from(i).map_err(|_| UploadError::Integrity("too many streams".into()))?;
            let blob_key = stream_blob_key(id, index, &s.content_type);
            let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(4);
            let (p, jj, k) = (path.clone(), j.clone(), key.clone());
            let producer = tokio::task::spawn_blocking(move || {
                convert_stream(p, valid_len, &k, &jj, index, tx)
            });
            let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
            let mut reader = tokio_util::io::StreamReader::new(stream);
            let put = self.blobs.put(&container, &blob_key, &mut reader).await;
            drop(reader);
            let produced = producer
                .await
                .map_err(|e| UploadError::Integrity(format!("converter failed: {e}")))?;
            let mut produced = produced?;
            let outcome = put?;
            if outcome.byte_size != produced.size || outcome.sha256 != produced.sha256 {
                return Err(UploadError::Integrity(format!(
                    "stream {index}: stored {} bytes with SHA-256 {}, sent {} bytes with {}",
                    outcome.byte_size, outcome.sha256, produced.size, produced.sha256
                )));
            }
            produced.key = blob_key;
            uploads.push(produced);
        }

        // The signed manifest.
        let mut participants = j.participants.clone();
        for p in &rec.participants {
            if !participants.contains(&p.id) {
                participants.push(p.id);
            }
        }
        let spool_header = {
            let p = path.clone();
            let k = key.clone();
            tokio::task::spawn_blocking(move || -> Result<FileHeader, UploadError> {
                let f = std::fs::File::open(&p)
                    .map_err(|e| UploadError::Integrity(format!("{}: {e}", p.display())))?;
                let r = RecordReader::new(io::BufReader::new(f), &k, valid_len)
                    .map_err(|e| UploadError::Integrity(e.to_string()))?;
                Ok(r.header().clone())
            })
            .await
            .map_err(|e| UploadError::Integrity(format!("header task failed: {e}")))??
        };
        let manifest = Manifest {
            format: MANIFEST_FORMAT.into(),
            installation_id: self.signer.installation_id(),
            signing_key_id: None, // set by `SignedManifest::sign`
            tenant_id: tenant,
            recording_id: id,
            participants,
            started_at: j.started_at,
            spooled_at: j.created_at,
            finished_at: j.finished_at.unwrap_or(j.created_at),
            uploaded_at: insights_core::domain::now(),
            partial: j.partial.map(|p| p.as_str().to_owned()),
            data_key_id: j.data_key.id,
            container: container.clone(),
            spool_header: hex::encode(spool_header.encode()),
            spool_discarded_tail_bytes: j.discarded_tail_bytes,
            streams: j
                .streams
                .iter()
                .zip(&uploads)
                .enumerate()
                .map(|(i, (s, u))| ManifestStream {
                    index: i as u16,
                    stream_id: s.stream_id,
                    participant_id: s.participant_id,
                    content_type: s.content_type.clone(),
                    primary: i == 0,
                    complete: s.summary.as_ref().is_some_and(|x| x.complete),
                    plaintext_size: u.plaintext_len,
                    plaintext_sha256: u.plaintext_sha256.clone(),
                    blob_key: u.key.clone(),
                    blob_size: u.size,
                    blob_sha256: u.sha256.clone(),
                    records: u.records.clone(),
                })
                .collect(),
        };
        let signed = SignedManifest::sign(manifest, &self.signer)
            .map_err(|e| UploadError::Integrity(format!("manifest: {e}")))?;
        let bytes = signed
            .to_bytes()
            .map_err(|e| UploadError::Integrity(format!("manifest: {e}")))?;
        let outcome = self
            .blobs
            .put(&container, &manifest_key(id), &mut &bytes[..])
            .await?;
        if outcome.byte_size != bytes.len() as u64
            || outcome.sha256 != hex::encode(Sha256::digest(&bytes))
        {
            return Err(UploadError::Integrity("manifest stored differently".into()));
        }

        // An erasure removed the spool copy meanwhile: record nothing
        // (the caller deletes what was put).
        if self.spool.entry(id).is_none() {
            return Err(UploadError::ErasedMeanwhile);
        }
        // The metadata, then the spool copy goes.
        let primary = &uploads[0];
        let media = MediaObject {
            container,
            key: primary.key.clone(),
            byte_size: i64::try_from(primary.size)
                .map_err(|_| UploadError::Integrity("blob too large".into()))?,
            sha256: primary.sha256.clone(),
            data_key_id: j.data_key.id,
            content_type: j.streams[0].content_type.clone(),
            plaintext_size: i64::try_from(primary.plaintext_len)
                .map_err(|_| UploadError::Integrity("plaintext too large".into()))?,
        };
        self.store
            .set_recording_media(tenant, id, Some(&media))
            .await?;
        let ended_at = if rec.ended_at.is_none() {
            j.finished_at
        } else {
            None
        };
        self.store
            .update_recording_status(tenant, id, RecordingStatus::Stored, ended_at, None)
            .await?;
        // The AI pipeline's first step (idempotent: a retried upload finds
        // the pending job and adds none). Before the spool copy goes, so a
        // failure here is retried with the rest of the upload.
        // Not for a recording an erasure pseudonymised: transcribing it
        // would bring the erased subject's words back.
        if erased == Erasure::None {
            self.store
                .enqueue_job(tenant, &NewJob::now(id, JobKind::Transcribe))
                .await?;
        }
        // Delete the local copy only now that blob, manifest and metadata
        // are all stored and verified. Under the spool's removal lock: an
        // erasure that removed the copy first makes this fail, and the
        // caller deletes what was stored.
        self.spool.mark_uploaded(id).await?;
        Ok(())
    }

    async fn append_alarm(&self, a: &AlarmDue) -> Result<(), UploadError> {
        let event = NewAuditEvent {
            actor: format!("gateway:{}", self.signer.installation_id()),
            action: spool_alarm_audit_action(a.kind),
            recording_id: Some(a.recording_id),
            target: Some("spool".into()),
            reason: None,
            source: None,
            details: serde_json::json!({
                "event": a.kind.as_str(),
                "raised_at": a.raised_at,
                "waiting_since": a.waiting_since,
                "max_age_secs": self.spool.config().max_age.as_secs(),
                "action_taken": match a.kind {
                    AlarmKind::Warning => "none; upload still retried",
                    AlarmKind::Expired => "kept in the spool; upload still retried",
                },
            }),
        };
        self.store.append_audit(a.tenant_id, event).await?;
        Ok(())
    }
}
