//! Media ingest end to end: a call set up through the real webhook, its
//! audio streamed over the media WebSocket, recorded, spooled, uploaded,
//! then fetched, decrypted and decoded; auth, refusals, spool quota.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::ingest_support;
use crate::support;

use std::f64::consts::PI;
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use bot_gateway::custody::InstallationKey;
use bot_gateway::graph::RecordingStatusReport;
use bot_gateway::ingest::protocol::{AudioMessage, Buffer, Encoding};
use bot_gateway::uploader::{Uploader, UploaderConfig};
use futures::StreamExt;
use ingest_support::{MEDIA_TOKEN, World, tree_contains};
use insights_core::crypto::{ExpectedIds, decrypt_to_vec};
use insights_core::domain::{RecordingId, RecordingStatus};
use serde_json::json;

const T0: i64 = 638_700_000_000_000_000;
const FRAMES: usize = 500; // 10 s

pub(crate) fn tone(freq: f64, frame: usize, amp: f64) -> Vec<i16> {
    (0..320)
        .map(|i| {
            let n = (frame * 320 + i) as f64;
            (amp * (2.0 * PI * freq * n / 16_000.0).sin()) as i16
        })
        .collect()
}

fn le(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().flat_map(|s| s.to_le_bytes()).collect()
}

pub(crate) fn message(i: usize, buffers: Vec<(u32, Vec<i16>)>) -> Vec<u8> {
    AudioMessage {
        encoding: Encoding::Pcm16,
        sequence: i as u64,
        timestamp: T0 + i as i64 * 200_000,
        buffers: buffers
            .into_iter()
            .map(|(source_id, pcm)| Buffer {
                source_id,
                payload: le(&pcm),
            })
            .collect(),
    }
    .encode()
    .unwrap()
}

/// Normalised correlation, best over small lags.
fn correlation(a: &[i16], b: &[f64]) -> f64 {
    let mut best = 0.0f64;
    for lag in -40i64..=40 {
        let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
        for (i, &y) in b.iter().enumerate() {
            let j = i as i64 + lag;
            if j < 0 || j as usize >= a.len() {
                continue;
            }
            let x = f64::from(a[j as usize]);
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        if aa > 0.0 && bb > 0.0 {
            best = best.max(ab / (aa.sqrt() * bb.sqrt()));
        }
    }
    best
}

pub(crate) fn uploader(w: &World) -> Uploader {
    let signer = Arc::new(
        InstallationKey::open_or_create(w.dir.path().join("keys/installation.json")).unwrap(),
    );
    Uploader::new(
        w.spool.clone(),
        w.store.clone(),
        w.blobs.clone(),
        signer,
        UploaderConfig {
            concurrency: 2,
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            scan_interval: Duration::from_millis(50),
            shutdown_grace: Duration::from_secs(5),
        },
    )
}

async fn stored_media(w: &World, id: RecordingId) -> Vec<u8> {
    let rec = w.store.get_recording(w.tenant.id, id).await.unwrap();
    let media = rec.media.expect("media stored");
    let wrapped = w
        .store
        .get_data_key(w.tenant.id, media.data_key_id)
        .await
        .unwrap();
    let key = w.keys.unwrap(&wrapped).await.unwrap();
    let mut s = w
        .blobs
        .get_stream(&media.container, &media.key)
        .await
        .unwrap();
    let mut ct = Vec::new();
    while let Some(b) = s.next().await {
        ct.extend_from_slice(&b.unwrap());
    }
    decrypt_to_vec(
        &key,
        &ct,
        &ExpectedIds::new(w.tenant.id, id.as_uuid(), media.data_key_id),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_party_call_is_recorded_caller_left_callee_right() {
    let w = World::start(|_| {}).await;
    let id = w.two_party_call("call-1").await;
    let mut a = w.connect("call-1", Some(MEDIA_TOKEN)).await.unwrap();
    let ready = a.hello().await;
    assert_eq!(ready["type"], "ready", "{ready}");
    assert_eq!(ready["recording_id"], id.to_string());

    // `recording` was acknowledged before the spool had an entry for the
    // call at all (so certainly before any media byte).
    let calls = w.probe.calls.lock().unwrap().clone();
    let rec_report = calls
        .iter()
        .find(|c| c.call_id == "call-1" && c.status == Some(RecordingStatusReport::Recording))
        .expect("recording reported");
    assert!(
        rec_report.spool.iter().all(|(r, _)| *r != id),
        "spool entry existed before the status was acknowledged: {:?}",
        rec_report.spool
    );
    assert!(w.spool.entry(id).is_some(), "spool entry after ready");

    // 10 s, unmixed: caller (source 11) 440 Hz, callee (source 10) 1 kHz.
    // Every 50th message is lost, every 37th duplicated, pairs at
    // multiples of 23 swapped (reordered by one frame).
    let missing = |i: usize| i % 50 == 25;
    let mut order: Vec<usize> = (0..FRAMES).collect();
    for i in (23..FRAMES - 1).step_by(23) {
        order.swap(i, i + 1);
    }
    for &i in &order {
        if missing(i) {
            continue;
        }
        let m = message(
            i,
            vec![(11, tone(440.0, i, 8000.0)), (10, tone(1000.0, i, 8000.0))],
        );
        a.binary(m.clone()).await;
        if i % 37 == 0 {
            a.binary(m).await;
        }
    }
    a.text(json!({"type": "end"})).await;
    let closed = a.recv().await;
    assert_eq!(closed["type"], "closed", "{closed}");
    assert_eq!(closed["recording_id"], id.to_string());

    // Finished in the spool, stream row and status stored, notRecording.
    let entry = w.spool.entry(id).expect("entry");
    assert_eq!(
        entry.journal.state,
        bot_gateway::spool::journal::EntryState::Finished
    );
    assert!(entry.journal.partial.is_none());
    let rec = w.store.get_recording(w.tenant.id, id).await.unwrap();
    assert_eq!(rec.status, RecordingStatus::Spooled);
    assert_eq!(rec.streams.len(), 1);
    assert_eq!(rec.streams[0].id, entry.journal.streams[0].stream_id);
    assert!(
        w.probe.calls.lock().unwrap().iter().any(|c| c.call_id == "call-1"
            && c.status == Some(RecordingStatusReport::NotRecording))
    );

    // No raw PCM of the test signal anywhere in the spool.
    let needle = le(&tone(440.0, 100, 8000.0))[100..164].to_vec();
    let needle2 = le(&tone(1000.0, 200, 8000.0))[100..164].to_vec();
    for n in [&needle, &needle2] {
        assert!(tree_contains(&w.dir.path().join("spool"), n).is_empty());
    }

    // Upload, fetch, decrypt, decode.
    uploader(&w).upload_once(id).await.unwrap();
    for n in [&needle, &needle2] {
        assert!(tree_contains(&w.dir.path().join("blobs"), n).is_empty());
    }
    let rec = w.store.get_recording(w.tenant.id, id).await.unwrap();
    assert_eq!(rec.status, RecordingStatus::Stored);
    let ogg = stored_media(&w, id).await;
    let decoded = recorder::decode_ogg_opus(Cursor::new(ogg), 16_000).unwrap();
    assert_eq!(decoded.channels.len(), 2);
    let dur = decoded.duration_ms();
    assert!((dur - 10_000.0).abs() <= 40.0, "duration {dur} ms");
    let reference = |freq: f64| -> Vec<f64> {
        (0..FRAMES)
            .flat_map(|i| {
                let t = tone(freq, i, 8000.0);
                t.into_iter()
                    .map(move |s| if missing(i) { 0.0 } else { f64::from(s) })
            })
            .collect()
    };
    let (caller_ref, callee_ref) = (reference(440.0), reference(1000.0));
    let left_caller = correlation(&decoded.channels[0], &caller_ref);
    let right_callee = correlation(&decoded.channels[1], &callee_ref);
    let left_callee = correlation(&decoded.channels[0], &callee_ref);
    let right_caller = correlation(&decoded.channels[1], &caller_ref);
    eprintln!(
        "left~caller {left_caller:.3} right~callee {right_callee:.3} left~callee {left_callee:.3} right~caller {right_caller:.3} duration {dur} ms"
    );
    assert!(left_caller > 0.9, "left/caller {left_caller}");
    assert!(right_callee > 0.9, "right/callee {right_callee}");
    assert!(left_callee < 0.1, "left/callee {left_callee}");
    assert!(right_caller < 0.1, "right/caller {right_caller}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_missing_token_is_refused_before_the_upgrade() {
    let w = World::start(|_| {}).await;
    w.two_party_call("call-2").await;
    assert_eq!(w.connect("call-2", None).await.err(), Some(401));
    assert_eq!(
        w.connect("call-2", Some("not-the-token")).await.err(),
        Some(401)
    );
    assert!(w.spool.entries().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_call_and_bad_hello_are_refused() {
    let w = World::start(|_| {}).await;
    let mut a = w.connect("no-such-call", Some(MEDIA_TOKEN)).await.unwrap();
    let r = a.hello().await;
    assert_eq!(r["type"], "refused");
    assert_eq!(r["code"], "unknown-call");

    w.two_party_call("call-3").await;
    let mut a = w.connect("call-3", Some(MEDIA_TOKEN)).await.unwrap();
    a.text(json!({"type": "hello", "protocol": "insights-media/9", "encoding": "pcm16", "mode": "unmixed"}))
        .await;
    let r = a.recv().await;
    assert_eq!(r["code"], "bad-request", "{r}");
    assert!(w.spool.entries().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_spool_refuses_new_calls_while_a_running_call_completes() {
    // Room for exactly one call.
    let w = World::start(|c| {
        c.call_reserve_bytes = 1 << 20;
        c.quota_bytes = (1 << 20) + (1 << 19);
    })
    .await;
    let a_id = w.two_party_call("call-a").await;
    w.two_party_call("call-b").await;
    let mut a = w.connect("call-a", Some(MEDIA_TOKEN)).await.unwrap();
    assert_eq!(a.hello().await["type"], "ready");
    for i in 0..100 {
        a.binary(message(i, vec![(11, tone(440.0, i, 8000.0))]))
            .await;
    }
    // B's media: the spool is full now.
    let mut b = w.connect("call-b", Some(MEDIA_TOKEN)).await.unwrap();
    let r = b.hello().await;
    assert_eq!(r["code"], "spool-full", "{r}");
    assert!(
        w.probe
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.call_id == "call-b" && c.status == Some(RecordingStatusReport::Failed))
    );
    // A new invite is refused by the webhook's admission control.
    let carol = support::notify::Person::new("Carol Ng", "carol@contoso.example");
    let invite = support::notify::Invite::new("call-c", &w.tid, &carol, "callee");
    assert_eq!(w.notify(vec![invite.notification()]).await, 202);
    let c = w
        .store
        .recording_by_external_call_id(w.tenant.id, "call-c")
        .await
        .unwrap();
    assert_eq!(c.status, RecordingStatus::Failed);
    assert_eq!(c.result_code.as_deref(), Some("refused:spool-full"));
    // A goes on and completes.
    for i in 100..200 {
        a.binary(message(i, vec![(11, tone(440.0, i, 8000.0))]))
            .await;
    }
    a.text(json!({"type": "end"})).await;
    assert_eq!(a.recv().await["type"], "closed");
    let entry = w.spool.entry(a_id).unwrap();
    assert!(entry.journal.partial.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_socket_closes_the_recording_as_partial() {
    let w = World::start(|_| {}).await;
    let id = w.two_party_call("call-d").await;
    let mut a = w.connect("call-d", Some(MEDIA_TOKEN)).await.unwrap();
    assert_eq!(a.hello().await["type"], "ready");
    for i in 0..100 {
        a.binary(message(i, vec![(10, tone(1000.0, i, 8000.0))]))
            .await;
    }
    // Let the gateway take in what was sent, then vanish without `end`
    // or a close frame.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(a);
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let e = w.spool.entry(id).unwrap();
        if e.journal.state == bot_gateway::spool::journal::EntryState::Finished {
            assert!(e.journal.partial.is_some());
            break;
        }
        assert!(std::time::Instant::now() < until, "not closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        w.probe
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.call_id == "call-d" && c.status == Some(RecordingStatusReport::Failed))
    );
    // What was sent is in the uploaded recording.
    uploader(&w).upload_once(id).await.unwrap();
    let decoded =
        recorder::decode_ogg_opus(Cursor::new(stored_media(&w, id).await), 16_000).unwrap();
    let dur = decoded.duration_ms();
    assert!((dur - 2_000.0).abs() <= 40.0, "duration {dur} ms");
}
