//! Data keys and key-encryption keys.
//!
//! Each recording gets its own random 256-bit data key. Only its wrapped
//! form (encrypted under the tenant's key-encryption key) is ever stored.
//!
//! The default [`KeyProvider`] is [`LocalKeyFile`]: per-tenant
//! key-encryption keys in a local JSON file.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::CryptoError;
use crate::domain::{KeyId, TenantId};
use crate::fsio;

/// Fills `buf` from the operating system's random number generator.
///
/// # Panics
/// If the OS generator fails (it does not on supported platforms once
/// booted; continuing without randomness would be worse).
pub(crate) fn fill_random(buf: &mut [u8]) {
    OsRng
        .try_fill_bytes(buf)
        .unwrap_or_else(|e| panic!("the operating system's random number generator failed: {e}"));
}

/// A plaintext data key; zeroized when dropped. Not `Debug`, not `Clone`
/// by accident: copies of key material are explicit.
pub struct DataKey {
    pub id: KeyId,
    key: Zeroizing<[u8; 32]>,
}

impl DataKey {
    /// Wraps raw key bytes (taking ownership of the zeroizing buffer).
    pub fn from_bytes(id: KeyId, key: Zeroizing<[u8; 32]>) -> Self {
        Self { id, key }
    }

    /// A fresh random data key from the operating system's generator.
    ///
    /// # Panics
    /// If the OS random number generator fails.
    pub fn generate(id: KeyId) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        fill_random(&mut key[..]);
        Self { id, key }
    }

    /// The key bytes, for the cipher only.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.key
    }
}

/// A data key encrypted under a tenant's key-encryption key; what the
/// metadata store keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedDataKey {
    pub id: KeyId,
    pub tenant_id: TenantId,
    /// Which key-encryption key wrapped it (for rotation).
    pub kek_id: String,
    /// Provider-specific ciphertext of the data key.
    pub wrapped: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

/// One version of a tenant's key-encryption key as the `database` provider
/// stores it: wrapped by the root key ([`crate::crypto::RootKey`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKek {
    pub tenant_id: TenantId,
    /// 1, 2, …: the highest is the current one.
    pub version: u32,
    /// The id data keys name in [`WrappedDataKey::kek_id`].
    pub kek_id: String,
    /// Key-check value of the root key that wrapped it.
    pub root_check: Vec<u8>,
    /// `nonce (12) || encrypted KEK (32) || tag (16)`.
    pub wrapped: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

/// The metric counting key-provider failures, by `kind`.
pub const KEY_PROVIDER_ERRORS_METRIC: &str = "insights_key_provider_errors_total";
/// The stable event code of the error log line of a key-provider failure.
pub const KEY_PROVIDER_ALARM_EVENT: &str = "key-provider-error";

/// Raises the alarm for a key-provider failure that stops work on a
/// tenant's data: an error log line with the stable event code
/// [`KEY_PROVIDER_ALARM_EVENT`] (the tenant id and the error, which never
/// holds key material or personal data) and the counter
/// [`KEY_PROVIDER_ERRORS_METRIC`]`{kind}`.
pub fn key_alarm(provider: &'static str, tenant: TenantId, err: &CryptoError) {
    let kind = match err {
        CryptoError::NoKek(_) => "missing-kek",
        CryptoError::BadWrappedKek { .. } => "bad-wrapped-kek",
        CryptoError::WrongRootKey { .. } | CryptoError::RootKey(_) => "root-key",
        CryptoError::Unwrap => "unwrap",
        CryptoError::Unavailable(_) | CryptoError::Io(_) => "unavailable",
        _ => "other",
    };
    metrics::counter!(KEY_PROVIDER_ERRORS_METRIC, "kind" => kind).increment(1);
    tracing::error!(
        event = KEY_PROVIDER_ALARM_EVENT,
        kind,
        provider,
        tenant = %tenant,
        error = %err,
        "key provider failure: the tenant's media cannot be encrypted or decrypted"
    );
}

/// Holds per-tenant key-encryption keys and wraps/unwraps data keys.
///
/// Only [`KeyProvider::ensure_kek`] creates a KEK, and only provisioning
/// calls it (`insights admin tenant add`, `insights keys ensure`):
/// recording, playback and the workers fail with [`CryptoError::NoKek`]
/// naming the tenant, so a node never invents a KEK for a tenant whose
/// data another node wrote.
#[async_trait]
pub trait KeyProvider: Send + Sync + 'static {
    /// Short provider name (`local`) for health output.
    fn backend(&self) -> &'static str;
    /// Checks that the provider is usable.
    async fn health(&self) -> Result<(), CryptoError>;
    /// Creates the tenant's key-encryption key if it has none; returns
    /// its id. Idempotent. Provisioning only (see the trait's docs).
    async fn ensure_kek(&self, tenant: TenantId) -> Result<String, CryptoError>;
    /// The id of the tenant's current key-encryption key; never creates
    /// one ([`CryptoError::NoKek`] if there is none).
    async fn current_kek(&self, tenant: TenantId) -> Result<String, CryptoError>;
    /// Wraps a data key under the tenant's current key-encryption key.
    async fn wrap(&self, tenant: TenantId, key: &DataKey) -> Result<WrappedDataKey, CryptoError>;
    /// Unwraps a data key; fails if it was wrapped for another tenant or
    /// was tampered with.
    async fn unwrap(&self, wrapped: &WrappedDataKey) -> Result<DataKey, CryptoError>;
    /// Key rotation, step 1: creates a new version of the tenant's KEK and
    /// makes it current (older versions still unwrap), or, if a rotation
    /// was interrupted, returns the version it had created. Returns the
    /// current KEK id.
    async fn begin_rotation(&self, _tenant: TenantId) -> Result<String, CryptoError> {
        Err(CryptoError::Unsupported {
            provider: self.backend(),
            what: "key-encryption key rotation",
        })
    }
    /// Key rotation, last step (after every data key was rewrapped under
    /// the current version): destroys the older versions. Returns how
    /// many were destroyed.
    async fn finish_rotation(&self, _tenant: TenantId) -> Result<u64, CryptoError> {
        Err(CryptoError::Unsupported {
            provider: self.backend(),
            what: "key-encryption key rotation",
        })
    }
}

/// Wraps `key` for `tenant` under `kek` (AES-256-GCM, random nonce, the
/// tenant, data key id and KEK id in the associated data): the one data
/// key format of every provider that holds KEK bytes itself.
pub(crate) fn wrap_data_key(
    kek: &[u8; 32],
    kek_id: &str,
    tenant: TenantId,
    key: &DataKey,
) -> Result<WrappedDataKey, CryptoError> {
    let mut nonce = [0u8; WRAP_NONCE_LEN];
    fill_random(&mut nonce);
    let mut wrapped = vec![0u8; LOCAL_WRAPPED_LEN];
    let (nonce_out, rest) = wrapped.split_at_mut(WRAP_NONCE_LEN);
    let (ct, tag_out) = rest.split_at_mut(32);
    nonce_out.copy_from_slice(&nonce);
    let buf = InOutBuf::new(&key.bytes()[..], ct)
        .map_err(|_| CryptoError::InvalidInput("data key length".into()))?;
    let tag = Aes256Gcm::new(kek.into())
        .encrypt_inout_detached(&nonce.into(), &wrap_aad(tenant, key.id, kek_id), buf)
        .map_err(|_| CryptoError::Unwrap)?;
    tag_out.copy_from_slice(&tag);
    Ok(WrappedDataKey {
        id: key.id,
        tenant_id: tenant,
        kek_id: kek_id.to_owned(),
        wrapped,
        created_at: Utc::now(),
    })
}

/// Unwraps a data key wrapped by [`wrap_data_key`] under `kek` (whose id
/// the caller matched with `wrapped.kek_id`).
pub(crate) fn unwrap_data_key(
    kek: &[u8; 32],
    wrapped: &WrappedDataKey,
) -> Result<DataKey, CryptoError> {
    if wrapped.wrapped.len() != LOCAL_WRAPPED_LEN {
        return Err(CryptoError::Unwrap);
    }
    let (nonce, rest) = wrapped.wrapped.split_at(WRAP_NONCE_LEN);
    let (ct, tag) = rest.split_at(32);
    let mut n = [0u8; WRAP_NONCE_LEN];
    n.copy_from_slice(nonce);
    let mut t = aes_gcm::aead::Tag::<Aes256Gcm>::default();
    t.copy_from_slice(tag);
    let mut key = Zeroizing::new([0u8; 32]);
    let buf = InOutBuf::new(ct, &mut key[..]).map_err(|_| CryptoError::Unwrap)?;
    Aes256Gcm::new(kek.into())
        .decrypt_inout_detached(
            &n.into(),
            &wrap_aad(wrapped.tenant_id, wrapped.id, &wrapped.kek_id),
            buf,
            &t,
        )
        .map_err(|_| CryptoError::Unwrap)?;
    Ok(DataKey::from_bytes(wrapped.id, key))
}

// ---------------------------------------------------------------------------
// LocalKeyFile
// ---------------------------------------------------------------------------

/// Version of the key file format.
const KEY_FILE_VERSION: u32 = 1;
/// Domain separation of the associated data of wrapped data keys.
const WRAP_AAD_LABEL: &[u8] = b"insights/wrapped-data-key/v1";
const WRAP_NONCE_LEN: usize = 12;
const WRAP_TAG_LEN: usize = 16;
/// Length of [`WrappedDataKey::wrapped`] for [`LocalKeyFile`]:
/// nonce (12) || encrypted key (32) || tag (16).
pub const LOCAL_WRAPPED_LEN: usize = WRAP_NONCE_LEN + 32 + WRAP_TAG_LEN;

/// One tenant's key-encryption key, as held in memory and in the file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kek {
    id: String,
    created_at: DateTime<Utc>,
    #[serde(with = "hex_key")]
    key: Zeroizing<[u8; 32]>,
    /// Older versions while a rotation is under way (`insights keys
    /// rotate`): they still unwrap, nothing is wrapped under them, and
    /// they are destroyed when the rotation finishes. Absent (and so the
    /// file unchanged from before rotation existed) otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    previous: Vec<Kek>,
}

impl Kek {
    fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        fill_random(&mut key[..]);
        Self {
            id: format!("local:{}", uuid::Uuid::new_v4()),
            created_at: Utc::now(),
            key,
            previous: Vec::new(),
        }
    }

    /// The version named `id`: the current one or an older one kept by a
    /// rotation under way.
    fn version(&self, id: &str) -> Option<&Kek> {
        if self.id == id {
            return Some(self);
        }
        self.previous.iter().find(|k| k.id == id)
    }
}

/// What identifies one version of the key file on disk (it is replaced
/// by rename, so any change gives another inode or modification time):
/// a process notices that another one (`insights keys rotate`) changed
/// the file with one `stat`, and reads it again.
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

/// The key file's content as this process last read or wrote it.
struct Loaded {
    keks: Keks,
    stamp: Option<Stamp>,
}

type Keks = BTreeMap<TenantId, Kek>;

/// The key file as stored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileIn {
    version: u32,
    keks: Keks,
}

#[derive(Serialize)]
struct KeyFileOut<'a> {
    version: u32,
    keks: &'a Keks,
}

/// Hex (de)serialization of key bytes without intermediate heap copies.
mod hex_key {
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use zeroize::Zeroizing;

    pub fn serialize<S: Serializer>(key: &Zeroizing<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        let mut text = Zeroizing::new([0u8; 64]);
        hex::encode_to_slice(&key[..], &mut text[..]).map_err(serde::ser::Error::custom)?;
        let text = std::str::from_utf8(&text[..]).map_err(serde::ser::Error::custom)?;
        s.serialize_str(text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Zeroizing<[u8; 32]>, D::Error> {
        d.deserialize_str(KeyVisitor)
    }

    struct KeyVisitor;

    impl Visitor<'_> for KeyVisitor {
        type Value = Zeroizing<[u8; 32]>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a 256-bit key as 64 hex digits")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let mut key = Zeroizing::new([0u8; 32]);
            // The error message must not echo the (secret) value.
            hex::decode_to_slice(v, &mut key[..])
                .map_err(|_| E::custom("a key is not 64 hex digits"))?;
            Ok(key)
        }
    }
}

/// An `io::Write` into a buffer that is zeroized on drop and whenever it
/// grows (so no stale copy of key material is left in freed memory).
struct ZeroizingBuf(Zeroizing<Vec<u8>>);

impl Write for ZeroizingBuf {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let needed = self.0.len() + data.len();
        if needed > self.0.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(needed.max(2 * self.0.capacity())));
            bigger.extend_from_slice(&self.0);
            self.0 = bigger; // the old buffer is zeroized as it drops
        }
        self.0.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> CryptoError {
    CryptoError::Io(format!("{what} {}: {e}", path.display()))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Opens (creating, mode 0600) the lock file next to the key file and
/// takes an advisory lock on it, released when the file is closed.
fn lock(lock_path: &Path, exclusive: bool) -> Result<File, CryptoError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock_path)
        .map_err(|e| io_err("cannot open key lock file", lock_path, e))?;
    let locked = if exclusive {
        file.lock()
    } else {
        file.lock_shared()
    };
    locked.map_err(|e| io_err("cannot lock key lock file", lock_path, e))?;
    Ok(file)
}

fn read_key_file(path: &Path) -> Result<Keks, CryptoError> {
    let bytes =
        Zeroizing::new(fs::read(path).map_err(|e| io_err("cannot read key file", path, e))?);
    let file: KeyFileIn =
        serde_json::from_slice(&bytes).map_err(|e| io_err("malformed key file", path, e))?;
    if file.version != KEY_FILE_VERSION {
        return Err(io_err(
            "unsupported key file",
            path,
            format!("version {}", file.version),
        ));
    }
    Ok(file.keks)
}

/// Replaces the key file crash-safely ([`crate::fsio::write_atomic_scrubbing`]:
/// temporary file (0600) in the same directory, fsync, rename over the key
/// file, fsync the directory). Then, best effort, the previous version's
/// bytes are overwritten with zeros, so that a shredded KEK does not linger
/// in its blocks (storage with copy-on-write or wear levelling may still
/// keep copies).
fn write_key_file(path: &Path, keks: &Keks) -> Result<(), CryptoError> {
    let mut data = ZeroizingBuf(Zeroizing::new(Vec::with_capacity(256 + 256 * keks.len())));
    serde_json::to_writer_pretty(
        &mut data,
        &KeyFileOut {
            version: KEY_FILE_VERSION,
            keks,
        },
    )
    .map_err(|e| io_err("cannot serialize key file", path, e))?;
    data.write_all(b"\n")
        .map_err(|e| io_err("cannot serialize key file", path, e))?;

    let scrub_failed = fsio::write_atomic_scrubbing(path, &data.0)
        .map_err(|e| io_err("cannot replace key file", path, e))?;
    if let Some(e) = scrub_failed {
        tracing::warn!(path = %path.display(), error = %e, "could not scrub the previous key file version");
    }
    Ok(())
}

/// Runs blocking key-file work off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CryptoError> + Send + 'static,
) -> Result<T, CryptoError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CryptoError::Io(format!("key file task failed: {e}")))?
}

pub(crate) fn wrap_aad(tenant: TenantId, key_id: KeyId, kek_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_AAD_LABEL.len() + 32 + kek_id.len());
    aad.extend_from_slice(WRAP_AAD_LABEL);
    aad.extend_from_slice(tenant.as_uuid().as_bytes());
    aad.extend_from_slice(key_id.as_uuid().as_bytes());
    // Last, so the variable length needs no delimiter.
    aad.extend_from_slice(kek_id.as_bytes());
    aad
}

/// The default [`KeyProvider`]: per-tenant key-encryption keys (KEKs) in a
/// local JSON key file.
///
/// * The file (mode 0600; its directory is created with mode 0700) maps
///   tenant ids to a random 256-bit KEK, its id and creation time. It is
///   created on [`LocalKeyFile::open`] and rewritten crash-safely (write a
///   temporary file, fsync, rename, fsync the directory) whenever a KEK is
///   added or shredded; the previous version is then overwritten with
///   zeros (best effort).
/// * KEKs live in memory in zeroizing buffers, behind a mutex.
/// * Processes sharing the file coordinate through an advisory lock on
///   `<file>.lock`: each change re-reads the file under an exclusive lock,
///   so concurrent writers never drop each other's KEKs; a KEK missing
///   from memory is looked up in the file again before giving up.
/// * A data key is wrapped with AES-256-GCM under the KEK, with a random
///   96-bit nonce and associated data binding the tenant id, the data key
///   id and the KEK id; [`WrappedDataKey::wrapped`] is
///   `nonce (12) || encrypted key (32) || tag (16)`.
/// * Rotation (`insights keys rotate`): [`KeyProvider::begin_rotation`]
///   puts a new KEK version in the file and keeps the old one (listed
///   under `previous`, it still unwraps); once every data key was
///   rewrapped, [`KeyProvider::finish_rotation`] removes it and scrubs
///   the previous file. Every operation `stat`s the file first, so a
///   running `insights serve` follows a rotation made by another process
///   at once (it never wraps under a version that was destroyed).
///
/// Whoever can read the key file can decrypt every tenant's media: keep it
/// off the media volume, and out of backups that outlive retention.
pub struct LocalKeyFile {
    path: PathBuf,
    lock_path: PathBuf,
    keks: tokio::sync::Mutex<Loaded>,
}

impl LocalKeyFile {
    /// Opens the key file at `path`, creating it (and missing parent
    /// directories, mode 0700) if it does not exist. An existing file
    /// readable by group or others is tightened to 0600 with a warning.
    ///
    /// Blocking: call it at start-up (or from `spawn_blocking`).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CryptoError> {
        let path = path.as_ref().to_path_buf();
        let dir = parent_dir(&path);
        if !dir.exists() {
            fsio::create_dir_private(&dir)
                .map_err(|e| io_err("cannot create key directory", &dir, e))?;
        }
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let _lock = lock(&lock_path, true)?;
        let keks = match fs::metadata(&path) {
            Ok(meta) => {
                if !meta.is_file() {
                    return Err(io_err("not a regular file:", &path, "key file"));
                }
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        path = %path.display(),
                        mode = format!("{mode:o}"),
                        "key file was accessible to group or others; setting mode 0600"
                    );
                    fs::set_permissions(&path, Permissions::from_mode(0o600))
                        .map_err(|e| io_err("cannot restrict key file", &path, e))?;
                }
                read_key_file(&path)?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let empty = Keks::new();
                write_key_file(&path, &empty)?;
                empty
            }
            Err(e) => return Err(io_err("cannot stat key file", &path, e)),
        };
        let stamp = stamp(&path);
        Ok(Self {
            path,
            lock_path,
            keks: tokio::sync::Mutex::new(Loaded { keks, stamp }),
        })
    }

    /// Path of the key file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies `change` to the key file under the exclusive lock
    /// (re-reading it first, writing it back if `change` says so) and
    /// adopts the result as the in-memory state.
    async fn modify<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut Keks) -> (bool, T) + Send + 'static,
    ) -> Result<T, CryptoError> {
        // Held across the file update: one writer per process at a time,
        // and memory always reflects the file.
        let mut keks = self.keks.lock().await;
        let (path, lock_path) = (self.path.clone(), self.lock_path.clone());
        let (fresh, out) = blocking(move || {
            let _lock = lock(&lock_path, true)?;
            let mut on_disk = read_key_file(&path)?;
            let (changed, out) = change(&mut on_disk);
            if changed {
                write_key_file(&path, &on_disk)?;
            }
            Ok((
                Loaded {
                    keks: on_disk,
                    stamp: stamp(&path),
                },
                out,
            ))
        })
        .await?;
        *keks = fresh;
        Ok(out)
    }

    /// Reads the key file again (under the shared lock).
    async fn reload(&self) -> Result<Loaded, CryptoError> {
        let (path, lock_path) = (self.path.clone(), self.lock_path.clone());
        blocking(move || {
            let _lock = lock(&lock_path, false)?;
            // The stamp first: a change after it is seen next time.
            let stamp = stamp(&path);
            Ok(Loaded {
                keks: read_key_file(&path)?,
                stamp,
            })
        })
        .await
    }

    /// Runs `f` with the tenant's KEK. The file is read again first if
    /// another process replaced it since (a rotation: one `stat` per
    /// call tells), or if the tenant or the version `want` is not in
    /// memory (another process may have created it).
    async fn with_kek<T>(
        &self,
        tenant: TenantId,
        want: Option<&str>,
        f: impl FnOnce(&Kek) -> Result<T, CryptoError>,
    ) -> Result<T, CryptoError> {
        let mut keks = self.keks.lock().await;
        let missing = match keks.keks.get(&tenant) {
            None => true,
            Some(k) => want.is_some_and(|id| k.version(id).is_none()),
        };
        if missing || stamp(&self.path) != keks.stamp {
            *keks = self.reload().await?;
        }
        match keks.keks.get(&tenant) {
            Some(kek) => f(kek),
            None => Err(CryptoError::NoKek(tenant)),
        }
    }

    /// Every tenant's KEK (id and bytes) as in the key file now, for
    /// `insights keys migrate --to database`. The bytes are in zeroizing
    /// buffers. Refused while a tenant's rotation is under way (older
    /// versions still in the file): finish it first.
    pub async fn export_keks(
        &self,
    ) -> Result<Vec<(TenantId, String, Zeroizing<[u8; 32]>)>, CryptoError> {
        let loaded = self.reload().await?;
        if loaded.keks.values().any(|k| !k.previous.is_empty()) {
            return Err(CryptoError::Unsupported {
                provider: "local",
                what: "moving key-encryption keys while a rotation is under way (run `insights \
                       keys rotate` for the tenant again until it finishes)",
            });
        }
        Ok(loaded
            .keks
            .iter()
            .map(|(t, k)| (*t, k.id.clone(), Zeroizing::new(*k.key)))
            .collect())
    }

    /// Tenant-level crypto-shredding: destroys the tenant's KEK, in memory
    /// and in the key file (crash-safe rewrite, previous version scrubbed).
    /// Every data key wrapped under it, and so all of the tenant's media,
    /// becomes permanently undecryptable: [`KeyProvider::unwrap`] then
    /// fails with [`CryptoError::NoKek`]. Irreversible. Returns whether a
    /// KEK was destroyed (false if the tenant had none).
    ///
    /// Copies of the key file in backups, or data keys already unwrapped
    /// in memory elsewhere, are beyond its reach. A later
    /// [`KeyProvider::ensure_kek`] creates a new, unrelated KEK.
    pub async fn shred_kek(&self, tenant: TenantId) -> Result<bool, CryptoError> {
        let removed = self
            .modify(move |keks| {
                let removed = keks.remove(&tenant).is_some();
                (removed, removed)
            })
            .await?;
        if removed {
            tracing::info!(tenant = %tenant, "tenant key-encryption key shredded");
        }
        Ok(removed)
    }
}

#[async_trait]
impl KeyProvider for LocalKeyFile {
    fn backend(&self) -> &'static str {
        "local"
    }

    async fn health(&self) -> Result<(), CryptoError> {
        let (path, lock_path) = (self.path.clone(), self.lock_path.clone());
        blocking(move || {
            let _lock = lock(&lock_path, false)?;
            read_key_file(&path).map(drop)
        })
        .await
    }

    async fn ensure_kek(&self, tenant: TenantId) -> Result<String, CryptoError> {
        if let Some(kek) = self.keks.lock().await.keks.get(&tenant) {
            return Ok(kek.id.clone());
        }
        self.modify(move |keks| {
            let mut created = false;
            let kek = keks.entry(tenant).or_insert_with(|| {
                created = true;
                Kek::generate()
            });
            (created, kek.id.clone())
        })
        .await
    }

    async fn current_kek(&self, tenant: TenantId) -> Result<String, CryptoError> {
        self.with_kek(tenant, None, |kek| Ok(kek.id.clone())).await
    }

    async fn wrap(&self, tenant: TenantId, key: &DataKey) -> Result<WrappedDataKey, CryptoError> {
        let out = self
            .with_kek(tenant, None, |kek| {
                wrap_data_key(&kek.key, &kek.id, tenant, key)
            })
            .await;
        if let Err(e) = &out {
            key_alarm(self.backend(), tenant, e);
        }
        out
    }

    async fn unwrap(&self, wrapped: &WrappedDataKey) -> Result<DataKey, CryptoError> {
        let out = self
            .with_kek(wrapped.tenant_id, Some(wrapped.kek_id.as_str()), |kek| {
                let v = kek.version(&wrapped.kek_id).ok_or(CryptoError::Unwrap)?;
                unwrap_data_key(&v.key, wrapped)
            })
            .await;
        if let Err(e) = &out {
            key_alarm(self.backend(), wrapped.tenant_id, e);
        }
        out
    }

    /// A new random KEK version becomes current; the old one is kept in
    /// the file (it still unwraps) until [`KeyProvider::finish_rotation`].
    /// If older versions are there already, an interrupted rotation is
    /// resumed: no new version.
    async fn begin_rotation(&self, tenant: TenantId) -> Result<String, CryptoError> {
        let out = self
            .modify(move |keks| {
                let Some(kek) = keks.get_mut(&tenant) else {
                    return (false, Err(CryptoError::NoKek(tenant)));
                };
                if !kek.previous.is_empty() {
                    return (false, Ok(kek.id.clone()));
                }
                let old = std::mem::replace(kek, Kek::generate());
                kek.previous.push(old);
                (true, Ok(kek.id.clone()))
            })
            .await??;
        tracing::info!(tenant = %tenant, kek_id = %out, "key-encryption key rotation begun");
        Ok(out)
    }

    /// Removes the older versions from the file (crash-safe rewrite, the
    /// previous file's blocks overwritten with zeros, best effort).
    async fn finish_rotation(&self, tenant: TenantId) -> Result<u64, CryptoError> {
        let destroyed = self
            .modify(move |keks| match keks.get_mut(&tenant) {
                Some(kek) if !kek.previous.is_empty() => {
                    let n = kek.previous.len() as u64;
                    kek.previous.clear();
                    (true, Ok(n))
                }
                Some(_) => (false, Ok(0)),
                None => (false, Err(CryptoError::NoKek(tenant))),
            })
            .await??;
        tracing::info!(tenant = %tenant, destroyed, "key-encryption key rotation finished");
        Ok(destroyed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn creates_key_file_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/sub/kek.json");
        let kf = LocalKeyFile::open(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&dir.path().join("keys")), 0o700);
        assert_eq!(kf.backend(), "local");
        kf.health().await.unwrap();
        // Still 0600 after rewrites.
        kf.ensure_kek(TenantId::new()).await.unwrap();
        assert_eq!(mode(&path), 0o600);
        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| n == "kek.json" || n == "kek.json.lock"),
            "{names:?}"
        );
    }

    #[tokio::test]
    async fn loose_permissions_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.json");
        drop(LocalKeyFile::open(&path).unwrap());
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        LocalKeyFile::open(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[tokio::test]
    async fn wrap_unwrap_roundtrip_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.json");
        let tenant = TenantId::new();
        let kf = LocalKeyFile::open(&path).unwrap();
        let kek_id = kf.ensure_kek(tenant).await.unwrap();
        assert_eq!(kf.ensure_kek(tenant).await.unwrap(), kek_id, "idempotent");
        let key = DataKey::generate(KeyId::new());
        let wrapped = kf.wrap(tenant, &key).await.unwrap();
        assert_eq!(wrapped.id, key.id);
        assert_eq!(wrapped.tenant_id, tenant);
        assert_eq!(wrapped.kek_id, kek_id);
        assert_eq!(wrapped.wrapped.len(), LOCAL_WRAPPED_LEN);
        assert!(
            !wrapped.wrapped.windows(32).any(|w| w == key.bytes()),
            "key material in the clear"
        );
        // Wrapping twice gives different ciphertexts (random nonce).
        assert_ne!(
            kf.wrap(tenant, &key).await.unwrap().wrapped,
            wrapped.wrapped
        );
        assert_eq!(kf.unwrap(&wrapped).await.unwrap().bytes(), key.bytes());
        drop(kf);

        let kf = LocalKeyFile::open(&path).unwrap();
        assert_eq!(kf.ensure_kek(tenant).await.unwrap(), kek_id);
        let unwrapped = kf.unwrap(&wrapped).await.unwrap();
        assert_eq!(unwrapped.id, key.id);
        assert_eq!(unwrapped.bytes(), key.bytes());
    }

    #[tokio::test]
    async fn unwrap_rejects_other_tenants_and_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let kf = LocalKeyFile::open(dir.path().join("kek.json")).unwrap();
        let (a, b) = (TenantId::new(), TenantId::new());
        kf.ensure_kek(a).await.unwrap();
        let b_kek = kf.ensure_kek(b).await.unwrap();
        let key = DataKey::generate(KeyId::new());
        let wrapped = kf.wrap(a, &key).await.unwrap();

        // Presented as tenant b's key (with or without b's KEK id).
        let mut other = wrapped.clone();
        other.tenant_id = b;
        assert!(matches!(kf.unwrap(&other).await, Err(CryptoError::Unwrap)));
        other.kek_id = b_kek;
        assert!(matches!(kf.unwrap(&other).await, Err(CryptoError::Unwrap)));
        // A tenant without a KEK.
        let mut other = wrapped.clone();
        other.tenant_id = TenantId::new();
        assert!(matches!(
            kf.unwrap(&other).await,
            Err(CryptoError::NoKek(_))
        ));
        // Another data key id (bound in the AAD).
        let mut other = wrapped.clone();
        other.id = KeyId::new();
        assert!(matches!(kf.unwrap(&other).await, Err(CryptoError::Unwrap)));
        // Another KEK id.
        let mut other = wrapped.clone();
        other.kek_id.push('x');
        assert!(matches!(kf.unwrap(&other).await, Err(CryptoError::Unwrap)));
        // Every flipped byte, and wrong lengths.
        for pos in 0..wrapped.wrapped.len() {
            let mut bad = wrapped.clone();
            bad.wrapped[pos] ^= 1;
            assert!(
                matches!(kf.unwrap(&bad).await, Err(CryptoError::Unwrap)),
                "{pos}"
            );
        }
        for len in [0, LOCAL_WRAPPED_LEN - 1] {
            let mut bad = wrapped.clone();
            bad.wrapped.truncate(len);
            assert!(matches!(kf.unwrap(&bad).await, Err(CryptoError::Unwrap)));
        }
        let mut bad = wrapped.clone();
        bad.wrapped.push(0);
        assert!(matches!(kf.unwrap(&bad).await, Err(CryptoError::Unwrap)));
        // The original still works.
        assert_eq!(kf.unwrap(&wrapped).await.unwrap().bytes(), key.bytes());
    }

    #[tokio::test]
    async fn rotation_keeps_old_versions_readable_until_finished_and_other_processes_follow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.json");
        let kf = LocalKeyFile::open(&path).unwrap();
        let serve = LocalKeyFile::open(&path).unwrap();
        let t = TenantId::new();
        let v1 = kf.ensure_kek(t).await.unwrap();
        let before = fs::read_to_string(&path).unwrap();
        assert!(!before.contains("previous"), "{before}");
        let key = DataKey::generate(KeyId::new());
        let old = serve.wrap(t, &key).await.unwrap();
        assert_eq!(old.kek_id, v1);

        let v2 = kf.begin_rotation(t).await.unwrap();
        assert_ne!(v1, v2);
        assert_eq!(
            kf.begin_rotation(t).await.unwrap(),
            v2,
            "resumed, no third version"
        );
        // The other process wraps under the new version at once, and
        // still unwraps the old.
        let new = serve.wrap(t, &key).await.unwrap();
        assert_eq!(new.kek_id, v2);
        assert_eq!(serve.unwrap(&old).await.unwrap().bytes(), key.bytes());
        assert_eq!(kf.unwrap(&new).await.unwrap().bytes(), key.bytes());
        assert!(matches!(
            kf.export_keks().await,
            Err(CryptoError::Unsupported { .. })
        ));

        assert_eq!(kf.finish_rotation(t).await.unwrap(), 1);
        assert_eq!(kf.finish_rotation(t).await.unwrap(), 0);
        assert!(matches!(serve.unwrap(&old).await, Err(CryptoError::Unwrap)));
        assert_eq!(serve.unwrap(&new).await.unwrap().bytes(), key.bytes());
        let after = fs::read_to_string(&path).unwrap();
        assert!(!after.contains(v1.as_str()) && !after.contains("previous"));
        assert_eq!(kf.export_keks().await.unwrap().len(), 1);
        assert!(matches!(
            kf.begin_rotation(TenantId::new()).await,
            Err(CryptoError::NoKek(_))
        ));
    }

    #[tokio::test]
    async fn wrap_without_kek_fails() {
        let dir = tempfile::tempdir().unwrap();
        let kf = LocalKeyFile::open(dir.path().join("kek.json")).unwrap();
        let key = DataKey::generate(KeyId::new());
        assert!(matches!(
            kf.wrap(TenantId::new(), &key).await,
            Err(CryptoError::NoKek(_))
        ));
    }

    #[tokio::test]
    async fn shredding_a_kek_makes_its_keys_unrecoverable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.json");
        let kf = LocalKeyFile::open(&path).unwrap();
        let (a, b) = (TenantId::new(), TenantId::new());
        kf.ensure_kek(a).await.unwrap();
        kf.ensure_kek(b).await.unwrap();
        let key = DataKey::generate(KeyId::new());
        let wrapped_a = kf.wrap(a, &key).await.unwrap();
        let wrapped_b = kf.wrap(b, &key).await.unwrap();
        let file_before = fs::read_to_string(&path).unwrap();
        // A second name for the current version, to observe the scrub.
        let old_version = dir.path().join("old-version");
        fs::hard_link(&path, &old_version).unwrap();

        assert!(kf.shred_kek(a).await.unwrap());
        let scrubbed = fs::read(&old_version).unwrap();
        assert_eq!(scrubbed.len(), file_before.len());
        assert!(
            scrubbed.iter().all(|&b| b == 0),
            "previous version not scrubbed"
        );
        assert!(!kf.shred_kek(a).await.unwrap(), "already gone");
        assert!(matches!(kf.unwrap(&wrapped_a).await, Err(CryptoError::NoKek(t)) if t == a));
        assert!(
            kf.unwrap(&wrapped_b).await.is_ok(),
            "other tenants unaffected"
        );

        // The removal is persisted, and the KEK bytes are gone from the file.
        let file_after = fs::read_to_string(&path).unwrap();
        assert!(!file_after.contains(&a.to_string()));
        assert!(file_before.contains(&a.to_string()));
        let kf = LocalKeyFile::open(&path).unwrap();
        assert!(matches!(
            kf.unwrap(&wrapped_a).await,
            Err(CryptoError::NoKek(_))
        ));
        assert_eq!(kf.unwrap(&wrapped_b).await.unwrap().bytes(), key.bytes());
        // A new KEK for the tenant does not resurrect old keys.
        kf.ensure_kek(a).await.unwrap();
        assert!(matches!(
            kf.unwrap(&wrapped_a).await,
            Err(CryptoError::Unwrap)
        ));
    }

    #[tokio::test]
    async fn instances_sharing_a_file_do_not_lose_keks() {
        // Two providers on one file, as two processes would be.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.json");
        let one = LocalKeyFile::open(&path).unwrap();
        let two = LocalKeyFile::open(&path).unwrap();
        let (a, b) = (TenantId::new(), TenantId::new());
        let a_id = one.ensure_kek(a).await.unwrap();
        two.ensure_kek(b).await.unwrap();
        // `two` adopted `a`'s KEK instead of creating another one.
        assert_eq!(two.ensure_kek(a).await.unwrap(), a_id);
        // `one` finds `b`'s KEK in the file.
        let key = DataKey::generate(KeyId::new());
        let wrapped = two.wrap(b, &key).await.unwrap();
        assert_eq!(one.unwrap(&wrapped).await.unwrap().bytes(), key.bytes());
        let reopened = LocalKeyFile::open(&path).unwrap();
        assert_eq!(reopened.ensure_kek(a).await.unwrap(), a_id);
        assert!(reopened.unwrap(&wrapped).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_ensure_kek_persists_every_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.json");
        let kf = std::sync::Arc::new(LocalKeyFile::open(&path).unwrap());
        let tenants: Vec<TenantId> = (0..16).map(|_| TenantId::new()).collect();
        let tasks: Vec<_> = tenants
            .iter()
            .map(|&t| {
                let kf = kf.clone();
                tokio::spawn(async move { (t, kf.ensure_kek(t).await.unwrap()) })
            })
            .collect();
        let mut ids = Vec::new();
        for task in tasks {
            ids.push(task.await.unwrap());
        }
        let reopened = LocalKeyFile::open(&path).unwrap();
        for (t, id) in ids {
            assert_eq!(reopened.ensure_kek(t).await.unwrap(), id);
        }
    }

    #[tokio::test]
    async fn malformed_key_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.json");
        fs::write(&path, b"{\"version\": 1, \"keks\": {\"not-a-uuid\": 1}}").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(LocalKeyFile::open(&path), Err(CryptoError::Io(_))));
        let secret = "ab".repeat(31);
        let tenant = TenantId::new();
        fs::write(
            &path,
            format!(
                "{{\"version\":1,\"keks\":{{\"{tenant}\":{{\"id\":\"x\",\
                 \"created_at\":\"2024-01-01T00:00:00Z\",\"key\":\"{secret}\"}}}}}}"
            ),
        )
        .unwrap();
        let e = LocalKeyFile::open(&path).err().unwrap();
        assert!(
            !e.to_string().contains(&secret),
            "error echoes key material: {e}"
        );
    }
}
