//! The recap step of the pipeline on a real store: the local recap of a
//! stored transcript is stored with its citations, and running the step
//! again (a retried job) replaces the items instead of adding copies.

use std::sync::Arc;

use ai_pipeline::recap::{Extractive, recap_recording};
use insights_core::domain::*;
use insights_core::store::MetadataStore;

#[tokio::test]
async fn recap_step_is_idempotent_and_cites_stored_segments() {
    let world = insights_tests::world::World::sqlite().await;
    let store: Arc<dyn MetadataStore> = world.store.clone();
    let t = world.tenant("contoso").await.id;
    let mut rec = Recording::new(t, RecordingKind::Call, Direction::Inbound, now());
    for (role, name) in [
        (ParticipantRole::Caller, "Dana Smith"),
        (ParticipantRole::Callee, "Evan Brooks"),
    ] {
        rec.participants.push(Participant {
            id: ParticipantId::new(),
            role,
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
    store
        .insert_recording(t, &rec)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let lines = [
        (
            0,
            "I am calling about the delayed shipment of the replacement parts.",
        ),
        (
            1,
            "The replacement parts shipment left the warehouse yesterday.",
        ),
        (0, "Can you send me the tracking number for the shipment?"),
        (1, "We agreed to refund the express shipping fee."),
    ];
    let segments: Vec<TranscriptSegment> = lines
        .iter()
        .enumerate()
        .map(|(i, (who, text))| TranscriptSegment {
            id: SegmentId::new(),
            recording_id: rec.id,
            participant_id: Some(rec.participants[*who].id),
            start_ms: i as i64 * 6_000,
            end_ms: i as i64 * 6_000 + 5_000,
            text: (*text).into(),
            confidence: 0.9,
            language: Some("en".into()),
        })
        .collect();
    store
        .put_transcript_segments(t, rec.id, &segments)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));

    let first = recap_recording(store.as_ref(), &Extractive, t, rec.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let again = recap_recording(store.as_ref(), &Extractive, t, rec.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let stored = store
        .list_insights(t, rec.id)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(stored.len(), first.len(), "a retried step adds no copies");
    assert_eq!(
        stored.iter().map(|i| i.id).collect::<Vec<_>>(),
        again.iter().map(|i| i.id).collect::<Vec<_>>()
    );
    let decision = stored
        .iter()
        .find(|i| i.kind == InsightKind::Decision)
        .unwrap_or_else(|| panic!("a decision: {stored:?}"));
    assert_eq!(decision.citations, vec![Citation::of(&segments[3])]);
    let action = stored
        .iter()
        .find(|i| i.kind == InsightKind::ActionItem)
        .unwrap_or_else(|| panic!("an action item: {stored:?}"));
    assert_eq!(action.citations, vec![Citation::of(&segments[2])]);
    assert_eq!(action.owner_participant_id, Some(rec.participants[1].id));

    // A recording of nobody: NotFound, not transient.
    let err = recap_recording(store.as_ref(), &Extractive, t, RecordingId::new())
        .await
        .err()
        .unwrap_or_else(|| panic!("missing recording"));
    assert!(!err.is_transient());
}
