//! The uploader on the production backends: PostgreSQL
//! (`INSIGHTS_TEST_PG_URL`, a fresh database per test) and Azure Blob
//! Storage as Azurite (`INSIGHTS_TEST_AZURITE`; and a private Azurite
//! process this test stops and restarts).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::uploader_support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use insights_core::blob::BlobStore;
use insights_core::store::MetadataStore;
use insights_stores::blob::{AzureBlobConfig, AzureBlobStore};
use insights_stores::metadata::postgres::PgStore;
use tokio_util::sync::CancellationToken;
use uploader_support::*;

async fn pg() -> Arc<dyn MetadataStore> {
    let url = insights_tests::fresh_pg_database().await;
    Arc::new(PgStore::connect(&url, 5).await.unwrap())
}

fn azure(endpoint: String) -> Arc<dyn BlobStore> {
    Arc::new(AzureBlobStore::new(AzureBlobConfig::emulator(Some(endpoint))).unwrap())
}

#[tokio::test]
async fn recordings_land_in_azurite_with_metadata_in_postgres() {
    use insights_tests::world::{Blobs, Metadata};
    let w = World::on(insights_tests::world::World::new(Metadata::Postgres, Blobs::Azurite).await)
        .await;
    let (a, da) = w.record(1, 250_000).await;
    let (b, db) = w.record(4, 90_000).await;
    let flaky = FlakyBlobs::new(w.blobs.clone());
    flaky.fail_puts.store(3, Ordering::SeqCst);
    let up = w.uploader(w.store.clone(), flaky.clone());
    let stats = up.stats();
    w.upload_all(up, 60).await;
    assert!(stats.failed_attempts.load(Ordering::SeqCst) >= 1);
    assert_eq!(stats.uploaded.load(Ordering::SeqCst), 2);
    assert_stored(&w, a, &da).await;
    assert_stored(&w, b, &db).await;
}

/// A private Azurite on its own port and directory.
struct Azurite {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Azurite {
    fn bin() -> PathBuf {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/azurite/node_modules/.bin/azurite-blob");
        assert!(
            p.exists(),
            "{} is missing: run `scripts/azurite.sh start DIR` once (it installs the pinned Azurite)",
            p.display()
        );
        p
    }

    fn start(port: u16, dir: PathBuf) -> Azurite {
        let mut a = Azurite {
            child: None,
            port,
            dir,
        };
        a.restart();
        a
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/devstoreaccount1", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new(Self::bin())
            .args(["--blobHost", "127.0.0.1", "--blobPort"])
            .arg(self.port.to_string())
            .arg("--location")
            .arg(&self.dir)
            .args(["--disableTelemetry", "--skipApiVersionCheck", "--silent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "Azurite did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_stopped_while_twenty_calls_finish_then_all_uploaded_once() {
    let az_dir = tempfile::tempdir().unwrap();
    let mut azurite = Azurite::start(free_port(), az_dir.path().to_path_buf());
    let w = World::with(pg().await, azure(azurite.endpoint())).await;
    let up = w.uploader(w.store.clone(), w.blobs.clone());
    let stats = up.stats();
    let stop = CancellationToken::new();
    let task = tokio::spawn(up.run(stop.clone()));

    azurite.stop();
    let mut recs = Vec::new();
    for i in 0..20 {
        recs.push(w.record(1 + i % 3, 30_000 + i * 50).await);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        w.spool.finished().len(),
        20,
        "nothing uploaded or lost while down"
    );
    azurite.restart();
    w.wait_empty(180).await;
    stop.cancel();
    task.await.unwrap();
    assert_eq!(
        stats.uploaded.load(Ordering::SeqCst),
        20,
        "each exactly once"
    );
    for (id, data) in &recs {
        assert_stored(&w, *id, data).await;
    }
    let all = w.blobs.list(&w.container(), "recordings").await.unwrap();
    let expected: usize = recs.iter().map(|(_, d)| d.len() + 1).sum();
    assert_eq!(all.len(), expected, "no duplicates, no orphans");
}
