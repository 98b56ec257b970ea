//! Contract suite of the data-subject store methods (GDPR, issue 7):
//! `find_subject_participants`, `erase_participant_identity`,
//! `delete_insights` and the erasure requests. Run on SQLite and
//! PostgreSQL by `tests/tests/it/gdpr_store_*.rs`.

use chrono::{Duration, TimeZone, Utc};
use insights_core::domain::*;
use insights_core::store::StoreError;
use uuid::Uuid;

use super::store::Store;

async fn tenant(s: &Store, name: &str) -> TenantId {
    s.create_tenant(NewTenant {
        name: name.into(),
        directory_tenant_id: None,
    })
    .await
    .unwrap_or_else(|e| panic!("create tenant: {e:?}"))
    .id
}

fn participant(role: ParticipantRole) -> Participant {
    Participant {
        id: ParticipantId::new(),
        role,
        display_name: None,
        phone_number: None,
        uri: None,
        email: None,
        directory_user_id: None,
        recorded_user: false,
        joined_ms: None,
        left_ms: None,
    }
}

async fn recording(s: &Store, t: TenantId, minutes: i64, parts: Vec<Participant>) -> Recording {
    let t0 = Utc
        .with_ymd_and_hms(2026, 1, 5, 8, 0, 0)
        .single()
        .unwrap_or_default();
    let mut r = Recording::new(
        t,
        RecordingKind::Call,
        Direction::Inbound,
        t0 + Duration::minutes(minutes),
    );
    r.participants = parts;
    s.insert_recording(t, &r)
        .await
        .unwrap_or_else(|e| panic!("insert recording: {e:?}"));
    r
}

fn hits(v: &[ParticipantHit]) -> Vec<(RecordingId, ParticipantId)> {
    v.iter()
        .map(|h| (h.recording_id, h.participant_id))
        .collect()
}

pub async fn subject_participants_match_exactly_and_in_tenant(s: &Store) {
    let t = tenant(s, "subjects-a").await;
    let other_t = tenant(s, "subjects-b").await;
    let user = UserId::new();
    let mut by_phone = participant(ParticipantRole::Caller);
    by_phone.phone_number = Some("+442079460958".into());
    let mut by_email = participant(ParticipantRole::Attendee);
    by_email.email = Some("Dana.Subject@Example.org".into());
    let mut by_uri = participant(ParticipantRole::RedirectedTo);
    by_uri.uri = Some("SIP:dana.subject@example.org".into());
    let mut by_user = participant(ParticipantRole::AnsweredBy);
    by_user.directory_user_id = Some(user);
    let mut by_name = participant(ParticipantRole::RedirectedBy);
    by_name.display_name = Some("Dana SUBJECT".into());
    let mut near = participant(ParticipantRole::Callee);
    near.phone_number = Some("+4420794609581".into());
    near.email = Some("dana.subject@example.org.evil".into());
    near.display_name = Some("Dana Subjects".into());
    let r1 = recording(s, t, 1, vec![by_phone.clone(), near.clone()]).await;
    let r2 = recording(s, t, 2, vec![by_email.clone(), by_uri.clone()]).await;
    let r3 = recording(s, t, 3, vec![by_user.clone(), by_name.clone()]).await;
    // The same identifiers in another tenant are never returned.
    let mut foreign = by_phone.clone();
    foreign.id = ParticipantId::new();
    recording(s, other_t, 0, vec![foreign]).await;

    let keys = SubjectKeys {
        phones: vec!["+442079460958".into()],
        emails: vec!["dana.subject@example.org".into()],
        uris: vec!["sip:dana.subject@example.org".into()],
        directory_user_ids: vec![user],
        names: vec!["dana subject".into()],
    };
    let found = s
        .find_subject_participants(t, &keys, 0)
        .await
        .unwrap_or_else(|e| panic!("find: {e:?}"));
    assert_eq!(
        hits(&found),
        vec![
            (r1.id, by_phone.id),
            (r2.id, by_email.id),
            (r2.id, by_uri.id),
            (r3.id, by_user.id),
            (r3.id, by_name.id),
        ],
        "exact matches only, ordered by start"
    );
    assert_eq!(found[0].started_at, r1.started_at);
    // Each key kind on its own.
    let one = |k: SubjectKeys| async move {
        hits(
            &s.find_subject_participants(t, &k, 0)
                .await
                .unwrap_or_default(),
        )
    };
    assert_eq!(
        one(SubjectKeys {
            phones: keys.phones.clone(),
            ..Default::default()
        })
        .await,
        vec![(r1.id, by_phone.id)]
    );
    assert_eq!(
        one(SubjectKeys {
            names: keys.names.clone(),
            ..Default::default()
        })
        .await,
        vec![(r3.id, by_name.id)]
    );
    assert_eq!(
        one(SubjectKeys {
            directory_user_ids: vec![user],
            ..Default::default()
        })
        .await,
        vec![(r3.id, by_user.id)]
    );
    assert!(
        one(SubjectKeys::default()).await.is_empty(),
        "no keys, no matches"
    );
    let limited = s
        .find_subject_participants(t, &keys, 2)
        .await
        .unwrap_or_default();
    assert_eq!(limited.len(), 2);
}

pub async fn erase_participant_identity_rules(s: &Store) {
    let t = tenant(s, "erase-participant").await;
    let mut p = participant(ParticipantRole::Caller);
    p.display_name = Some("Dana Subject".into());
    p.phone_number = Some("+442079460958".into());
    p.uri = Some("tel:+442079460958".into());
    p.email = Some("dana@example.org".into());
    p.directory_user_id = Some(UserId::new());
    let mut other = participant(ParticipantRole::Callee);
    other.display_name = Some("Other Party".into());
    let r = recording(s, t, 0, vec![p.clone(), other.clone()]).await;
    // A SIPREC call's DTMF (may be a PIN) and extension data.
    let ext = serde_json::json!({ "urn:x-vendor": { "ucid": "0001" } });
    let attrs = std::collections::BTreeMap::from([
        (
            "dtmf".to_owned(),
            serde_json::json!([{ "at_ms": 10, "digit": "4", "duration_ms": 80, "stream": "1" }]),
        ),
        ("siprec.extensions".to_owned(), ext.clone()),
    ]);
    s.merge_recording_attributes(t, r.id, &attrs)
        .await
        .unwrap_or_else(|e| panic!("attributes: {e:?}"));
    s.erase_participant_identity(t, r.id, p.id, "[erased]")
        .await
        .unwrap_or_else(|e| panic!("erase: {e:?}"));
    let got = s
        .get_recording(t, r.id)
        .await
        .unwrap_or_else(|e| panic!("get: {e:?}"));
    let erased = &got.participants[0];
    assert_eq!(erased.display_name.as_deref(), Some("[erased]"));
    assert_eq!(
        (
            &erased.phone_number,
            &erased.uri,
            &erased.email,
            erased.directory_user_id
        ),
        (&None, &None, &None, None)
    );
    assert_eq!(erased.role, ParticipantRole::Caller);
    assert_eq!(got.participants[1], other, "other parties untouched");
    // The DTMF digits go with the erasure; the rest of the attributes stay.
    assert_eq!(got.attributes.get("dtmf"), None, "{:?}", got.attributes);
    assert_eq!(got.attributes.get("siprec.extensions"), Some(&ext));
    // The search indexes follow.
    for q in ["dana", "2079460958"] {
        let page = s
            .search_recordings(
                t,
                &RecordingQuery {
                    participant: Some(q.into()),
                    ..RecordingQuery::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("search: {e:?}"));
        assert_eq!(page.total, 0, "search {q:?} after erasure");
    }
    assert!(
        s.find_subject_participants(
            t,
            &SubjectKeys {
                phones: vec!["+442079460958".into()],
                ..Default::default()
            },
            0
        )
        .await
        .unwrap_or_default()
        .is_empty()
    );
    // Unknown participant, other tenant, legal hold.
    assert!(matches!(
        s.erase_participant_identity(t, r.id, ParticipantId::new(), "x")
            .await,
        Err(StoreError::NotFound)
    ));
    let t2 = tenant(s, "erase-participant-2").await;
    assert!(matches!(
        s.erase_participant_identity(t2, r.id, other.id, "x").await,
        Err(StoreError::NotFound)
    ));
    s.set_legal_hold_flag(t, r.id, true)
        .await
        .unwrap_or_else(|e| panic!("hold: {e:?}"));
    assert!(matches!(
        s.erase_participant_identity(t, r.id, other.id, "x").await,
        Err(StoreError::Refused(_))
    ));
}

pub async fn delete_insights_and_erasure_requests(s: &Store) {
    let t = tenant(s, "erasure-requests").await;
    let t2 = tenant(s, "erasure-requests-2").await;
    let r = recording(s, t, 0, vec![participant(ParticipantRole::Caller)]).await;
    let insight = Insight {
        id: InsightId::new(),
        recording_id: r.id,
        kind: InsightKind::Summary,
        text: "summary".into(),
        owner_participant_id: None,
        provider: "local:extractive".into(),
        created_at: now(),
        citations: Vec::new(),
    };
    s.put_insights(t, r.id, std::slice::from_ref(&insight))
        .await
        .unwrap_or_else(|e| panic!("put insights: {e:?}"));
    assert_eq!(
        s.delete_insights(t2, r.id).await.unwrap_or(99),
        0,
        "other tenant"
    );
    assert_eq!(s.delete_insights(t, r.id).await.unwrap_or(0), 1);
    assert!(
        s.list_insights(t, r.id)
            .await
            .unwrap_or_default()
            .is_empty()
    );

    let mk = |minute: i64| ErasureRecord {
        id: Uuid::now_v7(),
        tenant_id: t,
        status: "planned".into(),
        created_at: Utc
            .with_ymd_and_hms(2026, 2, 1, 0, 0, 0)
            .single()
            .unwrap_or_default()
            + Duration::minutes(minute),
        created_by: "dpo".into(),
        updated_at: now(),
        state: serde_json::json!({"report": {"recordings": [1, 2]}, "n": minute}),
    };
    let a = mk(1);
    let mut b = mk(2);
    for rec in [&a, &b] {
        s.put_erasure_request(t, rec)
            .await
            .unwrap_or_else(|e| panic!("put erasure: {e:?}"));
    }
    b.status = "completed".into();
    b.state = serde_json::json!({"done": true});
    s.put_erasure_request(t, &b)
        .await
        .unwrap_or_else(|e| panic!("update erasure: {e:?}"));
    let got = s
        .get_erasure_request(t, b.id)
        .await
        .unwrap_or_else(|e| panic!("get: {e:?}"));
    assert_eq!(got.status, "completed");
    assert_eq!(got.state, serde_json::json!({"done": true}));
    assert_eq!(got.created_at, b.created_at);
    let list = s.list_erasure_requests(t).await.unwrap_or_default();
    assert_eq!(
        list.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![b.id, a.id],
        "newest first"
    );
    assert!(matches!(
        s.get_erasure_request(t2, a.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        s.list_erasure_requests(t2)
            .await
            .unwrap_or_default()
            .is_empty()
    );
    assert!(matches!(
        s.put_erasure_request(t2, &a).await,
        Err(StoreError::Invalid(_))
    ));
}

pub async fn get_recordings_in_batches(s: &Store) {
    let t = tenant(s, "batch-read").await;
    let t2 = tenant(s, "batch-read-2").await;
    let mut p = participant(ParticipantRole::Caller);
    p.display_name = Some("A".into());
    let late = recording(
        s,
        t,
        30,
        vec![p.clone(), participant(ParticipantRole::Callee)],
    )
    .await;
    let early = recording(s, t, 10, vec![participant(ParticipantRole::Attendee)]).await;
    let foreign = recording(s, t2, 20, vec![participant(ParticipantRole::Caller)]).await;
    let got = s
        .get_recordings(t, &[late.id, RecordingId::new(), foreign.id, early.id])
        .await
        .unwrap_or_else(|e| panic!("get_recordings: {e:?}"));
    assert_eq!(
        got.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![early.id, late.id],
        "ordered by start; missing and other tenants' ids skipped"
    );
    for r in &got {
        let one = s
            .get_recording(t, r.id)
            .await
            .unwrap_or_else(|e| panic!("get: {e:?}"));
        assert_eq!(&one, r, "the same recording as get_recording");
    }
    assert!(
        s.get_recordings(t, &[])
            .await
            .unwrap_or_default()
            .is_empty()
    );
}
