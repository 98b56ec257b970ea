//! Spool tests at the library level: round trip, crash recovery (file
//! truncated at every byte, dropped handles, live entries at restart, a
//! real SIGKILL of a writing child process), tamper detection, quota,
//! expiry, and that nothing on disk is clear.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::uploader_support as support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bot_gateway::spool::format::{self, RECORD_HEADER_LEN, TAG_LEN};
use bot_gateway::spool::journal::{EntryState, Journal, PartialReason};
use bot_gateway::spool::{
    AlarmKind, NewRecording, NewStream, Spool, SpoolConfig, SpoolError, SpoolRecording,
};
use chrono::Utc;
use insights_core::crypto::KeyProvider;
use insights_core::domain::{ParticipantId, RecordingId, StreamId, TenantId};
use support::{MARKER, payload, tree_contains};

struct Env {
    dir: tempfile::TempDir,
    keys: Arc<dyn KeyProvider>,
    tenant: TenantId,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let keys: Arc<dyn KeyProvider> = Arc::new(insights_tests::world::key_file(dir.path()));
    let tenant = TenantId::new();
    keys.ensure_kek(tenant).await.unwrap();
    Env { dir, keys, tenant }
}

impl Env {
    fn spool_dir(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    fn cfg(&self) -> SpoolConfig {
        self.cfg_in(self.spool_dir())
    }

    fn cfg_in(&self, dir: PathBuf) -> SpoolConfig {
        let mut c = SpoolConfig::in_dir(dir);
        c.fsync_interval = Duration::from_millis(50);
        c
    }

    async fn open(&self) -> Spool {
        Spool::open(self.cfg(), self.keys.clone()).await.unwrap()
    }

    fn new_recording(&self, streams: usize) -> NewRecording {
        NewRecording {
            tenant_id: self.tenant,
            recording_id: RecordingId::new(),
            started_at: Utc::now(),
            participants: vec![ParticipantId::new(), ParticipantId::new()],
            streams: (0..streams)
                .map(|_| NewStream {
                    stream_id: StreamId::new(),
                    participant_id: None,
                    content_type: "audio/ogg".into(),
                })
                .collect(),
        }
    }

    /// Every stream's plaintext as the log in `spool_dir` holds it.
    async fn read_back(&self, spool_dir: &Path, j: &Journal) -> Vec<Vec<u8>> {
        let key = self.keys.unwrap(&j.data_key).await.unwrap();
        let path = spool_dir.join(j.recording_id.to_string()).join("media.spl");
        let bytes = std::fs::read(&path).unwrap();
        let mut out = vec![Vec::new(); j.streams.len()];
        format::scan(&bytes[..], &key, bytes.len() as u64, |info, p| {
            out[usize::from(info.header.stream)].extend_from_slice(p)
        })
        .unwrap();
        out
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

async fn begin(spool: &Spool, req: NewRecording) -> SpoolRecording {
    spool.begin(req).await.unwrap()
}

#[tokio::test]
async fn finished_recording_round_trips_across_reopen() {
    let env = env().await;
    let spool = env.open().await;
    let req = env.new_recording(3);
    let id = req.recording_id;
    let rec = begin(&spool, req).await;
    let data: Vec<Vec<u8>> = (0..3)
        .map(|i| payload(200_000 + i * 777, i as u8))
        .collect();
    for (i, d) in data.iter().enumerate() {
        for piece in d.chunks(1500) {
            rec.write(i, piece).unwrap();
        }
    }
    // Through the io::Write handle as well.
    let mut s0 = rec.stream(0).unwrap();
    std::io::Write::write_all(&mut s0, b"tail").unwrap();
    let mut expect = data.clone();
    expect[0].extend_from_slice(b"tail");
    let done = rec.finish().await.unwrap();
    assert_eq!(done.journal.state, EntryState::Finished);
    assert_eq!(done.journal.partial, None);
    for (i, s) in done.journal.streams.iter().enumerate() {
        let sum = s.summary.as_ref().unwrap();
        assert!(sum.complete);
        assert_eq!(sum.plaintext_len, expect[i].len() as u64);
    }
    assert_eq!(spool.finished().len(), 1);
    spool.shutdown();
    drop(spool);

    let spool = env.open().await;
    let e = spool.entry(id).unwrap();
    assert_eq!(e.journal, done.journal, "the journal survives unchanged");
    assert_eq!(env.read_back(&env.spool_dir(), &e.journal).await, expect);
    assert!(spool.used_bytes() >= e.media_bytes);
}

#[tokio::test]
async fn nothing_on_disk_is_clear_media_or_a_clear_key() {
    let env = env().await;
    let spool = env.open().await;
    let req = env.new_recording(2);
    let rec = begin(&spool, req).await;
    for i in 0..2 {
        rec.write(i, &payload(150_000, i as u8)).unwrap();
    }
    rec.sync().unwrap();
    assert!(tree_contains(&env.spool_dir(), MARKER).is_empty());
    let done = rec.finish().await.unwrap();
    let key = env.keys.unwrap(&done.journal.data_key).await.unwrap();
    assert!(tree_contains(&env.spool_dir(), MARKER).is_empty());
    assert!(
        tree_contains(&env.spool_dir(), key.bytes()).is_empty(),
        "clear data key on disk"
    );
    assert!(tree_contains(&env.spool_dir(), hex::encode(key.bytes()).as_bytes()).is_empty());
    // The test has teeth: the marker is in what was written.
    assert!(payload(100, 0).windows(MARKER.len()).any(|w| w == MARKER));
}

/// Writes `pieces` to stream 0, syncing after each (one record per piece),
/// and returns the live entry's journal and the record end offsets.
async fn live_entry_with_records(
    env: &Env,
    spool: &Spool,
    pieces: &[Vec<u8>],
) -> (SpoolRecording, Journal, Vec<u64>) {
    let req = env.new_recording(1);
    let id = req.recording_id;
    let rec = begin(spool, req).await;
    let header_len = (format::FIXED_HEADER_LEN + 16) as u64;
    let mut ends = vec![header_len];
    for p in pieces {
        rec.write(0, p).unwrap();
        rec.sync().unwrap();
        let last = *ends.last().unwrap();
        ends.push(last + (RECORD_HEADER_LEN + TAG_LEN + p.len()) as u64);
    }
    let j = spool.entry(id).unwrap().journal;
    assert_eq!(j.state, EntryState::Live);
    let len = std::fs::metadata(spool.media_path(id)).unwrap().len();
    assert_eq!(len, *ends.last().unwrap(), "one record per sync");
    (rec, j, ends)
}

#[tokio::test]
async fn crash_with_log_cut_at_every_byte_recovers_exactly_the_whole_records() {
    let env = env().await;
    let spool = env.open().await;
    let pieces: Vec<Vec<u8>> = (0..4).map(|i| payload(11 + 13 * i, 0)).collect();
    let (_rec, j, ends) = live_entry_with_records(&env, &spool, &pieces).await;
    let id = j.recording_id;
    // What a crash right now leaves on disk.
    let snapshot = env.dir.path().join("snapshot");
    copy_dir(&env.spool_dir().join(id.to_string()), &snapshot);
    let full = std::fs::read(snapshot.join("media.spl")).unwrap();
    for cut in 0..=full.len() {
        let dir = env.dir.path().join(format!("cut-{cut}"));
        copy_dir(&snapshot, &dir.join(id.to_string()));
        std::fs::write(dir.join(id.to_string()).join("media.spl"), &full[..cut]).unwrap();
        let spool = Spool::open(env.cfg_in(dir.clone()), env.keys.clone())
            .await
            .unwrap();
        let e = spool.entry(id).unwrap();
        assert_eq!(e.unrecoverable, None, "cut {cut}");
        let jr = &e.journal;
        assert_eq!(jr.state, EntryState::Finished, "cut {cut}");
        assert_eq!(jr.partial, Some(PartialReason::RecoveredAfterRestart));
        let whole = ends
            .iter()
            .filter(|&&end| end <= cut as u64)
            .count()
            .saturating_sub(1);
        let expect: Vec<u8> = pieces[..whole].concat();
        let sum = jr.streams[0].summary.as_ref().unwrap();
        assert_eq!(sum.records, whole as u64, "cut {cut}");
        assert_eq!(sum.plaintext_len, expect.len() as u64, "cut {cut}");
        assert!(!sum.complete);
        let valid = if cut < ends[0] as usize {
            0
        } else {
            ends[whole]
        };
        assert_eq!(jr.valid_len, Some(valid), "cut {cut}");
        assert_eq!(jr.discarded_tail_bytes, cut as u64 - valid, "cut {cut}");
        if whole > 0 {
            assert_eq!(env.read_back(&dir, jr).await[0], expect, "cut {cut}");
        }
        spool.shutdown();
        drop(spool);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[tokio::test]
async fn live_recording_at_restart_keeps_synced_audio_and_loses_only_the_unsynced_rest() {
    let env = env().await;
    let mut cfg = env.cfg();
    cfg.fsync_interval = Duration::from_secs(3600); // no tick in this test
    let spool = Spool::open(cfg.clone(), env.keys.clone()).await.unwrap();
    let req = env.new_recording(2);
    let id = req.recording_id;
    let rec = begin(&spool, req).await;
    let synced: Vec<Vec<u8>> = (0..2).map(|i| payload(100_000, i as u8)).collect();
    for (i, d) in synced.iter().enumerate() {
        rec.write(i, d).unwrap();
    }
    rec.sync().unwrap();
    rec.write(0, b"not yet synced").unwrap();
    // The crash: copy what is on disk, then recover the copy.
    let crashed = env.dir.path().join("crashed");
    copy_dir(&env.spool_dir(), &crashed);
    std::fs::remove_file(crashed.join("spool.lock")).unwrap();
    let mut cfg2 = cfg.clone();
    cfg2.dir = crashed.clone();
    let recovered = Spool::open(cfg2, env.keys.clone()).await.unwrap();
    let e = recovered.entry(id).unwrap();
    assert_eq!(e.journal.state, EntryState::Finished);
    assert_eq!(
        e.journal.partial,
        Some(PartialReason::RecoveredAfterRestart)
    );
    assert_eq!(env.read_back(&crashed, &e.journal).await, synced);
    assert!(e.journal.finished_at.unwrap() >= e.journal.created_at);
    // A resumed call cannot reuse the id: it gets a new entry.
    let mut again = env.new_recording(1);
    again.recording_id = id;
    assert!(matches!(
        recovered.begin(again).await,
        Err(SpoolError::AlreadyExists(x)) if x == id
    ));
    drop(rec);
}

#[tokio::test]
async fn a_dropped_handle_is_closed_as_partial_with_everything_written() {
    let env = env().await;
    let spool = env.open().await;
    let req = env.new_recording(1);
    let id = req.recording_id;
    let rec = begin(&spool, req).await;
    let data = payload(70_000, 3);
    rec.write(0, &data).unwrap();
    drop(rec);
    spool.sync_all();
    let e = spool.entry(id).unwrap();
    assert_eq!(e.journal.state, EntryState::Finished);
    assert_eq!(e.journal.partial, Some(PartialReason::Abandoned));
    assert_eq!(env.read_back(&env.spool_dir(), &e.journal).await[0], data);
}

#[tokio::test]
async fn background_tick_makes_audio_durable_within_the_interval() {
    let env = env().await;
    let spool = env.open().await; // 50 ms tick
    let req = env.new_recording(1);
    let id = req.recording_id;
    let rec = begin(&spool, req).await;
    rec.write(0, b"small write, far below a record").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let crashed = env.dir.path().join("crashed");
    copy_dir(&env.spool_dir(), &crashed);
    let mut cfg = env.cfg();
    cfg.dir = crashed.clone();
    let recovered = Spool::open(cfg, env.keys.clone()).await.unwrap();
    let e = recovered.entry(id).unwrap();
    assert_eq!(
        env.read_back(&crashed, &e.journal).await[0],
        b"small write, far below a record"
    );
    drop(rec);
}

#[tokio::test]
async fn tampered_or_reordered_records_are_detected_on_recovery() {
    let env = env().await;
    let spool = env.open().await;
    let pieces: Vec<Vec<u8>> = (0..4).map(|_| payload(50, 1)).collect();
    let (_rec, j, ends) = live_entry_with_records(&env, &spool, &pieces).await;
    let id = j.recording_id;
    let snapshot = env.dir.path().join("snap");
    copy_dir(&env.spool_dir().join(id.to_string()), &snapshot);
    let full = std::fs::read(snapshot.join("media.spl")).unwrap();
    let rl = (ends[1] - ends[0]) as usize;
    let h = ends[0] as usize;
    let mut flipped = full.clone();
    flipped[h + rl + 20] ^= 1; // inside record 1
    let mut swapped = full[..h].to_vec();
    swapped.extend_from_slice(&full[h + rl..h + 2 * rl]);
    swapped.extend_from_slice(&full[h..h + rl]);
    swapped.extend_from_slice(&full[h + 2 * rl..]);
    for (name, bytes, keep) in [("flipped", flipped, 1u64), ("swapped", swapped, 0)] {
        let dir = env.dir.path().join(name);
        copy_dir(&snapshot, &dir.join(id.to_string()));
        std::fs::write(dir.join(id.to_string()).join("media.spl"), &bytes).unwrap();
        let s = Spool::open(env.cfg_in(dir), env.keys.clone())
            .await
            .unwrap();
        let e = s.entry(id).unwrap().journal;
        let sum = e.streams[0].summary.clone().unwrap();
        assert_eq!(sum.records, keep, "{name}");
        assert_eq!(e.discarded_tail_bytes, (4 - keep) * rl as u64, "{name}");
    }
}

#[tokio::test]
async fn quota_refuses_new_calls_while_live_calls_keep_recording() {
    let env = env().await;
    let mut cfg = env.cfg();
    cfg.quota_bytes = 1_000_000;
    cfg.call_reserve_bytes = 300_000;
    let spool = Spool::open(cfg, env.keys.clone()).await.unwrap();
    let a = begin(&spool, env.new_recording(1)).await;
    let b = begin(&spool, env.new_recording(1)).await;
    let c = begin(&spool, env.new_recording(1)).await;
    let err = spool.begin(env.new_recording(1)).await.unwrap_err();
    assert!(matches!(err, SpoolError::Full { .. }), "{err}");
    assert!(err.to_string().contains("new call refused"), "{err}");
    // Live calls write far past the quota.
    let big = payload(2_000_000, 9);
    for piece in big.chunks(4096) {
        a.write(0, piece).unwrap();
        b.write(0, piece).unwrap();
    }
    a.sync().unwrap();
    b.sync().unwrap();
    assert!(spool.used_bytes() > 4_000_000);
    assert!(matches!(
        spool.begin(env.new_recording(1)).await,
        Err(SpoolError::Full { .. })
    ));
    let fa = a.finish().await.unwrap();
    b.finish().await.unwrap();
    assert_eq!(
        fa.journal.streams[0]
            .summary
            .as_ref()
            .unwrap()
            .plaintext_len,
        2_000_000
    );
    // Space comes back once uploads delete entries.
    for e in spool.finished() {
        spool.mark_uploaded(e.recording_id).await.unwrap();
    }
    let d = begin(&spool, env.new_recording(1)).await;
    d.finish().await.unwrap();
    c.finish().await.unwrap();
}

#[tokio::test]
async fn expiry_alarms_are_raised_once_persisted_and_the_entry_is_kept() {
    let env = env().await;
    let mut cfg = env.cfg();
    cfg.max_age = Duration::from_secs(100);
    cfg.warn_age = Duration::from_secs(80);
    let spool = Spool::open(cfg.clone(), env.keys.clone()).await.unwrap();
    let req = env.new_recording(1);
    let id = req.recording_id;
    let rec = begin(&spool, req).await;
    rec.write(0, b"x").unwrap();
    rec.finish().await.unwrap();
    let t0 = Utc::now();
    assert!(spool.check_alarms(t0).await.unwrap().is_empty());
    let due = spool
        .check_alarms(t0 + chrono::Duration::seconds(85))
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].kind, AlarmKind::Warning);
    assert_eq!(due[0].recording_id, id);
    spool
        .mark_alarm_audited(id, AlarmKind::Warning)
        .await
        .unwrap();
    assert!(
        spool
            .check_alarms(t0 + chrono::Duration::seconds(90))
            .await
            .unwrap()
            .is_empty()
    );
    let due = spool
        .check_alarms(t0 + chrono::Duration::seconds(101))
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].kind, AlarmKind::Expired);
    // Not audited yet: still due after a restart, raised only once.
    spool.shutdown();
    drop(spool);
    let spool = Spool::open(cfg, env.keys.clone()).await.unwrap();
    let due = spool
        .check_alarms(t0 + chrono::Duration::seconds(200))
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].kind, AlarmKind::Expired);
    let e = spool.entry(id).unwrap();
    assert!(e.journal.alarms.warned_at.is_some() && e.journal.alarms.warn_audited);
    assert_eq!(
        e.journal.alarms.expired_at,
        Some(due[0].raised_at),
        "raised once, at the first check past the limit"
    );
    assert_eq!(e.journal.state, EntryState::Finished, "kept, not deleted");
}

#[tokio::test]
async fn one_process_per_spool_directory_and_clean_leftovers() {
    let env = env().await;
    let spool = env.open().await;
    assert!(matches!(
        Spool::open(env.cfg(), env.keys.clone()).await,
        Err(SpoolError::Locked(_))
    ));
    spool.shutdown();
    drop(spool);
    // Interrupted creations and deletions are cleaned up on start.
    for name in [".new-x", ".trash-y"] {
        std::fs::create_dir_all(env.spool_dir().join(name)).unwrap();
        std::fs::write(env.spool_dir().join(name).join("media.spl"), b"junk").unwrap();
    }
    let spool = env.open().await;
    assert!(!env.spool_dir().join(".new-x").exists());
    assert!(!env.spool_dir().join(".trash-y").exists());
    assert!(spool.entries().is_empty());
    // Unreadable journals are kept, reported, never deleted.
    let id = RecordingId::new();
    let bad = env.spool_dir().join(id.to_string());
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("journal.json"), b"{not json").unwrap();
    spool.shutdown();
    drop(spool);
    let spool = env.open().await;
    let e = spool.entry(id).unwrap();
    assert!(e.unrecoverable.is_some());
    assert!(bad.join("journal.json").exists());
}

/// The real thing: a child process writes to the spool as fast as a call
/// would and reports what it handed over; it is killed with SIGKILL; the
/// recovered recording holds everything handed over at least a second
/// before the kill.
#[test]
fn sigkill_during_a_call_loses_at_most_the_last_second() {
    if let Ok(dir) = std::env::var("SPOOL_KILL_CHILD_DIR") {
        kill_child(PathBuf::from(dir));
        return;
    }
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    // This test's name in the binary: its module path without the crate.
    let name = format!(
        "{}::sigkill_during_a_call_loses_at_most_the_last_second",
        module_path!().split_once("::").map_or("", |(_, m)| m)
    );
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env("SPOOL_KILL_CHILD_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<(std::time::Instant, u64)>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("HANDED ") {
                let _ = tx.send((std::time::Instant::now(), n.trim().parse().unwrap()));
            }
        }
    });
    // Let it record for a while, then kill it without warning.
    let mut handed: Vec<(std::time::Instant, u64)> = Vec::new();
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        if let Ok(h) = rx.recv_timeout(Duration::from_millis(50)) {
            handed.push(h);
        }
    }
    let killed_at = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap();
    reader.join().unwrap();
    handed.extend(rx.try_iter());
    let before_1s = handed
        .iter()
        .filter(|(t, _)| *t + Duration::from_secs(1) <= killed_at)
        .map(|(_, n)| *n)
        .max()
        .expect("the child reported progress");
    let total = handed.iter().map(|(_, n)| *n).max().unwrap();
    assert!(total > before_1s, "the child was still writing when killed");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let keys: Arc<dyn KeyProvider> =
            Arc::new(insights_tests::world::key_file(dir.path()));
        let spool = Spool::open(kill_cfg(dir.path()), keys.clone()).await.unwrap();
        let entries = spool.entries();
        assert_eq!(entries.len(), 1);
        let j = &entries[0].journal;
        assert_eq!(j.partial, Some(PartialReason::RecoveredAfterRestart));
        let key = keys.unwrap(&j.data_key).await.unwrap();
        let bytes = std::fs::read(spool.media_path(j.recording_id)).unwrap();
        let mut got = Vec::new();
        format::scan(&bytes[..], &key, bytes.len() as u64, |_, p| {
            got.extend_from_slice(p)
        })
        .unwrap();
        let expect = kill_payload(got.len());
        assert!(got == expect, "recovered audio is not what was written");
        assert!(
            got.len() as u64 >= before_1s,
            "lost audio handed over more than a second before the kill: recovered {} of {before_1s} bytes",
            got.len()
        );
    });
}

fn kill_cfg(dir: &Path) -> SpoolConfig {
    let mut c = SpoolConfig::in_dir(dir.join("spool"));
    c.fsync_interval = Duration::from_millis(500);
    c
}

fn kill_payload(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect()
}

/// The child: 16 kB/s in 20 ms frames (about a 64 kbit/s stream, more than
/// Opus needs), reporting each frame handed over. Killed by the parent.
fn kill_child(dir: PathBuf) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let keys: Arc<dyn KeyProvider> = Arc::new(insights_tests::world::key_file(&dir));
        let tenant = TenantId::new();
        keys.ensure_kek(tenant).await.unwrap();
        let spool = Spool::open(kill_cfg(&dir), keys).await.unwrap();
        let rec = spool
            .begin(NewRecording {
                tenant_id: tenant,
                recording_id: RecordingId::new(),
                started_at: Utc::now(),
                participants: vec![],
                streams: vec![NewStream {
                    stream_id: StreamId::new(),
                    participant_id: None,
                    content_type: "audio/ogg".into(),
                }],
            })
            .await
            .unwrap();
        let all = kill_payload(16_000 * 60);
        let mut at = 0;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            rec.write(0, &all[at..at + 320]).unwrap();
            at += 320;
            println!("HANDED {at}");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::process::exit(3);
    });
}
