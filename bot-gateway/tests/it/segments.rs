//! Segmented upload (issue 15 §4): live calls staged in the blob store
//! as uncommitted blocks, removed after a normal upload, and recovered
//! by another gateway node when theirs is lost with its disk; on SQLite +
//! local blobs and on PostgreSQL + Azurite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::uploader_support;

use std::sync::Arc;
use std::time::Duration;

use bot_gateway::custody::{
    InstallationKey, SignedManifest, manifest_key, recording_prefix, verify_recording,
};
use bot_gateway::segments::{SegmentConfig, Segments};
use bot_gateway::spool::journal::{EntryState, PartialReason};
use bot_gateway::spool::{NewRecording, NewStream, Spool, SpoolRecording};
use bot_gateway::uploader::Uploader;
use insights_core::blob::layout::segment_log_key;
use insights_core::crypto::{ExpectedIds, decrypt_to_vec};
use insights_core::domain::*;
use uploader_support::*;

fn seg_config(node: &str) -> SegmentConfig {
    SegmentConfig {
        node: node.to_owned(),
        interval: Duration::from_secs(1),
        heartbeat: Duration::from_millis(100),
        lease: Duration::from_millis(400),
    }
}

/// A second gateway node on the same stores and key provider.
struct NodeB {
    _dir: tempfile::TempDir,
    spool: Spool,
    signer: Arc<InstallationKey>,
    segments: Segments,
}

async fn node_b(w: &World) -> NodeB {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(spool_config(dir.path()), w.keys.clone())
        .await
        .unwrap();
    let signer = Arc::new(
        InstallationKey::open_or_create(dir.path().join("keys/installation-signing-key.json"))
            .unwrap(),
    );
    let segments = Segments::new(
        spool.clone(),
        w.store.clone(),
        w.blobs.clone(),
        seg_config("node-b"),
    );
    NodeB {
        _dir: dir,
        spool,
        signer,
        segments,
    }
}

impl NodeB {
    fn uploader(&self, w: &World) -> Uploader {
        Uploader::new(
            self.spool.clone(),
            w.store.clone(),
            w.blobs.clone(),
            self.signer.clone(),
            fast_uploader(),
        )
        .with_segments(self.segments.clone())
    }
}

/// Begins spooling a recording of `streams` streams (metadata inserted).
async fn begin_live(w: &World, streams: usize) -> (RecordingId, SpoolRecording) {
    let id = w.insert_metadata(streams).await;
    let rec = w.store.get_recording(w.tenant, id).await.unwrap();
    let live = w
        .spool
        .begin(NewRecording {
            tenant_id: w.tenant,
            recording_id: id,
            started_at: now(),
            participants: rec.participants.iter().map(|p| p.id).collect(),
            streams: (0..streams)
                .map(|i| NewStream {
                    stream_id: rec.streams[i].id,
                    participant_id: Some(rec.participants[i].id),
                    content_type: "audio/ogg".into(),
                })
                .collect(),
        })
        .await
        .unwrap();
    (id, live)
}

/// Writes `len` bytes per stream (recognisable, seeded by `part`) and
/// makes them durable; returns what each stream got.
fn write_part(live: &SpoolRecording, streams: usize, len: usize, part: u8) -> Vec<Vec<u8>> {
    let data: Vec<Vec<u8>> = (0..streams)
        .map(|i| payload(len, part * 16 + i as u8))
        .collect();
    for (i, d) in data.iter().enumerate() {
        for piece in d.chunks(997) {
            live.write(i, piece).unwrap();
        }
    }
    live.sync().unwrap();
    data
}

async fn staged(w: &World, id: RecordingId) -> Vec<u32> {
    w.blobs
        .staged_blocks(&w.container(), &segment_log_key(id))
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.index)
        .collect()
}

async fn blob_keys(w: &World, id: RecordingId) -> Vec<String> {
    w.blobs
        .list(&w.container(), &recording_prefix(id))
        .await
        .unwrap()
}

async fn manifest(w: &World, id: RecordingId) -> SignedManifest {
    let b = blob_bytes(w.blobs.as_ref(), &w.container(), &manifest_key(id)).await;
    SignedManifest::from_bytes(&b).unwrap()
}

/// The primary stream as stored, decrypted.
async fn stored_primary(w: &World, id: RecordingId) -> Vec<u8> {
    let rec = w.store.get_recording(w.tenant, id).await.unwrap();
    assert_eq!(rec.status, RecordingStatus::Stored);
    let media = rec.media.expect("media set");
    let wrapped = w
        .store
        .get_data_key(w.tenant, media.data_key_id)
        .await
        .unwrap();
    let key = w.keys.unwrap(&wrapped).await.unwrap();
    let ct = blob_bytes(w.blobs.as_ref(), &media.container, &media.key).await;
    decrypt_to_vec(
        &key,
        &ct,
        &ExpectedIds::new(w.tenant, id.as_uuid(), media.data_key_id),
    )
    .unwrap()
}

/// Node A records a call, stages two segments, writes a third part and
/// is lost with its disk; node B takes the call over once A's lease ran
/// out, stores it as partial (`gateway-node-lost`) with exactly the
/// staged audio, signed by B, verified, transcription queued; nothing of
/// the segments is left; a second takeover finds nothing.
async fn lost_node_call_is_recovered_by_another(w: World) {
    let a = Segments::new(
        w.spool.clone(),
        w.store.clone(),
        w.blobs.clone(),
        seg_config("node-a"),
    );
    let b = node_b(&w).await;
    let (id, live) = begin_live(&w, 2).await;

    let p1 = write_part(&live, 2, 150_000, 1);
    a.stage_round().await;
    let row = w.store.segment_upload(w.tenant, id).await.unwrap().unwrap();
    assert_eq!((row.node.as_str(), row.epoch, row.blocks), ("node-a", 1, 1));
    let p2 = write_part(&live, 2, 90_000, 2);
    a.stage_round().await;
    let row = w.store.segment_upload(w.tenant, id).await.unwrap().unwrap();
    assert_eq!(row.blocks, 2);
    assert_eq!(
        row.staged_len,
        std::fs::metadata(w.spool.media_path(id)).unwrap().len()
    );
    assert_eq!(staged(&w, id).await, vec![0, 1]);
    // Staged blocks are no object: nothing listed under the recording.
    assert!(blob_keys(&w, id).await.is_empty());
    // What is staged is sealed: the known plaintext is nowhere in it.
    assert!(tree_contains(w.dir.path(), MARKER).is_empty());
    let _p3 = write_part(&live, 2, 50_000, 3); // never staged: lost with A

    // Node A and its disk are gone.
    std::mem::forget(live);
    w.spool.shutdown();
    std::fs::remove_dir_all(w.spool.config().dir.clone()).unwrap();

    // While A's lease runs, nobody takes over.
    assert_eq!(b.segments.recover_lapsed().await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.segments.recover_lapsed().await.unwrap(), 1);
    let row = w.store.segment_upload(w.tenant, id).await.unwrap().unwrap();
    assert_eq!((row.node.as_str(), row.epoch), ("node-b", 2));
    let entry = b.spool.entry(id).expect("adopted into B's spool");
    assert_eq!(entry.journal.state, EntryState::Finished);
    assert_eq!(entry.journal.partial, Some(PartialReason::GatewayNodeLost));
    for (i, s) in entry.journal.streams.iter().enumerate() {
        let summary = s.summary.as_ref().unwrap();
        assert_eq!(
            summary.plaintext_len,
            (p1[i].len() + p2[i].len()) as u64,
            "stream {i}: exactly the staged audio"
        );
        assert!(!summary.complete);
    }

    // B's uploader stores it like any recording.
    b.uploader(&w).upload_once(id).await.unwrap();
    assert!(b.spool.entry(id).is_none());
    let primary = stored_primary(&w, id).await;
    assert!(primary == [p1[0].clone(), p2[0].clone()].concat());
    let m = manifest(&w, id).await;
    assert_eq!(m.manifest.partial.as_deref(), Some("gateway-node-lost"));
    assert_eq!(
        m.manifest.installation_id,
        b.signer.installation_id(),
        "signed by the recovering node"
    );
    let report = verify_recording(
        w.store.as_ref(),
        w.blobs.as_ref(),
        w.keys.as_ref(),
        &[b.signer.verifying_key()],
        w.tenant,
        id,
    )
    .await
    .unwrap();
    assert!(report.is_ok(), "{report}");
    let jobs = w.store.list_jobs(w.tenant, id).await.unwrap();
    assert_eq!(
        jobs.iter()
            .filter(|j| j.kind == JobKind::Transcribe)
            .count(),
        1
    );
    // Nothing of the segments is left but the retired row (the mark
    // for node A, should it come back).
    let row = w.store.segment_upload(w.tenant, id).await.unwrap().unwrap();
    assert!(row.is_retired(), "{row:?}");
    assert!(staged(&w, id).await.is_empty());
    let keys = blob_keys(&w, id).await;
    assert!(
        !keys.contains(&segment_log_key(id)),
        "no spool log object after stored: {keys:?}"
    );
    assert_eq!(keys.len(), 3, "two streams and the manifest: {keys:?}");
    // Stored once: nothing more to take over.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.segments.recover_lapsed().await.unwrap(), 0);
}

#[tokio::test]
async fn lost_node_call_is_recovered_on_sqlite_and_local_blobs() {
    lost_node_call_is_recovered_by_another(World::local().await).await;
}

#[tokio::test]
async fn lost_node_call_is_recovered_on_postgres_and_azurite() {
    use insights_tests::world::{Blobs, Metadata};
    let w = World::on(insights_tests::world::World::new(Metadata::Postgres, Blobs::Azurite).await)
        .await;
    lost_node_call_is_recovered_by_another(w).await;
}

/// A call that ends normally is stored from the local spool, complete;
/// its staged segments, object and row are removed.
async fn normal_end_leaves_no_segments(w: World) {
    let a = Segments::new(
        w.spool.clone(),
        w.store.clone(),
        w.blobs.clone(),
        seg_config("node-a"),
    );
    let (id, live) = begin_live(&w, 1).await;
    let p1 = write_part(&live, 1, 200_000, 1);
    a.stage_round().await;
    let p2 = write_part(&live, 1, 10_000, 2);
    a.stage_round().await;
    assert_eq!(staged(&w, id).await, vec![0, 1]);
    live.finish().await.unwrap();
    // A round after the end stages the tail (the last records).
    a.stage_round().await;
    assert_eq!(staged(&w, id).await, vec![0, 1, 2]);

    let up = Uploader::new(
        w.spool.clone(),
        w.store.clone(),
        w.blobs.clone(),
        w.signer.clone(),
        fast_uploader(),
    )
    .with_segments(a.clone());
    up.upload_once(id).await.unwrap();
    assert!(stored_primary(&w, id).await == [p1[0].clone(), p2[0].clone()].concat());
    assert_eq!(manifest(&w, id).await.manifest.partial, None);
    assert_eq!(w.store.segment_upload(w.tenant, id).await.unwrap(), None);
    assert!(staged(&w, id).await.is_empty());
    assert!(!blob_keys(&w, id).await.contains(&segment_log_key(id)));
    // A later round has nothing to do and begins nothing.
    a.stage_round().await;
    assert_eq!(w.store.segment_upload(w.tenant, id).await.unwrap(), None);
    assert!(staged(&w, id).await.is_empty());
}

#[tokio::test]
async fn normal_end_leaves_no_segments_on_sqlite_and_local_blobs() {
    normal_end_leaves_no_segments(World::local().await).await;
}

#[tokio::test]
async fn normal_end_leaves_no_segments_on_postgres_and_azurite() {
    use insights_tests::world::{Blobs, Metadata};
    let w = World::on(insights_tests::world::World::new(Metadata::Postgres, Blobs::Azurite).await)
        .await;
    normal_end_leaves_no_segments(w).await;
}

/// A node that went silent (no heartbeat) but kept its disk: another node
/// recovered its call; when it comes back and finishes the call, its
/// uploader finds the call taken over and drops its own copy. Stored
/// exactly once.
#[tokio::test]
async fn a_node_whose_call_was_taken_over_drops_its_copy() {
    let w = World::local().await;
    let a = Segments::new(
        w.spool.clone(),
        w.store.clone(),
        w.blobs.clone(),
        seg_config("node-a"),
    );
    let b = node_b(&w).await;
    let (id, live) = begin_live(&w, 1).await;
    let p1 = write_part(&live, 1, 100_000, 1);
    a.stage_round().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.segments.recover_lapsed().await.unwrap(), 1);
    b.uploader(&w).upload_once(id).await.unwrap();
    let stored = w.store.get_recording(w.tenant, id).await.unwrap().media;
    assert!(stored_primary(&w, id).await == p1[0]);

    // A is back: its staging is fenced, its upload refused.
    let _p2 = write_part(&live, 1, 100_000, 2);
    a.stage_round().await;
    assert!(
        staged(&w, id).await.is_empty(),
        "A staged after losing the call"
    );
    live.finish().await.unwrap();
    let up = Uploader::new(
        w.spool.clone(),
        w.store.clone(),
        w.blobs.clone(),
        w.signer.clone(),
        fast_uploader(),
    )
    .with_segments(a.clone());
    up.upload_once(id).await.unwrap();
    assert!(w.spool.entry(id).is_none(), "A dropped its copy");
    assert_eq!(
        w.store.get_recording(w.tenant, id).await.unwrap().media,
        stored,
        "stored once, by B"
    );
    assert_eq!(
        manifest(&w, id).await.manifest.installation_id,
        b.signer.installation_id()
    );
}

/// The node's heartbeat keeps its calls: a busy node is not taken over.
#[tokio::test]
async fn heartbeat_keeps_a_live_nodes_calls() {
    let w = World::local().await;
    let a = Segments::new(
        w.spool.clone(),
        w.store.clone(),
        w.blobs.clone(),
        seg_config("node-a"),
    );
    let b = node_b(&w).await;
    let (id, live) = begin_live(&w, 1).await;
    write_part(&live, 1, 10_000, 1);
    a.stage_round().await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        a.heartbeat().await;
        assert_eq!(b.segments.recover_lapsed().await.unwrap(), 0);
    }
    let row = w.store.segment_upload(w.tenant, id).await.unwrap().unwrap();
    assert_eq!((row.node.as_str(), row.epoch), ("node-a", 1));
    drop(live);
}

/// A call whose node is lost before anything of it was staged: the
/// heartbeat gave it its row at once, so the node that takes the row
/// over knows of the call and marks it failed (`gateway-node-lost`)
/// instead of leaving it `recording` for ever; no audio is invented.
#[tokio::test]
async fn a_lost_call_with_nothing_staged_ends_failed_not_recording() {
    let w = World::local().await;
    let a = Segments::new(
        w.spool.clone(),
        w.store.clone(),
        w.blobs.clone(),
        seg_config("node-a"),
    );
    let b = node_b(&w).await;
    let (id, live) = begin_live(&w, 1).await;
    write_part(&live, 1, 10_000, 1); // on A's disk only: never staged
    assert_eq!(
        w.store.get_recording(w.tenant, id).await.unwrap().status,
        RecordingStatus::Recording
    );
    a.heartbeat().await;
    let row = w.store.segment_upload(w.tenant, id).await.unwrap().unwrap();
    assert_eq!(
        (row.node.as_str(), row.epoch, row.blocks, row.staged_len),
        ("node-a", 1, 0, 0),
        "the row exists before the first segment"
    );
    assert!(staged(&w, id).await.is_empty());

    // Node A and its disk are gone before its first staging round.
    std::mem::forget(live);
    w.spool.shutdown();
    std::fs::remove_dir_all(w.spool.config().dir.clone()).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.segments.recover_lapsed().await.unwrap(), 1);

    let rec = w.store.get_recording(w.tenant, id).await.unwrap();
    assert_eq!(rec.status, RecordingStatus::Failed);
    assert_eq!(rec.result_code.as_deref(), Some("gateway-node-lost"));
    let ended = rec.ended_at.expect("ended at the lost node's last renewal");
    assert!(ended >= rec.started_at && ended <= now(), "{ended}");
    assert!(rec.media.is_none(), "no audio invented");
    assert!(b.spool.entry(id).is_none(), "nothing adopted");
    assert!(blob_keys(&w, id).await.is_empty());
    // Handled once: nothing more to take over.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.segments.recover_lapsed().await.unwrap(), 0);
}
