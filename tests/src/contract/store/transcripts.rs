//! Transcripts and insights ([`TranscriptStore`]).
//!
//! [`TranscriptStore`]: insights_core::store::TranscriptStore

use super::fixtures::*;

pub async fn transcript_segments_idempotent_and_ordered(s: &Store) {
    let t = tenant(s, "contoso").await;
    let r = full_recording(t, now());
    must(s.insert_recording(t, &r).await, "insert");
    assert!(must(s.list_transcript(t, r.id).await, "empty").is_empty());

    let a = segment(r.id, 4000, "third in time");
    let b = TranscriptSegment {
        participant_id: Some(r.participants[0].id),
        ..segment(r.id, 0, "first in time")
    };
    // Same start as `b`: ordered after it by id (created later).
    let c = TranscriptSegment {
        language: None,
        confidence: 0.1,
        ..segment(r.id, 0, "second in time")
    };
    must(
        s.put_transcript_segments(t, r.id, &[a.clone(), c.clone(), b.clone()])
            .await,
        "put",
    );
    assert!(must(s.get_recording(t, r.id).await, "get").has_transcript);
    let by_start_then_id = |mut v: Vec<TranscriptSegment>| {
        v.sort_by_key(|x| (x.start_ms, x.id));
        v
    };
    let mut want = by_start_then_id(vec![a.clone(), b.clone(), c.clone()]);
    assert_eq!(want, [b.clone(), c.clone(), a.clone()]);
    assert_eq!(must(s.list_transcript(t, r.id).await, "list"), want);

    // A retried job puts the same segments again: no duplicates.
    must(
        s.put_transcript_segments(t, r.id, &[a.clone(), b.clone(), c.clone()])
            .await,
        "put again",
    );
    assert_eq!(must(s.list_transcript(t, r.id).await, "list again"), want);

    // Same id, new content: replaced (and the search index follows).
    let a2 = TranscriptSegment {
        text: "corrected walrus words".into(),
        confidence: 0.5,
        ..a.clone()
    };
    let d = segment(r.id, 2000, "a new segment");
    must(
        s.put_transcript_segments(t, r.id, &[a2.clone(), d.clone()])
            .await,
        "replace + add",
    );
    want = by_start_then_id(vec![a2, b, c, d]);
    assert_eq!(
        must(s.list_transcript(t, r.id).await, "list replaced"),
        want
    );
    let q = |w: &str| RecordingQuery {
        transcript_text: Some(w.into()),
        ..Default::default()
    };
    assert_eq!(
        must(s.search_recordings(t, &q("walrus")).await, "q").total,
        1
    );
    assert_eq!(
        must(s.search_recordings(t, &q("third")).await, "q").total,
        0
    );

    let missing = RecordingId::new();
    assert_not_found(
        s.put_transcript_segments(t, missing, &[segment(missing, 0, "x")])
            .await,
        "missing recording",
    );
    assert_not_found_or_empty(
        s.list_transcript(t, RecordingId::new()).await,
        "list missing",
    );
}

pub async fn insights_put_replace_list(s: &Store) {
    let t = tenant(s, "contoso").await;
    let r = full_recording(t, now());
    must(s.insert_recording(t, &r).await, "insert");
    assert!(must(s.list_insights(t, r.id).await, "empty").is_empty());

    let t0 = now() - Duration::minutes(10);
    let at = |m: i64| t0 + Duration::minutes(m);
    let items = vec![
        insight(r.id, InsightKind::Topic, "pricing", at(1)),
        insight(r.id, InsightKind::ActionItem, "send offer", at(3)),
        Insight {
            owner_participant_id: Some(r.participants[1].id),
            ..insight(r.id, InsightKind::ActionItem, "call back", at(2))
        },
        insight(r.id, InsightKind::Summary, "they agreed", at(5)),
        insight(r.id, InsightKind::Decision, "go ahead", at(4)),
        // Same kind and time as the previous decision: ordered by id.
        insight(r.id, InsightKind::Decision, "ship friday", at(4)),
    ];
    must(s.put_insights(t, r.id, &items).await, "put");
    let sorted = |mut v: Vec<Insight>| {
        v.sort_by_key(|i| (i.kind, i.created_at, i.id));
        v
    };
    let want = sorted(items.clone());
    assert_eq!(
        want[0].kind,
        InsightKind::Summary,
        "declaration order of kinds"
    );
    assert_eq!(must(s.list_insights(t, r.id).await, "list"), want);

    // Replaced by id, no duplicates.
    let mut changed = items.clone();
    changed[0].text = "pricing and discounts".into();
    changed[0].provider = "azure-openai:gpt".into();
    must(s.put_insights(t, r.id, &changed).await, "put again");
    assert_eq!(
        must(s.list_insights(t, r.id).await, "list"),
        sorted(changed)
    );

    let missing = RecordingId::new();
    assert_not_found(
        s.put_insights(
            t,
            missing,
            &[insight(missing, InsightKind::Topic, "x", now())],
        )
        .await,
        "missing recording",
    );
}
