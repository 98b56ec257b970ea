//! Two `insights worker` processes share one PostgreSQL database; the one
//! running a transcription job is killed with SIGKILL mid-job. The other
//! claims the job once the dead worker's lease expires, completes it, and
//! the transcript has no duplicate segments; `insights reprocess` runs it
//! again and the transcript is the same, still without duplicates; a
//! SIGTERM mid-job lets the worker finish the job, then exit cleanly.
//!
//! The recording is a real stored call (recorder → envelope → blob
//! store → metadata, as the uploader leaves it). The workers run the real
//! pipeline (decrypt, decode, VAD, attribution, atomic replace) with the
//! hidden stand-in engine (`--test-engine-delay-ms`), which takes long
//! enough for the kill to land mid-job.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use insights_core::config::{Overrides, Secret, Settings};
use insights_core::crypto::{DataKey, Header, encrypt_to_vec};
use insights_core::domain::*;
use recorder::{CallRecorder, PcmFrame, RecorderConfig, Side, TICKS_PER_FRAME};

use crate::insights;

/// Kills the process when dropped (a failing test leaves nothing behind).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn settings(data: &Path, pg_url: &str) -> Settings {
    let mut s = Settings::load(
        None,
        &Overrides {
            data_dir: Some(data.to_owned()),
            listen: None,
        },
    )
    .unwrap();
    s.database.url = Some(Secret::new(pg_url));
    s
}

/// A 6 s call: the caller talks 0–2.5 s, the callee 3–5.5 s.
fn call_ogg() -> Vec<u8> {
    let speech = recorder::test_signal::synthetic_speech(2.5);
    let silence = [0i16; recorder::FRAME_SAMPLES];
    let mut rec = CallRecorder::new(Vec::new(), &RecorderConfig::default(), Some(0)).unwrap();
    for slot in 0..300usize {
        let at = |from: usize| -> &[i16] {
            let Some(k) = slot.checked_sub(from).map(|d| d * recorder::FRAME_SAMPLES) else {
                return &silence;
            };
            speech
                .get(k..k + recorder::FRAME_SAMPLES)
                .unwrap_or(&silence)
        };
        for (side, pcm) in [(Side::Caller, at(0)), (Side::Callee, at(150))] {
            let frame = PcmFrame {
                seq: slot as u64,
                ticks: slot as i64 * TICKS_PER_FRAME,
                pcm,
            };
            rec.push(side, frame).unwrap();
        }
    }
    rec.finish().unwrap().0
}

fn party(role: ParticipantRole) -> Participant {
    Participant {
        id: ParticipantId::new(),
        role,
        display_name: None,
        phone_number: None,
        uri: None,
        email: None,
        directory_user_id: None,
        recorded_user: false,
        joined_ms: Some(0),
        left_ms: None,
    }
}

/// Stores a call the way the uploader leaves it and queues its
/// transcription; returns (tenant, recording, caller, callee).
async fn stored_call(
    p: &insights::platform::Platform,
) -> (TenantId, RecordingId, ParticipantId, ParticipantId) {
    let tenant = p.store.tenant_by_name("contoso").await.unwrap().id;
    let mut rec = Recording::new(tenant, RecordingKind::Call, Direction::Inbound, now());
    let (caller, callee) = (
        party(ParticipantRole::Caller),
        party(ParticipantRole::Callee),
    );
    rec.participants = vec![caller.clone(), callee.clone()];
    rec.streams = vec![MediaStream {
        id: StreamId::new(),
        participant_id: None,
        track: 0,
        media_type: "audio".into(),
        codec: "opus".into(),
        sample_rate: 48_000,
        start_ms: 0,
    }];
    p.store.insert_recording(tenant, &rec).await.unwrap();
    let key = DataKey::generate(KeyId::new());
    let wrapped = p.keys.wrap(tenant, &key).await.unwrap();
    p.store.put_data_key(tenant, &wrapped).await.unwrap();
    let plain = call_ogg();
    let sealed = encrypt_to_vec(
        &key,
        &Header::new(tenant, rec.id.as_uuid(), wrapped.id),
        &plain,
    )
    .unwrap();
    let container = Tenant::container_name(tenant);
    let blob_key = insights_core::blob::layout::stream_blob_key(rec.id, 0, "audio/ogg");
    let out = p
        .blobs
        .put(&container, &blob_key, &mut &sealed[..])
        .await
        .unwrap();
    let media = MediaObject {
        container,
        key: blob_key,
        byte_size: out.byte_size as i64,
        sha256: out.sha256,
        data_key_id: wrapped.id,
        content_type: "audio/ogg".into(),
        plaintext_size: plain.len() as i64,
    };
    p.store
        .set_recording_media(tenant, rec.id, Some(&media))
        .await
        .unwrap();
    p.store
        .update_recording_status(tenant, rec.id, RecordingStatus::Stored, Some(now()), None)
        .await
        .unwrap();
    p.store
        .enqueue_job(tenant, &NewJob::now(rec.id, JobKind::Transcribe))
        .await
        .unwrap();
    (tenant, rec.id, caller.id, callee.id)
}

fn start_worker(cwd: &Path, data: &str, env: &[(String, String)], log: &Path) -> Proc {
    let log = std::fs::File::create(log).unwrap();
    let child = insights(
        cwd,
        &[
            "worker",
            "--data-dir",
            data,
            "--test-engine-delay-ms",
            "6000",
        ],
    )
    .envs(env.iter().cloned())
    .stdout(Stdio::null())
    .stderr(log)
    .spawn()
    .unwrap();
    Proc(child)
}

async fn wait_job(
    p: &insights::platform::Platform,
    tenant: TenantId,
    rec: RecordingId,
    what: &str,
    done: impl Fn(&Job) -> bool,
) -> Job {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let jobs = p.store.list_jobs(tenant, rec).await.unwrap();
        if let Some(j) = jobs.iter().rev().find(|j| done(j)) {
            return j.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within 90 s: {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn check_transcript(segs: &[TranscriptSegment], caller: ParticipantId, callee: ParticipantId) {
    assert!(!segs.is_empty(), "a transcript was stored");
    let ids: HashSet<_> = segs.iter().map(|s| s.id).collect();
    assert_eq!(ids.len(), segs.len(), "duplicate segment ids: {segs:?}");
    let spans: HashSet<_> = segs
        .iter()
        .map(|s| (s.participant_id, s.start_ms, s.end_ms))
        .collect();
    assert_eq!(spans.len(), segs.len(), "duplicate segments: {segs:?}");
    for s in segs {
        let p = s.participant_id.expect("every segment is attributed");
        assert!(p == caller || p == callee, "{s:?}");
        if p == caller {
            assert!(s.start_ms < 2800, "caller spoke 0-2.5 s: {s:?}");
        } else {
            assert!(s.start_ms >= 2800, "callee spoke 3-5.5 s: {s:?}");
        }
    }
    assert!(segs.iter().any(|s| s.participant_id == Some(caller)));
    assert!(segs.iter().any(|s| s.participant_id == Some(callee)));
}

pub fn worker_killed_mid_job(pg_url: &str) {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let d = data.to_str().unwrap().to_owned();
    let env: Vec<(String, String)> = vec![
        ("INSIGHTS_DATABASE__URL".into(), pg_url.to_owned()),
        ("INSIGHTS_WORKER__LEASE_SECS".into(), "5".into()),
        ("INSIGHTS_WORKER__POLL_INTERVAL_MS".into(), "100".into()),
        // The worker's health listener on a free port.
        ("INSIGHTS_LISTEN".into(), "127.0.0.1:0".into()),
    ];
    let out = insights(
        cwd.path(),
        &["admin", "tenant", "add", "contoso", "--data-dir", &d],
    )
    .envs(env.iter().cloned())
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let platform = rt
        .block_on(insights::platform::Platform::open(&settings(&data, pg_url)))
        .unwrap();
    let (tenant, rec, caller, callee) = rt.block_on(stored_call(&platform));

    // Worker A claims the job, and is killed while the engine works.
    let mut a = start_worker(cwd.path(), &d, &env, &cwd.path().join("a.log"));
    let a_id = format!(":{}:", a.0.id());
    let running = rt.block_on(wait_job(&platform, tenant, rec, "A claims", |j| {
        j.state == JobState::Running
    }));
    assert!(
        running
            .worker_id
            .as_deref()
            .is_some_and(|w| w.contains(&a_id)),
        "{running:?}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    a.0.kill().unwrap(); // SIGKILL
    a.0.wait().unwrap();
    let after_kill = rt
        .block_on(platform.store.get_job(tenant, running.id))
        .unwrap();
    assert_eq!(after_kill.state, JobState::Running, "killed mid-job");
    assert!(
        rt.block_on(platform.store.list_transcript(tenant, rec))
            .unwrap()
            .is_empty(),
        "nothing stored before the kill"
    );

    // Worker B takes it over once the lease has expired.
    let b = start_worker(cwd.path(), &d, &env, &cwd.path().join("b.log"));
    let b_id = format!(":{}:", b.0.id());
    let done = rt.block_on(wait_job(&platform, tenant, rec, "B completes", |j| {
        j.id == running.id && j.state == JobState::Succeeded
    }));
    assert_eq!(done.attempts, 2, "one attempt each: {done:?}");
    assert!(
        done.worker_id.as_deref().is_some_and(|w| w.contains(&b_id)),
        "{done:?}"
    );
    let first = rt
        .block_on(platform.store.list_transcript(tenant, rec))
        .unwrap();
    check_transcript(&first, caller, callee);

    // Run it again: same transcript, still no duplicates.
    let out = insights(
        cwd.path(),
        &[
            "reprocess",
            "--recording",
            &rec.to_string(),
            "--data-dir",
            &d,
        ],
    )
    .envs(env.iter().cloned())
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("queued"),
        "{stdout}"
    );
    // SIGTERM while B runs the re-run: B finishes the job within its
    // shutdown grace (20 s by default; the job takes 6 s), then exits 0.
    let rerun = rt.block_on(wait_job(&platform, tenant, rec, "re-run claimed", |j| {
        j.id != running.id && j.state == JobState::Running
    }));
    let st = std::process::Command::new("kill")
        .args(["-TERM", &b.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let mut b = b;
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(st) = b.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "worker did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "graceful exit: {exit:?}");
    let rerun = rt
        .block_on(platform.store.get_job(tenant, rerun.id))
        .unwrap();
    assert_eq!(rerun.state, JobState::Succeeded, "finished before exiting");
    let again = rt
        .block_on(platform.store.list_transcript(tenant, rec))
        .unwrap();
    assert_eq!(
        again, first,
        "a re-run replaces the transcript with the same"
    );
    drop(b);

    // The workers logged ids and counts, never recognised text.
    for log in ["a.log", "b.log"] {
        let text = std::fs::read_to_string(cwd.path().join(log)).unwrap();
        assert!(
            !text.contains("utterance of"),
            "{log} holds transcript text"
        );
    }
    let b_log = std::fs::read_to_string(cwd.path().join("b.log")).unwrap();
    assert!(
        b_log.contains(&running.id.to_string()),
        "B logged the job id"
    );
}
