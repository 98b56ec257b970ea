//! Shared helpers of the uploader tests: a world (metadata store, blob
//! store, key file, spool, installation key), recordings to spool, and
//! fault-injecting wrappers of the two stores.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bot_gateway::custody::InstallationKey;
use bot_gateway::spool::{NewRecording, NewStream, Spool, SpoolConfig};
use bot_gateway::uploader::{Uploader, UploaderConfig};
use bytes::Bytes;
use futures::stream::BoxStream;
use insights_core::blob::{BlobError, BlobMeta, BlobResult, BlobStore, PutOutcome};
use insights_core::crypto::{KeyProvider, LocalKeyFile, WrappedDataKey};
use insights_core::domain::*;
use insights_core::store::{MetadataStore, StoreError, StoreResult};
use tokio::io::AsyncRead;
use tokio_util::sync::CancellationToken;

/// Known plaintext: every test payload contains this marker, so a scan
/// of the disk can prove it is never stored in clear.
pub const MARKER: &[u8] = b"CLEAR-AUDIO-MARKER-5f1e";

/// `len` bytes of recognisable plaintext for stream `seed`.
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let mut i = 0u32;
    while v.len() < len {
        v.extend_from_slice(MARKER);
        v.extend_from_slice(&i.to_be_bytes());
        v.push(seed);
        i += 1;
    }
    v.truncate(len);
    v
}

pub struct World {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn MetadataStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub keys: Arc<dyn KeyProvider>,
    pub signer: Arc<InstallationKey>,
    pub tenant: TenantId,
    pub spool: Spool,
}

pub fn spool_config(dir: &std::path::Path) -> SpoolConfig {
    let mut c = SpoolConfig::in_dir(dir.join("spool"));
    c.fsync_interval = Duration::from_millis(50);
    c
}

pub fn fast_uploader() -> UploaderConfig {
    UploaderConfig {
        concurrency: 4,
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        scan_interval: Duration::from_millis(50),
        shutdown_grace: Duration::from_secs(5),
    }
}

impl World {
    /// A world on the given stores.
    pub async fn with(store: Arc<dyn MetadataStore>, blobs: Arc<dyn BlobStore>) -> World {
        let dir = tempfile::tempdir().unwrap();
        Self::with_in(dir, store, blobs, None).await
    }

    pub async fn with_in(
        dir: tempfile::TempDir,
        store: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        cfg: Option<SpoolConfig>,
    ) -> World {
        let keys: Arc<dyn KeyProvider> =
            Arc::new(LocalKeyFile::open(dir.path().join("keys/kek.json")).unwrap());
        let signer = Arc::new(
            InstallationKey::open_or_create(dir.path().join("keys/installation-signing-key.json"))
                .unwrap(),
        );
        let tenant = store
            .create_tenant(NewTenant {
                name: format!("t{}", uuid::Uuid::new_v4().simple()),
                directory_tenant_id: None,
            })
            .await
            .unwrap()
            .id;
        keys.ensure_kek(tenant).await.unwrap();
        blobs
            .ensure_container(&Tenant::container_name(tenant))
            .await
            .unwrap();
        let cfg = cfg.unwrap_or_else(|| spool_config(dir.path()));
        let spool = Spool::open(cfg, keys.clone()).await.unwrap();
        World {
            dir,
            store,
            blobs,
            keys,
            signer,
            tenant,
            spool,
        }
    }

    /// SQLite + local blobs in the world's temp dir.
    pub async fn local() -> World {
        let dir = tempfile::tempdir().unwrap();
        let (store, blobs) = local_stores(dir.path()).await;
        Self::with_in(dir, store, blobs, None).await
    }

    pub fn uploader(&self, store: Arc<dyn MetadataStore>, blobs: Arc<dyn BlobStore>) -> Uploader {
        Uploader::new(
            self.spool.clone(),
            store,
            blobs,
            self.signer.clone(),
            fast_uploader(),
        )
    }

    /// Inserts recording metadata with `streams` streams and spools it:
    /// writes `len` bytes per stream in pieces, finishes. Returns the id
    /// and each stream's plaintext.
    pub async fn record(&self, streams: usize, len: usize) -> (RecordingId, Vec<Vec<u8>>) {
        let id = self.insert_metadata(streams).await;
        let data = self.spool_recording(id, streams, len).await;
        (id, data)
    }

    pub async fn insert_metadata(&self, streams: usize) -> RecordingId {
        let mut r = Recording::new(
            self.tenant,
            RecordingKind::Meeting,
            Direction::Internal,
            now(),
        );
        for i in 0..streams {
            let p = Participant {
                id: ParticipantId::new(),
                role: ParticipantRole::Attendee,
                display_name: Some(format!("Person {i}")),
                phone_number: None,
                uri: None,
                email: None,
                directory_user_id: None,
                recorded_user: i == 0,
                joined_ms: Some(0),
                left_ms: None,
            };
            r.streams.push(MediaStream {
                id: StreamId::new(),
                participant_id: Some(p.id),
                track: i as i32,
                media_type: "audio".into(),
                codec: "opus".into(),
                sample_rate: 48000,
                start_ms: 0,
            });
            r.participants.push(p);
        }
        self.store.insert_recording(self.tenant, &r).await.unwrap();
        r.id
    }

    pub async fn spool_recording(
        &self,
        id: RecordingId,
        streams: usize,
        len: usize,
    ) -> Vec<Vec<u8>> {
        let rec = self.store.get_recording(self.tenant, id).await.ok();
        let new = NewRecording {
            tenant_id: self.tenant,
            recording_id: id,
            started_at: now(),
            participants: rec
                .as_ref()
                .map(|r| r.participants.iter().map(|p| p.id).collect())
                .unwrap_or_default(),
            streams: (0..streams)
                .map(|i| NewStream {
                    stream_id: rec
                        .as_ref()
                        .and_then(|r| r.streams.get(i).map(|s| s.id))
                        .unwrap_or_default(),
                    participant_id: rec
                        .as_ref()
                        .and_then(|r| r.participants.get(i).map(|p| p.id)),
                    content_type: "audio/ogg".into(),
                })
                .collect(),
        };
        let spooled = self.spool.begin(new).await.unwrap();
        let data: Vec<Vec<u8>> = (0..streams).map(|i| payload(len, i as u8)).collect();
        for (i, d) in data.iter().enumerate() {
            for piece in d.chunks(997) {
                spooled.write(i, piece).unwrap();
            }
        }
        spooled.finish().await.unwrap();
        data
    }

    /// Runs an uploader until the spool is empty (or panics after `secs`).
    pub async fn upload_all(&self, uploader: Uploader, secs: u64) {
        let stop = CancellationToken::new();
        let task = tokio::spawn(uploader.run(stop.clone()));
        self.wait_empty(secs).await;
        stop.cancel();
        task.await.unwrap();
    }

    pub async fn wait_empty(&self, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !self.spool.entries().is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "spool not emptied in {secs} s: {:?}",
                self.spool
                    .entries()
                    .iter()
                    .map(|e| (e.journal.recording_id, e.journal.state))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn container(&self) -> String {
        Tenant::container_name(self.tenant)
    }
}

pub async fn local_stores(dir: &std::path::Path) -> (Arc<dyn MetadataStore>, Arc<dyn BlobStore>) {
    let url = format!("sqlite://{}", dir.join("db/insights.db").display());
    let store = insights_stores::metadata::sqlite::SqliteStore::connect(&url, 5)
        .await
        .unwrap();
    let blobs = insights_stores::blob::local::LocalBlobStore::new(dir.join("blobs"));
    (Arc::new(store), Arc::new(blobs))
}

/// Whether any regular file below `dir` contains `needle`.
pub fn tree_contains(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut hits = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return hits;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            hits.extend(tree_contains(&p, needle));
        } else if let Ok(b) = std::fs::read(&p)
            && b.windows(needle.len()).any(|w| w == needle)
        {
            hits.push(p);
        }
    }
    hits
}

// ------------------------------------------------------------ faulty blobs

/// A blob store that fails on demand: the next `fail_puts` puts fail, and
/// while `down` is set every call fails (as an unreachable service).
pub struct FlakyBlobs {
    pub inner: Arc<dyn BlobStore>,
    pub fail_puts: AtomicUsize,
    pub down: AtomicBool,
    pub puts: AtomicUsize,
    pub put_keys: Mutex<Vec<String>>,
}

impl FlakyBlobs {
    pub fn new(inner: Arc<dyn BlobStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            fail_puts: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            puts: AtomicUsize::new(0),
            put_keys: Mutex::new(Vec::new()),
        })
    }

    fn check(&self) -> BlobResult<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(BlobError::Io("injected: blob store down".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl BlobStore for FlakyBlobs {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn health(&self) -> BlobResult<()> {
        self.check()?;
        self.inner.health().await
    }
    async fn ensure_container(&self, c: &str) -> BlobResult<()> {
        self.check()?;
        self.inner.ensure_container(c).await
    }
    async fn put(
        &self,
        c: &str,
        k: &str,
        data: &mut (dyn AsyncRead + Send + Unpin),
    ) -> BlobResult<PutOutcome> {
        self.check()?;
        if self
            .fail_puts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            // Read some of the body first, as a dropped connection would.
            let mut buf = [0u8; 100];
            let _ = tokio::io::AsyncReadExt::read(data, &mut buf).await;
            return Err(BlobError::Io("injected: put failed".into()));
        }
        let r = self.inner.put(c, k, data).await;
        if r.is_ok() {
            self.puts.fetch_add(1, Ordering::SeqCst);
            self.put_keys.lock().unwrap().push(k.to_owned());
        }
        r
    }
    async fn head(&self, c: &str, k: &str) -> BlobResult<BlobMeta> {
        self.check()?;
        self.inner.head(c, k).await
    }
    async fn get_range(&self, c: &str, k: &str, r: Range<u64>) -> BlobResult<Bytes> {
        self.check()?;
        self.inner.get_range(c, k, r).await
    }
    async fn get_stream(
        &self,
        c: &str,
        k: &str,
    ) -> BlobResult<BoxStream<'static, BlobResult<Bytes>>> {
        self.check()?;
        self.inner.get_stream(c, k).await
    }
    async fn delete(&self, c: &str, k: &str) -> BlobResult<()> {
        self.check()?;
        self.inner.delete(c, k).await
    }
    async fn list(&self, c: &str, p: &str) -> BlobResult<Vec<String>> {
        self.check()?;
        self.inner.list(c, p).await
    }
}

// ----------------------------------------------------------- faulty store

/// A metadata store whose named methods fail while listed in `failing`
/// (each failure consumes one of `budget` if set), or all while `down`.
pub struct FaultyStore {
    pub inner: Arc<dyn MetadataStore>,
    pub failing: Mutex<HashSet<&'static str>>,
    pub fail_budget: AtomicUsize,
    pub down: AtomicBool,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn MetadataStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            failing: Mutex::new(HashSet::new()),
            fail_budget: AtomicUsize::new(usize::MAX),
            down: AtomicBool::new(false),
        })
    }

    /// Makes `method` fail the next `times` calls.
    pub fn fail(&self, method: &'static str, times: usize) {
        self.failing.lock().unwrap().insert(method);
        self.fail_budget.store(times, Ordering::SeqCst);
    }

    fn check(&self, method: &'static str) -> StoreResult<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("injected: database down".into()));
        }
        if self.failing.lock().unwrap().contains(method)
            && self
                .fail_budget
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(StoreError::Backend(
                format!("injected: {method} failed").into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl MetadataStore for FaultyStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn health(&self) -> StoreResult<()> {
        self.check("health")?;
        self.inner.health().await
    }
    async fn create_tenant(&self, new: NewTenant) -> StoreResult<Tenant> {
        self.check("create_tenant")?;
        self.inner.create_tenant(new).await
    }
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.check("list_tenants")?;
        self.inner.list_tenants().await
    }
    async fn get_tenant(&self, id: TenantId) -> StoreResult<Tenant> {
        self.check("get_tenant")?;
        self.inner.get_tenant(id).await
    }
    async fn tenant_by_name(&self, name: &str) -> StoreResult<Tenant> {
        self.check("tenant_by_name")?;
        self.inner.tenant_by_name(name).await
    }
    async fn tenant_by_directory_id(&self, directory_tenant_id: uuid::Uuid) -> StoreResult<Tenant> {
        self.check("tenant_by_directory_id")?;
        self.inner.tenant_by_directory_id(directory_tenant_id).await
    }
    async fn update_tenant_settings(
        &self,
        id: TenantId,
        settings: &TenantSettings,
    ) -> StoreResult<()> {
        self.check("update_tenant_settings")?;
        self.inner.update_tenant_settings(id, settings).await
    }
    async fn upsert_directory_user(
        &self,
        tenant: TenantId,
        user: &DirectoryUser,
    ) -> StoreResult<()> {
        self.check("upsert_directory_user")?;
        self.inner.upsert_directory_user(tenant, user).await
    }
    async fn get_directory_user(&self, tenant: TenantId, id: UserId) -> StoreResult<DirectoryUser> {
        self.check("get_directory_user")?;
        self.inner.get_directory_user(tenant, id).await
    }
    async fn directory_user_by_object_id(
        &self,
        tenant: TenantId,
        object_id: &str,
    ) -> StoreResult<DirectoryUser> {
        self.check("directory_user_by_object_id")?;
        self.inner
            .directory_user_by_object_id(tenant, object_id)
            .await
    }
    async fn list_directory_users(&self, tenant: TenantId) -> StoreResult<Vec<DirectoryUser>> {
        self.check("list_directory_users")?;
        self.inner.list_directory_users(tenant).await
    }
    async fn delete_directory_user(&self, tenant: TenantId, id: UserId) -> StoreResult<()> {
        self.check("delete_directory_user")?;
        self.inner.delete_directory_user(tenant, id).await
    }
    async fn upsert_directory_users(
        &self,
        tenant: TenantId,
        users: &[DirectoryUser],
    ) -> StoreResult<()> {
        self.check("upsert_directory_users")?;
        self.inner.upsert_directory_users(tenant, users).await
    }
    async fn get_directory_sync_state(
        &self,
        tenant: TenantId,
    ) -> StoreResult<Option<DirectorySyncState>> {
        self.check("get_directory_sync_state")?;
        self.inner.get_directory_sync_state(tenant).await
    }
    async fn put_directory_sync_state(
        &self,
        tenant: TenantId,
        state: &DirectorySyncState,
    ) -> StoreResult<()> {
        self.check("put_directory_sync_state")?;
        self.inner.put_directory_sync_state(tenant, state).await
    }
    async fn create_oidc_session(
        &self,
        tenant: TenantId,
        session: &OidcSession,
    ) -> StoreResult<()> {
        self.check("create_oidc_session")?;
        self.inner.create_oidc_session(tenant, session).await
    }
    async fn get_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
    ) -> StoreResult<OidcSession> {
        self.check("get_oidc_session")?;
        self.inner.get_oidc_session(tenant, token_hash).await
    }
    async fn touch_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        self.check("touch_oidc_session")?;
        self.inner.touch_oidc_session(tenant, token_hash, at).await
    }
    async fn revoke_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        self.check("revoke_oidc_session")?;
        self.inner.revoke_oidc_session(tenant, token_hash, at).await
    }
    async fn insert_recording(&self, tenant: TenantId, recording: &Recording) -> StoreResult<()> {
        self.check("insert_recording")?;
        self.inner.insert_recording(tenant, recording).await
    }
    async fn get_recording(&self, tenant: TenantId, id: RecordingId) -> StoreResult<Recording> {
        self.check("get_recording")?;
        self.inner.get_recording(tenant, id).await
    }
    async fn recording_by_external_call_id(
        &self,
        tenant: TenantId,
        call_id: &str,
    ) -> StoreResult<Recording> {
        self.check("recording_by_external_call_id")?;
        self.inner
            .recording_by_external_call_id(tenant, call_id)
            .await
    }
    async fn add_participant(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        p: &Participant,
    ) -> StoreResult<()> {
        self.check("add_participant")?;
        self.inner.add_participant(tenant, recording, p).await
    }
    async fn add_stream(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        s: &MediaStream,
    ) -> StoreResult<()> {
        self.check("add_stream")?;
        self.inner.add_stream(tenant, recording, s).await
    }
    async fn update_recording_status(
        &self,
        tenant: TenantId,
        id: RecordingId,
        status: RecordingStatus,
        ended_at: Option<chrono::DateTime<chrono::Utc>>,
        result_code: Option<&str>,
    ) -> StoreResult<()> {
        self.check("update_recording_status")?;
        self.inner
            .update_recording_status(tenant, id, status, ended_at, result_code)
            .await
    }
    async fn set_recording_media(
        &self,
        tenant: TenantId,
        id: RecordingId,
        media: Option<&MediaObject>,
    ) -> StoreResult<()> {
        self.check("set_recording_media")?;
        self.inner.set_recording_media(tenant, id, media).await
    }
    async fn set_legal_hold_flag(
        &self,
        tenant: TenantId,
        id: RecordingId,
        held: bool,
    ) -> StoreResult<()> {
        self.check("set_legal_hold_flag")?;
        self.inner.set_legal_hold_flag(tenant, id, held).await
    }
    async fn update_participant_presence(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        participant: ParticipantId,
        recorded_user: bool,
        left_ms: Option<i64>,
    ) -> StoreResult<()> {
        self.check("update_participant_presence")?;
        self.inner
            .update_participant_presence(tenant, recording, participant, recorded_user, left_ms)
            .await
    }
    async fn delete_recording(&self, tenant: TenantId, id: RecordingId) -> StoreResult<()> {
        self.check("delete_recording")?;
        self.inner.delete_recording(tenant, id).await
    }
    async fn search_recordings(
        &self,
        tenant: TenantId,
        query: &RecordingQuery,
    ) -> StoreResult<SearchPage> {
        self.check("search_recordings")?;
        self.inner.search_recordings(tenant, query).await
    }
    async fn put_transcript_segments(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        segments: &[TranscriptSegment],
    ) -> StoreResult<()> {
        self.check("put_transcript_segments")?;
        self.inner
            .put_transcript_segments(tenant, recording, segments)
            .await
    }
    async fn list_transcript(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Vec<TranscriptSegment>> {
        self.check("list_transcript")?;
        self.inner.list_transcript(tenant, recording).await
    }
    async fn enqueue_job(&self, tenant: TenantId, job: &NewJob) -> StoreResult<Enqueued> {
        self.check("enqueue_job")?;
        self.inner.enqueue_job(tenant, job).await
    }
    async fn claim_job(&self, req: &ClaimRequest) -> StoreResult<Option<ClaimedJob>> {
        self.check("claim_job")?;
        self.inner.claim_job(req).await
    }
    async fn renew_job_lease(
        &self,
        lease: &JobLease,
        until: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        self.check("renew_job_lease")?;
        self.inner.renew_job_lease(lease, until).await
    }
    async fn complete_job(
        &self,
        lease: &JobLease,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        self.check("complete_job")?;
        self.inner.complete_job(lease, now).await
    }
    async fn fail_job(
        &self,
        lease: &JobLease,
        failure: &JobFailure,
    ) -> StoreResult<Option<JobState>> {
        self.check("fail_job")?;
        self.inner.fail_job(lease, failure).await
    }
    async fn release_job(
        &self,
        lease: &JobLease,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        self.check("release_job")?;
        self.inner.release_job(lease, now).await
    }
    async fn get_job(&self, tenant: TenantId, id: JobId) -> StoreResult<Job> {
        self.check("get_job")?;
        self.inner.get_job(tenant, id).await
    }
    async fn list_jobs(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<Vec<Job>> {
        self.check("list_jobs")?;
        self.inner.list_jobs(tenant, recording).await
    }
    async fn replace_transcript(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        segments: &[TranscriptSegment],
    ) -> StoreResult<()> {
        self.check("replace_transcript")?;
        self.inner
            .replace_transcript(tenant, recording, segments)
            .await
    }
    async fn put_insights(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        insights: &[Insight],
    ) -> StoreResult<()> {
        self.check("put_insights")?;
        self.inner.put_insights(tenant, recording, insights).await
    }
    async fn list_insights(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Vec<Insight>> {
        self.check("list_insights")?;
        self.inner.list_insights(tenant, recording).await
    }
    async fn append_audit(
        &self,
        tenant: TenantId,
        event: NewAuditEvent,
    ) -> StoreResult<AuditEvent> {
        self.check("append_audit")?;
        self.inner.append_audit(tenant, event).await
    }
    async fn list_audit(
        &self,
        tenant: TenantId,
        query: &AuditQuery,
    ) -> StoreResult<Vec<AuditEvent>> {
        self.check("list_audit")?;
        self.inner.list_audit(tenant, query).await
    }
    async fn audit_head(&self, tenant: TenantId) -> StoreResult<Option<(i64, String)>> {
        self.check("audit_head")?;
        self.inner.audit_head(tenant).await
    }
    async fn upsert_retention_policy(
        &self,
        tenant: TenantId,
        p: &RetentionPolicy,
    ) -> StoreResult<()> {
        self.check("upsert_retention_policy")?;
        self.inner.upsert_retention_policy(tenant, p).await
    }
    async fn list_retention_policies(&self, tenant: TenantId) -> StoreResult<Vec<RetentionPolicy>> {
        self.check("list_retention_policies")?;
        self.inner.list_retention_policies(tenant).await
    }
    async fn delete_retention_policy(
        &self,
        tenant: TenantId,
        id: RetentionPolicyId,
    ) -> StoreResult<()> {
        self.check("delete_retention_policy")?;
        self.inner.delete_retention_policy(tenant, id).await
    }
    async fn create_legal_hold(&self, tenant: TenantId, hold: &LegalHold) -> StoreResult<()> {
        self.check("create_legal_hold")?;
        self.inner.create_legal_hold(tenant, hold).await
    }
    async fn list_legal_holds(
        &self,
        tenant: TenantId,
        active_only: bool,
    ) -> StoreResult<Vec<LegalHold>> {
        self.check("list_legal_holds")?;
        self.inner.list_legal_holds(tenant, active_only).await
    }
    async fn lift_legal_hold(
        &self,
        tenant: TenantId,
        id: LegalHoldId,
        by: &str,
    ) -> StoreResult<()> {
        self.check("lift_legal_hold")?;
        self.inner.lift_legal_hold(tenant, id, by).await
    }
    async fn list_recordings_for_governance(
        &self,
        tenant: TenantId,
        query: &insights_core::store::GovernanceQuery,
    ) -> StoreResult<Vec<Recording>> {
        self.check("list_recordings_for_governance")?;
        self.inner
            .list_recordings_for_governance(tenant, query)
            .await
    }
    async fn apply_legal_holds(&self, tenant: TenantId, id: RecordingId) -> StoreResult<bool> {
        self.check("apply_legal_holds")?;
        self.inner.apply_legal_holds(tenant, id).await
    }
    async fn update_account(
        &self,
        tenant: TenantId,
        id: AccountId,
        change: &insights_core::store::AccountChange,
    ) -> StoreResult<LocalAccount> {
        self.check("update_account")?;
        self.inner.update_account(tenant, id, change).await
    }
    async fn upsert_security_profile(
        &self,
        tenant: TenantId,
        p: &SecurityProfile,
    ) -> StoreResult<()> {
        self.check("upsert_security_profile")?;
        self.inner.upsert_security_profile(tenant, p).await
    }
    async fn list_security_profiles(&self, tenant: TenantId) -> StoreResult<Vec<SecurityProfile>> {
        self.check("list_security_profiles")?;
        self.inner.list_security_profiles(tenant).await
    }
    async fn create_access_request(&self, tenant: TenantId, r: &AccessRequest) -> StoreResult<()> {
        self.check("create_access_request")?;
        self.inner.create_access_request(tenant, r).await
    }
    async fn get_access_request(
        &self,
        tenant: TenantId,
        id: AccessRequestId,
    ) -> StoreResult<AccessRequest> {
        self.check("get_access_request")?;
        self.inner.get_access_request(tenant, id).await
    }
    async fn list_access_requests(
        &self,
        tenant: TenantId,
        status: Option<AccessRequestStatus>,
        requested_by: Option<&str>,
    ) -> StoreResult<Vec<AccessRequest>> {
        self.check("list_access_requests")?;
        self.inner
            .list_access_requests(tenant, status, requested_by)
            .await
    }
    async fn decide_access_request(
        &self,
        tenant: TenantId,
        id: AccessRequestId,
        decision: &AccessDecision,
    ) -> StoreResult<AccessRequest> {
        self.check("decide_access_request")?;
        self.inner.decide_access_request(tenant, id, decision).await
    }
    async fn put_data_key(&self, tenant: TenantId, key: &WrappedDataKey) -> StoreResult<()> {
        self.check("put_data_key")?;
        self.inner.put_data_key(tenant, key).await
    }
    async fn get_data_key(&self, tenant: TenantId, id: KeyId) -> StoreResult<WrappedDataKey> {
        self.check("get_data_key")?;
        self.inner.get_data_key(tenant, id).await
    }
    async fn shred_data_key(&self, tenant: TenantId, id: KeyId) -> StoreResult<bool> {
        self.check("shred_data_key")?;
        self.inner.shred_data_key(tenant, id).await
    }
    async fn create_account(&self, realm: Realm, account: &LocalAccount) -> StoreResult<()> {
        self.check("create_account")?;
        self.inner.create_account(realm, account).await
    }
    async fn get_account(&self, realm: Realm, id: AccountId) -> StoreResult<LocalAccount> {
        self.check("get_account")?;
        self.inner.get_account(realm, id).await
    }
    async fn account_by_email(&self, realm: Realm, email: &str) -> StoreResult<LocalAccount> {
        self.check("account_by_email")?;
        self.inner.account_by_email(realm, email).await
    }
    async fn list_accounts(&self, realm: Realm) -> StoreResult<Vec<LocalAccount>> {
        self.check("list_accounts")?;
        self.inner.list_accounts(realm).await
    }
    async fn record_login_failure(
        &self,
        realm: Realm,
        id: AccountId,
        at: chrono::DateTime<chrono::Utc>,
        lock_after: u32,
        lock_for: chrono::Duration,
    ) -> StoreResult<LoginFailure> {
        self.check("record_login_failure")?;
        self.inner
            .record_login_failure(realm, id, at, lock_after, lock_for)
            .await
    }
    async fn record_login_success(
        &self,
        realm: Realm,
        id: AccountId,
        at: chrono::DateTime<chrono::Utc>,
        totp_step: Option<i64>,
    ) -> StoreResult<bool> {
        self.check("record_login_success")?;
        self.inner
            .record_login_success(realm, id, at, totp_step)
            .await
    }
    async fn create_session(&self, realm: Realm, session: &LoginSession) -> StoreResult<()> {
        self.check("create_session")?;
        self.inner.create_session(realm, session).await
    }
    async fn get_session(&self, realm: Realm, token_hash: &str) -> StoreResult<LoginSession> {
        self.check("get_session")?;
        self.inner.get_session(realm, token_hash).await
    }
    async fn touch_session(
        &self,
        realm: Realm,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        self.check("touch_session")?;
        self.inner.touch_session(realm, token_hash, at).await
    }
    async fn revoke_session(
        &self,
        realm: Realm,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        self.check("revoke_session")?;
        self.inner.revoke_session(realm, token_hash, at).await
    }
    async fn record_provider_call(&self, tenant: TenantId, call: &ProviderCall) -> StoreResult<()> {
        self.check("record_provider_call")?;
        self.inner.record_provider_call(tenant, call).await
    }
    async fn list_provider_calls(
        &self,
        tenant: TenantId,
        query: &ProviderCallQuery,
    ) -> StoreResult<Vec<ProviderCall>> {
        self.check("list_provider_calls")?;
        self.inner.list_provider_calls(tenant, query).await
    }
    async fn find_subject_participants(
        &self,
        tenant: TenantId,
        keys: &SubjectKeys,
        limit: u32,
    ) -> StoreResult<Vec<ParticipantHit>> {
        self.check("find_subject_participants")?;
        self.inner
            .find_subject_participants(tenant, keys, limit)
            .await
    }
    async fn erase_participant_identity(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        participant: ParticipantId,
        label: &str,
    ) -> StoreResult<()> {
        self.check("erase_participant_identity")?;
        self.inner
            .erase_participant_identity(tenant, recording, participant, label)
            .await
    }
    async fn delete_insights(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<u64> {
        self.check("delete_insights")?;
        self.inner.delete_insights(tenant, recording).await
    }
    async fn put_erasure_request(
        &self,
        tenant: TenantId,
        record: &ErasureRecord,
    ) -> StoreResult<()> {
        self.check("put_erasure_request")?;
        self.inner.put_erasure_request(tenant, record).await
    }
    async fn get_erasure_request(
        &self,
        tenant: TenantId,
        id: uuid::Uuid,
    ) -> StoreResult<ErasureRecord> {
        self.check("get_erasure_request")?;
        self.inner.get_erasure_request(tenant, id).await
    }
    async fn list_erasure_requests(&self, tenant: TenantId) -> StoreResult<Vec<ErasureRecord>> {
        self.check("list_erasure_requests")?;
        self.inner.list_erasure_requests(tenant).await
    }
    async fn get_recordings(
        &self,
        tenant: TenantId,
        ids: &[RecordingId],
    ) -> StoreResult<Vec<Recording>> {
        self.check("get_recordings")?;
        self.inner.get_recordings(tenant, ids).await
    }
}

// ------------------------------------------------------------ checks

use bot_gateway::custody::{manifest_key, recording_prefix, verify_recording};
use futures::StreamExt;
use insights_core::crypto::{ExpectedIds, decrypt_to_vec};
use std::collections::BTreeSet;

pub async fn blob_bytes(blobs: &dyn BlobStore, c: &str, k: &str) -> Vec<u8> {
    let mut s = blobs.get_stream(c, k).await.unwrap();
    let mut out = Vec::new();
    while let Some(b) = s.next().await {
        out.extend_from_slice(&b.unwrap());
    }
    out
}

/// Everything a stored recording must satisfy: metadata, blobs exactly
/// at the expected keys, decryptable to what was written, verified.
pub async fn assert_stored(w: &World, id: RecordingId, data: &[Vec<u8>]) {
    let rec = w.store.get_recording(w.tenant, id).await.unwrap();
    assert_eq!(rec.status, RecordingStatus::Stored);
    assert!(rec.ended_at.is_some());
    let media = rec.media.clone().expect("media set");
    assert_eq!(media.container, w.container());
    assert_eq!(media.content_type, "audio/ogg");
    assert_eq!(media.plaintext_size, data[0].len() as i64);
    let keys: BTreeSet<String> = w
        .blobs
        .list(&w.container(), &recording_prefix(id))
        .await
        .unwrap()
        .into_iter()
        .collect();
    let mut expect: BTreeSet<String> = (0..data.len())
        .map(|i| format!("recordings/{id}/stream-{i}.ogg.env"))
        .collect();
    expect.insert(manifest_key(id));
    assert_eq!(
        keys, expect,
        "exactly one blob per stream plus the manifest"
    );
    // Decrypt the primary blob as a player would.
    let wrapped = w
        .store
        .get_data_key(w.tenant, media.data_key_id)
        .await
        .unwrap();
    let key = w.keys.unwrap(&wrapped).await.unwrap();
    let ct = blob_bytes(w.blobs.as_ref(), &media.container, &media.key).await;
    assert_eq!(ct.len() as i64, media.byte_size);
    let plain = decrypt_to_vec(
        &key,
        &ct,
        &ExpectedIds::new(w.tenant, id.as_uuid(), media.data_key_id),
    )
    .unwrap();
    assert!(
        plain == data[0],
        "primary stream decrypts to what was recorded"
    );
    let report = verify_recording(
        w.store.as_ref(),
        w.blobs.as_ref(),
        w.keys.as_ref(),
        &[w.signer.verifying_key()],
        w.tenant,
        id,
    )
    .await
    .unwrap();
    assert!(report.is_ok(), "{report}");
}
