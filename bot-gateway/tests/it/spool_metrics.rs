//! The spool's and uploader's metrics, through a recorder installed for
//! this test binary alone (one test, so no other test moves the gauges).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::uploader_support as support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bot_gateway::spool::{NewRecording, NewStream, SpoolError};
use insights_core::domain::now;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use support::*;
use tokio_util::sync::CancellationToken;

/// Counters accumulated across snapshots (a snapshot resets them), gauges
/// as of the last snapshot.
struct Metrics {
    snap: Snapshotter,
    counters: HashMap<String, u64>,
    gauges: HashMap<String, f64>,
}

impl Metrics {
    fn refresh(&mut self) {
        self.snapshot(true)
    }

    fn snapshot(&mut self, gauges: bool) {
        for (ck, _, _, v) in self.snap.snapshot().into_vec() {
            let mut name = ck.key().name().to_owned();
            for l in ck.key().labels() {
                name.push_str(&format!("{{{}={}}}", l.key(), l.value()));
            }
            match v {
                DebugValue::Counter(n) => *self.counters.entry(name).or_default() += n,
                DebugValue::Gauge(g) if gauges => {
                    self.gauges.insert(name, g.into_inner());
                }
                DebugValue::Gauge(_) | DebugValue::Histogram(_) => {}
            }
        }
    }

    fn counter(&mut self, name: &str) -> u64 {
        self.snapshot(false);
        self.counters.get(name).copied().unwrap_or(0)
    }

    /// As of the last refresh (a snapshot also resets gauges, so the test
    /// refreshes once right after the spool published them).
    fn gauge(&mut self, name: &str) -> f64 {
        self.gauges.get(name).copied().unwrap_or(f64::NAN)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_and_uploader_metrics() {
    let recorder = DebuggingRecorder::new();
    let mut m = Metrics {
        snap: recorder.snapshotter(),
        counters: HashMap::new(),
        gauges: HashMap::new(),
    };
    recorder.install().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (store, blobs) = local_stores(dir.path()).await;
    let mut cfg = spool_config(dir.path());
    cfg.quota_bytes = 1_000_000;
    cfg.call_reserve_bytes = 400_000;
    cfg.max_age = Duration::from_millis(800);
    cfg.warn_age = Duration::from_millis(400);
    let w = World::with_in(dir, store, blobs, Some(cfg)).await;

    // Two live calls; the third is refused.
    let mut live = Vec::new();
    for _ in 0..3 {
        let id = w.insert_metadata(1).await;
        let r = w
            .spool
            .begin(NewRecording {
                tenant_id: w.tenant,
                recording_id: id,
                started_at: now(),
                participants: vec![],
                streams: vec![NewStream {
                    stream_id: Default::default(),
                    participant_id: None,
                    content_type: "audio/ogg".into(),
                }],
            })
            .await;
        match r {
            Ok(r) => live.push(r),
            Err(e) => assert!(matches!(e, SpoolError::Full { .. }), "{e}"),
        }
    }
    assert_eq!(live.len(), 2);
    assert_eq!(m.counter("insights_spool_full_total"), 1);
    for r in &live {
        r.write(0, &payload(50_000, 1)).unwrap();
    }
    w.spool.sync_all();
    m.refresh();
    assert_eq!(m.gauge("insights_calls_active"), 2.0);
    assert!(m.gauge("insights_spool_bytes") >= 100_000.0);
    assert!(m.gauge("insights_spool_oldest_entry_age_seconds") >= 0.0);

    // Storage down: uploads fail, the entries age into both alarms.
    let flaky = FlakyBlobs::new(w.blobs.clone());
    flaky.down.store(true, Ordering::SeqCst);
    for r in live {
        r.finish().await.unwrap();
    }
    let up = w.uploader(w.store.clone(), flaky.clone());
    let stats = up.stats();
    let stop = CancellationToken::new();
    let task = tokio::spawn(up.run(stop.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while stats.alarms_audited.load(Ordering::SeqCst) < 4 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    w.spool.sync_all();
    m.refresh();
    assert_eq!(m.gauge("insights_calls_active"), 0.0);
    assert_eq!(m.counter("insights_spool_expiry_warnings_total"), 2);
    assert_eq!(m.counter("insights_spool_expired_total"), 2);
    assert_eq!(m.gauge("insights_spool_expired_entries"), 2.0);
    assert!(m.counter("insights_uploads_total{result=failed}") >= 2);
    assert!(m.gauge("insights_spool_oldest_entry_age_seconds") >= 0.8);

    // Storage back: both uploaded, gauges fall back.
    flaky.down.store(false, Ordering::SeqCst);
    w.wait_empty(30).await;
    stop.cancel();
    task.await.unwrap();
    w.spool.sync_all();
    m.refresh();
    assert_eq!(m.counter("insights_uploads_total{result=ok}"), 2);
    assert_eq!(m.gauge("insights_spool_expired_entries"), 0.0);
    assert_eq!(m.gauge("insights_spool_entries"), 0.0);
    assert_eq!(m.gauge("insights_spool_oldest_entry_age_seconds"), 0.0);
    assert!(m.gauge("insights_spool_bytes") < 1000.0);
}
