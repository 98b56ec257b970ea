//! The cost of a recording's key path with each key provider, against a
//! raw AES-256-GCM wrap in the same run:
//!
//! * record: a fresh data key (`DataKey::generate`) wrapped under the
//!   tenant's key-encryption key (`KeyProvider::wrap`), as the spool does
//!   when a call starts;
//! * playback, cold: `KeyProvider::unwrap` of a stored wrapped key with
//!   nothing cached (a fresh node; for the vault a provider with
//!   `cache_ttl_secs = 0`);
//! * playback, warm: `unwrap` of a key unwrapped before (the vault's
//!   in-memory cache): what a playback start adds once the cache is warm.
//!
//! Providers, each built as production builds it:
//!
//! * `local-file` (`LocalKeyFile`): KEKs in memory, one `stat` of the key
//!   file per operation (to follow a rotation made by another process);
//!   cold and warm are the same work;
//! * `database` (`DatabaseKeyProvider` over the SQLite metadata store in
//!   a file, root key in memory): wrap reads the tenant's KEK versions
//!   from the store every time (a rotation elsewhere counts at once);
//!   cold unwrap through a provider whose cache holds nothing (TTL 0: it
//!   reads and unwraps the KEK rows), warm through one with the default
//!   TTL;
//! * `azure-key-vault` (`insights_http::key_vault::from_settings`)
//!   against the Key Vault stand-in on loopback
//!   (`insights_tests::key_vault`: client-credentials token, real
//!   RSA-OAEP-256 with a 3072-bit key, one HTTP round trip per operation,
//!   plus the key read that precedes every wrap); cold through a provider
//!   with `cache_ttl_secs = 0`.
//!
//! Raw: the same data key generation and a 12-byte-nonce AES-256-GCM
//! seal/open of 32 bytes under an in-memory key, no provider. Paths are
//! interleaved per iteration; p50 and p95 are printed with the ratio
//! ours/raw. (This replaces the former `insights-core` bench of the same
//! name: one bench for every provider.)
//!
//! `cargo bench -p insights-tests --bench key_path`
//!
//! Environment: `KEY_PATH_BENCH_ITERS` (default 300).

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use insights_core::config::{KeyProviderKind, Overrides, Settings};
use insights_core::crypto::{
    DataKey, DatabaseKeyProvider, KeyProvider, LocalKeyFile, RootKey, WrappedDataKey,
};
use insights_core::domain::{KeyId, NewTenant, TenantId};
use insights_core::store::prelude::*;
use insights_stores::metadata::sqlite::SqliteStore;
use insights_tests::key_vault::{CLIENT_ID, CLIENT_SECRET, KeyVaultStandIn};
use rand::RngCore;

type Res<T> = Result<T, Box<dyn Error>>;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn stats(&mut self) -> (f64, f64) {
        self.0.sort();
        (pct(&self.0, 0.5), pct(&self.0, 0.95))
    }
}

/// Raw baseline: AES-256-GCM seal of the data key under an in-memory key.
struct Raw {
    kek: Aes256Gcm,
}

impl Raw {
    fn wrap(&self, key: &DataKey) -> Res<Vec<u8>> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let mut out = vec![0u8; 12 + 32 + 16];
        let (n, rest) = out.split_at_mut(12);
        let (ct, tag_out) = rest.split_at_mut(32);
        n.copy_from_slice(&nonce);
        let buf = InOutBuf::new(&key.bytes()[..], ct).map_err(|e| format!("{e:?}"))?;
        let tag = self
            .kek
            .encrypt_inout_detached(&nonce.into(), b"bench", buf)
            .map_err(|e| format!("{e:?}"))?;
        tag_out.copy_from_slice(&tag);
        Ok(out)
    }

    fn unwrap(&self, id: KeyId, w: &[u8]) -> Res<DataKey> {
        let (n, rest) = w.split_at(12);
        let (ct, tag) = rest.split_at(32);
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        let nonce: [u8; 12] = n.try_into()?;
        let mut t = aes_gcm::aead::Tag::<Aes256Gcm>::default();
        t.copy_from_slice(tag);
        let buf = InOutBuf::new(ct, &mut key[..]).map_err(|e| format!("{e:?}"))?;
        self.kek
            .decrypt_inout_detached(&nonce.into(), b"bench", buf, &t)
            .map_err(|e| format!("{e:?}"))?;
        Ok(DataKey::from_bytes(id, key))
    }
}

fn vault_settings(
    kv: &KeyVaultStandIn,
    dir: &std::path::Path,
    cache_ttl_secs: u64,
) -> Res<Settings> {
    let secret = dir.join("vault-client-secret");
    std::fs::write(&secret, CLIENT_SECRET)?;
    let mut s = Settings::load(
        None,
        &Overrides {
            data_dir: Some(dir.to_owned()),
            listen: None,
        },
    )?;
    s.allow_insecure_http = true;
    s.keys.provider = KeyProviderKind::AzureKeyVault;
    let v = &mut s.keys.azure_key_vault;
    v.vault_url = Some(kv.vault_url());
    v.tenant_id = Some("bench-tenant".into());
    v.client_id = Some(CLIENT_ID.into());
    v.client_secret_file = Some(secret);
    v.token_endpoint = kv.token_endpoint();
    v.cache_ttl_secs = cache_ttl_secs;
    s.validate()?;
    Ok(s)
}

struct Path {
    name: &'static str,
    record: Samples,
    cold: Samples,
    warm: Samples,
}

impl Path {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            record: Samples::default(),
            cold: Samples::default(),
            warm: Samples::default(),
        }
    }
}

fn timed<T>(s: &mut Samples, f: impl FnOnce() -> Res<T>) -> Res<T> {
    let t = Instant::now();
    let out = f()?;
    s.0.push(t.elapsed());
    Ok(out)
}

async fn record(p: &dyn KeyProvider, tenant: TenantId) -> Res<(DataKey, WrappedDataKey)> {
    let key = DataKey::generate(KeyId::new());
    let w = p.wrap(tenant, &key).await?;
    Ok((key, w))
}

fn main() -> Res<()> {
    let iters: usize = std::env::var("KEY_PATH_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    // A tenant of the metadata store (the database provider's KEK rows
    // belong to it); the other providers take its id too.
    let url = format!("sqlite://{}", dir.path().join("insights.db").display());
    let store = rt.block_on(SqliteStore::connect(&url, 4))?;
    let tenant = rt
        .block_on(store.create_tenant(NewTenant {
            name: "bench".into(),
            directory_tenant_id: None,
        }))?
        .id;

    let mut kek = [0u8; 32];
    rand::rng().fill_bytes(&mut kek);
    let raw = Raw {
        kek: Aes256Gcm::new(&kek.into()),
    };

    let local = LocalKeyFile::open(dir.path().join("keys").join("kek.json"))?;
    rt.block_on(local.ensure_kek(tenant))?;

    let store: Arc<dyn MetadataStore> = Arc::new(store);
    let root_hex = hex::encode(kek.map(|b| b ^ 0x5a));
    let db_open = |ttl: Duration| -> Res<DatabaseKeyProvider> {
        let kek_store: Arc<dyn DataKeyStore> = store.clone();
        Ok(rt.block_on(DatabaseKeyProvider::open(
            kek_store,
            RootKey::from_hex(&root_hex)?,
            ttl,
        ))?)
    };
    let db = db_open(Duration::from_secs(300))?;
    let db_cold = db_open(Duration::ZERO)?;
    rt.block_on(db.ensure_kek(tenant))?;

    let kv = KeyVaultStandIn::start();
    let vault: Arc<dyn KeyProvider> = Arc::new(insights_http::key_vault::from_settings(
        &vault_settings(&kv, dir.path(), 300)?,
    )?);
    let vault_cold: Arc<dyn KeyProvider> = Arc::new(insights_http::key_vault::from_settings(
        &vault_settings(&kv, dir.path(), 0)?,
    )?);
    let t = Instant::now();
    rt.block_on(vault.ensure_kek(tenant))?;
    println!(
        "vault stand-in: 3072-bit tenant key created in {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );

    let mut raw_p = Path::new("raw AES-256-GCM");
    let mut local_p = Path::new("local-file");
    let mut db_p = Path::new("database (SQLite store)");
    let mut vault_p = Path::new("azure-key-vault (stand-in)");
    // Warm-up: connections, tokens, code paths.
    for _ in 0..5 {
        let (_, w) = rt.block_on(record(&db, tenant))?;
        rt.block_on(db_cold.unwrap(&w))?;
        rt.block_on(db.unwrap(&w))?;
        let (_, w) = rt.block_on(record(&*vault, tenant))?;
        rt.block_on(vault_cold.unwrap(&w))?;
        rt.block_on(vault.unwrap(&w))?;
    }
    for _ in 0..iters {
        // Raw.
        let (id, w) = timed(&mut raw_p.record, || {
            let key = DataKey::generate(KeyId::new());
            Ok((key.id, raw.wrap(&key)?))
        })?;
        timed(&mut raw_p.cold, || raw.unwrap(id, &w))?;
        timed(&mut raw_p.warm, || raw.unwrap(id, &w))?;

        // local-file: unwrapping is the same work cold or warm.
        let (_, w) = timed(&mut local_p.record, || rt.block_on(record(&local, tenant)))?;
        timed(&mut local_p.cold, || Ok(rt.block_on(local.unwrap(&w))?))?;
        timed(&mut local_p.warm, || Ok(rt.block_on(local.unwrap(&w))?))?;

        // database: cold through a provider that caches nothing (reads
        // and unwraps the KEK rows); warm through the caching one.
        let (_, w) = timed(&mut db_p.record, || rt.block_on(record(&db, tenant)))?;
        timed(&mut db_p.cold, || Ok(rt.block_on(db_cold.unwrap(&w))?))?;
        timed(&mut db_p.warm, || Ok(rt.block_on(db.unwrap(&w))?))?;

        // azure-key-vault: cold through a provider without a cache; warm
        // after one unwrap filled the cache of the caching provider.
        let (_, w) = timed(&mut vault_p.record, || rt.block_on(record(&*vault, tenant)))?;
        timed(
            &mut vault_p.cold,
            || Ok(rt.block_on(vault_cold.unwrap(&w))?),
        )?;
        rt.block_on(vault.unwrap(&w))?;
        timed(&mut vault_p.warm, || Ok(rt.block_on(vault.unwrap(&w))?))?;
    }

    let (rr50, rr95) = raw_p.record.stats();
    let (rc50, rc95) = raw_p.cold.stats();
    let (rw50, rw95) = raw_p.warm.stats();
    println!("\n{iters} iterations, ms (p50 / p95), ratio ours/raw at p50 and p95\n");
    println!(
        "{:<28} {:>22} {:>22} {:>22}",
        "path", "record (gen + wrap)", "playback cold", "playback warm"
    );
    println!(
        "{:<28} {:>9.4} / {:>9.4} {:>9.4} / {:>9.4} {:>9.4} / {:>9.4}",
        raw_p.name, rr50, rr95, rc50, rc95, rw50, rw95
    );
    let mut warm_worst_p95: f64 = 0.0;
    for p in [&mut local_p, &mut db_p, &mut vault_p] {
        let (r50, r95) = p.record.stats();
        let (c50, c95) = p.cold.stats();
        let (w50, w95) = p.warm.stats();
        println!(
            "{:<28} {:>9.4} / {:>9.4} {:>9.4} / {:>9.4} {:>9.4} / {:>9.4}",
            p.name, r50, r95, c50, c95, w50, w95
        );
        println!(
            "{:<28} {:>9.0}x / {:>8.0}x {:>9.0}x / {:>8.0}x {:>9.0}x / {:>8.0}x",
            "  ratio ours/raw",
            r50 / rr50,
            r95 / rr95,
            c50 / rc50,
            c95 / rc95,
            w50 / rw50,
            w95 / rw95
        );
        warm_worst_p95 = warm_worst_p95.max(w95);
    }
    let verdict = if warm_worst_p95 < 1.0 { "PASS" } else { "FAIL" };
    println!(
        "\nwarm-cache playback start adds at most {warm_worst_p95:.4} ms at p95 over every provider (goal < 1 ms): {verdict}"
    );
    println!(
        "vault requests: {} token, {} get, {} wrapkey, {} unwrapkey",
        kv.count("token"),
        kv.count("get"),
        kv.count("wrapkey"),
        kv.count("unwrapkey")
    );
    if verdict == "FAIL" {
        return Err("warm-cache playback start is 1 ms or more at p95".into());
    }
    Ok(())
}
