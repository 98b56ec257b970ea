//! Access bundles kept for download: sealed on disk, expiring.
//!
//! A bundle built through the API is written straight into an envelope
//! (`insights_core::crypto::envelope`, the format of exports and media)
//! under a data key of its own, generated per bundle and kept only
//! wrapped by the tenant's key-encryption key, in the bundle's metadata
//! file beside it. The folder (`<data_dir>/gdpr/bundles`, 0700) holds per
//! bundle:
//!
//! * `<id>.bundle`: the sealed zip (envelope object id = bundle id);
//! * `<id>.json`: [`BundleMeta`] (owner, tenant, expiry, the recordings it
//!   holds, the wrapped data key), written crash-safely once the sealed
//!   file is complete, so a bundle without metadata is an unfinished one
//!   and is swept.
//!
//! No clear byte of a bundle touches the disk. A bundle is deleted when it
//! expires ([`BundleDir::sweep`]), when an erasure erases one of its
//! recordings ([`BundleDir::delete_containing`]) and when its build fails.
//! Deleting the metadata file deletes the only copy of the wrapped key.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use insights_core::crypto::{
    DataKey, EnvelopeReader, EnvelopeWriter, ExpectedIds, Header, KeyProvider, WrappedDataKey,
};
use insights_core::domain::{KeyId, RecordingId, TenantId};
use insights_core::fsio;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What is known of a finished bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleMeta {
    pub id: Uuid,
    pub tenant_id: TenantId,
    /// The actor who asked for it: the only one who may download it.
    pub owner: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The recordings it holds (an erasure of any deletes the bundle).
    pub recordings: Vec<RecordingId>,
    /// Whether decrypted media is inside.
    pub include_media: bool,
    /// The bundle's data key, wrapped by the tenant's key-encryption key.
    pub data_key: WrappedDataKey,
}

/// The folder of sealed bundles.
#[derive(Clone, Debug)]
pub struct BundleDir {
    dir: PathBuf,
}

/// A bundle being written: the sealed file and its key.
pub struct BundleWriter {
    pub id: Uuid,
    pub key: DataKey,
    pub wrapped: WrappedDataKey,
    pub writer: EnvelopeWriter<io::BufWriter<std::fs::File>>,
}

impl BundleDir {
    /// The folder (created, 0700).
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self { dir })
    }

    /// The folder at `dir`, as it is (nothing created).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder's path.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn sealed(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{id}.bundle"))
    }

    fn meta(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Starts bundle `id` of `tenant`: a fresh data key (wrapped by the
    /// tenant's key) and the sealed file, written as the zip is produced.
    pub async fn create(
        &self,
        keys: &dyn KeyProvider,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<BundleWriter, BundleError> {
        let key = DataKey::generate(KeyId::new());
        let wrapped = keys.wrap(tenant, &key).await.map_err(BundleError::Crypto)?;
        let file = fsio_create(&self.sealed(id))?;
        let writer = EnvelopeWriter::new(
            io::BufWriter::new(file),
            &key,
            &Header::new(tenant, id, key.id),
        )
        .map_err(BundleError::Crypto)?;
        Ok(BundleWriter {
            id,
            key,
            wrapped,
            writer,
        })
    }

    /// Completes a bundle: seals the last chunk, syncs the file and writes
    /// its metadata (crash-safely); from then on it can be downloaded.
    pub fn finish(
        &self,
        writer: EnvelopeWriter<io::BufWriter<std::fs::File>>,
        meta: &BundleMeta,
    ) -> Result<(), BundleError> {
        let buf = writer.finish()?;
        let file = buf
            .into_inner()
            .map_err(|e| BundleError::Io(e.into_error()))?;
        file.sync_all()?;
        let body = serde_json::to_vec(meta).map_err(|e| BundleError::Io(io::Error::other(e)))?;
        fsio::write_atomic(&self.meta(meta.id), &body)?;
        Ok(())
    }

    /// Deletes a bundle's files (both, whatever exists).
    pub fn delete(&self, id: Uuid) -> io::Result<()> {
        // The metadata first: without it the wrapped key is gone.
        for p in [self.meta(id), self.sealed(id)] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A finished bundle's metadata; `None` when there is none (never
    /// finished, expired, erased) or it has expired (then it is deleted).
    pub fn get(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<BundleMeta>, BundleError> {
        let bytes = match std::fs::read(self.meta(id)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let meta: BundleMeta =
            serde_json::from_slice(&bytes).map_err(|e| BundleError::Io(io::Error::other(e)))?;
        if meta.expires_at <= now {
            self.delete(id)?;
            return Ok(None);
        }
        Ok(Some(meta))
    }

    /// Opens a finished bundle for reading its clear zip as a stream.
    pub async fn open_reader(
        &self,
        keys: &dyn KeyProvider,
        meta: &BundleMeta,
    ) -> Result<EnvelopeReader<io::BufReader<std::fs::File>>, BundleError> {
        let key = keys
            .unwrap(&meta.data_key)
            .await
            .map_err(BundleError::Crypto)?;
        let file = std::fs::File::open(self.sealed(meta.id))?;
        let expected = ExpectedIds::new(meta.tenant_id, meta.id, meta.data_key.id);
        EnvelopeReader::new(io::BufReader::new(file), &key, &expected).map_err(BundleError::Crypto)
    }

    /// Every bundle id in the folder (finished or not).
    fn ids(&self) -> io::Result<BTreeSet<Uuid>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
            Err(e) => return Err(e),
        };
        let mut ids = BTreeSet::new();
        for entry in entries {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some((stem, _)) = name.split_once('.')
                && let Ok(id) = stem.parse::<Uuid>()
            {
                ids.insert(id);
            }
        }
        Ok(ids)
    }

    /// Deletes expired bundles and, when `unfinished_before` is given,
    /// sealed files without metadata older than it (builds that a stopped
    /// process left behind). Returns how many bundles were deleted.
    pub fn sweep(
        &self,
        now: DateTime<Utc>,
        unfinished_before: Option<std::time::SystemTime>,
    ) -> io::Result<usize> {
        let mut n = 0;
        for id in self.ids()? {
            match self.get(id, now) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    let sealed = self.sealed(id);
                    let stale = match (unfinished_before, std::fs::metadata(&sealed)) {
                        (_, Err(_)) => false,
                        (Some(t), Ok(m)) => m.modified().map(|m| m < t).unwrap_or(true),
                        (None, Ok(_)) => false,
                    };
                    if stale {
                        self.delete(id)?;
                        n += 1;
                    } else if !self.meta(id).exists() && !sealed.exists() {
                        // `get` deleted an expired one.
                        n += 1;
                    }
                }
                // Unreadable metadata: not ours to keep.
                Err(_) => {
                    self.delete(id)?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// Deletes every bundle that holds any of `erased`; returns how many.
    pub fn delete_containing(&self, erased: &BTreeSet<RecordingId>) -> io::Result<usize> {
        let mut n = 0;
        for id in self.ids()? {
            let bytes = match std::fs::read(self.meta(id)) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let holds = match serde_json::from_slice::<BundleMeta>(&bytes) {
                Ok(m) => m.recordings.iter().any(|r| erased.contains(r)),
                // Unreadable: cannot prove it holds none of them.
                Err(_) => true,
            };
            if holds {
                self.delete(id)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Deletes expired bundles every `interval` (run by `insights serve`);
/// [`Sweeper::stop`] ends it.
pub struct Sweeper {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Sweeper {
    /// Starts sweeping `dir` on the current Tokio runtime.
    pub fn start(dir: BundleDir, interval: std::time::Duration) -> Sweeper {
        let stop = tokio_util::sync::CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
                let d = dir.clone();
                match tokio::task::spawn_blocking(move || d.sweep(Utc::now(), None)).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => tracing::info!(bundles = n, "expired access bundles deleted"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot sweep access bundles"),
                    Err(e) => tracing::warn!(error = %e, "bundle sweep task failed"),
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

fn fsio_create(path: &Path) -> io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// Errors of the bundle folder.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle folder: {0}")]
    Io(#[from] io::Error),
    #[error("bundle key: {0}")]
    Crypto(insights_core::crypto::CryptoError),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use insights_core::crypto::LocalKeyFile;
    use std::io::{Read, Write};

    #[tokio::test]
    async fn sealed_on_disk_readable_until_expiry_deleted_by_erasure() {
        let dir = tempfile::tempdir().unwrap();
        let keys = LocalKeyFile::open(dir.path().join("kek.json")).unwrap();
        let tenant = TenantId::new();
        keys.ensure_kek(tenant).await.unwrap();
        let bundles = BundleDir::open(dir.path().join("bundles")).unwrap();
        let id = Uuid::new_v4();
        let mut w = bundles.create(&keys, tenant, id).await.unwrap();
        let clear = b"PK zip bytes of the subject: Kim Subject +15551234567".repeat(2000);
        w.writer.write_all(&clear).unwrap();
        let rec = RecordingId::new();
        let now = Utc::now();
        let meta = BundleMeta {
            id,
            tenant_id: tenant,
            owner: "dpo".into(),
            created_at: now,
            expires_at: now + chrono::Duration::days(7),
            recordings: vec![rec],
            include_media: false,
            data_key: w.wrapped.clone(),
        };
        bundles.finish(w.writer, &meta).unwrap();
        // Nothing readable on disk.
        for e in std::fs::read_dir(bundles.path()).unwrap() {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            assert!(!bytes.windows(11).any(|w| w == b"Kim Subject"));
        }
        let got = bundles.get(id, now).unwrap().unwrap();
        let mut r = bundles.open_reader(&keys, &got).await.unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, clear);
        // Unrelated erasure: kept; erasure of its recording: deleted.
        let other: BTreeSet<_> = [RecordingId::new()].into();
        assert_eq!(bundles.delete_containing(&other).unwrap(), 0);
        assert!(bundles.get(id, now).unwrap().is_some());
        // Expired: gone.
        assert_eq!(
            bundles
                .sweep(now + chrono::Duration::days(8), None)
                .unwrap(),
            1
        );
        assert!(bundles.get(id, now).unwrap().is_none());
        assert_eq!(std::fs::read_dir(bundles.path()).unwrap().count(), 0);
        let _ = rec;
    }
}
