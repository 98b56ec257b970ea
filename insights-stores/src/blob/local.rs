//! Local filesystem blob backend (the embedded default).
//!
//! Layout: `{root}/{container}/{key}`. Containers are directories created
//! with mode 0700, keys are relative paths below them; both are checked
//! with [`validate_container`] / [`validate_key`] before they touch a path,
//! so a name can never climb out of `root`.
//!
//! Writes are crash-safe: a put streams into a temp file
//! `{container}/~put-{uuid}.tmp`, fsyncs it, renames it over the final
//! name and fsyncs the directories it changed (the streaming write is
//! done here, asynchronously; directory creation and syncing are
//! [`insights_core::fsio`]'s). Readers therefore see the
//! old object or the complete new one, never a mix; a reader that already
//! opened the old object keeps reading the old bytes (the rename swaps
//! inodes). `~` cannot occur in a valid key, so temp files never show up
//! in `list` and can never collide with an object.
//!
//! Staged blocks ([`BlobStore::put_block`]) live in
//! `{container}/~blocks/{key}/{index:010}.blk`, each written crash-safely
//! ([`fsio::write_atomic`]); a commit streams them, in the order named,
//! through the same crash-safe `put` into `{key}` and then removes the
//! staging directory (a crash in between leaves the committed object and
//! blocks that the next commit of the key replaces). `~blocks` is not a
//! valid key segment, so staged blocks never show up in `list`.

use std::io::{self, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use insights_core::blob::{
    BlobError, BlobMeta, BlobResult, BlobStore, PutOutcome, StagedBlock, validate_container,
    validate_key,
};
use insights_core::fsio;
use sha2::{Digest, Sha256};
use tokio::fs;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use super::{io_err, normalize_prefix, sha256_hex};

/// Copy buffer of `put` and chunk size of `get_stream`.
const CHUNK: usize = 256 * 1024;
/// Name prefix of in-flight uploads; `~` is not allowed in keys.
const TEMP_PREFIX: &str = "~put-";
/// Directory of staged blocks in a container; `~` is not allowed in keys.
const BLOCKS_DIR: &str = "~blocks";

/// Blob store in a local directory tree.
#[derive(Clone, Debug)]
pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    /// A store rooted at `root`. Nothing is touched until the first call;
    /// `root` is created (mode 0700) by `ensure_container` or `health`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of an existing container.
    async fn existing_container(&self, container: &str) -> BlobResult<PathBuf> {
        validate_container(container)?;
        let dir = self.root.join(container);
        match fs::metadata(&dir).await {
            Ok(m) if m.is_dir() => Ok(dir),
            Ok(_) => Err(BlobError::ContainerNotFound),
            Err(e) if is_missing(&e) => Err(BlobError::ContainerNotFound),
            Err(e) => Err(io_err(e)),
        }
    }

    /// The staging directory of `key`'s blocks in an existing container.
    async fn blocks_dir(&self, container: &str, key: &str) -> BlobResult<PathBuf> {
        validate_key(key)?;
        Ok(self
            .existing_container(container)
            .await?
            .join(BLOCKS_DIR)
            .join(key))
    }

    /// Opens an existing object for reading; returns it with its size.
    async fn open_object(&self, container: &str, key: &str) -> BlobResult<(fs::File, u64)> {
        validate_key(key)?;
        let path = self.existing_container(container).await?.join(key);
        let file = match fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if is_missing(&e) => return Err(BlobError::NotFound),
            Err(e) => return Err(io_err(e)),
        };
        let meta = file.metadata().await.map_err(io_err)?;
        // A directory here is a key prefix (`a` of `a/b`), not an object.
        if !meta.is_file() {
            return Err(BlobError::NotFound);
        }
        Ok((file, meta.len()))
    }
}

/// "Not there" in all its forms: a missing entry, or a path component that
/// is a file (`a/b` when `a` is an object).
fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Runs a blocking [`fsio`] step on tokio's blocking pool, as `tokio::fs`
/// does with its own calls.
async fn blocking(step: impl FnOnce() -> io::Result<()> + Send + 'static) -> io::Result<()> {
    tokio::task::spawn_blocking(step)
        .await
        .map_err(io::Error::other)?
}

/// Creates `dir` and its missing parents with mode 0700
/// ([`fsio::create_dir_private`]).
async fn create_dirs(dir: &Path) -> io::Result<()> {
    let dir = dir.to_path_buf();
    blocking(move || fsio::create_dir_private(&dir)).await
}

/// fsyncs a directory ([`fsio::sync_dir`]), making the entries created,
/// renamed or removed in it durable. Without this a crash right after
/// `put` returned could lose the rename even though the file's data was
/// synced.
async fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = dir.to_path_buf();
    blocking(move || fsio::sync_dir(&dir)).await
}

/// A temp file that is removed when dropped unless [`TempFile::persisted`]
/// was called: a failed or cancelled put leaves nothing behind (except
/// after a crash; such leftovers are invisible to `list`).
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    async fn create(dir: &Path) -> io::Result<(Self, fs::File)> {
        let path = dir.join(format!(
            "{TEMP_PREFIX}{}.tmp",
            uuid::Uuid::new_v4().simple()
        ));
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        opts.mode(0o600);
        let file = opts.open(&path).await?;
        Ok((Self { path, armed: true }, file))
    }

    fn persisted(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            // Drop cannot await; one unlink is short enough to block for.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    fn backend(&self) -> &'static str {
        "local"
    }

    /// Creates the root if needed and writes, syncs and removes a probe
    /// file in it.
    async fn health(&self) -> BlobResult<()> {
        create_dirs(&self.root).await.map_err(io_err)?;
        let probe = self
            .root
            .join(format!("~health-{}.tmp", uuid::Uuid::new_v4().simple()));
        let result = async {
            let mut f = fs::File::create(&probe).await?;
            f.write_all(b"ok").await?;
            f.sync_all().await
        }
        .await;
        let removed = fs::remove_file(&probe).await;
        result.map_err(io_err)?;
        removed.map_err(io_err)
    }

    async fn ensure_container(&self, container: &str) -> BlobResult<()> {
        validate_container(container)?;
        let dir = self.root.join(container);
        create_dirs(&dir).await.map_err(io_err)?;
        // Make the new container's entry in the root durable.
        sync_dir(&self.root).await.map_err(io_err)
    }

    async fn put(
        &self,
        container: &str,
        key: &str,
        data: &mut (dyn AsyncRead + Send + Unpin),
    ) -> BlobResult<PutOutcome> {
        validate_key(key)?;
        let dir = self.existing_container(container).await?;
        let target = dir.join(key);
        let parent = target.parent().unwrap_or(&dir).to_path_buf();
        if parent != dir {
            create_dirs(&parent).await.map_err(io_err)?;
        }

        // The temp file lives in the container directory: same filesystem
        // as the target, so the rename below is atomic.
        let (temp, mut file) = TempFile::create(&dir).await.map_err(io_err)?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = data.read(&mut buf).await.map_err(io_err)?;
            if n == 0 {
                break;
            }
            let chunk = &buf[..n];
            hasher.update(chunk);
            file.write_all(chunk).await.map_err(io_err)?;
            size += n as u64;
        }
        file.flush().await.map_err(io_err)?;
        // Data (and size) on disk before the name points at it; otherwise a
        // crash could leave the final name on an empty or partial file.
        file.sync_all().await.map_err(io_err)?;
        let stored = file.metadata().await.map_err(io_err)?.len();
        drop(file);
        // The bytes were hashed on their way to the file, so a re-read
        // would only meet them again in the page cache; the size check
        // catches a short write.
        if stored != size {
            return Err(BlobError::Integrity(format!(
                "wrote {size} bytes but the file holds {stored}"
            )));
        }

        // Atomic replace: readers see the old object or the new one.
        fs::rename(&temp.path, &target).await.map_err(io_err)?;
        temp.persisted();
        // Make the rename durable, and the entries of any directories
        // created for a nested key, up to the container directory.
        let mut d = parent.as_path();
        loop {
            sync_dir(d).await.map_err(io_err)?;
            if d == dir {
                break;
            }
            match d.parent() {
                Some(p) => d = p,
                None => break,
            }
        }

        Ok(PutOutcome {
            byte_size: size,
            sha256: sha256_hex(hasher),
        })
    }

    async fn head(&self, container: &str, key: &str) -> BlobResult<BlobMeta> {
        let (_, byte_size) = self.open_object(container, key).await?;
        Ok(BlobMeta { byte_size })
    }

    async fn get_range(&self, container: &str, key: &str, range: Range<u64>) -> BlobResult<Bytes> {
        let (mut file, size) = self.open_object(container, key).await?;
        if range.start > range.end || range.end > size {
            return Err(BlobError::RangeNotSatisfiable {
                start: range.start,
                end: range.end,
                size,
            });
        }
        let len = usize::try_from(range.end - range.start).map_err(io_err)?;
        if len == 0 {
            return Ok(Bytes::new());
        }
        file.seek(SeekFrom::Start(range.start))
            .await
            .map_err(io_err)?;
        let mut buf = vec![0u8; len];
        file.read_exact(&mut buf).await.map_err(io_err)?;
        Ok(Bytes::from(buf))
    }

    async fn get_stream(
        &self,
        container: &str,
        key: &str,
    ) -> BlobResult<BoxStream<'static, BlobResult<Bytes>>> {
        let (file, _) = self.open_object(container, key).await?;
        Ok(ReaderStream::with_capacity(file, CHUNK)
            .map(|chunk| chunk.map_err(io_err))
            .boxed())
    }

    async fn delete(&self, container: &str, key: &str) -> BlobResult<()> {
        validate_key(key)?;
        let path = self.existing_container(container).await?.join(key);
        match fs::remove_file(&path).await {
            Ok(()) => {
                // Make the removal durable: deletes can be legal erasures.
                if let Some(parent) = path.parent() {
                    sync_dir(parent).await.map_err(io_err)?;
                }
                Ok(())
            }
            // A directory at `key` is a prefix of other keys, not an object.
            Err(e) if is_missing(&e) || e.kind() == io::ErrorKind::IsADirectory => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }

    async fn list(&self, container: &str, prefix: &str) -> BlobResult<Vec<String>> {
        let prefix = normalize_prefix(prefix)?;
        let dir = self.existing_container(container).await?;
        let start = match prefix {
            Some(p) => dir.join(p),
            None => dir.clone(),
        };
        let mut keys = Vec::new();
        let mut pending = vec![start];
        while let Some(current) = pending.pop() {
            let mut entries = match fs::read_dir(&current).await {
                Ok(e) => e,
                // The prefix names no directory: nothing below it.
                Err(e) if is_missing(&e) => continue,
                Err(e) => return Err(io_err(e)),
            };
            while let Some(entry) = entries.next_entry().await.map_err(io_err)? {
                // Symlinks and other special files are never ours: skip them.
                let file_type = entry.file_type().await.map_err(io_err)?;
                let path = entry.path();
                if file_type.is_dir() {
                    pending.push(path);
                } else if file_type.is_file() {
                    let key = path
                        .strip_prefix(&dir)
                        .ok()
                        .and_then(Path::to_str)
                        .map(|k| k.replace(std::path::MAIN_SEPARATOR, "/"));
                    // Temp files (`~put-…`) and foreign names are not keys.
                    if let Some(key) = key.filter(|k| validate_key(k).is_ok()) {
                        keys.push(key);
                    }
                }
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }

    async fn put_block(
        &self,
        container: &str,
        key: &str,
        index: u32,
        data: Bytes,
    ) -> BlobResult<()> {
        let dir = self.blocks_dir(container, key).await?;
        blocking(move || {
            fsio::create_dir_private(&dir)?;
            fsio::write_atomic(&dir.join(block_name(index)), &data)
        })
        .await
        .map_err(io_err)
    }

    async fn staged_blocks(&self, container: &str, key: &str) -> BlobResult<Vec<StagedBlock>> {
        let dir = self.blocks_dir(container, key).await?;
        let mut entries = match fs::read_dir(&dir).await {
            Ok(e) => e,
            Err(e) if is_missing(&e) => return Ok(Vec::new()),
            Err(e) => return Err(io_err(e)),
        };
        let mut blocks = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(io_err)? {
            let name = entry.file_name();
            let Some(index) = name.to_str().and_then(parse_block_name) else {
                continue; // a temp file of an interrupted write
            };
            let meta = entry.metadata().await.map_err(io_err)?;
            if meta.is_file() {
                blocks.push(StagedBlock {
                    index,
                    byte_size: meta.len(),
                });
            }
        }
        blocks.sort_by_key(|b| b.index);
        Ok(blocks)
    }

    async fn commit_blocks(
        &self,
        container: &str,
        key: &str,
        indexes: &[u32],
    ) -> BlobResult<BlobMeta> {
        let dir = self.blocks_dir(container, key).await?;
        let mut paths = Vec::with_capacity(indexes.len());
        for &i in indexes {
            let path = dir.join(block_name(i));
            match fs::metadata(&path).await {
                Ok(m) if m.is_file() => paths.push(path),
                Ok(_) => return Err(BlobError::NotFound),
                Err(e) if is_missing(&e) => return Err(BlobError::NotFound),
                Err(e) => return Err(io_err(e)),
            }
        }
        let blocks = futures::stream::iter(paths)
            .then(|p| async move { fs::read(&p).await.map(Bytes::from) });
        let mut reader = tokio_util::io::StreamReader::new(Box::pin(blocks));
        let outcome = self.put(container, key, &mut reader).await?;
        match fs::remove_dir_all(&dir).await {
            Ok(()) => {
                // Empty parents too (one per recording otherwise), up to
                // the staging root.
                let root = self.existing_container(container).await?.join(BLOCKS_DIR);
                let mut parent = dir.parent().map(Path::to_path_buf);
                while let Some(p) = parent.filter(|p| p.starts_with(&root) && *p != root) {
                    if fs::remove_dir(&p).await.is_err() {
                        break;
                    }
                    parent = p.parent().map(Path::to_path_buf);
                }
                sync_dir(&root).await.map_err(io_err)?;
            }
            Err(e) if is_missing(&e) => {}
            Err(e) => return Err(io_err(e)),
        }
        Ok(BlobMeta {
            byte_size: outcome.byte_size,
        })
    }
}

/// File name of staged block `index`.
fn block_name(index: u32) -> String {
    format!("{index:010}.blk")
}

/// The index of a staged block's file name.
fn parse_block_name(name: &str) -> Option<u32> {
    let digits = name.strip_suffix(".blk")?;
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn cancelled_put_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::new(dir.path().to_path_buf());
        store.ensure_container("ctr").await.unwrap();

        // A reader that yields some bytes and then fails.
        struct Failing(bool);
        impl AsyncRead for Failing {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<io::Result<()>> {
                if self.0 {
                    return std::task::Poll::Ready(Err(io::Error::other("boom")));
                }
                self.0 = true;
                buf.put_slice(b"partial");
                std::task::Poll::Ready(Ok(()))
            }
        }
        let err = store
            .put("ctr", "a/b", &mut Failing(false))
            .await
            .unwrap_err();
        assert!(matches!(err, BlobError::Io(_)), "{err:?}");
        let mut names = Vec::new();
        let mut rd = fs::read_dir(dir.path().join("ctr")).await.unwrap();
        while let Some(e) = rd.next_entry().await.unwrap() {
            names.push(e.file_name());
        }
        // Only the directory created for the nested key remains.
        assert_eq!(names, vec![std::ffi::OsString::from("a")]);
        assert!(matches!(
            store.head("ctr", "a/b").await,
            Err(BlobError::NotFound)
        ));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn containers_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::new(dir.path().join("blobs"));
        store.ensure_container("ctr").await.unwrap();
        let mode = std::fs::metadata(dir.path().join("blobs/ctr"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[tokio::test]
    async fn temp_files_are_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::new(dir.path().to_path_buf());
        store.ensure_container("ctr").await.unwrap();
        std::fs::write(dir.path().join("ctr/~put-leftover.tmp"), b"x").unwrap();
        store.put("ctr", "k", &mut &b"v"[..]).await.unwrap();
        assert_eq!(store.list("ctr", "").await.unwrap(), vec!["k".to_owned()]);
    }
}
