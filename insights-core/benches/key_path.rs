//! The key path of a recording with each key provider, against a raw
//! AES-256-GCM wrap of 32 bytes in the same run: data key generation +
//! wrap (recording start) and unwrap (playback start), per operation,
//! median and p95 over `N` operations after a warm-up.
//!
//! `cargo bench -p insights-core --bench key_path`
//!
//! The `database` provider runs over an in-memory [`DataKeyStore`] (the
//! store's own latency is not the provider's): with the cache warm,
//! unwrap touches no store; wrap reads the tenant's KEK versions from the
//! store on every call (so a rotation elsewhere counts at once).

use std::error::Error;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use async_trait::async_trait;
use insights_core::crypto::{
    DataKey, DatabaseKeyProvider, KeyProvider, LocalKeyFile, RootKey, WrappedDataKey, WrappedKek,
};
use insights_core::domain::{KeyId, TenantId};
use insights_core::store::{DataKeyStore, StoreError, StoreResult};

const N: usize = 20_000;

type Res<T> = Result<T, Box<dyn Error>>;

/// Just enough of a store for the provider: KEK rows in memory.
#[derive(Default)]
struct Keks(Mutex<Vec<WrappedKek>>);

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Corrupt("poisoned".into())
}

#[async_trait]
impl DataKeyStore for Keks {
    async fn put_data_key(&self, _: TenantId, _: &WrappedDataKey) -> StoreResult<()> {
        Ok(())
    }
    async fn get_data_key(&self, _: TenantId, _: KeyId) -> StoreResult<WrappedDataKey> {
        Err(StoreError::NotFound)
    }
    async fn shred_data_key(&self, _: TenantId, _: KeyId) -> StoreResult<bool> {
        Ok(false)
    }
    async fn data_keys_not_under(
        &self,
        _: TenantId,
        _: &str,
        _: u32,
    ) -> StoreResult<Vec<WrappedDataKey>> {
        Ok(Vec::new())
    }
    async fn count_data_keys_not_under(&self, _: TenantId, _: &str) -> StoreResult<u64> {
        Ok(0)
    }
    async fn rewrap_data_key(&self, _: TenantId, _: &WrappedDataKey, _: &str) -> StoreResult<bool> {
        Ok(false)
    }
    async fn put_kek(&self, _: TenantId, kek: &WrappedKek) -> StoreResult<bool> {
        self.0.lock().map_err(poisoned)?.push(kek.clone());
        Ok(true)
    }
    async fn list_keks(&self, tenant: TenantId) -> StoreResult<Vec<WrappedKek>> {
        let rows = self.0.lock().map_err(poisoned)?;
        Ok(rows
            .iter()
            .filter(|k| k.tenant_id == tenant)
            .cloned()
            .collect())
    }
    async fn delete_keks_before(&self, _: TenantId, _: u32) -> StoreResult<u64> {
        Ok(0)
    }
    async fn all_keks(&self) -> StoreResult<Vec<WrappedKek>> {
        Ok(self.0.lock().map_err(poisoned)?.clone())
    }
}

fn stats(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
    println!(
        "{name:<44} median {:>8.2} µs   p95 {:>8.2} µs",
        at(0.5).as_secs_f64() * 1e6,
        at(0.95).as_secs_f64() * 1e6
    );
}

async fn provider(name: &str, p: &dyn KeyProvider, tenant: TenantId) -> Res<()> {
    p.ensure_kek(tenant).await?;
    let mut wrap = Vec::with_capacity(N);
    let mut unwrap = Vec::with_capacity(N);
    for i in 0..N + 1000 {
        let t0 = Instant::now();
        let dk = DataKey::generate(KeyId::new());
        let w = p.wrap(tenant, &dk).await?;
        let t1 = Instant::now();
        let back = p.unwrap(&w).await?;
        let t2 = Instant::now();
        black_box(back.bytes());
        if i >= 1000 {
            wrap.push(t1 - t0);
            unwrap.push(t2 - t1);
        }
    }
    stats(&format!("{name}: generate + wrap"), wrap);
    stats(&format!("{name}: unwrap (playback start)"), unwrap);
    Ok(())
}

fn main() -> Res<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // Baseline: AES-256-GCM over 32 bytes, the same in both directions.
        let kek = Aes256Gcm::new(DataKey::generate(KeyId::new()).bytes().into());
        let mut seal = Vec::with_capacity(N);
        let mut open = Vec::with_capacity(N);
        for _ in 0..N {
            let mut buf = *DataKey::generate(KeyId::new()).bytes();
            let nonce = [7u8; 12].into();
            let t0 = Instant::now();
            let tag = kek
                .encrypt_inout_detached(&nonce, b"aad", buf.as_mut_slice().into())
                .map_err(|e| e.to_string())?;
            let t1 = Instant::now();
            kek.decrypt_inout_detached(&nonce, b"aad", buf.as_mut_slice().into(), &tag)
                .map_err(|e| e.to_string())?;
            let t2 = Instant::now();
            seal.push(t1 - t0);
            open.push(t2 - t1);
        }
        stats("raw AES-256-GCM: wrap 32 bytes", seal);
        stats("raw AES-256-GCM: unwrap 32 bytes", open);

        let dir = tempfile::tempdir()?;
        let local = LocalKeyFile::open(dir.path().join("kek.json"))?;
        provider("local-file", &local, TenantId::new()).await?;

        let store: Arc<dyn DataKeyStore> = Arc::new(Keks::default());
        let db =
            DatabaseKeyProvider::open(store, RootKey::generate(), Duration::from_secs(300)).await?;
        provider("database (cache warm)", &db, TenantId::new()).await?;
        Ok(())
    })
}
