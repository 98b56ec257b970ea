//! Segmented upload through the real binary (issue 15 §4): a long call
//! on one gateway node, the node killed (SIGKILL) mid-call and its data
//! directory deleted (the disk is lost); the other node recovers the call
//! from the segments staged in Azurite: stored once, partial
//! (`gateway-node-lost`), at most one segment short, verified.

use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use insights_core::blob::{BlobStore, layout};
use insights_core::domain::{RecordingId, Tenant, TenantId};
use insights_stores::blob::{AzureBlobConfig, AzureBlobStore};
use insights_tests::cluster::{Cluster, ClusterSpec, tone_wav};
use sqlx::{Connection, Row};

use crate::api;

/// `[uploader] segment_seconds` of the test nodes.
const SEGMENT_SECS: u64 = 2;
/// How long the call runs on its node before the node is lost.
const CALL_SECS_BEFORE_KILL: f64 = 9.0;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One row of a query on the cluster's database, if any.
fn query_row<T: Send + 'static>(
    url: &str,
    sql: &'static str,
    f: impl FnOnce(&sqlx::postgres::PgRow) -> T + Send + 'static,
) -> Option<T> {
    let url = url.to_owned();
    rt().block_on(async move {
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_optional(&mut c)
            .await
            .unwrap();
        let out = row.as_ref().map(f);
        let _ = c.close().await;
        out
    })
}

fn count(url: &str, sql: &'static str) -> i64 {
    query_row(url, sql, |r| r.get::<i64, _>(0)).unwrap_or(0)
}

/// Seconds of Opus audio in an Ogg file: the granule position (48 kHz
/// samples) of the last *whole* page, less the pre-skip of the
/// `OpusHead` (a page cut short at the end of a partial recording does
/// not count).
fn ogg_opus_seconds(b: &[u8]) -> f64 {
    let head = b
        .windows(8)
        .position(|w| w == b"OpusHead")
        .expect("an OpusHead");
    let pre_skip = u16::from_le_bytes([b[head + 10], b[head + 11]]);
    let mut pos = 0;
    let mut granule = 0u64;
    while pos + 27 <= b.len() && &b[pos..pos + 4] == b"OggS" {
        let segments = usize::from(b[pos + 26]);
        if pos + 27 + segments > b.len() {
            break;
        }
        let body: usize = b[pos + 27..pos + 27 + segments]
            .iter()
            .map(|&l| usize::from(l))
            .sum();
        let end = pos + 27 + segments + body;
        if end > b.len() {
            break;
        }
        let g = u64::from_le_bytes(b[pos + 6..pos + 14].try_into().unwrap());
        if g != u64::MAX {
            granule = g;
        }
        pos = end;
    }
    granule.saturating_sub(u64::from(pre_skip)) as f64 / 48_000.0
}

pub fn lost_gateway_node_call_is_recovered_from_segments() {
    let mut c = Cluster::start(ClusterSpec { api_nodes: 2 });
    // Segments every 2 s on both nodes (lease 6 s).
    for i in 0..2 {
        let path = c.node(i).config_path();
        let mut cfg = std::fs::read_to_string(&path).unwrap();
        cfg.push_str(&format!("\n[uploader]\nsegment_seconds = {SEGMENT_SECS}\n"));
        std::fs::write(&path, cfg).unwrap();
        c.node_mut(i).restart();
    }
    let lb = c.lb_url();
    let http = api::client();
    c.add_tenant("contoso");
    let token = api::sign_in_new_officer(c.node(0), &lb, "contoso", "officer@contoso.com");
    let pg = c.pg_url().to_owned();

    // A long call on node 2, in real time.
    let work = c.dir().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let (a, b) = (work.join("a.wav"), work.join("b.wav"));
    tone_wav(&a, 40, 440.0);
    tone_wav(&b, 40, 660.0);
    let victim = c.node(1);
    let mut call = victim
        .command(&[
            "simulate-call",
            "--gateway",
            &victim.base_url(),
            "--tenant",
            "contoso",
            "--speed",
            "1",
            "--participant",
            &format!("Agent 7:agent7@contoso.com:{}", a.display()),
            "--participant",
            &format!("Other Party:+14255550007:{}", b.display()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // The call is live and its node stages segments.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (id, started_at) = loop {
        let live = query_row(
            &pg,
            "SELECT r.id, r.started_at FROM recordings r \
             JOIN segment_uploads s ON s.recording_id = r.id WHERE s.blocks > 0",
            |r| (r.get::<uuid::Uuid, _>(0), r.get::<DateTime<Utc>, _>(1)),
        );
        if let Some(found) = live {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no segment staged within 30 s: {}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let node_row = query_row(&pg, "SELECT node FROM segment_uploads", |r| {
        r.get::<String, _>(0)
    });
    assert_eq!(node_row.as_deref(), Some(victim.name()));

    // Node 2 is lost with its disk, mid-call.
    let since_start = (Utc::now() - started_at).to_std().unwrap_or_default();
    std::thread::sleep(Duration::from_secs_f64(CALL_SECS_BEFORE_KILL).saturating_sub(since_start));
    let data_dir = c.node(1).data_dir();
    c.node_mut(1).kill9();
    let killed_at = Utc::now();
    std::fs::remove_dir_all(&data_dir).unwrap();
    let _ = call.kill();
    let _ = call.wait();
    let elapsed = (killed_at - started_at).to_std().unwrap().as_secs_f64();

    // Node 1 takes the call over and stores it.
    let recovered = Instant::now();
    let id_s = id.to_string();
    let media = api::play_when_stored(&http, &c.node(0).base_url(), &token, &id_s);
    let took = recovered.elapsed();
    let audio = ogg_opus_seconds(&media);
    eprintln!(
        "segments: call ran {elapsed:.2} s before its node was lost; {audio:.2} s of audio \
         recovered ({:.2} s lost; segment {SEGMENT_SECS} s), stored by the other node \
         {took:.1?} after the kill",
        elapsed - audio
    );
    // At most one segment lost, plus the spool's sealing tick (0.5 s)
    // and the call's set-up before its first audio.
    assert!(
        audio >= elapsed - SEGMENT_SECS as f64 - 1.0,
        "{audio:.2} s of audio for a call of {elapsed:.2} s"
    );
    assert!(audio <= elapsed + 0.5, "{audio:.2} s > {elapsed:.2} s");

    // Stored exactly once, by node 1, partial with the reason.
    assert_eq!(count(&pg, "SELECT count(*) FROM recordings"), 1);
    assert_eq!(
        count(&pg, "SELECT count(*) FROM jobs WHERE kind = 'transcribe'"),
        1
    );
    let row = query_row(
        &pg,
        "SELECT node, epoch, journal, blocks FROM segment_uploads",
        |r| {
            (
                r.get::<String, _>(0),
                r.get::<i64, _>(1),
                r.get::<String, _>(2),
                r.get::<i64, _>(3),
            )
        },
    );
    assert_eq!(
        row,
        Some((c.node(0).name().to_owned(), 2, String::new(), 0)),
        "the row is retired by the node that took it over"
    );
    let tenant: uuid::Uuid = query_row(&pg, "SELECT id FROM tenants WHERE name = 'contoso'", |r| {
        r.get(0)
    })
    .unwrap();
    let container = Tenant::container_name(TenantId(tenant));
    let rec = RecordingId(id);
    let (manifest, staged, spool_log) = rt().block_on({
        let endpoint = c.azurite().to_owned();
        let container = container.clone();
        async move {
            let blobs = AzureBlobStore::new(AzureBlobConfig::emulator(Some(endpoint))).unwrap();
            let chunks: Vec<bytes::Bytes> = futures::TryStreamExt::try_collect(
                blobs
                    .get_stream(&container, &layout::manifest_key(rec))
                    .await
                    .unwrap(),
            )
            .await
            .unwrap();
            let staged = blobs
                .staged_blocks(&container, &layout::segment_log_key(rec))
                .await
                .unwrap();
            let head = blobs.head(&container, &layout::segment_log_key(rec)).await;
            (chunks.concat(), staged, head)
        }
    });
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(m["manifest"]["partial"], "gateway-node-lost", "{m}");
    assert!(staged.is_empty(), "staged blocks left: {staged:?}");
    assert!(spool_log.is_err(), "the staged log object is left");
    // The custody chain verifies on the surviving node.
    let report = c
        .node(0)
        .cli_ok(&["verify-recording", &id_s, "--tenant", "contoso"]);
    assert!(report.contains("no unlisted blobs"), "{report}");
    // The surviving node says what it did, without personal data.
    let log = c.node(0).log();
    assert!(log.contains("recovered from its segments"), "{}", c.logs());
    for secret in ["Agent 7", "agent7@contoso.com", "4255550007"] {
        assert!(!log.contains(secret), "node 1 logged `{secret}`");
    }
}
