//! Shared helpers of the uploader tests: a world (metadata store, blob
//! store, key file, spool, installation key), recordings to spool, and
//! fault-injecting wrappers of the two stores.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bot_gateway::custody::InstallationKey;
use bot_gateway::spool::{NewRecording, NewStream, Spool, SpoolConfig};
use bot_gateway::uploader::{Uploader, UploaderConfig};
use insights_core::blob::BlobStore;
use insights_core::crypto::KeyProvider;
use insights_core::domain::*;
use insights_core::store::MetadataStore;
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
        let keys: Arc<dyn KeyProvider> = Arc::new(insights_tests::world::key_file(dir.path()));
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

    /// The shared world (SQLite + local blobs in a temp dir) with a
    /// tenant, a spool and an installation key.
    pub async fn local() -> World {
        Self::on(insights_tests::world::World::sqlite().await).await
    }

    /// A shared world (any backends) with a tenant, a spool and an
    /// installation key.
    pub async fn on(w: insights_tests::world::World) -> World {
        let insights_tests::world::World {
            dir, store, blobs, ..
        } = w;
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

/// The shared world's local stores rooted at `dir` (opened again when
/// they exist: a restart).
pub async fn local_stores(dir: &std::path::Path) -> (Arc<dyn MetadataStore>, Arc<dyn BlobStore>) {
    use insights_tests::world::{local_blobs, sqlite_store};
    (
        Arc::new(sqlite_store(dir).await),
        Arc::new(local_blobs(dir)),
    )
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

// ------------------------------------------------------------ faulty stores

/// The fault-injecting stores, shared by every crate's tests.
#[allow(unused_imports)]
pub use insights_tests::fault::{FaultyStore, FlakyBlobs};

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
