//! The `database` key provider: tenant key-encryption keys (KEKs) kept in
//! the metadata store, each wrapped by a root key that never enters the
//! database.
//!
//! * The root key is 32 random bytes written as 64 hex digits (surrounding
//!   whitespace ignored), in a file (`[keys] root_key_file`, mode 0600,
//!   no group or other access) or in an environment variable
//!   (`[keys] root_key_env` names it). `openssl rand -hex 32` makes one.
//!   Every node of an installation needs the same root key.
//! * Each KEK version is a row ([`WrappedKek`]): `nonce (12) || encrypted
//!   KEK (32) || tag (16)`, AES-256-GCM under the root key with associated
//!   data binding the tenant id, the version and the KEK id, so a row
//!   copied to another tenant or version, truncated or edited does not
//!   unwrap ([`CryptoError::BadWrappedKek`]). Each row also carries the
//!   root key's key-check value ([`RootKey::check_value`]); at start-up a
//!   node whose root key does not match the stored rows refuses to start
//!   ([`CryptoError::WrongRootKey`]) before it writes anything.
//! * Data keys are wrapped exactly like [`super::LocalKeyFile`] does, so
//!   `insights keys migrate --to database` moves each tenant's KEK (id and
//!   bytes) into the database and no data key changes.
//! * Unwrapped KEKs are cached in memory for `cache_ttl_secs`, in
//!   zeroizing buffers; an expired entry is dropped (and so zeroised) on
//!   the next use of the provider. Wrapping always reads the tenant's
//!   versions from the store, so a rotation made by another node takes
//!   effect at once; unwrapping a data key whose KEK id is not cached
//!   reads them again.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use async_trait::async_trait;
use chrono::Utc;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::CryptoError;
use super::keys::{
    DataKey, KeyProvider, WrappedDataKey, WrappedKek, fill_random, key_alarm, unwrap_data_key,
    wrap_data_key,
};
use crate::domain::TenantId;
use crate::store::{DataKeyStore, StoreError};

const KEK_AAD_LABEL: &[u8] = b"insights/wrapped-kek/v1";
const CHECK_LABEL: &[u8] = b"insights/root-key-check/v1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Length of [`WrappedKek::wrapped`].
pub const WRAPPED_KEK_LEN: usize = NONCE_LEN + 32 + TAG_LEN;
const PROVIDER: &str = "database";

/// The root key of the `database` provider. Not `Debug`, zeroised on drop.
pub struct RootKey {
    key: Zeroizing<[u8; 32]>,
}

impl RootKey {
    /// Parses 64 hex digits (surrounding whitespace ignored). The error
    /// never echoes the value.
    pub fn from_hex(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let mut key = Zeroizing::new([0u8; 32]);
        if text.len() != 64 || hex::decode_to_slice(text, &mut key[..]).is_err() {
            return Err(CryptoError::RootKey(
                "not 64 hex digits (32 bytes; `openssl rand -hex 32` makes one)".into(),
            ));
        }
        Ok(Self { key })
    }

    /// Reads the root key from `path`: it must be a regular file without
    /// group or other access.
    pub fn from_file(path: &Path) -> Result<Self, CryptoError> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| CryptoError::RootKey(format!("{}: {e}", path.display())))?;
        if !meta.is_file() {
            return Err(CryptoError::RootKey(format!(
                "{}: not a regular file",
                path.display()
            )));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CryptoError::RootKey(format!(
                "{}: mode {mode:o} lets group or others read it; chmod 600 it",
                path.display()
            )));
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| CryptoError::RootKey(format!("{}: {e}", path.display())))?,
        );
        Self::from_hex(&text).map_err(|e| CryptoError::RootKey(format!("{}: {e}", path.display())))
    }

    /// Reads the root key from the environment variable `var`.
    pub fn from_env(var: &str) -> Result<Self, CryptoError> {
        let text =
            Zeroizing::new(std::env::var(var).map_err(|_| {
                CryptoError::RootKey(format!("environment variable {var} is not set"))
            })?);
        Self::from_hex(&text)
            .map_err(|e| CryptoError::RootKey(format!("environment variable {var}: {e}")))
    }

    /// A fresh random root key (tests, and `insights keys` helpers).
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        fill_random(&mut key[..]);
        Self { key }
    }

    /// The key-check value stored next to every wrapped KEK: the first 8
    /// bytes of SHA-256 over a label and the key. It identifies the root
    /// key without revealing anything usable about it.
    pub fn check_value(&self) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update(CHECK_LABEL);
        h.update(&self.key[..]);
        h.finalize()[..8].to_vec()
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.key).into())
    }

    /// Wraps `kek` as version `version` of `tenant`'s KEK `kek_id`.
    pub fn wrap_kek(
        &self,
        tenant: TenantId,
        version: u32,
        kek_id: &str,
        kek: &[u8; 32],
    ) -> Result<WrappedKek, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let mut wrapped = vec![0u8; WRAPPED_KEK_LEN];
        let (nonce_out, rest) = wrapped.split_at_mut(NONCE_LEN);
        let (ct, tag_out) = rest.split_at_mut(32);
        nonce_out.copy_from_slice(&nonce);
        let buf = InOutBuf::new(&kek[..], ct)
            .map_err(|_| CryptoError::InvalidInput("key-encryption key length".into()))?;
        let tag = self
            .cipher()
            .encrypt_inout_detached(&nonce.into(), &kek_aad(tenant, version, kek_id), buf)
            .map_err(|_| {
                CryptoError::InvalidInput("key-encryption key cannot be wrapped".into())
            })?;
        tag_out.copy_from_slice(&tag);
        Ok(WrappedKek {
            tenant_id: tenant,
            version,
            kek_id: kek_id.to_owned(),
            root_check: self.check_value(),
            wrapped,
            created_at: Utc::now(),
        })
    }

    /// Unwraps a stored KEK; a row that is truncated, edited, or wrapped
    /// for another tenant, version, id or root key is refused with
    /// [`CryptoError::BadWrappedKek`].
    pub fn unwrap_kek(&self, w: &WrappedKek) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        let bad = |problem| CryptoError::BadWrappedKek {
            tenant: w.tenant_id,
            version: w.version,
            problem,
        };
        if w.root_check != self.check_value() {
            return Err(bad("wrapped by another root key"));
        }
        if w.wrapped.len() != WRAPPED_KEK_LEN {
            return Err(bad("truncated or extended (wrong length)"));
        }
        let (nonce, rest) = w.wrapped.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(32);
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(nonce);
        let mut t = aes_gcm::aead::Tag::<Aes256Gcm>::default();
        t.copy_from_slice(tag);
        let mut kek = Zeroizing::new([0u8; 32]);
        let buf = InOutBuf::new(ct, &mut kek[..]).map_err(|_| bad("malformed"))?;
        self.cipher()
            .decrypt_inout_detached(
                &n.into(),
                &kek_aad(w.tenant_id, w.version, &w.kek_id),
                buf,
                &t,
            )
            .map_err(|_| bad("edited, or wrapped for another tenant, version or key id"))?;
        Ok(kek)
    }
}

fn kek_aad(tenant: TenantId, version: u32, kek_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(KEK_AAD_LABEL.len() + 20 + kek_id.len());
    aad.extend_from_slice(KEK_AAD_LABEL);
    aad.extend_from_slice(tenant.as_uuid().as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    // Last, so the variable length needs no delimiter.
    aad.extend_from_slice(kek_id.as_bytes());
    aad
}

/// One unwrapped KEK version, in memory only.
struct Version {
    version: u32,
    kek_id: String,
    key: Zeroizing<[u8; 32]>,
}

struct Cached {
    loaded: Instant,
    /// Oldest first; the last is current.
    versions: Vec<Version>,
}

/// The `database` [`KeyProvider`] (see the module docs).
pub struct DatabaseKeyProvider {
    store: Arc<dyn DataKeyStore>,
    root: RootKey,
    ttl: Duration,
    cache: Mutex<HashMap<TenantId, Arc<Cached>>>,
}

fn store_err(e: StoreError) -> CryptoError {
    CryptoError::Unavailable(format!("metadata store: {e}"))
}

impl DatabaseKeyProvider {
    /// Opens the provider after checking `root` against every KEK stored:
    /// if any was wrapped by another root key, fails with
    /// [`CryptoError::WrongRootKey`] (writes nothing). A stored KEK that
    /// does not unwrap under the right root key raises the alarm for its
    /// tenant (that tenant's recordings are refused) but does not stop
    /// the node.
    pub async fn open(
        store: Arc<dyn DataKeyStore>,
        root: RootKey,
        cache_ttl: Duration,
    ) -> Result<Self, CryptoError> {
        let ours = root.check_value();
        let all = store.all_keks().await.map_err(store_err)?;
        let foreign: Vec<&WrappedKek> = all.iter().filter(|k| k.root_check != ours).collect();
        if let Some(first) = foreign.first() {
            return Err(CryptoError::WrongRootKey {
                ours: hex::encode(&ours),
                stored: hex::encode(&first.root_check),
                count: foreign.len(),
            });
        }
        for k in &all {
            if let Err(e) = root.unwrap_kek(k) {
                key_alarm(PROVIDER, k.tenant_id, &e);
            }
        }
        Ok(Self {
            store,
            root,
            ttl: cache_ttl,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<TenantId, Arc<Cached>>> {
        // A poisoned cache is only a cache: take it over.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops (zeroising) every expired entry; returns the tenant's entry
    /// if still fresh.
    fn cached(&self, tenant: TenantId) -> Option<Arc<Cached>> {
        let mut cache = self.cache();
        let ttl = self.ttl;
        cache.retain(|_, c| c.loaded.elapsed() < ttl);
        cache.get(&tenant).cloned()
    }

    /// How many tenants' KEKs are in memory now (expired ones dropped).
    pub fn cached_tenants(&self) -> usize {
        let mut cache = self.cache();
        let ttl = self.ttl;
        cache.retain(|_, c| c.loaded.elapsed() < ttl);
        cache.len()
    }

    /// Reads and unwraps the tenant's versions from the store and caches
    /// them. [`CryptoError::NoKek`] if it has none.
    async fn load(&self, tenant: TenantId) -> Result<Arc<Cached>, CryptoError> {
        let rows = self.store.list_keks(tenant).await.map_err(store_err)?;
        if rows.is_empty() {
            self.cache().remove(&tenant);
            return Err(CryptoError::NoKek(tenant));
        }
        let mut versions = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.tenant_id != tenant {
                return Err(CryptoError::BadWrappedKek {
                    tenant,
                    version: row.version,
                    problem: "belongs to another tenant",
                });
            }
            versions.push(Version {
                version: row.version,
                kek_id: row.kek_id.clone(),
                key: self.root.unwrap_kek(row)?,
            });
        }
        versions.sort_by_key(|v| v.version);
        let cached = Arc::new(Cached {
            loaded: Instant::now(),
            versions,
        });
        self.cache().insert(tenant, cached.clone());
        Ok(cached)
    }

    async fn insert_version(
        &self,
        tenant: TenantId,
        version: u32,
        kek_id: &str,
        kek: &[u8; 32],
    ) -> Result<bool, CryptoError> {
        let row = self.root.wrap_kek(tenant, version, kek_id, kek)?;
        let stored = self.store.put_kek(tenant, &row).await.map_err(store_err)?;
        self.cache().remove(&tenant);
        Ok(stored)
    }

    /// Stores a KEK that already exists elsewhere (the local key file) as
    /// version 1 of the tenant's KEK, keeping its id and bytes, so data
    /// keys wrapped under it unwrap unchanged. Idempotent: returns false
    /// if the database holds this very KEK already; fails if the tenant
    /// has another KEK there.
    pub async fn import_kek(
        &self,
        tenant: TenantId,
        kek_id: &str,
        kek: &[u8; 32],
    ) -> Result<bool, CryptoError> {
        match self.load(tenant).await {
            Ok(c) => {
                if c.versions
                    .iter()
                    .any(|v| v.kek_id == kek_id && *v.key == *kek)
                {
                    Ok(false)
                } else {
                    Err(CryptoError::Unsupported {
                        provider: PROVIDER,
                        what: "importing a KEK for a tenant that has another one in the database",
                    })
                }
            }
            Err(CryptoError::NoKek(_)) => {
                if self.insert_version(tenant, 1, kek_id, kek).await? {
                    Ok(true)
                } else {
                    // Another process imported concurrently: check it is this KEK.
                    Box::pin(self.import_kek(tenant, kek_id, kek)).await
                }
            }
            Err(e) => Err(e),
        }
    }

    fn new_kek_id() -> String {
        format!("db:{}", uuid::Uuid::new_v4())
    }
}

fn current(c: &Cached) -> Result<&Version, CryptoError> {
    c.versions
        .last()
        .ok_or(CryptoError::Unavailable("empty key cache entry".into()))
}

#[async_trait]
impl KeyProvider for DatabaseKeyProvider {
    fn backend(&self) -> &'static str {
        PROVIDER
    }

    async fn health(&self) -> Result<(), CryptoError> {
        self.store.all_keks().await.map(drop).map_err(store_err)
    }

    async fn ensure_kek(&self, tenant: TenantId) -> Result<String, CryptoError> {
        match self.load(tenant).await {
            Ok(c) => return Ok(current(&c)?.kek_id.clone()),
            Err(CryptoError::NoKek(_)) => {}
            Err(e) => return Err(e),
        }
        let mut kek = Zeroizing::new([0u8; 32]);
        fill_random(&mut kek[..]);
        let id = Self::new_kek_id();
        if self.insert_version(tenant, 1, &id, &kek).await? {
            tracing::info!(tenant = %tenant, kek_id = %id, "tenant key-encryption key created");
            return Ok(id);
        }
        // Another node created it first: use that one.
        let c = self.load(tenant).await?;
        Ok(current(&c)?.kek_id.clone())
    }

    async fn current_kek(&self, tenant: TenantId) -> Result<String, CryptoError> {
        let c = self.load(tenant).await?;
        Ok(current(&c)?.kek_id.clone())
    }

    async fn wrap(&self, tenant: TenantId, key: &DataKey) -> Result<WrappedDataKey, CryptoError> {
        // Always the store's current version (a rotation by another node
        // counts at once); the unwrapped bytes come from the cache when
        // the version is cached.
        let out = async {
            let rows = self.store.list_keks(tenant).await.map_err(store_err)?;
            let Some(newest) = rows.iter().max_by_key(|r| r.version) else {
                return Err(CryptoError::NoKek(tenant));
            };
            let cached = match self.cached(tenant) {
                Some(c) if current(&c)?.kek_id == newest.kek_id => c,
                _ => self.load(tenant).await?,
            };
            let v = current(&cached)?;
            wrap_data_key(&v.key, &v.kek_id, tenant, key)
        }
        .await;
        if let Err(e) = &out {
            key_alarm(PROVIDER, tenant, e);
        }
        out
    }

    async fn unwrap(&self, wrapped: &WrappedDataKey) -> Result<DataKey, CryptoError> {
        let tenant = wrapped.tenant_id;
        let out = async {
            let cached = match self.cached(tenant) {
                Some(c) if c.versions.iter().any(|v| v.kek_id == wrapped.kek_id) => c,
                _ => self.load(tenant).await?,
            };
            let v = cached
                .versions
                .iter()
                .find(|v| v.kek_id == wrapped.kek_id)
                .ok_or(CryptoError::Unwrap)?;
            unwrap_data_key(&v.key, wrapped)
        }
        .await;
        if let Err(e) = &out {
            key_alarm(PROVIDER, tenant, e);
        }
        out
    }

    async fn begin_rotation(&self, tenant: TenantId) -> Result<String, CryptoError> {
        let c = self.load(tenant).await?;
        if c.versions.len() > 1 {
            // An interrupted rotation: finish that one.
            return Ok(current(&c)?.kek_id.clone());
        }
        let next = current(&c)?.version + 1;
        let mut kek = Zeroizing::new([0u8; 32]);
        fill_random(&mut kek[..]);
        let id = Self::new_kek_id();
        if !self.insert_version(tenant, next, &id, &kek).await? {
            // Another rotation created it concurrently.
            let c = self.load(tenant).await?;
            return Ok(current(&c)?.kek_id.clone());
        }
        tracing::info!(tenant = %tenant, version = next, kek_id = %id, "key-encryption key rotation begun");
        Ok(id)
    }

    async fn finish_rotation(&self, tenant: TenantId) -> Result<u64, CryptoError> {
        let c = self.load(tenant).await?;
        let newest = current(&c)?.version;
        let destroyed = self
            .store
            .delete_keks_before(tenant, newest)
            .await
            .map_err(store_err)?;
        self.cache().remove(&tenant);
        tracing::info!(tenant = %tenant, version = newest, destroyed, "key-encryption key rotation finished");
        Ok(destroyed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::domain::KeyId;

    fn sample(root: &RootKey) -> WrappedKek {
        let mut kek = [0u8; 32];
        fill_random(&mut kek);
        root.wrap_kek(TenantId::new(), 1, "db:x", &kek).unwrap()
    }

    #[test]
    fn root_key_parses_only_64_hex_digits_and_never_echoes() {
        let hexkey = "ab".repeat(32);
        assert!(RootKey::from_hex(&format!("  {hexkey}\n")).is_ok());
        for bad in ["", "ab", &"zz".repeat(32), &"ab".repeat(33)] {
            let e = RootKey::from_hex(bad).err().unwrap().to_string();
            assert!(!bad.is_empty() && !e.contains(bad) || bad.is_empty(), "{e}");
        }
        let e = RootKey::from_hex(&"ab".repeat(31)).err().unwrap();
        assert!(matches!(e, CryptoError::RootKey(_)));
    }

    #[test]
    fn root_key_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        std::fs::write(&path, "cd".repeat(32)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = RootKey::from_file(&path).err().unwrap().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let a = RootKey::from_file(&path).unwrap();
        let b = RootKey::from_hex(&"cd".repeat(32)).unwrap();
        assert_eq!(a.check_value(), b.check_value());
        assert_ne!(a.check_value(), RootKey::generate().check_value());
    }

    #[test]
    fn wrapped_kek_roundtrips_and_is_bound_to_tenant_version_and_id() {
        let root = RootKey::generate();
        let mut kek = [0u8; 32];
        fill_random(&mut kek);
        let t = TenantId::new();
        let w = root.wrap_kek(t, 3, "db:abc", &kek).unwrap();
        assert_eq!(w.wrapped.len(), WRAPPED_KEK_LEN);
        assert!(!w.wrapped.windows(32).any(|x| x == kek), "KEK in clear");
        assert_eq!(*root.unwrap_kek(&w).unwrap(), kek);

        let mut other = w.clone();
        other.tenant_id = TenantId::new();
        assert!(matches!(
            root.unwrap_kek(&other),
            Err(CryptoError::BadWrappedKek { .. })
        ));
        let mut other = w.clone();
        other.version = 4;
        assert!(matches!(
            root.unwrap_kek(&other),
            Err(CryptoError::BadWrappedKek { .. })
        ));
        let mut other = w.clone();
        other.kek_id.push('x');
        assert!(matches!(
            root.unwrap_kek(&other),
            Err(CryptoError::BadWrappedKek { .. })
        ));
    }

    #[test]
    fn truncated_edited_and_foreign_wrapped_keks_are_refused_by_name() {
        let root = RootKey::generate();
        let w = sample(&root);
        for len in [0, 1, WRAPPED_KEK_LEN - 1] {
            let mut bad = w.clone();
            bad.wrapped.truncate(len);
            let e = root.unwrap_kek(&bad).err().unwrap();
            assert!(
                matches!(e, CryptoError::BadWrappedKek { problem, .. } if problem.contains("truncated")),
                "{e}"
            );
        }
        let mut bad = w.clone();
        bad.wrapped.push(0);
        assert!(matches!(
            root.unwrap_kek(&bad),
            Err(CryptoError::BadWrappedKek { .. })
        ));
        for pos in 0..w.wrapped.len() {
            let mut bad = w.clone();
            bad.wrapped[pos] ^= 0x40;
            let e = root.unwrap_kek(&bad).err().unwrap();
            assert!(
                matches!(e, CryptoError::BadWrappedKek { problem, .. } if problem.contains("edited")),
                "{pos}: {e}"
            );
        }
        // Wrapped by another root key (foreign), with its own check value
        // or with ours pasted in.
        let foreign = sample(&RootKey::generate());
        let e = root.unwrap_kek(&foreign).err().unwrap();
        assert!(e.to_string().contains("another root key"), "{e}");
        let mut pasted = foreign.clone();
        pasted.root_check = root.check_value();
        assert!(matches!(
            root.unwrap_kek(&pasted),
            Err(CryptoError::BadWrappedKek { .. })
        ));
        // The message names the tenant and the version.
        assert!(e.to_string().contains(&foreign.tenant_id.to_string()));
    }

    #[test]
    fn data_keys_wrapped_by_the_local_format_unwrap_here() {
        let mut kek = Zeroizing::new([0u8; 32]);
        fill_random(&mut kek[..]);
        let t = TenantId::new();
        let dk = DataKey::generate(KeyId::new());
        let w = wrap_data_key(&kek, "local:1", t, &dk).unwrap();
        assert_eq!(unwrap_data_key(&kek, &w).unwrap().bytes(), dk.bytes());
        let mut other = w.clone();
        other.kek_id = "local:2".into();
        assert!(matches!(
            unwrap_data_key(&kek, &other),
            Err(CryptoError::Unwrap)
        ));
    }
}
