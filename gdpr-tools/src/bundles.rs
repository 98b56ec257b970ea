//! Files kept for download — access bundles and Excel exports — sealed in
//! the tenant's blob container and tracked as [`FileJob`]s in the metadata
//! store, so a job started on one API node is polled and downloaded
//! through any other.
//!
//! * The file is written straight into an envelope
//!   (`insights_core::crypto::envelope`, the format of media) under a
//!   data key of its own, wrapped by the tenant's key-encryption key
//!   through the key provider and kept only in the job's row; the
//!   ciphertext streams into the blob store as it is produced
//!   ([`SealedWriter`] → a bounded channel → [`BlobStore::put`]), so
//!   nothing of it touches a local disk, in clear or sealed. A writer
//!   dropped without [`SealedWriter::finish`] fails the upload: no partial
//!   object is ever stored.
//! * A running job holds a lease ([`LEASE`]) that [`JobRun`] renews with
//!   its progress every [`RENEW_EVERY`]. A job past its lease (its node
//!   died) is taken over by another API node ([`Takeovers`], every
//!   [`RENEW_EVERY`] on each): the job's attempt goes up by one in the
//!   store (atomic: one node wins), and that node runs it again from the
//!   request stored with it ([`Rerun`]), writing a new file under the
//!   attempt's own blob key with a new data key. Renewals and the end
//!   carry the attempt: the old run, should its node still be alive, is
//!   fenced out and deletes only its own file. A job without a stored
//!   request, or lost [`MAX_ATTEMPTS`] times, is failed (`node-lost`,
//!   [`current`]): a job never stays running forever, and its file is
//!   never half stored.
//! * Downloads decrypt chunk by chunk as the client reads ([`download`]).
//! * A file is deleted when it expires ([`sweep_expired`], run by
//!   [`Sweeper`] and on reads), when an erasure erases one of its
//!   recordings ([`delete_containing`]) and when its build fails. The
//!   blob goes first, then the row with the only wrapped key.
//!
//! Blob keys: `insights_core::blob::layout::file_job_key`.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};
use insights_core::blob::{BlobError, BlobStore, PutOutcome, layout};
use insights_core::crypto::{
    CryptoError, DataKey, EnvelopeReader, EnvelopeWriter, ExpectedIds, Header, KeyProvider,
};
use insights_core::domain::{
    FileJob, FileJobEnd, FileJobKind, FileJobOutput, FileJobState, KeyId, RecordingId, Tenant,
    TenantId, now,
};
use insights_core::store::{MetadataStore, StoreError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a running job stays alive without its node renewing it.
pub const LEASE: chrono::Duration = chrono::Duration::seconds(30);
/// How often a running job's node renews its lease (and saves progress).
pub const RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// The error code of a job whose node stopped renewing its lease and
/// that cannot be run again (no stored request, or [`MAX_ATTEMPTS`] runs
/// lost).
pub const LOST: &str = "node-lost";
/// How many runs of a job may be lost with their node before it fails.
pub const MAX_ATTEMPTS: u32 = 3;
/// Sealed chunks in flight between the writer and the upload.
const CHANNEL_CHUNKS: usize = 8;
/// Bytes per chunk of a download.
const DOWNLOAD_CHUNK: usize = 64 * 1024;

/// Errors of stored files.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("file key: {0}")]
    Crypto(#[from] CryptoError),
    #[error("blob store: {0}")]
    Blob(#[from] BlobError),
    #[error("metadata store: {0}")]
    Store(#[from] StoreError),
    #[error("file stream: {0}")]
    Io(#[from] io::Error),
}

enum Piece {
    Data(Bytes),
    End,
}

/// The sink under the envelope: hands each sealed chunk to the upload,
/// blocking while the channel is full (so call it from a blocking thread).
struct ChunkSink {
    tx: futures::channel::mpsc::Sender<Piece>,
}

fn send(tx: &mut futures::channel::mpsc::Sender<Piece>, p: Piece) -> io::Result<()> {
    futures::executor::block_on(tx.send(p))
        .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
}

impl Write for ChunkSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !buf.is_empty() {
            send(&mut self.tx, Piece::Data(Bytes::copy_from_slice(buf)))?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes a file's clear bytes; they are sealed and uploaded as they come.
/// Writes block while the upload catches up: use it on a blocking thread
/// (`spawn_blocking`), never on an async task's thread.
pub struct SealedWriter(EnvelopeWriter<ChunkSink>);

impl Write for SealedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl SealedWriter {
    /// Seals the last chunk and ends the upload's stream. Without it the
    /// upload fails (nothing is stored).
    pub fn finish(self) -> io::Result<()> {
        let mut sink = self.0.finish()?;
        send(&mut sink.tx, Piece::End)
    }
}

/// How much of a job is done, shared by the job and its lease renewer.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
    total: AtomicU64,
}

impl Progress {
    pub fn set(&self, done: u64, total: u64) {
        self.done.store(done, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    fn get(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

/// What a successful job produced (besides its file).
#[derive(Clone, Debug, Default)]
pub struct Completed {
    /// The recordings whose content the file holds.
    pub recordings: Vec<RecordingId>,
    /// What the API shows about the finished job (no personal data).
    pub details: serde_json::Value,
    pub done: u64,
    pub total: u64,
}

/// A job running on this node: its row (leased), its sealed upload and
/// the task renewing the lease. End it with [`JobRun::finish`].
pub struct JobRun {
    store: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    job: FileJob,
    blob_key: String,
    data_key: insights_core::crypto::WrappedDataKey,
    upload: JoinHandle<Result<PutOutcome, BlobError>>,
    progress: Arc<Progress>,
    stop: CancellationToken,
    renewer: JoinHandle<()>,
}

impl JobRun {
    /// Stores `job` (state running, leased from now, first attempt) and
    /// starts its sealed upload: a fresh data key wrapped by the tenant's
    /// KEK, the envelope streaming into `exports/…` or `bundles/…` of the
    /// tenant's container. If the key or upload cannot start, the job is
    /// stored failed and the error returned.
    pub async fn start(
        store: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        keys: &dyn KeyProvider,
        mut job: FileJob,
    ) -> Result<(JobRun, SealedWriter), FileError> {
        job.state = FileJobState::Running;
        job.lease_until = now() + LEASE;
        job.attempt = 1;
        store.create_file_job(job.tenant_id, &job).await?;
        Self::open(store, blobs, keys, job).await
    }

    /// A job this node took over ([`take_over_lost`]: leased by it at its
    /// new attempt): its upload starts afresh under the attempt's blob key
    /// and a new data key. If it cannot start, the job is stored failed.
    pub async fn resume(
        store: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        keys: &dyn KeyProvider,
        job: FileJob,
    ) -> Result<(JobRun, SealedWriter), FileError> {
        Self::open(store, blobs, keys, job).await
    }

    async fn open(
        store: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        keys: &dyn KeyProvider,
        job: FileJob,
    ) -> Result<(JobRun, SealedWriter), FileError> {
        let tenant = job.tenant_id;
        let key = DataKey::generate(KeyId::new());
        let data_key = match keys.wrap(tenant, &key).await {
            Ok(k) => k,
            Err(e) => {
                let end = FileJobEnd::Failed {
                    error: "file-key-unavailable".into(),
                };
                let _ = store
                    .finish_file_job(tenant, job.id, job.attempt, &end)
                    .await;
                return Err(e.into());
            }
        };
        let header = Header::new(tenant, job.id.as_uuid(), key.id);
        let (tx, rx) = futures::channel::mpsc::channel::<Piece>(CHANNEL_CHUNKS);
        let writer = SealedWriter(EnvelopeWriter::new(ChunkSink { tx }, &key, &header)?);
        drop(key);
        let blob_key = layout::file_job_attempt_key(job.kind, job.id, job.attempt);
        let upload = {
            let blobs = blobs.clone();
            let container = Tenant::container_name(tenant);
            let blob_key = blob_key.clone();
            // The stream ends cleanly only at `Piece::End`: a writer
            // dropped early is an error, and the put stores nothing.
            let stream = futures::stream::unfold((rx, false), |(mut rx, over)| async move {
                if over {
                    return None;
                }
                match rx.next().await {
                    Some(Piece::Data(b)) => Some((Ok(b), (rx, false))),
                    Some(Piece::End) => None,
                    None => Some((
                        Err(io::Error::other("the file was not finished")),
                        (rx, true),
                    )),
                }
            });
            tokio::spawn(async move {
                let mut reader = tokio_util::io::StreamReader::new(Box::pin(stream));
                blobs.put(&container, &blob_key, &mut reader).await
            })
        };
        let progress = Arc::new(Progress::default());
        let stop = CancellationToken::new();
        let renewer = tokio::spawn(renew(
            store.clone(),
            tenant,
            (job.id, job.attempt),
            progress.clone(),
            stop.clone(),
        ));
        Ok((
            JobRun {
                store,
                blobs,
                job,
                blob_key,
                data_key,
                upload,
                progress,
                stop,
                renewer,
            },
            writer,
        ))
    }

    /// The job as stored at its start.
    pub fn job(&self) -> &FileJob {
        &self.job
    }

    /// Where the job reports its progress (saved with each renewal).
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Ends the job. `Ok`: the writer was finished; once the upload is
    /// verified the job is `done` with the file's wrapped key. `Err(code)`:
    /// the job is `failed` with that stable code, nothing is stored. A job
    /// declared lost meanwhile stays failed and its file is deleted.
    /// Returns the job's final state.
    pub async fn finish(self, outcome: Result<Completed, &str>) -> FileJobState {
        let JobRun {
            store,
            blobs,
            job,
            blob_key,
            data_key,
            upload,
            progress: _,
            stop,
            renewer,
        } = self;
        stop.cancel();
        let _ = renewer.await;
        let tenant = job.tenant_id;
        let container = Tenant::container_name(tenant);
        let uploaded = match &outcome {
            Ok(_) => upload.await,
            // The writer may still be alive somewhere: stop the upload
            // rather than wait for its end (nothing partial is stored).
            Err(_) => {
                upload.abort();
                let _ = upload.await;
                Ok(Err(BlobError::Io(Box::new(io::Error::other("job failed")))))
            }
        };
        let end = match (outcome, uploaded) {
            (Ok(c), Ok(Ok(put))) => FileJobEnd::Done {
                output: FileJobOutput {
                    blob_key: blob_key.clone(),
                    data_key,
                    byte_size: put.byte_size,
                },
                recordings: c.recordings,
                details: c.details,
                done: c.done,
                total: c.total,
            },
            (Ok(_), Ok(Err(e))) => {
                tracing::warn!(job = %job.id, error = %e, "a file job's upload failed");
                FileJobEnd::Failed {
                    error: "file-not-stored".into(),
                }
            }
            (Ok(_), Err(e)) => {
                tracing::warn!(job = %job.id, error = %e, "a file job's upload task failed");
                FileJobEnd::Failed {
                    error: "file-not-stored".into(),
                }
            }
            (Err(code), _) => FileJobEnd::Failed {
                error: code.to_owned(),
            },
        };
        let done = matches!(end, FileJobEnd::Done { .. });
        let recorded = store
            .finish_file_job(tenant, job.id, job.attempt, &end)
            .await;
        match recorded {
            Ok(true) if done => return FileJobState::Done,
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(job = %job.id, attempt = job.attempt, "a file job ended after it was declared lost or taken over: its file is dropped")
            }
            Err(e) => tracing::warn!(job = %job.id, error = %e, "cannot record a file job's end"),
        }
        // Failed, lost meanwhile or unrecorded: no file may stay behind.
        if let Err(e) = blobs.delete(&container, &blob_key).await {
            tracing::warn!(job = %job.id, error = %e, "cannot delete a failed job's file");
        }
        FileJobState::Failed
    }
}

async fn renew(
    store: Arc<dyn MetadataStore>,
    tenant: TenantId,
    (id, attempt): (insights_core::domain::FileJobId, u32),
    progress: Arc<Progress>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(RENEW_EVERY) => {}
        }
        let (done, total) = progress.get();
        match store
            .renew_file_job(tenant, id, attempt, done, total, now() + LEASE)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::warn!(job = %id, error = %e, "cannot renew a file job's lease"),
        }
    }
}

/// Whether a job lost with its node is run again ([`Takeovers`]) rather
/// than failed: it has a stored request and fewer than [`MAX_ATTEMPTS`]
/// runs.
pub fn may_rerun(job: &FileJob) -> bool {
    job.request.is_some() && job.attempt < MAX_ATTEMPTS
}

/// The caller-visible state of a job: `None` when there is none or it
/// has expired (then it is deleted); a running job past its lease that
/// cannot be run again ([`may_rerun`]) is recorded failed ([`LOST`])
/// first. One that can stays `running` until a node takes it over.
pub async fn current(
    store: &dyn MetadataStore,
    blobs: &dyn BlobStore,
    tenant: TenantId,
    id: insights_core::domain::FileJobId,
    at: DateTime<Utc>,
) -> Result<Option<FileJob>, FileError> {
    let mut job = match store.get_file_job(tenant, id).await {
        Ok(j) => j,
        Err(StoreError::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if job.expired(at) {
        delete_job(store, blobs, &job).await?;
        return Ok(None);
    }
    if job.lost(at) && !may_rerun(&job) {
        let end = FileJobEnd::Failed { error: LOST.into() };
        if store.finish_file_job(tenant, id, job.attempt, &end).await? {
            tracing::warn!(job = %id, "a file job's node stopped renewing it: failed");
        }
        job = store.get_file_job(tenant, id).await?;
    }
    Ok(Some(job))
}

/// A finished job's file, decrypted as the stream is read (64 KiB at a
/// time, memory bounded by a small channel). The header is checked before
/// this returns: a missing object is [`BlobError::NotFound`], a wrong key
/// or tampered file a [`CryptoError`].
pub async fn download(
    keys: &dyn KeyProvider,
    blobs: &dyn BlobStore,
    job: &FileJob,
) -> Result<BoxStream<'static, io::Result<Bytes>>, FileError> {
    let output = job
        .output
        .as_ref()
        .ok_or_else(|| FileError::Io(io::Error::other("the job has no file")))?;
    let key = keys.unwrap(&output.data_key).await?;
    let container = Tenant::container_name(job.tenant_id);
    let stream = blobs.get_stream(&container, &output.blob_key).await?;
    let expected = ExpectedIds::new(job.tenant_id, job.id.as_uuid(), output.data_key.id);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), FileError>>();
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    let id = job.id;
    let reader = tokio_util::io::StreamReader::new(stream.map(|c| c.map_err(io::Error::other)));
    let bridge = tokio_util::io::SyncIoBridge::new(reader);
    tokio::task::spawn_blocking(move || {
        let mut r = match EnvelopeReader::new(bridge, &key, &expected) {
            Ok(r) => r,
            Err(e) => {
                let _ = ready_tx.send(Err(e.into()));
                return;
            }
        };
        drop(key);
        if ready_tx.send(Ok(())).is_err() {
            return;
        }
        loop {
            let mut buf = vec![0u8; DOWNLOAD_CHUNK];
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "a stored file is unreadable");
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    ready_rx
        .await
        .map_err(|_| FileError::Io(io::Error::other("the download task stopped")))??;
    Ok(
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
            .boxed(),
    )
}

/// Deletes a job's file, then the job (with the only wrapped key).
pub async fn delete_job(
    store: &dyn MetadataStore,
    blobs: &dyn BlobStore,
    job: &FileJob,
) -> Result<(), FileError> {
    let container = Tenant::container_name(job.tenant_id);
    // The key is fixed by kind and id: a lost job's partial upload (if the
    // backend kept any) goes too.
    match &job.output {
        Some(o) => blobs.delete(&container, &o.blob_key).await?,
        None => {
            for attempt in 1..=job.attempt.max(1) {
                let key = layout::file_job_attempt_key(job.kind, job.id, attempt);
                blobs.delete(&container, &key).await?;
            }
        }
    }
    store.delete_file_job(job.tenant_id, job.id).await?;
    Ok(())
}

/// Deletes every file of `tenant` that holds any of `erased` (an erasure
/// does, as its last step); returns how many.
pub async fn delete_containing(
    store: &dyn MetadataStore,
    blobs: &dyn BlobStore,
    tenant: TenantId,
    erased: &BTreeSet<RecordingId>,
) -> Result<usize, FileError> {
    let mut n = 0;
    for job in store.list_file_jobs(tenant).await? {
        if job.recordings.iter().any(|r| erased.contains(r)) {
            delete_job(store, blobs, &job).await?;
            n += 1;
        }
    }
    Ok(n)
}

/// Deletes the expired files of every tenant; returns how many. Any node
/// may run it at any time (deleting twice is harmless).
pub async fn sweep_expired(
    store: &dyn MetadataStore,
    blobs: &dyn BlobStore,
    at: DateTime<Utc>,
) -> Result<usize, FileError> {
    let mut n = 0;
    for tenant in store.list_tenants().await? {
        for job in store.list_file_jobs(tenant.id).await? {
            if job.expired(at) {
                delete_job(store, blobs, &job).await?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Runs [`sweep_expired`] every `interval` (started by `insights serve`);
/// [`Sweeper::stop`] ends it.
pub struct Sweeper {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Sweeper {
    /// Starts sweeping on the current Tokio runtime.
    pub fn start(
        store: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        interval: std::time::Duration,
    ) -> Sweeper {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
                match sweep_expired(store.as_ref(), blobs.as_ref(), now()).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(files = n, "expired exports and access bundles deleted")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot sweep expired exports and bundles")
                    }
                }
            }
        });
        Sweeper { stop, task }
    }

    /// Stops sweeping.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Runs one kind of job again from the request stored with it, on the
/// node that took it over: given the run (leased by this node at the new
/// attempt, its upload started), the writer of its file and the stored
/// request; ends the run with [`JobRun::finish`].
pub type Rerun =
    Arc<dyn Fn(JobRun, SealedWriter, serde_json::Value) -> BoxFuture<'static, ()> + Send + Sync>;

/// What a node needs to take jobs over: the stores, the key provider and
/// a [`Rerun`] per kind it can run.
#[derive(Clone)]
pub struct TakeoverEnv {
    pub store: Arc<dyn MetadataStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub keys: Arc<dyn KeyProvider>,
    pub runners: Vec<(FileJobKind, Rerun)>,
}

/// Takes over every job of every tenant whose lease ran out before `at`
/// and that may run again ([`may_rerun`]) and this node can run, and
/// starts it here; fails the lost ones that may not. Returns how many
/// this node took over. Any node may run it at any time: the store lets
/// one node take each lost run.
pub async fn take_over_lost(env: &TakeoverEnv, at: DateTime<Utc>) -> Result<usize, FileError> {
    let mut n = 0;
    for tenant in env.store.list_tenants().await? {
        for job in env.store.list_file_jobs(tenant.id).await? {
            if !job.lost(at) {
                continue;
            }
            let runner = env
                .runners
                .iter()
                .find(|(k, _)| *k == job.kind)
                .map(|(_, r)| r.clone());
            let (Some(runner), Some(request), true) =
                (runner, job.request.clone(), may_rerun(&job))
            else {
                if !may_rerun(&job) {
                    // Read once more through `current`: failed, `node-lost`.
                    current(
                        env.store.as_ref(),
                        env.blobs.as_ref(),
                        tenant.id,
                        job.id,
                        at,
                    )
                    .await?;
                }
                continue;
            };
            let Some(taken) = env
                .store
                .take_over_file_job(tenant.id, job.id, job.attempt, at, now() + LEASE)
                .await?
            else {
                continue; // another node was faster
            };
            metrics::counter!("insights_file_job_takeovers_total", "kind" => taken.kind.as_str())
                .increment(1);
            tracing::warn!(job = %taken.id, kind = taken.kind.as_str(), attempt = taken.attempt,
                "a file job's node stopped renewing it: taken over and run again here");
            match JobRun::resume(
                env.store.clone(),
                env.blobs.clone(),
                env.keys.as_ref(),
                taken,
            )
            .await
            {
                Ok((run, writer)) => {
                    tokio::spawn(runner(run, writer, request));
                    n += 1;
                }
                Err(e) => {
                    tracing::warn!(job = %job.id, error = %e, "cannot run a taken-over file job")
                }
            }
        }
    }
    Ok(n)
}

/// Runs [`take_over_lost`] every [`RENEW_EVERY`] (started with the API of
/// `insights serve`); [`Takeovers::stop`] ends it.
pub struct Takeovers {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Takeovers {
    /// Starts looking for lost jobs on the current Tokio runtime.
    pub fn start(env: TakeoverEnv) -> Takeovers {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(RENEW_EVERY) => {}
                }
                if let Err(e) = take_over_lost(&env, now()).await {
                    tracing::warn!(error = %e, "cannot look for lost exports and access bundles");
                }
            }
        });
        Takeovers { stop, task }
    }

    /// Stops looking (runs started here go on).
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Earlier versions kept access bundles sealed under
/// `<data_dir>/gdpr/bundles`, their wrapped keys in files beside them:
/// the folder goes (called by `insights serve` at start; nothing in it can
/// be downloaded any more).
pub fn remove_legacy_folder(data_dir: &std::path::Path) {
    let dir = data_dir.join("gdpr").join("bundles");
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => tracing::info!("removed the access-bundle folder of an earlier version"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(error = %e, "cannot remove the old access-bundle folder"),
    }
}
