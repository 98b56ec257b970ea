//! Recordings, participants and streams ([`RecordingStore`]).
//!
//! [`RecordingStore`]: insights_core::store::RecordingStore

use super::fixtures::*;

pub async fn recording_round_trip(s: &Store) {
    let t = tenant(s, "contoso").await;
    let r = full_recording(t, now() - Duration::hours(1));
    must(s.insert_recording(t, &r).await, "insert");
    assert_eq!(must(s.get_recording(t, r.id).await, "get"), r);
    let call_id = r.external_call_id.clone().unwrap_or_default();
    assert_eq!(
        must(
            s.recording_by_external_call_id(t, &call_id).await,
            "by call id"
        ),
        r
    );

    // A bare recording: no parties, no media, every option empty.
    let bare = Recording::new(t, RecordingKind::Meeting, Direction::Unknown, now());
    must(s.insert_recording(t, &bare).await, "insert bare");
    assert_eq!(must(s.get_recording(t, bare.id).await, "get bare"), bare);

    assert_not_found(s.get_recording(t, RecordingId::new()).await, "missing");
    assert_not_found(
        s.recording_by_external_call_id(t, "no-such-call").await,
        "missing call id",
    );
}

pub async fn insert_recording_rules(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    // The recording says it belongs to `other`, but is inserted for `t`.
    let r = full_recording(other, now());
    assert_invalid(s.insert_recording(t, &r).await, "tenant mismatch");
    assert_not_found(s.get_recording(t, r.id).await, "nothing stored (t)");
    assert_not_found(s.get_recording(other, r.id).await, "nothing stored (other)");

    let r = full_recording(t, now());
    must(s.insert_recording(t, &r).await, "insert");
    assert_conflict(s.insert_recording(t, &r).await, "same id twice");
    assert_eq!(must(s.get_recording(t, r.id).await, "unchanged"), r);
}

pub async fn recordings_are_tenant_isolated(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let r = full_recording(t, now() - Duration::minutes(5));
    must(s.insert_recording(t, &r).await, "insert");
    let seg = segment(r.id, 0, "the secret merger");
    must(
        s.put_transcript_segments(t, r.id, std::slice::from_ref(&seg))
            .await,
        "transcript",
    );
    let ins = insight(r.id, InsightKind::Summary, "merger talk", now());
    must(
        s.put_insights(t, r.id, std::slice::from_ref(&ins)).await,
        "insights",
    );
    let r = must(s.get_recording(t, r.id).await, "reload");

    let call_id = r.external_call_id.clone().unwrap_or_default();
    assert_not_found(s.get_recording(other, r.id).await, "get");
    assert_not_found(
        s.recording_by_external_call_id(other, &call_id).await,
        "by call id",
    );
    assert_not_found(
        s.update_recording_status(other, r.id, RecordingStatus::Failed, Some(now()), Some("x"))
            .await,
        "update status",
    );
    assert_not_found(
        s.add_participant(other, r.id, &party(ParticipantRole::Attendee))
            .await,
        "add participant",
    );
    assert_not_found(
        s.add_stream(other, r.id, &stream(9, None)).await,
        "add stream",
    );
    assert_not_found(s.set_recording_media(other, r.id, None).await, "set media");
    assert_not_found(s.set_legal_hold_flag(other, r.id, true).await, "set hold");
    assert_not_found(
        s.put_transcript_segments(other, r.id, &[segment(r.id, 5, "injected")])
            .await,
        "put transcript",
    );
    assert_not_found(
        s.put_insights(
            other,
            r.id,
            &[insight(r.id, InsightKind::Topic, "x", now())],
        )
        .await,
        "put insights",
    );
    assert_not_found_or_empty(s.list_transcript(other, r.id).await, "list transcript");
    assert_not_found_or_empty(s.list_insights(other, r.id).await, "list insights");
    assert_not_found(s.delete_recording(other, r.id).await, "delete");

    for q in [
        RecordingQuery::default(),
        RecordingQuery {
            participant: Some("Party0".into()),
            ..Default::default()
        },
        RecordingQuery {
            transcript_text: Some("merger".into()),
            ..Default::default()
        },
    ] {
        let page = must(s.search_recordings(other, &q).await, "search other");
        assert_eq!(page.total, 0, "other tenant search total for {q:?}");
        assert!(page.items.is_empty());
    }

    // The owner still sees everything, untouched.
    assert_eq!(must(s.get_recording(t, r.id).await, "owner get"), r);
    assert_eq!(
        must(s.list_transcript(t, r.id).await, "owner transcript"),
        vec![seg]
    );
    assert_eq!(
        must(s.list_insights(t, r.id).await, "owner insights"),
        vec![ins]
    );
    let page = must(
        s.search_recordings(t, &RecordingQuery::default()).await,
        "owner search",
    );
    assert_eq!(page.total, 1);
}

pub async fn status_update_sets_duration(s: &Store) {
    let t = tenant(s, "contoso").await;
    let started = now() - Duration::hours(2);
    let r = Recording::new(t, RecordingKind::Call, Direction::Outbound, started);
    must(s.insert_recording(t, &r).await, "insert");

    let ended = started + Duration::milliseconds(125_000);
    must(
        s.update_recording_status(t, r.id, RecordingStatus::Spooled, Some(ended), Some("ok"))
            .await,
        "spooled",
    );
    let got = must(s.get_recording(t, r.id).await, "get");
    assert_eq!(got.status, RecordingStatus::Spooled);
    assert_eq!(got.ended_at, Some(ended));
    assert_eq!(got.result_code.as_deref(), Some("ok"));
    assert_eq!(got.duration_ms, Some(125_000));

    // `None` keeps what is there.
    must(
        s.update_recording_status(t, r.id, RecordingStatus::Stored, None, None)
            .await,
        "stored",
    );
    let got = must(s.get_recording(t, r.id).await, "get");
    assert_eq!(got.status, RecordingStatus::Stored);
    assert_eq!(got.ended_at, Some(ended));
    assert_eq!(got.result_code.as_deref(), Some("ok"));
    assert_eq!(got.duration_ms, Some(125_000));

    let ended2 = started + Duration::milliseconds(200_000);
    must(
        s.update_recording_status(
            t,
            r.id,
            RecordingStatus::MediaDeleted,
            Some(ended2),
            Some("err-7"),
        )
        .await,
        "media deleted",
    );
    let got = must(s.get_recording(t, r.id).await, "get");
    assert_eq!(
        got,
        Recording {
            status: RecordingStatus::MediaDeleted,
            ended_at: Some(ended2),
            result_code: Some("err-7".into()),
            duration_ms: Some(200_000),
            ..r
        }
    );
    assert_not_found(
        s.update_recording_status(t, RecordingId::new(), RecordingStatus::Stored, None, None)
            .await,
        "missing",
    );
}

/// A call-end that arrives after the uploader stored the recording (it
/// read `spooled` before, writes it after) must not move a stored
/// recording back; its end time and result code are still kept. Every
/// backward step is refused the same way, and `media-deleted` is final.
pub async fn status_never_moves_back(s: &Store) {
    use RecordingStatus::{MediaDeleted, Spooled, Stored};
    let t = tenant(s, "contoso").await;
    let started = now() - Duration::hours(1);
    let r = Recording::new(t, RecordingKind::Call, Direction::Inbound, started);
    must(s.insert_recording(t, &r).await, "insert");
    must(
        s.update_recording_status(t, r.id, Spooled, None, None)
            .await,
        "spooled",
    );
    must(
        s.update_recording_status(t, r.id, Stored, None, None).await,
        "stored",
    );
    // The late call-end.
    let ended = started + Duration::milliseconds(2_000);
    must(
        s.update_recording_status(t, r.id, Spooled, Some(ended), Some("5000"))
            .await,
        "late spooled",
    );
    let got = must(s.get_recording(t, r.id).await, "get");
    assert_eq!(got.status, Stored, "a late spooled leaves stored");
    assert_eq!(got.ended_at, Some(ended), "the end time is still set");
    assert_eq!(got.result_code.as_deref(), Some("5000"));
    assert_eq!(got.duration_ms, Some(2_000));

    for late in [RecordingStatus::Recording, Spooled, RecordingStatus::Failed] {
        must(
            s.update_recording_status(t, r.id, late, None, None).await,
            "late update",
        );
        let got = must(s.get_recording(t, r.id).await, "get");
        assert_eq!(got.status, Stored, "stored never becomes {late}");
    }
    must(
        s.update_recording_status(t, r.id, MediaDeleted, None, None)
            .await,
        "media deleted",
    );
    for late in [
        RecordingStatus::Recording,
        Spooled,
        Stored,
        RecordingStatus::Failed,
    ] {
        must(
            s.update_recording_status(t, r.id, late, None, None).await,
            "after deletion",
        );
        let got = must(s.get_recording(t, r.id).await, "get");
        assert_eq!(
            got.status, MediaDeleted,
            "media-deleted never becomes {late}"
        );
    }

    // Concurrent writers: whatever the interleaving, a recording that
    // has been stored ends stored.
    for _ in 0..10 {
        let r = Recording::new(t, RecordingKind::Call, Direction::Inbound, started);
        must(s.insert_recording(t, &r).await, "insert");
        must(
            s.update_recording_status(t, r.id, Spooled, None, None)
                .await,
            "spooled",
        );
        let (stored, late) = tokio::join!(
            s.update_recording_status(t, r.id, Stored, None, None),
            s.update_recording_status(t, r.id, Spooled, Some(now()), None),
        );
        must(stored, "stored");
        must(late, "late spooled");
        let got = must(s.get_recording(t, r.id).await, "get");
        assert_eq!(got.status, Stored, "the concurrent late spooled lost");
    }
}

pub async fn add_participant_and_stream(s: &Store) {
    let t = tenant(s, "contoso").await;
    let mut r = Recording::new(t, RecordingKind::Meeting, Direction::Internal, now());
    r.participants.push(internal(
        ParticipantRole::Organizer,
        UserId::new(),
        "Ann",
        "Lee",
    ));
    r.streams.push(stream(0, Some(r.participants[0].id)));
    must(s.insert_recording(t, &r).await, "insert");

    let p1 = external(ParticipantRole::Attendee, "Bo Dean", "+4930123456");
    let p2 = party(ParticipantRole::Attendee);
    let s1 = stream(1, Some(p1.id));
    must(s.add_participant(t, r.id, &p1).await, "add p1");
    must(s.add_stream(t, r.id, &s1).await, "add s1");
    must(s.add_participant(t, r.id, &p2).await, "add p2");
    r.participants.push(p1);
    r.participants.push(p2);
    r.streams.push(s1);
    assert_eq!(must(s.get_recording(t, r.id).await, "get"), r);

    // Added parties are searchable like inserted ones.
    let page = must(
        s.search_recordings(
            t,
            &RecordingQuery {
                participant: Some("dean".into()),
                ..Default::default()
            },
        )
        .await,
        "search added",
    );
    assert_eq!(page.total, 1);

    let missing = RecordingId::new();
    assert_not_found(
        s.add_participant(t, missing, &party(ParticipantRole::Caller))
            .await,
        "participant on missing recording",
    );
    assert_not_found(
        s.add_stream(t, missing, &stream(3, None)).await,
        "stream on missing recording",
    );
}

/// Legs of one meeting on several nodes each store who they see: the
/// same person (object id, directory user or phone number) is stored once
/// however many store them at the same time, and the recorded-user flag of
/// any of them sticks.
pub async fn participants_are_stored_once_per_identity(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let r = Recording::new(t, RecordingKind::Meeting, Direction::Internal, now());
    must(s.insert_recording(t, &r).await, "insert");
    let user = UserId::new();
    let bob = || Participant {
        display_name: Some("Bob".into()),
        ..party(ParticipantRole::Attendee)
    };
    // (who, object id): by object id (in any case), by directory user, by
    // phone number.
    let people: Vec<Vec<(Participant, Option<&'static str>)>> = vec![
        (0..8)
            .map(|i| {
                let oid = if i % 2 == 0 { "OID-BOB" } else { "oid-bob" };
                (
                    Participant {
                        recorded_user: i == 5,
                        ..bob()
                    },
                    Some(oid),
                )
            })
            .collect(),
        (0..8)
            .map(|i| {
                (
                    Participant {
                        directory_user_id: Some(user),
                        recorded_user: i == 2,
                        ..party(ParticipantRole::Attendee)
                    },
                    None,
                )
            })
            .collect(),
        (0..8)
            .map(|i| {
                (
                    Participant {
                        recorded_user: i == 7,
                        ..external(ParticipantRole::Attendee, "Dave", "+442079460958")
                    },
                    None,
                )
            })
            .collect(),
    ];
    for (n, same) in people.into_iter().enumerate() {
        let mut tasks = tokio::task::JoinSet::new();
        for (p, oid) in same {
            let s = s.clone();
            let rec = r.id;
            tasks.spawn(async move { s.add_participant_once(t, rec, &p, oid).await });
        }
        let mut kept = BTreeSet::new();
        while let Some(done) = tasks.join_next().await {
            let p = must(must(done, "task"), "add once");
            kept.insert(p.id);
        }
        assert_eq!(kept.len(), 1, "person {n}: every caller got the same row");
        let stored = must(s.get_recording(t, r.id).await, "get").participants;
        assert_eq!(stored.len(), n + 1, "person {n} stored once");
        let row = stored.iter().find(|p| kept.contains(&p.id));
        assert!(
            row.is_some_and(|p| p.recorded_user),
            "person {n}: recorded by one of the callers, so recorded"
        );
    }

    // A known person seen with more identity: the stored row is completed
    // (directory user), not duplicated; a party without any identity is
    // stored every time.
    let linked = Participant {
        directory_user_id: Some(UserId::new()),
        ..bob()
    };
    let got = must(
        s.add_participant_once(t, r.id, &linked, Some("oid-bob"))
            .await,
        "bob linked",
    );
    assert_ne!(got.id, linked.id);
    assert_eq!(got.directory_user_id, linked.directory_user_id);
    assert!(got.recorded_user, "never unmarked");
    let again = Participant {
        directory_user_id: linked.directory_user_id,
        ..bob()
    };
    let by_user = must(
        s.add_participant_once(t, r.id, &again, None).await,
        "bob by user",
    );
    assert_eq!(
        by_user.id, got.id,
        "found by the directory user it was given"
    );
    for _ in 0..2 {
        let nobody = party(ParticipantRole::Attendee);
        let got = must(
            s.add_participant_once(t, r.id, &nobody, None).await,
            "nobody",
        );
        assert_eq!(got, nobody);
    }
    let stored = must(s.get_recording(t, r.id).await, "get").participants;
    assert_eq!(stored.len(), 5);

    // A continuation: the recorded users of `r` are entitled to it, each
    // once (the one it knows already is marked recorded).
    let mut next = Recording::new(t, RecordingKind::Meeting, Direction::Internal, now());
    let known = Participant {
        recorded_user: false,
        ..external(ParticipantRole::Attendee, "Dave", "+442079460958")
    };
    next.participants.push(known.clone());
    must(s.insert_recording(t, &next).await, "insert next");
    assert_eq!(
        must(s.copy_recorded_users(t, r.id, next.id).await, "copy"),
        2,
        "Bob and the directory user added, Dave known"
    );
    assert_eq!(
        must(s.copy_recorded_users(t, r.id, next.id).await, "copy again"),
        0,
        "idempotent"
    );
    let copied = must(s.get_recording(t, next.id).await, "get next").participants;
    assert_eq!(copied.len(), 3, "{copied:?}");
    assert!(copied.iter().all(|p| p.recorded_user), "{copied:?}");
    assert_eq!(copied[0].id, known.id);
    // Bob was copied with his object id: found by it on the continuation.
    let bob_again = must(
        s.add_participant_once(t, next.id, &bob(), Some("OID-bob"))
            .await,
        "bob on next",
    );
    assert!(copied.iter().any(|p| p.id == bob_again.id));

    assert_not_found(
        s.add_participant_once(t, RecordingId::new(), &bob(), Some("oid-bob"))
            .await,
        "missing recording",
    );
    assert_not_found(
        s.add_participant_once(other, r.id, &bob(), Some("oid-bob"))
            .await,
        "other tenant",
    );
    assert_not_found(
        s.copy_recorded_users(t, r.id, RecordingId::new()).await,
        "copy to a missing recording",
    );
}

pub async fn recording_attributes_merge(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let mut r = Recording::new(t, RecordingKind::Call, Direction::Unknown, now());
    r.attributes.insert(
        "siprec.ext.urn:acme ucid".into(),
        serde_json::json!("00001234"),
    );
    must(s.insert_recording(t, &r).await, "insert");
    assert_eq!(must(s.get_recording(t, r.id).await, "get"), r);

    // Merging sets the named ones and keeps the others.
    let mut more = std::collections::BTreeMap::new();
    more.insert(
        "dtmf".to_owned(),
        serde_json::json!([{ "at_ms": 1200, "digit": "5", "duration_ms": 160 }]),
    );
    more.insert(
        "siprec.ext.urn:acme ucid".to_owned(),
        serde_json::json!("00005678"),
    );
    must(s.merge_recording_attributes(t, r.id, &more).await, "merge");
    let got = must(s.get_recording(t, r.id).await, "get merged").attributes;
    assert_eq!(got, more);
    let mut third = std::collections::BTreeMap::new();
    third.insert("x".to_owned(), serde_json::json!({ "n": 1 }));
    must(
        s.merge_recording_attributes(t, r.id, &third).await,
        "merge again",
    );
    let got = must(s.get_recording(t, r.id).await, "get again").attributes;
    assert_eq!(got.len(), 3);
    assert_eq!(got["x"], serde_json::json!({ "n": 1 }));
    assert_eq!(got["dtmf"], more["dtmf"]);

    // Search results carry them too; another tenant cannot write them.
    let page = must(
        s.search_recordings(t, &RecordingQuery::default()).await,
        "search",
    );
    assert_eq!(page.items[0].recording.attributes, got);
    assert_not_found(
        s.merge_recording_attributes(other, r.id, &third).await,
        "another tenant",
    );
    assert_not_found(
        s.merge_recording_attributes(t, RecordingId::new(), &third)
            .await,
        "missing",
    );
}

pub async fn participant_presence_updates(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let mut r = Recording::new(t, RecordingKind::Meeting, Direction::Internal, now());
    r.participants.push(party(ParticipantRole::Organizer));
    r.participants.push(party(ParticipantRole::Attendee));
    must(s.insert_recording(t, &r).await, "insert");
    let (a, b) = (r.participants[0].id, r.participants[1].id);
    let get = |id| async move {
        must(s.get_recording(t, r.id).await, "get")
            .participants
            .into_iter()
            .find(|p| p.id == id)
            .unwrap_or_else(|| panic!("participant {id} missing"))
    };

    // A leave, then a rejoin clears it; the other participant is untouched.
    must(
        s.update_participant_presence(t, r.id, b, false, Some(61_000))
            .await,
        "leave",
    );
    assert_eq!(get(b).await.left_ms, Some(61_000));
    assert!(!get(b).await.recorded_user);
    assert_eq!(get(a).await, r.participants[0]);
    must(
        s.update_participant_presence(t, r.id, b, false, None).await,
        "rejoin",
    );
    assert_eq!(get(b).await.left_ms, None);

    // Marked as a recorded user; `false` later never unmarks.
    must(
        s.update_participant_presence(t, r.id, b, true, None).await,
        "mark recorded",
    );
    assert!(get(b).await.recorded_user);
    must(
        s.update_participant_presence(t, r.id, b, false, Some(90_000))
            .await,
        "leave again",
    );
    let after = get(b).await;
    assert!(
        after.recorded_user,
        "the recorded-user flag is never cleared"
    );
    assert_eq!(after.left_ms, Some(90_000));

    // Not found: another tenant, another recording, an unknown participant.
    assert_not_found(
        s.update_participant_presence(other, r.id, b, true, None)
            .await,
        "other tenant",
    );
    assert_not_found(
        s.update_participant_presence(t, RecordingId::new(), b, true, None)
            .await,
        "other recording",
    );
    assert_not_found(
        s.update_participant_presence(t, r.id, ParticipantId::new(), true, None)
            .await,
        "unknown participant",
    );
    assert_eq!(get(b).await, after, "failed updates change nothing");
}

pub async fn set_recording_media_some_and_none(s: &Store) {
    let t = tenant(s, "contoso").await;
    let r = Recording::new(t, RecordingKind::Call, Direction::Inbound, now());
    must(s.insert_recording(t, &r).await, "insert");
    let m = media(t, r.id);
    must(s.set_recording_media(t, r.id, Some(&m)).await, "set");
    assert_eq!(
        must(s.get_recording(t, r.id).await, "get").media,
        Some(m.clone())
    );
    let m2 = MediaObject {
        key: "other/key.ins".into(),
        byte_size: 42,
        ..m
    };
    must(s.set_recording_media(t, r.id, Some(&m2)).await, "replace");
    assert_eq!(must(s.get_recording(t, r.id).await, "get").media, Some(m2));
    must(s.set_recording_media(t, r.id, None).await, "clear");
    assert_eq!(must(s.get_recording(t, r.id).await, "get"), r);
    assert_not_found(
        s.set_recording_media(t, RecordingId::new(), None).await,
        "missing",
    );
}

pub async fn legal_hold_blocks_delete(s: &Store) {
    let t = tenant(s, "contoso").await;
    let r = full_recording(t, now());
    must(s.insert_recording(t, &r).await, "insert");
    let seg = segment(r.id, 0, "keep this");
    must(
        s.put_transcript_segments(t, r.id, std::slice::from_ref(&seg))
            .await,
        "transcript",
    );

    must(s.set_legal_hold_flag(t, r.id, true).await, "hold");
    assert!(must(s.get_recording(t, r.id).await, "get").legal_hold);
    assert_refused(s.delete_recording(t, r.id).await, "delete held");
    let got = must(s.get_recording(t, r.id).await, "survives");
    assert!(got.legal_hold);
    assert_eq!(got.participants, r.participants);
    assert_eq!(
        must(s.list_transcript(t, r.id).await, "transcript survives"),
        vec![seg]
    );

    must(s.set_legal_hold_flag(t, r.id, false).await, "release");
    assert!(!must(s.get_recording(t, r.id).await, "get").legal_hold);
    must(s.delete_recording(t, r.id).await, "delete released");
    assert_not_found(s.get_recording(t, r.id).await, "deleted");
    assert_not_found(
        s.set_legal_hold_flag(t, RecordingId::new(), true).await,
        "missing",
    );
}

pub async fn delete_removes_dependents(s: &Store) {
    let t = tenant(s, "contoso").await;
    let mut r = full_recording(t, now() - Duration::hours(3));
    r.participants.push(external(
        ParticipantRole::Attendee,
        "Zebulon Quartermaine",
        "+61299998888",
    ));
    must(s.insert_recording(t, &r).await, "insert");
    let keep = full_recording(t, now() - Duration::hours(2));
    must(s.insert_recording(t, &keep).await, "insert keep");
    must(
        s.put_transcript_segments(t, r.id, &[segment(r.id, 0, "the xylophone arrived")])
            .await,
        "transcript",
    );
    let keep_seg = segment(keep.id, 0, "the xylophone stays");
    must(
        s.put_transcript_segments(t, keep.id, std::slice::from_ref(&keep_seg))
            .await,
        "transcript keep",
    );
    must(
        s.put_insights(t, r.id, &[insight(r.id, InsightKind::Summary, "x", now())])
            .await,
        "insights",
    );

    let by_name = RecordingQuery {
        participant: Some("zebulon".into()),
        ..Default::default()
    };
    let by_number = RecordingQuery {
        participant: Some("61 2 9999 8888".into()),
        ..Default::default()
    };
    let by_text = RecordingQuery {
        transcript_text: Some("xylophone".into()),
        ..Default::default()
    };
    assert_eq!(must(s.search_recordings(t, &by_name).await, "q").total, 1);
    assert_eq!(must(s.search_recordings(t, &by_number).await, "q").total, 1);
    assert_eq!(must(s.search_recordings(t, &by_text).await, "q").total, 2);

    must(s.delete_recording(t, r.id).await, "delete");
    assert_not_found(s.get_recording(t, r.id).await, "get deleted");
    assert_not_found_or_empty(s.list_transcript(t, r.id).await, "transcript");
    assert_not_found_or_empty(s.list_insights(t, r.id).await, "insights");
    assert_eq!(must(s.search_recordings(t, &by_name).await, "q").total, 0);
    assert_eq!(must(s.search_recordings(t, &by_number).await, "q").total, 0);
    let page = must(s.search_recordings(t, &by_text).await, "q");
    assert_eq!(page.total, 1);
    assert_eq!(page.items[0].recording.id, keep.id);
    assert_not_found(s.delete_recording(t, r.id).await, "delete twice");

    // The other recording is untouched.
    assert_eq!(must(s.get_recording(t, keep.id).await, "keep"), {
        let mut k = keep.clone();
        k.has_transcript = true;
        k
    });
    assert_eq!(
        must(s.list_transcript(t, keep.id).await, "keep transcript"),
        vec![keep_seg]
    );

    // Nothing of the deleted recording lingers: the same recording (same
    // participant and stream ids) can be inserted again.
    must(s.insert_recording(t, &r).await, "re-insert");
    assert_eq!(must(s.get_recording(t, r.id).await, "re-inserted"), r);
    assert!(must(s.list_transcript(t, r.id).await, "fresh transcript").is_empty());
    assert!(must(s.list_insights(t, r.id).await, "fresh insights").is_empty());
}
