//! The media path across crates: envelope-encrypt a recording, store the
//! ciphertext in the tenant's container and the wrapped data key in the
//! metadata store, read random byte ranges back the way playback will,
//! then crypto-shred the key and check the media can no longer be read.
//! Runs on both deployments: SQLite + local files, PostgreSQL + Azurite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use insights_core::crypto::envelope::{self, Header};
use insights_core::crypto::{CryptoError, DataKey, KeyProvider};
use insights_core::domain::*;
use insights_core::store::StoreError;
use insights_tests::world::{Blobs, Metadata, World};
use rand::{Rng, RngCore, SeedableRng};

async fn sqlite_local() -> World {
    World::sqlite().await
}

async fn postgres_azurite() -> World {
    World::new(Metadata::Postgres, Blobs::Azurite).await
}

/// Stores one encrypted recording and returns it with its plaintext.
async fn store_recording(w: &World, tenant: &Tenant, plaintext: &[u8]) -> Recording {
    let container = Tenant::container_name(tenant.id);
    w.keys.ensure_kek(tenant.id).await.unwrap();
    w.blobs.ensure_container(&container).await.unwrap();

    let mut rec = Recording::new(tenant.id, RecordingKind::Call, Direction::Inbound, now());
    let key = DataKey::generate(KeyId::new());
    w.store
        .put_data_key(tenant.id, &w.keys.wrap(tenant.id, &key).await.unwrap())
        .await
        .unwrap();
    let header = Header::new(tenant.id, rec.id.as_uuid(), key.id);
    let ciphertext = envelope::encrypt_to_vec(&key, &header, plaintext).unwrap();
    drop(key);

    let blob_key = format!("recordings/{}.ogg.env", rec.id);
    let put = w
        .blobs
        .put(&container, &blob_key, &mut &ciphertext[..])
        .await
        .unwrap();
    assert_eq!(put.byte_size, ciphertext.len() as u64);
    rec.media = Some(MediaObject {
        container,
        key: blob_key,
        byte_size: put.byte_size as i64,
        sha256: put.sha256,
        data_key_id: header.key_id(),
        content_type: "audio/ogg".into(),
        plaintext_size: plaintext.len() as i64,
    });
    rec.status = RecordingStatus::Stored;
    w.store.insert_recording(tenant.id, &rec).await.unwrap();
    rec
}

/// Reads plaintext bytes `range` of a stored recording as playback does:
/// header once, then only the chunks the range covers.
async fn read_range(
    w: &World,
    tenant: TenantId,
    id: RecordingId,
    range: std::ops::Range<u64>,
) -> Result<Vec<u8>, String> {
    let rec = w
        .store
        .get_recording(tenant, id)
        .await
        .map_err(|e| e.to_string())?;
    let media = rec.media.ok_or("no media")?;
    let wrapped = w
        .store
        .get_data_key(tenant, media.data_key_id)
        .await
        .map_err(|e| e.to_string())?;
    let key = w.keys.unwrap(&wrapped).await.map_err(|e| e.to_string())?;
    let head = w
        .blobs
        .get_range(&media.container, &media.key, 0..Header::LEN as u64)
        .await
        .map_err(|e| e.to_string())?;
    let expected = envelope::ExpectedIds::new(tenant, id.as_uuid(), media.data_key_id);
    let header = Header::decode_expected(&head, &expected).map_err(|e| e.to_string())?;
    let plan = header
        .plan_range(range, media.byte_size as u64)
        .map_err(|e| e.to_string())?;
    let fetched = if plan.fetch().is_empty() {
        bytes::Bytes::new()
    } else {
        w.blobs
            .get_range(&media.container, &media.key, plan.fetch())
            .await
            .map_err(|e| e.to_string())?
    };
    envelope::decrypt_range(&key, &header, &plan, &fetched).map_err(|e| e.to_string())
}

async fn media_round_trip_and_crypto_shredding(w: World) {
    let tenant = w
        .store
        .create_tenant(NewTenant {
            name: "media".into(),
            directory_tenant_id: None,
        })
        .await
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut plaintext = vec![0u8; 1_000_003];
    rng.fill_bytes(&mut plaintext);
    let rec = store_recording(&w, &tenant, &plaintext).await;

    // The stored object is ciphertext, not the media.
    let media = rec.media.clone().unwrap();
    let stored = w
        .blobs
        .get_range(&media.container, &media.key, 0..4096)
        .await
        .unwrap();
    assert!(
        !plaintext
            .windows(64)
            .take(64)
            .any(|win| stored.windows(64).any(|s| s == win))
    );

    // Random ranges, as HTTP Range playback will ask for them.
    let len = plaintext.len() as u64;
    for _ in 0..25 {
        let a = rng.random_range(0..len);
        let b = rng.random_range(a..=len.min(a + 300_000));
        assert_eq!(
            read_range(&w, tenant.id, rec.id, a..b).await.unwrap(),
            &plaintext[a as usize..b as usize]
        );
    }
    assert_eq!(
        read_range(&w, tenant.id, rec.id, 0..len).await.unwrap(),
        plaintext
    );
    assert!(read_range(&w, tenant.id, rec.id, 0..len + 1).await.is_err());

    // Another tenant can neither see the recording nor its key.
    let other = w
        .store
        .create_tenant(NewTenant {
            name: "other".into(),
            directory_tenant_id: None,
        })
        .await
        .unwrap();
    assert!(matches!(
        w.store.get_data_key(other.id, media.data_key_id).await,
        Err(StoreError::NotFound)
    ));
    assert!(read_range(&w, other.id, rec.id, 0..10).await.is_err());

    // Crypto-shredding: the wrapped key is destroyed; the ciphertext is
    // still there (as it would be in a backup) but can no longer be read.
    assert!(
        w.store
            .shred_data_key(tenant.id, media.data_key_id)
            .await
            .unwrap()
    );
    assert!(matches!(
        w.store.get_data_key(tenant.id, media.data_key_id).await,
        Err(StoreError::NotFound)
    ));
    assert!(w.blobs.head(&media.container, &media.key).await.is_ok());
    let err = read_range(&w, tenant.id, rec.id, 0..10).await.unwrap_err();
    assert_eq!(err, StoreError::NotFound.to_string());

    // Destroying the tenant's key-encryption key shreds every data key of
    // the tenant at once.
    let rec2 = store_recording(&w, &tenant, b"second recording").await;
    assert_eq!(
        read_range(&w, tenant.id, rec2.id, 0..6).await.unwrap(),
        b"second"
    );
    assert!(w.keys.shred_kek(tenant.id).await.unwrap());
    let wrapped = w
        .store
        .get_data_key(tenant.id, rec2.media.unwrap().data_key_id)
        .await
        .unwrap();
    assert!(matches!(
        w.keys.unwrap(&wrapped).await,
        Err(CryptoError::NoKek(_))
    ));
    drop(w.dir);
}

#[tokio::test]
async fn sqlite_and_local_files() {
    media_round_trip_and_crypto_shredding(sqlite_local().await).await;
}

#[tokio::test]
async fn postgres_and_azurite() {
    media_round_trip_and_crypto_shredding(postgres_azurite().await).await;
}
