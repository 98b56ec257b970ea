//! Uploader and chain-of-custody tests on SQLite + local blobs: uploads
//! with metadata and manifest, retries with backoff, restart after a
//! half-done upload, 20 recordings while storage is down, expiry audit
//! events, tampering caught by `verify_recording`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::uploader_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bot_gateway::custody::{
    InstallationKey, Mismatch, SignedManifest, manifest_key, recording_prefix, verify_recording,
};
use bot_gateway::spool::Spool;
use bot_gateway::uploader::{UploadError, backoff};
use insights_core::crypto::{ExpectedIds, decrypt_to_vec};
use insights_core::domain::*;
use tokio_util::sync::CancellationToken;
use uploader_support::*;

#[tokio::test]
async fn finished_recordings_are_uploaded_with_metadata_and_the_spool_emptied() {
    let w = World::local().await;
    let (a, da) = w.record(1, 300_000).await;
    let (b, db) = w.record(3, 150_000).await;
    assert!(w.spool.used_bytes() > 600_000);
    w.upload_all(w.uploader(w.store.clone(), w.blobs.clone()), 30)
        .await;
    assert_stored(&w, a, &da).await;
    assert_stored(&w, b, &db).await;
    // Spool copies gone, entry directories too.
    let left: Vec<_> = std::fs::read_dir(w.dir.path().join("spool"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "spool.lock")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The other streams decrypt too (object id = stream id).
    let rec = w.store.get_recording(w.tenant, b).await.unwrap();
    let wrapped = w
        .store
        .get_data_key(w.tenant, rec.media.unwrap().data_key_id)
        .await
        .unwrap();
    let key = w.keys.unwrap(&wrapped).await.unwrap();
    for i in 1..3u16 {
        let ct = blob_bytes(
            w.blobs.as_ref(),
            &w.container(),
            &format!("recordings/{b}/stream-{i}.ogg.env"),
        )
        .await;
        let sid = rec.streams[usize::from(i)].id;
        let plain = decrypt_to_vec(
            &key,
            &ct,
            &ExpectedIds::new(w.tenant, sid.as_uuid(), key.id),
        )
        .unwrap();
        assert!(plain == db[usize::from(i)]);
    }
    // Neither blobs nor spool ever held clear media.
    assert!(tree_contains(w.dir.path(), MARKER).is_empty());
}

#[tokio::test]
async fn failing_puts_are_retried_with_backoff_and_stored_once() {
    let w = World::local().await;
    let flaky = FlakyBlobs::new(w.blobs.clone());
    flaky.fail_puts.store(5, Ordering::SeqCst);
    let (id, data) = w.record(2, 200_000).await;
    let up = w.uploader(w.store.clone(), flaky.clone());
    let stats = up.stats();
    w.upload_all(up, 30).await;
    assert!(stats.failed_attempts.load(Ordering::SeqCst) >= 1);
    assert_eq!(stats.uploaded.load(Ordering::SeqCst), 1);
    assert_stored(&w, id, &data).await;
}

#[test]
fn backoff_grows_exponentially_with_jitter_and_is_capped() {
    let cfg = bot_gateway::uploader::UploaderConfig {
        concurrency: 1,
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_secs(10),
        scan_interval: Duration::from_secs(1),
        shutdown_grace: Duration::from_secs(1),
    };
    for _ in 0..200 {
        let d1 = backoff(&cfg, 1);
        assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
        let d4 = backoff(&cfg, 4);
        assert!(d4 >= Duration::from_millis(400) && d4 <= Duration::from_millis(800));
        let d30 = backoff(&cfg, 30);
        assert!(d30 >= Duration::from_secs(5) && d30 <= Duration::from_secs(10));
    }
    let spread: BTreeSet<_> = (0..50).map(|_| backoff(&cfg, 5)).collect();
    assert!(spread.len() > 5, "jittered");
}

#[tokio::test]
async fn metadata_failure_after_the_blob_upload_leaves_no_orphan_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let (store, blobs) = local_stores(&root).await;
    let w = World::with_in(dir, store.clone(), blobs.clone(), None).await;
    let faulty = FaultyStore::new(store.clone());
    faulty.fail("set_recording_media", 1);
    let (id, data) = w.record(2, 100_000).await;
    let up = w.uploader(faulty.clone(), blobs.clone());
    let err = up.upload_once(id).await.unwrap_err();
    assert!(matches!(err, UploadError::Store(_)), "{err}");
    // Blobs and manifest are there, the metadata is not, the spool is kept.
    let first_blob = blob_bytes(
        blobs.as_ref(),
        &w.container(),
        &format!("recordings/{id}/stream-0.ogg.env"),
    )
    .await;
    assert!(
        w.store
            .get_recording(w.tenant, id)
            .await
            .unwrap()
            .media
            .is_none()
    );
    assert_eq!(w.spool.entries().len(), 1);

    // Restart: a new spool and uploader on the same directories.
    drop(up);
    let World {
        dir,
        spool,
        signer,
        tenant,
        keys,
        ..
    } = w;
    spool.shutdown();
    drop(spool);
    let spool = Spool::open(spool_config(dir.path()), keys.clone())
        .await
        .unwrap();
    assert_eq!(spool.finished().len(), 1);
    let w = World {
        dir,
        store: store.clone(),
        blobs: blobs.clone(),
        keys,
        signer,
        tenant,
        spool,
    };
    w.upload_all(w.uploader(store.clone(), blobs.clone()), 30)
        .await;
    assert_stored(&w, id, &data).await;
    // The re-upload wrote the very same bytes over the same key.
    let again = blob_bytes(
        blobs.as_ref(),
        &w.container(),
        &format!("recordings/{id}/stream-0.ogg.env"),
    )
    .await;
    assert!(again == first_blob, "deterministic re-encryption");
}

#[tokio::test]
async fn twenty_recordings_finishing_while_storage_is_down_are_all_uploaded_once() {
    let w = World::local().await;
    let flaky = FlakyBlobs::new(w.blobs.clone());
    let faulty = FaultyStore::new(w.store.clone());
    flaky.down.store(true, Ordering::SeqCst);
    faulty.down.store(true, Ordering::SeqCst);
    let up = w.uploader(faulty.clone(), flaky.clone());
    let stats = up.stats();
    let stop = CancellationToken::new();
    let task = tokio::spawn(up.run(stop.clone()));
    let mut recs = Vec::new();
    for i in 0..20 {
        recs.push(w.record(1 + i % 2, 20_000 + i * 100).await);
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(w.spool.finished().len(), 20, "nothing lost while down");
    assert!(stats.failed_attempts.load(Ordering::SeqCst) >= 20);
    flaky.down.store(false, Ordering::SeqCst);
    faulty.down.store(false, Ordering::SeqCst);
    w.wait_empty(60).await;
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

#[tokio::test]
async fn a_spool_log_changed_after_finish_is_not_uploaded() {
    let w = World::local().await;
    let (id, _) = w.record(1, 50_000).await;
    let path = w.spool.media_path(id);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let up = w.uploader(w.store.clone(), w.blobs.clone());
    let err = up.upload_once(id).await.unwrap_err();
    assert!(matches!(err, UploadError::Integrity(_)), "{err}");
    assert_eq!(w.spool.entries().len(), 1, "kept for inspection");
    let stored = w
        .blobs
        .list(&w.container(), &recording_prefix(id))
        .await
        .unwrap();
    assert!(stored.is_empty(), "a failed put leaves nothing: {stored:?}");
}

#[tokio::test]
async fn recordings_waiting_too_long_are_audited_and_kept_until_storage_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (store, blobs) = local_stores(dir.path()).await;
    let mut cfg = spool_config(dir.path());
    cfg.max_age = Duration::from_millis(600);
    cfg.warn_age = Duration::from_millis(300);
    let w = World::with_in(dir, store, blobs, Some(cfg)).await;
    // Blob storage is down for good.
    let flaky = FlakyBlobs::new(w.blobs.clone());
    flaky.down.store(true, Ordering::SeqCst);
    let (id, data) = w.record(1, 10_000).await;
    let up = w.uploader(w.store.clone(), flaky.clone());
    let stats = up.stats();
    let stop = CancellationToken::new();
    let task = tokio::spawn(up.run(stop.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while stats.alarms_audited.load(Ordering::SeqCst) < 2 {
        assert!(tokio::time::Instant::now() < deadline, "alarms not audited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = w
        .store
        .list_audit(
            w.tenant,
            &AuditQuery {
                recording_id: Some(id),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e.details["event"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["spool-expiry-warning", "spool-expired"]);
    assert!(events.iter().all(|e| e.target.as_deref() == Some("spool")));
    assert_eq!(w.spool.entries().len(), 1, "expired, but kept");
    // Storage comes back: uploaded after all.
    flaky.down.store(false, Ordering::SeqCst);
    w.wait_empty(30).await;
    stop.cancel();
    task.await.unwrap();
    assert_stored(&w, id, &data).await;
    // Audited once each, not again.
    let events = w
        .store
        .list_audit(
            w.tenant,
            &AuditQuery {
                recording_id: Some(id),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
}

#[tokio::test]
async fn verify_names_every_kind_of_tampering() {
    let w = World::local().await;
    let (id, data) = w.record(2, 120_000).await;
    w.upload_all(w.uploader(w.store.clone(), w.blobs.clone()), 30)
        .await;
    assert_stored(&w, id, &data).await;
    let c = w.container();
    let verify = |trusted: Vec<ed25519_dalek::VerifyingKey>| {
        let w = &w;
        async move {
            verify_recording(
                w.store.as_ref(),
                w.blobs.as_ref(),
                w.keys.as_ref(),
                &trusted,
                w.tenant,
                id,
            )
            .await
            .unwrap()
        }
    };
    let trusted = vec![w.signer.verifying_key()];
    let put = |key: String, bytes: Vec<u8>| {
        let w = &w;
        let c = c.clone();
        async move {
            w.blobs.put(&c, &key, &mut &bytes[..]).await.unwrap();
        }
    };

    // 1. A flipped byte in a stream blob.
    let k1 = format!("recordings/{id}/stream-1.ogg.env");
    let orig = blob_bytes(w.blobs.as_ref(), &c, &k1).await;
    let mut bad = orig.clone();
    bad[5000] ^= 1;
    put(k1.clone(), bad).await;
    let r = verify(trusted.clone()).await;
    assert!(!r.is_ok());
    assert!(
        r.mismatches
            .iter()
            .any(|m| matches!(m, Mismatch::BlobSha256 { stream: 1, key, .. } if *key == k1)),
        "{r}"
    );
    assert!(
        r.mismatches
            .iter()
            .any(|m| matches!(m, Mismatch::Decrypt { stream: 1, .. })),
        "{r}"
    );
    assert!(r.to_string().contains(&k1));
    put(k1.clone(), orig).await;
    assert!(verify(trusted.clone()).await.is_ok());

    // 2. Edited metadata.
    let rec = w.store.get_recording(w.tenant, id).await.unwrap();
    let media = rec.media.clone().unwrap();
    let mut edited = media.clone();
    edited.sha256 = "0".repeat(64);
    w.store
        .set_recording_media(w.tenant, id, Some(&edited))
        .await
        .unwrap();
    let r = verify(trusted.clone()).await;
    assert!(
        r.mismatches.iter().any(|m| matches!(
            m,
            Mismatch::MetadataField { field, .. } if field == "media.sha256"
        )),
        "{r}"
    );
    w.store
        .set_recording_media(w.tenant, id, Some(&media))
        .await
        .unwrap();

    // 3. Edited manifest (signature no longer matches).
    let mk = manifest_key(id);
    let orig_manifest = blob_bytes(w.blobs.as_ref(), &c, &mk).await;
    let mut m = SignedManifest::from_bytes(&orig_manifest).unwrap();
    m.manifest.streams[0].records[0].sha256 = "f".repeat(64);
    put(mk.clone(), m.to_bytes().unwrap()).await;
    let r = verify(trusted.clone()).await;
    assert!(
        r.mismatches
            .iter()
            .any(|m| matches!(m, Mismatch::BadSignature { .. })),
        "{r}"
    );
    assert!(
        r.mismatches.iter().any(|m| matches!(
            m,
            Mismatch::SpoolRecord {
                stream: 0,
                index: 0
            }
        )),
        "the edited record hash is named too: {r}"
    );

    // 4. Re-signed by someone else: valid signature, untrusted signer.
    let other = InstallationKey::open_or_create(w.dir.path().join("other-key.json")).unwrap();
    let resigned = SignedManifest::sign(m.manifest.clone(), &other).unwrap();
    put(mk.clone(), resigned.to_bytes().unwrap()).await;
    let r = verify(trusted.clone()).await;
    assert!(
        r.mismatches
            .iter()
            .any(|m| matches!(m, Mismatch::UntrustedSigner { .. })),
        "{r}"
    );
    put(mk.clone(), orig_manifest).await;
    assert!(verify(trusted.clone()).await.is_ok());

    // 5. A missing blob and an unlisted one.
    let k0 = format!("recordings/{id}/stream-0.ogg.env");
    let b0 = blob_bytes(w.blobs.as_ref(), &c, &k0).await;
    w.blobs.delete(&c, &k0).await.unwrap();
    put(format!("recordings/{id}/extra.bin"), b"x".to_vec()).await;
    let r = verify(trusted.clone()).await;
    assert!(
        r.mismatches
            .iter()
            .any(|m| matches!(m, Mismatch::BlobMissing { key } if *key == k0)),
        "{r}"
    );
    assert!(
        r.mismatches
            .iter()
            .any(|m| matches!(m, Mismatch::UnlistedBlob { key } if key.ends_with("extra.bin"))),
        "{r}"
    );
    w.blobs
        .delete(&c, &format!("recordings/{id}/extra.bin"))
        .await
        .unwrap();
    put(k0, b0).await;

    // 6. No trusted key at all.
    let r = verify(vec![]).await;
    assert!(
        r.mismatches
            .iter()
            .any(|m| matches!(m, Mismatch::UntrustedSigner { .. }))
    );
    assert!(verify(trusted).await.is_ok());
}

#[tokio::test]
async fn a_recording_without_metadata_waits_until_the_webhook_inserts_it() {
    let w = World::local().await;
    let id = RecordingId::new();
    let data = w.spool_recording(id, 1, 5_000).await;
    let up = w.uploader(w.store.clone(), w.blobs.clone());
    assert!(matches!(
        up.upload_once(id).await,
        Err(UploadError::MetadataMissing)
    ));
    let mut r = Recording::new(w.tenant, RecordingKind::Call, Direction::Inbound, now());
    r.id = id;
    w.store.insert_recording(w.tenant, &r).await.unwrap();
    up.upload_once(id).await.unwrap();
    let rec = w.store.get_recording(w.tenant, id).await.unwrap();
    assert_eq!(rec.media.unwrap().plaintext_size, data[0].len() as i64);
    assert!(w.spool.entries().is_empty());
    let _ = Arc::strong_count(&w.store);
}
