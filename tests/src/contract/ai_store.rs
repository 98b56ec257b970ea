//! Contract suite of the AI pipeline's store parts (migration 0004):
//! recap citations on insights and the provider-call processing records.
//! Run against every backend like [`super::store`]:
//!
//! ```text
//! insights_tests::ai_store_contract_tests!(make);
//! ```
//!
//! where `make` returns a fresh [`StoreUnderTest`].

use chrono::{DateTime, Duration, Utc};
use insights_core::domain::*;
use insights_core::store::{StoreError, StoreResult};
use uuid::Uuid;

pub use super::store::{Store, StoreUnderTest};

#[track_caller]
fn must<T, E: std::fmt::Debug>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error {e:?}"),
    }
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("{what}: expected Invalid, got {other:?}"),
    }
}

async fn tenant(s: &Store, name: &str) -> TenantId {
    must(
        s.create_tenant(NewTenant {
            name: name.to_owned(),
            directory_tenant_id: Some(Uuid::new_v4()),
        })
        .await,
        "create tenant",
    )
    .id
}

/// A stored meeting with two participants and four segments.
async fn meeting(s: &Store, t: TenantId) -> (Recording, Vec<TranscriptSegment>) {
    let mut r = Recording::new(t, RecordingKind::Meeting, Direction::Internal, now());
    for name in ["Alice Martin", "Bob Chen"] {
        r.participants.push(Participant {
            id: ParticipantId::new(),
            role: ParticipantRole::Attendee,
            display_name: Some(name.into()),
            phone_number: None,
            uri: None,
            email: None,
            directory_user_id: None,
            recorded_user: false,
            joined_ms: Some(0),
            left_ms: None,
        });
    }
    must(s.insert_recording(t, &r).await, "insert recording");
    let segs: Vec<TranscriptSegment> = (0..4)
        .map(|i| TranscriptSegment {
            id: SegmentId::new(),
            recording_id: r.id,
            participant_id: Some(r.participants[i % 2].id),
            start_ms: i as i64 * 4_000,
            end_ms: i as i64 * 4_000 + 3_200,
            text: format!("segment number {i}"),
            confidence: 0.9,
            language: Some("en".into()),
        })
        .collect();
    must(s.put_transcript_segments(t, r.id, &segs).await, "segments");
    (r, segs)
}

fn item(
    rec: RecordingId,
    kind: InsightKind,
    text: &str,
    at: DateTime<Utc>,
    cites: &[&TranscriptSegment],
) -> Insight {
    Insight {
        id: InsightId::new(),
        recording_id: rec,
        kind,
        text: text.to_owned(),
        owner_participant_id: None,
        provider: "local:extractive".into(),
        created_at: at,
        citations: cites.iter().map(|s| Citation::of(s)).collect(),
    }
}

fn sorted(mut v: Vec<Insight>) -> Vec<Insight> {
    v.sort_by_key(|i| (i.kind, i.created_at, i.id));
    v
}

pub async fn insight_citations_round_trip(s: &Store) {
    let t = tenant(s, "contoso").await;
    let (r, segs) = meeting(s, t).await;
    let at = now();
    let mut action = item(
        r.id,
        InsightKind::ActionItem,
        "send the quote",
        at,
        &[&segs[1], &segs[2]],
    );
    action.owner_participant_id = Some(r.participants[1].id);
    let items = vec![
        item(
            r.id,
            InsightKind::Summary,
            "they agreed",
            at,
            &[&segs[0], &segs[1], &segs[3]],
        ),
        action,
        item(r.id, InsightKind::Topic, "pricing", at, &[]),
    ];
    must(s.put_insights(t, r.id, &items).await, "put");
    let got = must(s.list_insights(t, r.id).await, "list");
    assert_eq!(
        got,
        sorted(items.clone()),
        "citations come back exactly, in order"
    );
    assert_eq!(got[0].citations[2].start_ms, 12_000);
    assert_eq!(got[0].citations[2].end_ms, 15_200);

    // Replacing an insight replaces its citations.
    let mut changed = items.clone();
    changed[0].citations = vec![Citation::of(&segs[2])];
    must(s.put_insights(t, r.id, &changed).await, "replace");
    assert_eq!(
        must(s.list_insights(t, r.id).await, "list"),
        sorted(changed)
    );
}

pub async fn key_points_sort_after_the_summary(s: &Store) {
    let t = tenant(s, "contoso").await;
    let (r, segs) = meeting(s, t).await;
    let at = now() - Duration::minutes(5);
    let items = vec![
        item(r.id, InsightKind::Decision, "go", at, &[&segs[3]]),
        item(
            r.id,
            InsightKind::KeyPoint,
            "second point",
            at + Duration::seconds(1),
            &[&segs[2]],
        ),
        item(r.id, InsightKind::KeyPoint, "first point", at, &[&segs[1]]),
        item(
            r.id,
            InsightKind::Summary,
            "summary",
            at + Duration::seconds(9),
            &[&segs[0]],
        ),
    ];
    must(s.put_insights(t, r.id, &items).await, "put");
    let kinds: Vec<(InsightKind, String)> = must(s.list_insights(t, r.id).await, "list")
        .into_iter()
        .map(|i| (i.kind, i.text))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (InsightKind::Summary, "summary".to_owned()),
            (InsightKind::KeyPoint, "first point".to_owned()),
            (InsightKind::KeyPoint, "second point".to_owned()),
            (InsightKind::Decision, "go".to_owned()),
        ]
    );
}

pub async fn citations_must_name_segments_of_the_recording(s: &Store) {
    let t = tenant(s, "contoso").await;
    let (r, segs) = meeting(s, t).await;
    let (other, other_segs) = meeting(s, t).await;
    let at = now();
    // A segment of another recording of the same tenant.
    assert_invalid(
        s.put_insights(
            t,
            r.id,
            &[item(
                r.id,
                InsightKind::Summary,
                "x",
                at,
                &[&segs[0], &other_segs[0]],
            )],
        )
        .await,
        "citing another recording's segment",
    );
    // A segment that does not exist at all.
    let ghost = TranscriptSegment {
        id: SegmentId::new(),
        ..segs[0].clone()
    };
    assert_invalid(
        s.put_insights(
            t,
            r.id,
            &[item(r.id, InsightKind::KeyPoint, "x", at, &[&ghost])],
        )
        .await,
        "citing a missing segment",
    );
    // A segment of another tenant looks exactly like a missing one.
    let t2 = tenant(s, "fabrikam").await;
    let (_, foreign) = meeting(s, t2).await;
    assert_invalid(
        s.put_insights(
            t,
            r.id,
            &[item(r.id, InsightKind::KeyPoint, "x", at, &[&foreign[0]])],
        )
        .await,
        "citing another tenant's segment",
    );
    // Nothing was stored by the refused calls.
    assert!(must(s.list_insights(t, r.id).await, "list").is_empty());
    assert!(must(s.list_insights(t, other.id).await, "list").is_empty());
}

fn call(t: TenantId, rec: Option<RecordingId>, at: DateTime<Utc>, op: &str) -> ProviderCall {
    ProviderCall {
        id: ProviderCallId::new(),
        tenant_id: t,
        recording_id: rec,
        provider: "openai-compatible".into(),
        operation: op.into(),
        bytes_sent: 64_044,
        bytes_received: 1_234,
        http_status: Some(200),
        outcome: ProviderCallOutcome::Ok,
        at,
        duration_ms: 850,
    }
}

pub async fn provider_calls_record_and_list(s: &Store) {
    let t = tenant(s, "contoso").await;
    let (r, _) = meeting(s, t).await;
    let t0 = now() - Duration::minutes(10);
    let a = call(
        t,
        Some(r.id),
        t0 + Duration::seconds(2),
        "audio-transcriptions",
    );
    let b = ProviderCall {
        http_status: Some(429),
        outcome: ProviderCallOutcome::RateLimited,
        bytes_received: 0,
        ..call(t, Some(r.id), t0, "chat-completions")
    };
    let c = ProviderCall {
        http_status: None,
        outcome: ProviderCallOutcome::Unreachable,
        recording_id: None,
        ..call(t, None, t0 + Duration::seconds(1), "chat-completions")
    };
    for x in [&a, &b, &c] {
        must(s.record_provider_call(t, x).await, "record");
    }
    let all = must(
        s.list_provider_calls(t, &ProviderCallQuery::default())
            .await,
        "list",
    );
    assert_eq!(all, vec![b, c, a], "ordered by time, every field kept");
    assert_invalid(
        s.record_provider_call(t, &call(TenantId::new(), None, now(), "x"))
            .await,
        "a record of another tenant",
    );
    let unknown = TenantId::new();
    let r = s
        .record_provider_call(unknown, &call(unknown, None, now(), "x"))
        .await;
    assert!(
        matches!(r, Err(StoreError::NotFound)),
        "unknown tenant: {r:?}"
    );
}

pub async fn provider_call_records_are_idempotent(s: &Store) {
    let t = tenant(s, "contoso").await;
    let a = call(t, None, now(), "messages");
    must(s.record_provider_call(t, &a).await, "record");
    must(s.record_provider_call(t, &a).await, "record again");
    let all = must(
        s.list_provider_calls(t, &ProviderCallQuery::default())
            .await,
        "list",
    );
    assert_eq!(all, vec![a], "a retried write never duplicates");
}

pub async fn provider_call_filters(s: &Store) {
    let t = tenant(s, "contoso").await;
    let (r1, _) = meeting(s, t).await;
    let (r2, _) = meeting(s, t).await;
    let t0 = now() - Duration::hours(1);
    let calls: Vec<ProviderCall> = (0..6)
        .map(|i| {
            let rec = if i % 2 == 0 { r1.id } else { r2.id };
            call(t, Some(rec), t0 + Duration::minutes(i), "get-transcription")
        })
        .collect();
    for c in &calls {
        must(s.record_provider_call(t, c).await, "record");
    }
    let q = |recording_id, from, to, limit| ProviderCallQuery {
        recording_id,
        from,
        to,
        limit,
    };
    let ids = |v: Vec<ProviderCall>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let want = |idx: &[usize]| idx.iter().map(|&i| calls[i].id).collect::<Vec<_>>();
    assert_eq!(
        ids(must(
            s.list_provider_calls(t, &q(Some(r1.id), None, None, 0))
                .await,
            "r1"
        )),
        want(&[0, 2, 4])
    );
    assert_eq!(
        ids(must(
            s.list_provider_calls(t, &q(None, Some(calls[1].at), Some(calls[4].at), 0))
                .await,
            "from inclusive, to exclusive"
        )),
        want(&[1, 2, 3])
    );
    assert_eq!(
        ids(must(
            s.list_provider_calls(t, &q(Some(r2.id), None, None, 2))
                .await,
            "limit"
        )),
        want(&[1, 3])
    );
    assert!(
        must(
            s.list_provider_calls(t, &q(Some(RecordingId::new()), None, None, 0))
                .await,
            "unknown recording"
        )
        .is_empty()
    );
}

pub async fn provider_calls_are_tenant_isolated(s: &Store) {
    let a = tenant(s, "contoso").await;
    let b = tenant(s, "fabrikam").await;
    let ca = call(a, None, now(), "chat-completions");
    let cb = call(b, None, now(), "chat-completions");
    must(s.record_provider_call(a, &ca).await, "a");
    must(s.record_provider_call(b, &cb).await, "b");
    // The same id in another tenant is another record.
    let cb_same_id = ProviderCall {
        id: ca.id,
        ..cb.clone()
    };
    must(s.record_provider_call(b, &cb_same_id).await, "b, a's id");
    assert_eq!(
        must(
            s.list_provider_calls(a, &ProviderCallQuery::default())
                .await,
            "list a"
        ),
        vec![ca]
    );
    let listed_b = must(
        s.list_provider_calls(b, &ProviderCallQuery::default())
            .await,
        "list b",
    );
    assert_eq!(listed_b.len(), 2);
    assert!(listed_b.iter().all(|c| c.tenant_id == b));
}

pub async fn provider_calls_outlive_their_recording(s: &Store) {
    let t = tenant(s, "contoso").await;
    let (r, _) = meeting(s, t).await;
    let c = call(t, Some(r.id), now(), "audio-transcriptions");
    must(s.record_provider_call(t, &c).await, "record");
    must(s.delete_recording(t, r.id).await, "delete recording");
    assert_eq!(
        must(
            s.list_provider_calls(
                t,
                &ProviderCallQuery {
                    recording_id: Some(r.id),
                    ..ProviderCallQuery::default()
                }
            )
            .await,
            "list"
        ),
        vec![c],
        "processing records stay when the recording goes"
    );
}
