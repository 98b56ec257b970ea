//! The uploader's retry after a KEK rotation: an earlier attempt stored
//! the recording's wrapped data key and failed later (storage down); a
//! rotation then rewrapped that stored key under the new KEK version. The
//! next attempt finds another wrapping of its key id in the store: it is
//! accepted because it unwraps to the same bytes as the spool's key (and
//! refused when it does not: another key under the same id).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;

use bot_gateway::uploader::UploadError;
use insights_core::crypto::{DataKey, WrappedDataKey};
use insights_core::domain::*;

use crate::uploader_support::*;

/// Spools a recording, lets one upload attempt fail at the first blob put
/// (after the data key was stored) and returns the stored wrapped key.
async fn half_uploaded(
    w: &World,
    flaky: &std::sync::Arc<FlakyBlobs>,
    up: &bot_gateway::uploader::Uploader,
) -> (RecordingId, Vec<Vec<u8>>, WrappedDataKey) {
    let (id, data) = w.record(1, 120_000).await;
    flaky.fail_puts.store(1, Ordering::SeqCst);
    assert!(up.upload_once(id).await.is_err(), "the put did not fail");
    let stored = w
        .store
        .data_keys_not_under(w.tenant, "", 100)
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("the failed attempt stored no data key");
    (id, data, stored)
}

#[tokio::test]
async fn a_data_key_rewrapped_by_a_rotation_between_attempts_is_accepted_when_its_bytes_are_equal()
{
    let w = World::local().await;
    let flaky = FlakyBlobs::new(w.blobs.clone());
    let up = w.uploader(w.store.clone(), flaky.clone());
    let (id, data, stored) = half_uploaded(&w, &flaky, &up).await;
    assert!(
        w.store
            .get_recording(w.tenant, id)
            .await
            .unwrap()
            .media
            .is_none()
    );

    // A rotation rewraps the stored key under a new KEK version (the old
    // version stays: the spool's copy is still wrapped under it).
    let v2 = w.keys.begin_rotation(w.tenant).await.unwrap();
    assert_ne!(v2, stored.kek_id);
    let dk = w.keys.unwrap(&stored).await.unwrap();
    let rewrapped = w.keys.wrap(w.tenant, &dk).await.unwrap();
    assert_eq!(rewrapped.kek_id, v2);
    assert!(
        w.store
            .rewrap_data_key(w.tenant, &rewrapped, &stored.kek_id)
            .await
            .unwrap()
    );

    // The retry: the stored wrapping differs from the spool's, the key is
    // the same: stored, verified, the spool copy gone.
    up.upload_once(id).await.unwrap();
    assert_stored(&w, id, &data).await;
    let now = w.store.get_data_key(w.tenant, stored.id).await.unwrap();
    assert_eq!(now.kek_id, v2, "the rotation's wrapping was kept");
}

#[tokio::test]
async fn another_data_key_stored_under_the_same_id_is_refused() {
    let w = World::local().await;
    let flaky = FlakyBlobs::new(w.blobs.clone());
    let up = w.uploader(w.store.clone(), flaky.clone());
    let (id, _, stored) = half_uploaded(&w, &flaky, &up).await;

    // The same id, rewrapped under a new version, but other key bytes.
    w.keys.begin_rotation(w.tenant).await.unwrap();
    let foreign = w
        .keys
        .wrap(w.tenant, &DataKey::generate(stored.id))
        .await
        .unwrap();
    assert!(
        w.store
            .rewrap_data_key(w.tenant, &foreign, &stored.kek_id)
            .await
            .unwrap()
    );
    match up.upload_once(id).await {
        Err(UploadError::Integrity(why)) => {
            assert!(why.contains("another data key with this id"), "{why}")
        }
        other => panic!("expected an integrity error, got {other:?}"),
    }
    assert!(
        w.store
            .get_recording(w.tenant, id)
            .await
            .unwrap()
            .media
            .is_none()
    );
}
