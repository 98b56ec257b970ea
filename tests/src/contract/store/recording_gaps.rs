#![allow(clippy::expect_used, clippy::unwrap_used)] // contract cases: a failed expectation is the case failing
//! Gaps of recordings ([`RecordingGapStore`]): a pause is opened by the
//! API, started and closed by the gateway; one open gap per recording,
//! only in its tenant, deleted with the recording.
//!
//! [`RecordingGapStore`]: insights_core::store::RecordingGapStore

use super::fixtures::*;

pub async fn a_pause_is_opened_started_resumed_and_closed_once(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let at = now();
    let rec = Recording::new(t, RecordingKind::Call, Direction::Inbound, at);
    must(s.insert_recording(t, &rec).await, "insert");
    assert_eq!(must(s.current_recording_gap(t, rec.id).await, "none"), None);

    let gap = RecordingGap::pause(t, rec.id, "account-1", at);
    let opened = must(s.open_recording_gap(t, &gap).await, "open");
    assert_eq!(opened, gap);
    assert!(opened.wants_paused());
    // One open gap per recording.
    let second = RecordingGap::pause(t, rec.id, "account-2", at);
    assert_conflict(s.open_recording_gap(t, &second).await, "second open gap");
    // Another tenant sees nothing and cannot open one on it.
    assert_eq!(
        must(s.current_recording_gap(other, rec.id).await, "other"),
        None
    );
    assert!(must(s.recording_gaps(other, rec.id).await, "other list").is_empty());
    let foreign = RecordingGap::pause(other, rec.id, "account-3", at);
    assert_not_found(
        s.open_recording_gap(other, &foreign).await,
        "a recording of another tenant",
    );
    assert_invalid(
        s.open_recording_gap(t, &foreign).await,
        "a gap of another tenant",
    );
    assert!(!must(
        s.mark_gap_started(other, gap.id, at).await,
        "other tenant starts"
    ));

    // The gateway applies it, once.
    let started = at + Duration::milliseconds(180);
    assert!(must(s.mark_gap_started(t, gap.id, started).await, "start"));
    assert!(!must(
        s.mark_gap_started(t, gap.id, started + Duration::seconds(1))
            .await,
        "start again"
    ));
    assert_not_found(
        s.request_gap_end(other, rec.id, "account-1", at).await,
        "other tenant resumes",
    );
    let resume_at = at + Duration::seconds(4);
    let asked = must(
        s.request_gap_end(t, rec.id, "account-2", resume_at).await,
        "resume",
    );
    assert_eq!(asked.started_at, Some(started));
    assert_eq!(asked.resume_requested_at, Some(resume_at));
    assert_eq!(asked.resumed_by.as_deref(), Some("account-2"));
    assert!(!asked.wants_paused());
    assert_not_found(
        s.request_gap_end(t, rec.id, "account-2", resume_at).await,
        "resume twice",
    );
    let current = must(s.current_recording_gap(t, rec.id).await, "still open");
    assert_eq!(current, Some(asked.clone()));

    let ended = resume_at + Duration::milliseconds(250);
    assert!(!must(
        s.close_recording_gap(other, rec.id, ended).await,
        "other"
    ));
    assert!(must(s.close_recording_gap(t, rec.id, ended).await, "close"));
    assert!(!must(
        s.close_recording_gap(t, rec.id, ended).await,
        "closed"
    ));
    assert_eq!(must(s.current_recording_gap(t, rec.id).await, "none"), None);

    // A later pause of the same call is a new gap; both are listed.
    let later = RecordingGap::pause(t, rec.id, "account-1", ended + Duration::seconds(1));
    must(s.open_recording_gap(t, &later).await, "open again");
    let all = must(s.recording_gaps(t, rec.id).await, "list");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id, gap.id);
    assert_eq!(all[0].ended_at, Some(ended));
    assert_eq!(all[0].reason, RecordingGapReason::Paused);
    assert_eq!(all[1].id, later.id);
    assert_eq!(all[1].ended_at, None);

    // Gone with the recording.
    must(s.delete_recording(t, rec.id).await, "delete");
    assert!(must(s.recording_gaps(t, rec.id).await, "after delete").is_empty());
}

pub async fn a_pause_of_a_missing_recording_is_not_found(s: &Store) {
    let t = tenant(s, "contoso").await;
    let gap = RecordingGap::pause(t, RecordingId::new(), "account-1", now());
    assert_not_found(s.open_recording_gap(t, &gap).await, "missing recording");
}
