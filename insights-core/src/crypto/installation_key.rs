//! The installation key file: this installation's identity and the
//! Ed25519 secret that signs chain-of-custody manifests (`bot-gateway`)
//! and erasure certificates (`gdpr-tools`). One file, one format, read and
//! created here so that neither crate depends on the other.
//!
//! # Format
//!
//! Pretty-printed JSON, version 1, no other fields:
//!
//! ```text
//! {
//!   "version": 1,
//!   "installation_id": "<uuid>",
//!   "created_at": "<RFC 3339>",
//!   "secret_key": "<64 hex digits: the Ed25519 secret key>"
//! }
//! ```
//!
//! Default path `installation-signing-key.json` beside the KEK file, so in
//! the same 0700 key directory; the file is mode 0600. It is created on
//! first use with [`crate::fsio::create_new_atomic`] (temporary file,
//! fsync, then *link* to the final name so two processes starting at once
//! cannot both create one: the loser adopts the winner's key). A file of
//! its own rather than a field of the KEK file: the KEK file's format is
//! strict (`deny_unknown_fields`, version 1) and read by every process,
//! and the signing key must survive a tenant's crypto-shredding, which
//! rewrites the KEK file.
//!
//! This module knows the file, not the signature scheme: callers turn
//! [`InstallationKeyFile::secret_key`] into an Ed25519 signing key. The
//! secret stays in zeroizing buffers and is never echoed in errors.
//!
//! # Rotation while a node runs
//!
//! `insights keys rotate-signing` replaces the file ([`rotate`]) while
//! holding an exclusive advisory lock on `<file>.lock` ([`lock`]), and
//! registers the new key and retires the old one before releasing it.
//! A running process signs through [`FollowedKeyFile::with_current`]:
//! under the shared lock it `stat`s the file, reads it again if it was
//! replaced, and stamps and signs the evidence before releasing the
//! lock. So evidence is either dated before the rotation and signed by
//! the old key, or dated after it and signed by the new one: never
//! dated after a key's retirement, which verification refuses.

use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::fsio;

/// Version of the installation key file format.
const KEY_FILE_VERSION: u32 = 1;

/// A problem with the installation key file. The message never contains
/// key material.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct InstallationKeyError {
    /// The file (or its directory) concerned.
    pub path: PathBuf,
    /// What went wrong.
    pub problem: String,
}

fn file_err(path: &Path, problem: impl std::fmt::Display) -> InstallationKeyError {
    InstallationKeyError {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileIn {
    version: u32,
    installation_id: Uuid,
    created_at: DateTime<Utc>,
    #[serde(deserialize_with = "hex_secret")]
    secret_key: Zeroizing<[u8; 32]>,
}

#[derive(Serialize)]
struct KeyFileOut<'a> {
    version: u32,
    installation_id: Uuid,
    created_at: DateTime<Utc>,
    secret_key: &'a str,
}

fn hex_secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Zeroizing<[u8; 32]>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Zeroizing<[u8; 32]>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a 256-bit key as 64 hex digits")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let mut key = Zeroizing::new([0u8; 32]);
            // Never echo the secret in the error.
            hex::decode_to_slice(v, &mut key[..])
                .map_err(|_| E::custom("the secret key is not 64 hex digits"))?;
            Ok(key)
        }
    }
    d.deserialize_str(V)
}

/// The content of the installation key file.
pub struct InstallationKeyFile {
    installation_id: Uuid,
    created_at: DateTime<Utc>,
    secret_key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for InstallationKeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallationKeyFile")
            .field("installation_id", &self.installation_id)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl InstallationKeyFile {
    /// Opens the key file at `path`, creating it (and its directory, mode
    /// 0700) with a fresh secret and installation id when missing. A file
    /// readable by group or others is tightened to 0600 with a warning.
    /// Blocking.
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Self, InstallationKeyError> {
        let path = path.as_ref();
        match fs::metadata(path) {
            Ok(_) => Self::read(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create(path)?;
                Self::read(path)
            }
            Err(e) => Err(file_err(path, e)),
        }
    }

    /// Reads an existing key file (tightening loose permissions to 0600,
    /// with a warning). Blocking.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, InstallationKeyError> {
        let path = path.as_ref();
        let meta = fs::metadata(path).map_err(|e| file_err(path, e))?;
        if !meta.is_file() {
            return Err(file_err(path, "not a regular file"));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "installation signing key was accessible to group or others; setting mode 0600");
            fs::set_permissions(path, Permissions::from_mode(0o600))
                .map_err(|e| file_err(path, e))?;
        }
        let bytes = Zeroizing::new(fs::read(path).map_err(|e| file_err(path, e))?);
        let file: KeyFileIn = serde_json::from_slice(&bytes)
            .map_err(|e| file_err(path, format!("malformed: {e}")))?;
        if file.version != KEY_FILE_VERSION {
            return Err(file_err(
                path,
                format!("unsupported version {}", file.version),
            ));
        }
        Ok(Self {
            installation_id: file.installation_id,
            created_at: file.created_at,
            secret_key: file.secret_key,
        })
    }

    /// The installation id (named in every manifest and certificate).
    pub fn installation_id(&self) -> Uuid {
        self.installation_id
    }

    /// When the key was created.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    /// The Ed25519 secret key bytes, for the signer only.
    pub fn secret_key(&self) -> &[u8; 32] {
        &self.secret_key
    }
}

/// Replaces the secret of the existing key file at `path` with a fresh one
/// (signing-key rotation), keeping the installation id; `created_at`
/// becomes now. Written crash-safely: the file holds the old key or the
/// new one, never neither. The old secret is gone afterwards; its public
/// half must be registered before (evidence it signed keeps verifying
/// against the registry). Blocking.
pub fn rotate(path: impl AsRef<Path>) -> Result<InstallationKeyFile, InstallationKeyError> {
    let path = path.as_ref();
    let old = InstallationKeyFile::read(path)?;
    let secret = fresh_secret(path)?;
    let body = encode(old.installation_id, crate::domain::now(), &secret, path)?;
    // The old secret's bytes are overwritten once the new file is durable.
    if let Some(e) = fsio::write_atomic_scrubbing(path, &body).map_err(|e| file_err(path, e))? {
        tracing::warn!(path = %path.display(), error = %e, "the previous signing key's bytes could not be overwritten");
    }
    tracing::info!(path = %path.display(), "rotated the installation signing key");
    InstallationKeyFile::read(path)
}

/// Takes the advisory lock on `<path>.lock` (created 0600 in the key's
/// directory): exclusive for a rotation, shared for signing. Released when
/// the returned file is dropped. Blocking.
pub fn lock(path: impl AsRef<Path>, exclusive: bool) -> Result<fs::File, InstallationKeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = path.as_ref();
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| file_err(&lock_path, e))?;
    if exclusive {
        file.lock()
    } else {
        file.lock_shared()
    }
    .map_err(|e| file_err(&lock_path, e))?;
    Ok(file)
}

/// What identifies one version of the file on disk (replaced by rename:
/// another inode or modification time).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
    })
}

/// The installation key file of a running process, following rotations
/// made by another process (see the module docs).
pub struct FollowedKeyFile {
    path: PathBuf,
    current: std::sync::Mutex<(std::sync::Arc<InstallationKeyFile>, Option<Stamp>)>,
}

impl std::fmt::Debug for FollowedKeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowedKeyFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FollowedKeyFile {
    /// Opens (creating on first use) the key file at `path`. Blocking.
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Self, InstallationKeyError> {
        let path = path.as_ref().to_path_buf();
        let file = InstallationKeyFile::open_or_create(&path)?;
        let st = stamp(&path);
        Ok(Self {
            path,
            current: std::sync::Mutex::new((std::sync::Arc::new(file), st)),
        })
    }

    /// The key as last read (no file access).
    pub fn last(&self) -> std::sync::Arc<InstallationKeyFile> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
            .clone()
    }

    /// Runs `f` with the current key under the shared lock, after reading
    /// the file again if another process replaced it. `f` stamps and signs
    /// the evidence (see the module docs). Blocking (a `stat`, and a wait
    /// only while a rotation holds the lock).
    pub fn with_current<T>(
        &self,
        f: impl FnOnce(&InstallationKeyFile) -> T,
    ) -> Result<T, InstallationKeyError> {
        let _lock = lock(&self.path, false)?;
        let now = stamp(&self.path);
        let key = {
            let mut cur = self
                .current
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if now != cur.1 {
                let file = InstallationKeyFile::read(&self.path)?;
                tracing::info!(path = %self.path.display(), "the installation signing key was rotated: signing with the new key from now on");
                *cur = (std::sync::Arc::new(file), now);
            }
            cur.0.clone()
        };
        Ok(f(&key))
    }
}

fn fresh_secret(path: &Path) -> Result<Zeroizing<[u8; 32]>, InstallationKeyError> {
    let mut secret = Zeroizing::new([0u8; 32]);
    OsRng
        .try_fill_bytes(&mut secret[..])
        .map_err(|e| file_err(path, format!("no randomness: {e}")))?;
    Ok(secret)
}

fn encode(
    installation_id: Uuid,
    created_at: DateTime<Utc>,
    secret: &[u8; 32],
    path: &Path,
) -> Result<Zeroizing<Vec<u8>>, InstallationKeyError> {
    let hex_secret = Zeroizing::new(hex::encode(&secret[..]));
    Ok(Zeroizing::new(
        serde_json::to_vec_pretty(&KeyFileOut {
            version: KEY_FILE_VERSION,
            installation_id,
            created_at,
            secret_key: &hex_secret,
        })
        .map_err(|e| file_err(path, e))?,
    ))
}

/// Creates the key file at `path` with a fresh secret, unless another
/// process created it meanwhile (its key then wins).
fn create(path: &Path) -> Result<(), InstallationKeyError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    fsio::create_dir_private(dir).map_err(|e| file_err(dir, e))?;
    let secret = fresh_secret(path)?;
    let body = encode(Uuid::new_v4(), crate::domain::now(), &secret, path)?;
    // Link, not rename: fails if another process created it meanwhile.
    if fsio::create_new_atomic(path, &body).map_err(|e| file_err(path, e))? {
        tracing::info!(path = %path.display(), "created the installation signing key");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/installation-signing-key.json");
        let a = InstallationKeyFile::open_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        let b = InstallationKeyFile::open_or_create(&path).unwrap();
        assert_eq!(a.installation_id(), b.installation_id());
        assert_eq!(a.created_at(), b.created_at());
        assert_eq!(a.secret_key(), b.secret_key());
        assert!(!format!("{a:?}").contains(&hex::encode(a.secret_key())));
        // No temporary files left.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    /// A file as written before this module existed still loads.
    #[test]
    fn existing_files_load_and_loose_ones_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let id = Uuid::new_v4();
        fs::write(
            &path,
            format!(
                "{{\n  \"version\": 1,\n  \"installation_id\": \"{id}\",\n  \"created_at\": \"2024-01-01T00:00:00Z\",\n  \"secret_key\": \"{}\"\n}}",
                "07".repeat(32)
            ),
        )
        .unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        let k = InstallationKeyFile::open_or_create(&path).unwrap();
        assert_eq!(k.installation_id(), id);
        assert_eq!(k.secret_key(), &[7u8; 32]);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn malformed_or_unknown_files_are_refused_without_echoing_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let secret = "zz".repeat(32);
        let doc = |version: u32, secret: &str| {
            format!(
                "{{\"version\":{version},\"installation_id\":\"{}\",\"created_at\":\"2024-01-01T00:00:00Z\",\"secret_key\":\"{secret}\"}}",
                Uuid::nil()
            )
        };
        fs::write(&path, doc(1, &secret)).unwrap();
        let e = InstallationKeyFile::read(&path).unwrap_err().to_string();
        assert!(!e.contains(&secret), "{e}");
        fs::write(&path, doc(2, &"07".repeat(32))).unwrap();
        let e = InstallationKeyFile::read(&path).unwrap_err().to_string();
        assert!(e.contains("unsupported version 2"), "{e}");
        assert!(InstallationKeyFile::read(dir.path()).is_err());
    }

    #[test]
    fn a_followed_file_follows_a_rotation_made_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/k.json");
        let followed = FollowedKeyFile::open_or_create(&path).unwrap();
        let before = followed.with_current(|k| *k.secret_key()).unwrap();
        assert_eq!(followed.last().secret_key(), &before);
        {
            let _rotating = lock(&path, true).unwrap();
            rotate(&path).unwrap();
        }
        let after = followed.with_current(|k| *k.secret_key()).unwrap();
        assert_ne!(before, after);
        assert_eq!(followed.last().secret_key(), &after);
        let mode = fs::metadata(dir.path().join("keys/k.json.lock"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn rotation_keeps_the_identity_and_replaces_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/k.json");
        let a = InstallationKeyFile::open_or_create(&path).unwrap();
        let b = rotate(&path).unwrap();
        assert_eq!(a.installation_id(), b.installation_id());
        assert_ne!(a.secret_key(), b.secret_key());
        assert_eq!(
            InstallationKeyFile::read(&path).unwrap().secret_key(),
            b.secret_key()
        );
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(rotate(dir.path().join("missing.json")).is_err());
    }
}
