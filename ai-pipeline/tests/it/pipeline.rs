//! The transcription step and the workers against real backends (SQLite,
//! local blob folder, local key file) with a stand-in engine: a call made
//! by the recorder, encrypted like the uploader stores it, is decrypted in
//! memory, split per channel and attributed to the right participants;
//! re-runs never duplicate segments; the worker retries, dead-letters,
//! renews leases and hands jobs back at shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ai_pipeline::pipeline::{Pipeline, StepError};
use ai_pipeline::providers::Providers;
use ai_pipeline::stt::{Recognized, SpeechToText, SttError, Utterance};
use ai_pipeline::vad::VadOptions;
use ai_pipeline::worker::{
    JobHandler, JobOutcome, RecapHandler, TranscribeHandler, Worker, WorkerOptions,
};
use async_trait::async_trait;
use insights_core::blob::BlobStore;
use insights_core::config::{AiSettings, CloudStt, OpenAiSettings};
use insights_core::crypto::{DataKey, Header, KeyProvider, encrypt_to_vec};
use insights_core::domain::*;
use insights_core::store::MetadataStore;
use recorder::{CallRecorder, PcmFrame, RecorderConfig, Side, TICKS_PER_FRAME};
use tokio_util::sync::CancellationToken;

/// Recognises every utterance as one segment naming its start, counting
/// its calls.
struct EchoEngine {
    calls: AtomicUsize,
}

#[async_trait]
impl SpeechToText for EchoEngine {
    fn id(&self) -> &str {
        "test:echo"
    }

    async fn transcribe(&self, utts: Vec<Utterance>) -> Result<Vec<Vec<Recognized>>, SttError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(utts
            .iter()
            .map(|u| {
                vec![Recognized {
                    start_ms: u.start_ms,
                    end_ms: u.start_ms + u.duration_ms(),
                    text: format!("walrus spoken at {}", u.start_ms),
                    confidence: 0.9,
                    language: Some("en".into()),
                }]
            })
            .collect())
    }
}

/// The shared world (SQLite, local blobs, key file) and the tenant the
/// tests record in.
struct World {
    _world: insights_tests::world::World,
    store: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    keys: Arc<dyn KeyProvider>,
    tenant: TenantId,
}

async fn world() -> World {
    let w = insights_tests::world::World::sqlite().await;
    let tenant = w.tenant("contoso").await.id;
    World {
        store: w.store.clone(),
        blobs: w.blobs.clone(),
        keys: w.key_provider(),
        tenant,
        _world: w,
    }
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

/// A 5 s call: the caller talks 0–2 s, the callee 2.6–4.6 s.
fn call_ogg() -> Vec<u8> {
    let speech = recorder::test_signal::synthetic_speech(2.0);
    let silence = [0i16; recorder::FRAME_SAMPLES];
    let mut rec = CallRecorder::new(Vec::new(), &RecorderConfig::default(), Some(0)).unwrap();
    for slot in 0..250usize {
        let at = |from: usize| -> &[i16] {
            let Some(k) = slot.checked_sub(from).map(|d| d * recorder::FRAME_SAMPLES) else {
                return &silence;
            };
            speech
                .get(k..k + recorder::FRAME_SAMPLES)
                .unwrap_or(&silence)
        };
        for (side, pcm) in [(Side::Caller, at(0)), (Side::Callee, at(130))] {
            rec.push(
                side,
                PcmFrame {
                    seq: slot as u64,
                    ticks: slot as i64 * TICKS_PER_FRAME,
                    pcm,
                },
            )
            .unwrap();
        }
    }
    rec.finish().unwrap().0
}

/// Stores a call like the uploader does: envelope under a fresh data key
/// at `blob::layout`'s key, media object and status in the store.
async fn stored_call(w: &World) -> (Recording, ParticipantId, ParticipantId) {
    let mut rec = Recording::new(w.tenant, RecordingKind::Call, Direction::Inbound, now());
    let callee = party(ParticipantRole::Callee);
    let caller = party(ParticipantRole::Caller);
    rec.participants = vec![callee.clone(), caller.clone()];
    rec.streams = vec![MediaStream {
        id: StreamId::new(),
        participant_id: None,
        track: 0,
        media_type: "audio".into(),
        codec: "opus".into(),
        sample_rate: 48_000,
        start_ms: 0,
    }];
    w.store.insert_recording(w.tenant, &rec).await.unwrap();
    let key = DataKey::generate(KeyId::new());
    let wrapped = w.keys.wrap(w.tenant, &key).await.unwrap();
    w.store.put_data_key(w.tenant, &wrapped).await.unwrap();
    let plain = call_ogg();
    let header = Header::new(w.tenant, rec.id.as_uuid(), wrapped.id);
    let sealed = encrypt_to_vec(&key, &header, &plain).unwrap();
    let container = Tenant::container_name(w.tenant);
    w.blobs.ensure_container(&container).await.unwrap();
    let blob_key = insights_core::blob::layout::stream_blob_key(rec.id, 0, "audio/ogg");
    let out = w
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
    w.store
        .set_recording_media(w.tenant, rec.id, Some(&media))
        .await
        .unwrap();
    (rec, caller.id, callee.id)
}

fn pipeline(w: &World, engine: Arc<dyn SpeechToText>) -> Pipeline {
    Pipeline {
        store: w.store.clone(),
        blobs: w.blobs.clone(),
        keys: w.keys.clone(),
        stt: engine,
        vad: VadOptions::default(),
        max_media_duration: std::time::Duration::from_secs(12 * 3600),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_transcribed_per_channel_and_reruns_replace_it() {
    let w = world().await;
    let (rec, caller, callee) = stored_call(&w).await;
    let engine = Arc::new(EchoEngine {
        calls: AtomicUsize::new(0),
    });
    let p = pipeline(&w, engine.clone());
    let report = p.transcribe(w.tenant, rec.id).await.unwrap();
    assert_eq!(report.speakers, 2);
    assert!(report.media_bytes > 0);
    assert!((4900..=5100).contains(&(report.audio_ms / 2)), "{report:?}");
    let first = w.store.list_transcript(w.tenant, rec.id).await.unwrap();
    assert_eq!(first.len(), report.segments);
    assert!(!first.is_empty());
    // Attribution comes from the channel: the caller spoke 0–2 s, the
    // callee 2.6–4.6 s.
    let of = |p| first.iter().filter(move |s| s.participant_id == Some(p));
    assert!(
        of(caller).count() > 0 && of(callee).count() > 0,
        "{first:?}"
    );
    assert!(of(caller).all(|s| s.start_ms < 2300), "{first:?}");
    assert!(of(callee).all(|s| s.start_ms >= 2300), "{first:?}");
    assert!(first.iter().all(|s| s.participant_id.is_some()));

    // Searchable.
    let q = RecordingQuery {
        transcript_text: Some("walrus".into()),
        ..RecordingQuery::default()
    };
    let hits = w.store.search_recordings(w.tenant, &q).await.unwrap();
    assert_eq!(hits.total, 1);

    // A re-run (retry, reprocess) gives the same transcript, same ids.
    p.transcribe(w.tenant, rec.id).await.unwrap();
    let second = w.store.list_transcript(w.tenant, rec.id).await.unwrap();
    assert_eq!(second, first);
    assert_eq!(engine.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erased_or_missing_media_is_permanent() {
    let w = world().await;
    let (rec, _, _) = stored_call(&w).await;
    let media = rec.media.clone();
    let got = w.store.get_recording(w.tenant, rec.id).await.unwrap();
    let key_id = got.media.as_ref().unwrap().data_key_id;
    assert!(
        media.is_none(),
        "the in-memory copy predates set_recording_media"
    );
    w.store.shred_data_key(w.tenant, key_id).await.unwrap();
    let p = pipeline(
        &w,
        Arc::new(EchoEngine {
            calls: AtomicUsize::new(0),
        }),
    );
    let e = p.transcribe(w.tenant, rec.id).await.unwrap_err();
    assert!(matches!(e, StepError::Permanent(_)), "{e:?}");
    let e = p
        .transcribe(w.tenant, RecordingId::new())
        .await
        .unwrap_err();
    assert!(matches!(e, StepError::Permanent(_)), "{e:?}");
}

/// A recording an erasure covered (media kept until retention, no
/// waiver) is not transcribed again: a job queued before the erasure
/// fails permanently before the engine hears a word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_an_erasure_covered_is_not_transcribed_again() {
    let w = world().await;
    let (rec, _, _) = stored_call(&w).await;
    let engine = Arc::new(EchoEngine {
        calls: AtomicUsize::new(0),
    });
    let p = pipeline(&w, engine.clone());
    p.transcribe(w.tenant, rec.id).await.unwrap();
    assert_eq!(engine.calls.load(Ordering::SeqCst), 1);
    w.store
        .append_audit(
            w.tenant,
            NewAuditEvent {
                actor: "dpo".into(),
                action: AuditAction::GdprErasure,
                recording_id: Some(rec.id),
                target: None,
                reason: None,
                source: None,
                details: serde_json::json!({"step": "recording", "outcome": "pseudonymized-media-deferred"}),
            },
        )
        .await
        .unwrap();
    let e = p.transcribe(w.tenant, rec.id).await.unwrap_err();
    match &e {
        StepError::Permanent(m) => assert!(m.contains("erasure"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        engine.calls.load(Ordering::SeqCst),
        1,
        "the engine heard nothing more"
    );
}

/// A recording whose audio is longer than the configured maximum fails
/// permanently while it is being decoded, before the engine sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_longer_than_the_maximum_is_a_permanent_failure() {
    let w = world().await;
    let (rec, _, _) = stored_call(&w).await;
    let engine = Arc::new(EchoEngine {
        calls: AtomicUsize::new(0),
    });
    let mut p = pipeline(&w, engine.clone());
    p.max_media_duration = Duration::from_secs(2);
    let e = p.transcribe(w.tenant, rec.id).await.unwrap_err();
    match &e {
        StepError::Permanent(m) => assert!(m.contains("longer than the maximum of 2 s"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(engine.calls.load(Ordering::SeqCst), 0);
}

fn opts(lease_ms: u64) -> WorkerOptions {
    WorkerOptions {
        id_prefix: "test".into(),
        concurrency: 1,
        lease: Duration::from_millis(lease_ms),
        poll_interval: Duration::from_millis(50),
        max_attempts: 3,
        backoff: Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(2),
        },
        shutdown_grace: Duration::from_millis(200),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_a_transcription_job_end_to_end() {
    let w = world().await;
    let (rec, _, _) = stored_call(&w).await;
    let job = w
        .store
        .enqueue_job(w.tenant, &NewJob::now(rec.id, JobKind::Transcribe))
        .await
        .unwrap()
        .job;
    let echo: Arc<dyn SpeechToText> = Arc::new(EchoEngine {
        calls: AtomicUsize::new(0),
    });
    let providers = Arc::new(Providers::new(&AiSettings::default(), echo.clone()).unwrap());
    let worker = Worker::new(w.store.clone(), opts(5000))
        .with_handler(Arc::new(TranscribeHandler {
            pipeline: pipeline(&w, echo),
            providers: providers.clone(),
        }))
        .with_handler(Arc::new(RecapHandler {
            store: w.store.clone(),
            providers,
        }));
    let stop = CancellationToken::new();
    let (ran, outcome) = worker.run_one("w", &stop).await.unwrap().unwrap();
    assert_eq!(ran.id, job.id);
    assert_eq!(outcome, JobOutcome::Succeeded);
    let done = w.store.get_job(w.tenant, job.id).await.unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    let transcript = w.store.list_transcript(w.tenant, rec.id).await.unwrap();
    assert!(!transcript.is_empty());
    // The recap follows, with the tenant's (local) recap engine, and
    // every item cites segments of this transcript.
    let jobs = w.store.list_jobs(w.tenant, rec.id).await.unwrap();
    assert_eq!(jobs.len(), 2);
    let (ran, outcome) = worker.run_one("w", &stop).await.unwrap().unwrap();
    assert_eq!(ran.kind, JobKind::Recap);
    assert_eq!(outcome, JobOutcome::Succeeded);
    let insights = w.store.list_insights(w.tenant, rec.id).await.unwrap();
    assert!(!insights.is_empty(), "a recap was stored");
    let ids: Vec<_> = transcript.iter().map(|s| s.id).collect();
    for i in &insights {
        assert_eq!(i.provider, "local:extractive");
        assert!(!i.citations.is_empty(), "{:?} cites nothing", i.kind);
        assert!(i.citations.iter().all(|c| ids.contains(&c.segment_id)));
    }
    assert!(worker.run_one("w", &stop).await.unwrap().is_none());
}

/// A handler scripted by the test.
struct Scripted {
    kind: JobKind,
    runs: AtomicUsize,
    /// Fails transiently this many times, then succeeds.
    transient_failures: usize,
    permanent: bool,
    takes: Duration,
}

#[async_trait]
impl JobHandler for Scripted {
    fn kind(&self) -> JobKind {
        self.kind
    }

    async fn run(&self, _job: &Job) -> Result<Vec<JobKind>, StepError> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.takes).await;
        if self.permanent {
            return Err(StepError::Permanent("media cannot be decoded".into()));
        }
        if n < self.transient_failures {
            return Err(StepError::Transient {
                message: format!("provider answered 503 (run {n})"),
                retry_after_ms: None,
            });
        }
        Ok(vec![JobKind::Recap])
    }
}

fn scripted(
    kind: JobKind,
    transient_failures: usize,
    permanent: bool,
    takes_ms: u64,
) -> Arc<Scripted> {
    Arc::new(Scripted {
        kind,
        runs: AtomicUsize::new(0),
        transient_failures,
        permanent,
        takes: Duration::from_millis(takes_ms),
    })
}

async fn drain(worker: &Worker, w: &World, job: JobId) -> Job {
    let stop = CancellationToken::new();
    for _ in 0..200 {
        worker.run_one("w", &stop).await.unwrap();
        let j = w.store.get_job(w.tenant, job).await.unwrap();
        if !j.state.is_pending() {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("job never finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_retry_then_succeed_and_enqueue_the_recap() {
    let w = world().await;
    let (rec, _, _) = stored_call(&w).await;
    let job = w
        .store
        .enqueue_job(w.tenant, &NewJob::now(rec.id, JobKind::Transcribe))
        .await
        .unwrap()
        .job;
    let t = scripted(JobKind::Transcribe, 2, false, 0);
    let r = scripted(JobKind::Recap, 0, false, 0);
    let worker = Worker::new(w.store.clone(), opts(5000))
        .with_handler(t.clone())
        .with_handler(r.clone());
    let done = drain(&worker, &w, job.id).await;
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.attempts, 3);
    assert_eq!(t.runs.load(Ordering::SeqCst), 3);
    let jobs = w.store.list_jobs(w.tenant, rec.id).await.unwrap();
    let recap = jobs
        .iter()
        .find(|j| j.kind == JobKind::Recap)
        .expect("recap queued");
    let recap = drain(&worker, &w, recap.id).await;
    assert_eq!(recap.state, JobState::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_attempts_or_permanent_is_dead_with_the_reason() {
    let w = world().await;
    let (rec, _, _) = stored_call(&w).await;
    let job = w
        .store
        .enqueue_job(
            w.tenant,
            &NewJob {
                max_attempts: 3,
                ..NewJob::now(rec.id, JobKind::Transcribe)
            },
        )
        .await
        .unwrap()
        .job;
    let worker = Worker::new(w.store.clone(), opts(5000)).with_handler(scripted(
        JobKind::Transcribe,
        99,
        false,
        0,
    ));
    let dead = drain(&worker, &w, job.id).await;
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(dead.attempts, 3);
    assert_eq!(
        dead.last_error.as_deref(),
        Some("transient: provider answered 503 (run 2)")
    );

    let (rec2, _, _) = stored_call(&w).await;
    let job2 = w
        .store
        .enqueue_job(w.tenant, &NewJob::now(rec2.id, JobKind::Transcribe))
        .await
        .unwrap()
        .job;
    let worker = Worker::new(w.store.clone(), opts(5000)).with_handler(scripted(
        JobKind::Transcribe,
        0,
        true,
        0,
    ));
    let dead = drain(&worker, &w, job2.id).await;
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(dead.attempts, 1);
    assert_eq!(
        dead.last_error.as_deref(),
        Some("permanent: media cannot be decoded")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_longer_than_its_lease_is_renewed_not_stolen() {
    let w = world().await;
    let (rec, _, _) = stored_call(&w).await;
    let job = w
        .store
        .enqueue_job(w.tenant, &NewJob::now(rec.id, JobKind::Transcribe))
        .await
        .unwrap()
        .job;
    // Lease 300 ms, the job takes 1.2 s: renewed every 100 ms.
    let slow = scripted(JobKind::Transcribe, 0, false, 1200);
    let worker = Arc::new(Worker::new(w.store.clone(), opts(300)).with_handler(slow.clone()));
    let stop = CancellationToken::new();
    let running = {
        let worker = worker.clone();
        let stop = stop.clone();
        tokio::spawn(async move { worker.run_one("slow", &stop).await })
    };
    // Another worker keeps trying to claim meanwhile.
    let other = Worker::new(w.store.clone(), opts(300)).with_handler(scripted(
        JobKind::Transcribe,
        0,
        false,
        0,
    ));
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(other.run_one("thief", &stop).await.unwrap().is_none());
    }
    let (_, outcome) = running.await.unwrap().unwrap().unwrap();
    assert_eq!(outcome, JobOutcome::Succeeded);
    let done = w.store.get_job(w.tenant, job.id).await.unwrap();
    assert_eq!(done.attempts, 1);
    assert_eq!(slow.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_a_job_that_does_not_finish_in_the_grace_period() {
    let w = world().await;
    let (rec, _, _) = stored_call(&w).await;
    let job = w
        .store
        .enqueue_job(w.tenant, &NewJob::now(rec.id, JobKind::Transcribe))
        .await
        .unwrap()
        .job;
    let worker = Arc::new(
        Worker::new(w.store.clone(), opts(5000)).with_handler(scripted(
            JobKind::Transcribe,
            0,
            false,
            60_000,
        )),
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.clone().run(stop.clone()));
    // Wait until it runs.
    for _ in 0..100 {
        if w.store.get_job(w.tenant, job.id).await.unwrap().state == JobState::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("workers stop within the grace period")
        .unwrap();
    let j = w.store.get_job(w.tenant, job.id).await.unwrap();
    assert_eq!(j.state, JobState::Queued);
    assert_eq!(j.attempts, 0, "a released attempt does not count");
}

/// Issue 6's fault proof through the real pieces: a tenant opted into
/// cloud speech-to-text, the provider (a stand-in following the OpenAI
/// shapes) throttles once, then fails with 500 on every request. Each
/// attempt of the job retries the request (Retry-After honoured), the
/// queue retries the job with backoff, and after its last attempt the job
/// is dead with the reason; every request is in the processing records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_keeps_failing_is_retried_then_dead_lettered_with_the_reason() {
    let w = world().await;
    let (rec, _, _) = stored_call(&w).await;
    let mut settings = w.store.get_tenant(w.tenant).await.unwrap().settings;
    settings.cloud_ai_enabled = true;
    w.store
        .update_tenant_settings(w.tenant, &settings)
        .await
        .unwrap();

    let seen = Arc::new(AtomicUsize::new(0));
    let provider = {
        let seen = seen.clone();
        support::StandIn::start(move |req, _| {
            assert_eq!(req.path, "/v1/audio/transcriptions");
            assert_eq!(req.header("authorization"), Some("Bearer sk-test-1"));
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                support::Reply::json(429, serde_json::json!({"error": {"message": "slow down"}}))
                    .header("retry-after", "0")
            } else {
                support::Reply::json(500, serde_json::json!({"error": {"message": "boom"}}))
            }
        })
        .await
    };
    let ai = AiSettings {
        cloud_stt: CloudStt::OpenaiCompatible,
        max_attempts: 2,
        backoff_initial_ms: 5,
        backoff_max_ms: 50,
        openai: Some(OpenAiSettings {
            base_url: format!("{}/v1", provider.base),
            api_key_env: Some("TEST_STT_KEY".into()),
            chat_model: None,
            transcription_model: Some("whisper-1".into()),
            json_mode: true,
        }),
        ..AiSettings::default()
    };
    let local: Arc<dyn SpeechToText> = Arc::new(EchoEngine {
        calls: AtomicUsize::new(0),
    });
    let providers = Arc::new(
        Providers::with_env(&ai, local.clone(), |k| {
            (k == "TEST_STT_KEY").then(|| "sk-test-1".to_owned())
        })
        .unwrap(),
    );
    let job = w
        .store
        .enqueue_job(w.tenant, &NewJob::now(rec.id, JobKind::Transcribe))
        .await
        .unwrap()
        .job;
    let worker =
        Worker::new(w.store.clone(), opts(5000)).with_handler(Arc::new(TranscribeHandler {
            pipeline: pipeline(&w, local),
            providers,
        }));
    let done = drain(&worker, &w, job.id).await;
    assert_eq!(done.state, JobState::Dead, "{done:?}");
    assert!(done.attempts >= 2, "retried by the queue: {done:?}");
    assert_eq!(
        done.attempts, done.max_attempts,
        "dead after its last attempt"
    );
    let reason = done.last_error.clone().unwrap_or_default();
    assert!(reason.contains("speech-to-text"), "{reason}");
    assert!(reason.contains("500"), "{reason}");
    // Per job attempt: the first utterance's request, retried once by the
    // HTTP client (2 requests), then the attempt fails.
    let requests = 2 * done.attempts as usize;
    assert_eq!(seen.load(Ordering::SeqCst), requests);
    let records = w
        .store
        .list_provider_calls(w.tenant, &ProviderCallQuery::default())
        .await
        .unwrap();
    assert_eq!(records.len(), requests, "every request is recorded");
    assert!(records.iter().all(|r| r.recording_id == Some(rec.id)));
    assert!(
        w.store
            .list_transcript(w.tenant, rec.id)
            .await
            .unwrap()
            .is_empty()
    );
}
