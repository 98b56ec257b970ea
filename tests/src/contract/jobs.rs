//! The job queue contract (`MetadataStore`'s jobs section), written once
//! and run on every metadata backend by `tests/tests/it/jobs_sqlite.rs` and
//! `tests/tests/it/jobs_pg.rs`:
//!
//! ```ignore
//! async fn make() -> insights_tests::contract::store::StoreUnderTest { ... }
//! insights_tests::jobs_contract_tests!(make);
//! ```
//!
//! Times are passed in by the caller (the claimer's clock), so leases and
//! backoff are tested by moving `now`, not by sleeping.

use std::collections::HashSet;
use std::fmt::Debug;

use chrono::{DateTime, Duration, Utc};
use insights_core::domain::*;
use insights_core::store::{StoreError, StoreResult};

use super::store::Store;

#[track_caller]
fn must<T, E: Debug>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error {e:?}"),
    }
}

#[track_caller]
fn some<T>(v: Option<T>, what: &str) -> T {
    match v {
        Some(v) => v,
        None => panic!("{what}: expected a value, got None"),
    }
}

#[track_caller]
fn assert_not_found<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::NotFound) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

async fn tenant(s: &Store, name: &str) -> TenantId {
    must(
        s.create_tenant(NewTenant {
            name: name.to_owned(),
            directory_tenant_id: None,
        })
        .await,
        "create tenant",
    )
    .id
}

async fn recording(s: &Store, t: TenantId) -> RecordingId {
    let r = Recording::new(t, RecordingKind::Call, Direction::Inbound, now());
    must(s.insert_recording(t, &r).await, "insert recording");
    r.id
}

fn job(rec: RecordingId, kind: JobKind, max_attempts: u32, run_after: DateTime<Utc>) -> NewJob {
    NewJob {
        recording_id: rec,
        kind,
        max_attempts,
        run_after,
    }
}

fn claim_req(worker: &str, now: DateTime<Utc>) -> ClaimRequest {
    ClaimRequest {
        worker_id: worker.to_owned(),
        kinds: JobKind::ALL.to_vec(),
        now,
        lease_until: now + Duration::seconds(30),
    }
}

async fn claim(s: &Store, worker: &str, now: DateTime<Utc>) -> Option<ClaimedJob> {
    must(s.claim_job(&claim_req(worker, now)).await, "claim")
}

async fn get(s: &Store, t: TenantId, id: JobId) -> Job {
    must(s.get_job(t, id).await, "get job")
}

fn transient(reason: &str, now: DateTime<Utc>, retry_at: DateTime<Utc>) -> JobFailure {
    JobFailure {
        reason: reason.to_owned(),
        retry_at: Some(retry_at),
        now,
    }
}

// ---------------------------------------------------------------------

pub async fn enqueue_is_idempotent_while_pending(s: &Store) {
    let t = tenant(s, "contoso").await;
    let rec = recording(s, t).await;
    let t0 = now();
    let first = must(
        s.enqueue_job(t, &job(rec, JobKind::Transcribe, 3, t0))
            .await,
        "enqueue",
    );
    assert!(first.created);
    assert_eq!(first.job.state, JobState::Queued);
    assert_eq!(first.job.attempts, 0);
    assert_eq!(first.job.max_attempts, 3);
    assert_eq!(first.job.recording_id, rec);
    assert_eq!(first.job.tenant_id, t);
    assert_eq!(first.job.run_after, t0);
    assert_eq!(get(s, t, first.job.id).await, first.job);

    let again = must(
        s.enqueue_job(t, &job(rec, JobKind::Transcribe, 3, t0))
            .await,
        "enqueue again",
    );
    assert!(!again.created, "a queued job is not duplicated");
    assert_eq!(again.job.id, first.job.id);

    // Another kind is another job.
    let recap = must(
        s.enqueue_job(t, &job(rec, JobKind::Recap, 3, t0)).await,
        "recap",
    );
    assert!(recap.created);

    // Running: still pending, still the same job.
    let c = some(claim(s, "w1", t0).await, "claim");
    let while_running = must(
        s.enqueue_job(t, &job(rec, c.job.kind, 3, t0)).await,
        "enqueue while running",
    );
    assert!(!while_running.created);
    assert_eq!(while_running.job.id, c.job.id);
    assert_eq!(while_running.job.state, JobState::Running);

    // Finished: a new enqueue is a new run (reprocess).
    assert!(must(s.complete_job(&c.lease, t0).await, "complete"));
    let rerun = must(
        s.enqueue_job(t, &job(rec, c.job.kind, 3, t0)).await,
        "enqueue after success",
    );
    assert!(rerun.created);
    assert_ne!(rerun.job.id, c.job.id);
    assert_eq!(must(s.list_jobs(t, rec).await, "list").len(), 3);

    assert!(matches!(
        s.enqueue_job(t, &job(rec, JobKind::Transcribe, 0, t0))
            .await,
        Err(StoreError::Invalid(_))
    ));
}

pub async fn enqueue_needs_the_recording_in_the_tenant(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let rec = recording(s, other).await;
    assert_not_found(
        s.enqueue_job(t, &NewJob::now(RecordingId::new(), JobKind::Transcribe))
            .await,
        "missing recording",
    );
    assert_not_found(
        s.enqueue_job(t, &NewJob::now(rec, JobKind::Transcribe))
            .await,
        "another tenant's recording",
    );
    assert_not_found(s.list_jobs(t, rec).await, "list across tenants");
    assert_not_found(s.list_jobs(t, RecordingId::new()).await, "list missing");
}

pub async fn claim_then_complete(s: &Store) {
    let t = tenant(s, "contoso").await;
    let rec = recording(s, t).await;
    let t0 = now();
    assert!(claim(s, "w1", t0).await.is_none(), "nothing to claim");
    let e = must(
        s.enqueue_job(t, &job(rec, JobKind::Transcribe, 3, t0))
            .await,
        "enqueue",
    );
    let c = some(claim(s, "w1", t0).await, "claim");
    assert_eq!(c.job.id, e.job.id);
    assert_eq!(c.lease.job_id, e.job.id);
    assert_eq!(c.lease.tenant_id, t);
    assert_eq!(c.job.state, JobState::Running);
    assert_eq!(c.job.attempts, 1);
    assert_eq!(c.job.worker_id.as_deref(), Some("w1"));
    assert_eq!(c.job.lease_expires_at, Some(t0 + Duration::seconds(30)));
    assert_eq!(get(s, t, c.job.id).await, c.job);
    assert!(
        claim(s, "w2", t0).await.is_none(),
        "a running job with a live lease is not claimed again"
    );

    let t1 = t0 + Duration::seconds(5);
    assert!(must(s.complete_job(&c.lease, t1).await, "complete"));
    let done = get(s, t, c.job.id).await;
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.finished_at, Some(t1));
    assert_eq!(done.lease_expires_at, None);
    assert_eq!(done.attempts, 1);
    assert!(
        !must(s.complete_job(&c.lease, t1).await, "complete twice"),
        "a finished job's lease is gone"
    );
    assert!(
        claim(s, "w2", t1 + Duration::hours(1)).await.is_none(),
        "a succeeded job is never claimed"
    );
}

pub async fn claims_honour_kinds_and_run_after(s: &Store) {
    let t = tenant(s, "contoso").await;
    let (r1, r2) = (recording(s, t).await, recording(s, t).await);
    let t0 = now();
    let later = must(
        s.enqueue_job(
            t,
            &job(r1, JobKind::Transcribe, 3, t0 + Duration::seconds(60)),
        )
        .await,
        "later",
    );
    let recap = must(
        s.enqueue_job(t, &job(r2, JobKind::Recap, 3, t0)).await,
        "recap",
    );
    let only_transcribe = ClaimRequest {
        kinds: vec![JobKind::Transcribe],
        ..claim_req("w1", t0)
    };
    assert!(
        must(s.claim_job(&only_transcribe).await, "claim").is_none(),
        "the transcribe job is not due, the recap job is of another kind"
    );
    let c = some(
        must(
            s.claim_job(&ClaimRequest {
                now: t0 + Duration::seconds(61),
                lease_until: t0 + Duration::seconds(91),
                ..only_transcribe.clone()
            })
            .await,
            "claim when due",
        ),
        "due",
    );
    assert_eq!(c.job.id, later.job.id);
    let c2 = some(claim(s, "w1", t0).await, "any kind");
    assert_eq!(c2.job.id, recap.job.id);
}

pub async fn transient_failure_retries_with_backoff(s: &Store) {
    let t = tenant(s, "contoso").await;
    let rec = recording(s, t).await;
    let t0 = now();
    must(
        s.enqueue_job(t, &job(rec, JobKind::Transcribe, 3, t0))
            .await,
        "enqueue",
    );
    let c = some(claim(s, "w1", t0).await, "claim");
    let backoff = Backoff::default();
    let delay = backoff.delay(c.job.attempts, 0.5, None);
    let retry_at = t0 + Duration::from_std(delay).unwrap_or_else(|_| Duration::seconds(10));
    let state = must(
        s.fail_job(&c.lease, &transient("provider answered 503", t0, retry_at))
            .await,
        "fail",
    );
    assert_eq!(state, Some(JobState::Queued));
    let j = get(s, t, c.job.id).await;
    assert_eq!(j.state, JobState::Queued);
    assert_eq!(j.run_after, retry_at);
    assert_eq!(j.last_error.as_deref(), Some("provider answered 503"));
    assert_eq!(j.finished_at, None);
    assert_eq!(j.attempts, 1);
    assert!(
        claim(s, "w1", retry_at - Duration::milliseconds(1))
            .await
            .is_none(),
        "not before the backoff ends"
    );
    let c2 = some(claim(s, "w2", retry_at).await, "claim after backoff");
    assert_eq!(c2.job.id, c.job.id);
    assert_eq!(c2.job.attempts, 2);
    assert_ne!(
        c2.lease.lease_id, c.lease.lease_id,
        "a fresh lease per claim"
    );
    assert!(must(s.complete_job(&c2.lease, retry_at).await, "complete"));
}

pub async fn dead_letter_after_max_attempts_with_reason(s: &Store) {
    let t = tenant(s, "contoso").await;
    let rec = recording(s, t).await;
    let mut at = now();
    let e = must(
        s.enqueue_job(t, &job(rec, JobKind::Transcribe, 3, at))
            .await,
        "enqueue",
    );
    for attempt in 1..=3u32 {
        let c = some(claim(s, "w1", at).await, "claim");
        assert_eq!(c.job.attempts, attempt);
        let retry_at = at + Duration::seconds(10);
        let state = must(
            s.fail_job(
                &c.lease,
                &transient(&format!("timeout on attempt {attempt}"), at, retry_at),
            )
            .await,
            "fail",
        );
        let want = if attempt < 3 {
            JobState::Queued
        } else {
            JobState::Dead
        };
        assert_eq!(state, Some(want), "attempt {attempt}");
        at = retry_at;
    }
    let dead = get(s, t, e.job.id).await;
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(dead.attempts, 3);
    assert_eq!(dead.last_error.as_deref(), Some("timeout on attempt 3"));
    assert!(dead.finished_at.is_some());
    assert!(
        claim(s, "w1", at + Duration::days(1)).await.is_none(),
        "a dead job is never claimed"
    );
    // Re-enqueueing after dead-lettering is a new job.
    let again = must(
        s.enqueue_job(t, &job(rec, JobKind::Transcribe, 3, at))
            .await,
        "again",
    );
    assert!(again.created);
}

pub async fn permanent_failure_dead_letters_at_once(s: &Store) {
    let t = tenant(s, "contoso").await;
    let rec = recording(s, t).await;
    let t0 = now();
    must(
        s.enqueue_job(t, &job(rec, JobKind::Transcribe, 5, t0))
            .await,
        "enqueue",
    );
    let c = some(claim(s, "w1", t0).await, "claim");
    let state = must(
        s.fail_job(
            &c.lease,
            &JobFailure {
                reason: "media cannot be decoded".into(),
                retry_at: None,
                now: t0,
            },
        )
        .await,
        "fail",
    );
    assert_eq!(state, Some(JobState::Dead));
    let j = get(s, t, c.job.id).await;
    assert_eq!(j.attempts, 1);
    assert_eq!(j.last_error.as_deref(), Some("media cannot be decoded"));
}

pub async fn expired_lease_is_claimed_again_and_fences_the_old_worker(s: &Store) {
    let t = tenant(s, "contoso").await;
    let rec = recording(s, t).await;
    let t0 = now();
    must(
        s.enqueue_job(t, &job(rec, JobKind::Transcribe, 3, t0))
            .await,
        "enqueue",
    );
    let old = some(claim(s, "killed-worker", t0).await, "claim");
    // The lease runs until t0 + 30 s.
    assert!(
        claim(s, "w2", t0 + Duration::seconds(29)).await.is_none(),
        "a live lease is respected"
    );
    let t1 = t0 + Duration::seconds(30);
    let new = some(claim(s, "w2", t1).await, "reclaim after expiry");
    assert_eq!(new.job.id, old.job.id);
    assert_eq!(new.job.attempts, 2);
    assert_eq!(new.job.worker_id.as_deref(), Some("w2"));

    // The old worker (perhaps only paused) has lost every right.
    assert!(!must(
        s.renew_job_lease(&old.lease, t1 + Duration::seconds(60))
            .await,
        "renew"
    ));
    assert!(!must(s.complete_job(&old.lease, t1).await, "complete"));
    assert_eq!(
        must(
            s.fail_job(&old.lease, &transient("late", t1, t1)).await,
            "fail"
        ),
        None
    );
    assert!(!must(s.release_job(&old.lease, t1).await, "release"));
    assert_eq!(get(s, t, new.job.id).await.state, JobState::Running);
    assert!(must(
        s.complete_job(&new.lease, t1).await,
        "new worker completes"
    ));
    assert_eq!(get(s, t, new.job.id).await.state, JobState::Succeeded);
}

pub async fn lease_lost_on_the_last_attempt_dead_letters(s: &Store) {
    let t = tenant(s, "contoso").await;
    let rec = recording(s, t).await;
    let t0 = now();
    let e = must(
        s.enqueue_job(t, &job(rec, JobKind::Transcribe, 1, t0))
            .await,
        "enqueue",
    );
    some(claim(s, "killed-worker", t0).await, "claim");
    assert!(
        claim(s, "w2", t0 + Duration::minutes(5)).await.is_none(),
        "no attempt left"
    );
    let j = get(s, t, e.job.id).await;
    assert_eq!(j.state, JobState::Dead);
    assert!(j.last_error.is_some_and(|r| r.contains("lease")));
}

pub async fn renewing_keeps_the_job(s: &Store) {
    let t = tenant(s, "contoso").await;
    let rec = recording(s, t).await;
    let t0 = now();
    must(
        s.enqueue_job(t, &job(rec, JobKind::Transcribe, 3, t0))
            .await,
        "enqueue",
    );
    let c = some(claim(s, "w1", t0).await, "claim");
    let until = t0 + Duration::seconds(90);
    assert!(must(s.renew_job_lease(&c.lease, until).await, "renew"));
    assert_eq!(get(s, t, c.job.id).await.lease_expires_at, Some(until));
    assert!(
        claim(s, "w2", t0 + Duration::seconds(60)).await.is_none(),
        "renewed past the original expiry"
    );
    assert!(
        claim(s, "w2", until).await.is_some(),
        "expires when not renewed"
    );
}

pub async fn release_gives_the_attempt_back(s: &Store) {
    let t = tenant(s, "contoso").await;
    let rec = recording(s, t).await;
    let t0 = now();
    must(
        s.enqueue_job(t, &job(rec, JobKind::Transcribe, 3, t0))
            .await,
        "enqueue",
    );
    let c = some(claim(s, "w1", t0).await, "claim");
    assert!(must(s.release_job(&c.lease, t0).await, "release"));
    let j = get(s, t, c.job.id).await;
    assert_eq!(j.state, JobState::Queued);
    assert_eq!(j.attempts, 0);
    assert_eq!(j.lease_expires_at, None);
    let c2 = some(claim(s, "w2", t0).await, "claim again at once");
    assert_eq!(c2.job.attempts, 1);
}

pub async fn concurrent_claimers_never_share_a_job(s: &Store) {
    const JOBS: usize = 60;
    const CLAIMERS: usize = 12;
    let t1 = tenant(s, "contoso").await;
    let t2 = tenant(s, "fabrikam").await;
    let t0 = now();
    let mut want = HashSet::new();
    for i in 0..JOBS {
        let t = if i % 2 == 0 { t1 } else { t2 };
        let rec = recording(s, t).await;
        let e = must(
            s.enqueue_job(t, &job(rec, JobKind::Transcribe, 3, t0))
                .await,
            "enqueue",
        );
        want.insert(e.job.id);
    }
    let mut tasks = Vec::new();
    for w in 0..CLAIMERS {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let req = claim_req(&format!("w{w}"), t0);
                match s.claim_job(&req).await {
                    Ok(Some(c)) => mine.push(c),
                    Ok(None) => break,
                    Err(e) => panic!("claim failed: {e:?}"),
                }
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    let mut tenants = HashSet::new();
    for task in tasks {
        for c in must(task.await, "claimer task") {
            assert!(seen.insert(c.job.id), "job {} claimed twice", c.job.id);
            assert_eq!(c.job.attempts, 1);
            tenants.insert(c.job.tenant_id);
        }
    }
    assert_eq!(seen, want, "every job claimed exactly once");
    assert_eq!(tenants.len(), 2, "claims span tenants");
}

pub async fn jobs_are_tenant_scoped(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let rec = recording(s, t).await;
    let e = must(
        s.enqueue_job(t, &NewJob::now(rec, JobKind::Transcribe))
            .await,
        "enqueue",
    );
    assert_not_found(s.get_job(other, e.job.id).await, "get across tenants");
    assert_not_found(s.get_job(t, JobId::new()).await, "missing");
    let listed = must(s.list_jobs(t, rec).await, "list");
    assert_eq!(listed, vec![e.job]);
}

pub async fn deleting_the_recording_deletes_its_jobs(s: &Store) {
    let t = tenant(s, "contoso").await;
    let rec = recording(s, t).await;
    let e = must(
        s.enqueue_job(t, &NewJob::now(rec, JobKind::Transcribe))
            .await,
        "enqueue",
    );
    must(s.delete_recording(t, rec).await, "delete recording");
    assert_not_found(s.get_job(t, e.job.id).await, "job gone");
    assert!(
        claim(s, "w1", now() + Duration::seconds(1)).await.is_none(),
        "nothing left to claim"
    );
}

fn seg(rec: RecordingId, start_ms: i64, text: &str) -> TranscriptSegment {
    TranscriptSegment {
        id: SegmentId::new(),
        recording_id: rec,
        participant_id: None,
        start_ms,
        end_ms: start_ms + 1000,
        text: text.to_owned(),
        confidence: 0.75,
        language: Some("en".into()),
    }
}

async fn transcript_hits(s: &Store, t: TenantId, words: &str) -> Vec<RecordingId> {
    let q = RecordingQuery {
        transcript_text: Some(words.to_owned()),
        ..RecordingQuery::default()
    };
    must(s.search_recordings(t, &q).await, "search")
        .items
        .into_iter()
        .map(|r| r.recording.id)
        .collect()
}

pub async fn replace_transcript_is_atomic_and_idempotent(s: &Store) {
    let t = tenant(s, "contoso").await;
    let rec = recording(s, t).await;
    let first = vec![
        seg(rec, 0, "quarterly zebra figures"),
        seg(rec, 2000, "hello there"),
    ];
    must(s.replace_transcript(t, rec, &first).await, "replace");
    must(s.replace_transcript(t, rec, &first).await, "replace again");
    assert_eq!(
        must(s.list_transcript(t, rec).await, "list").len(),
        2,
        "the same transcript twice is still one transcript"
    );
    assert!(must(s.get_recording(t, rec).await, "get").has_transcript);
    assert_eq!(transcript_hits(s, t, "zebra").await, vec![rec]);

    // A re-run with other segment ids replaces the whole transcript, and
    // the search index follows.
    let second = vec![seg(rec, 500, "walrus budget")];
    must(s.replace_transcript(t, rec, &second).await, "re-run");
    assert_eq!(must(s.list_transcript(t, rec).await, "list"), second);
    assert!(transcript_hits(s, t, "zebra").await.is_empty());
    assert_eq!(transcript_hits(s, t, "walrus").await, vec![rec]);

    // Concurrent replaces of one recording never interleave.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let segs: Vec<_> = (0..5)
                .map(|k| seg(rec, k * 1000, &format!("run {i} part {k}")))
                .collect();
            s.replace_transcript(t, rec, &segs).await
        }));
    }
    for task in tasks {
        must(must(task.await, "task"), "concurrent replace");
    }
    let now_stored = must(s.list_transcript(t, rec).await, "list");
    assert_eq!(now_stored.len(), 5, "one run's segments, not a mix");
    let run: HashSet<_> = now_stored
        .iter()
        .map(|x| x.text.split(" part ").next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(run.len(), 1, "all from one run");

    must(s.replace_transcript(t, rec, &[]).await, "empty");
    assert!(must(s.list_transcript(t, rec).await, "list").is_empty());
    assert!(!must(s.get_recording(t, rec).await, "get").has_transcript);

    let other = tenant(s, "fabrikam").await;
    assert_not_found(
        s.replace_transcript(other, rec, &second).await,
        "across tenants",
    );
    assert!(matches!(
        s.replace_transcript(t, rec, &[seg(RecordingId::new(), 0, "x")])
            .await,
        Err(StoreError::Invalid(_))
    ));
}
