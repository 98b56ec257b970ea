//! Calls through the webhook: invites answered in time with the documented
//! body, recordings with the right parties and roles, out-of-order states,
//! roster changes, one recording per meeting, result codes, retries.

use crate::support;

use std::time::{Duration, Instant};

use bot_gateway::calls::CallState;
use bot_gateway::graph::RecordingStatusReport;
use insights_core::domain::{
    AuditAction, AuditQuery, Direction, ParticipantRole, PolicyList, PolicyRule, RecordingKind,
    RecordingPolicy, RecordingStatus, RuleKind,
};
use serde_json::json;
use support::notify::{self, Invite, Person};
use support::standin::Scripted;
use support::{CALLBACK_URL, Harness, MEDIA_BLOB};

fn role_of(rec: &insights_core::domain::Recording, name: &str) -> Vec<(ParticipantRole, bool)> {
    rec.participants
        .iter()
        .filter(|p| p.display_name.as_deref() == Some(name))
        .map(|p| (p.role, p.recorded_user))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_invite_is_answered_in_time_and_recorded_with_its_parties() {
    let h = Harness::start().await;
    let alice = Person::new("Alice Keller", "alice.keller@contoso.example");
    let alice_dir = h.add_directory_user(&alice).await;
    let caller_pid = uuid::Uuid::new_v4().to_string();
    let mut invite = Invite::new("call-1", &h.tid, &alice, "callee");
    invite.other_side = Some(notify::other_participant(&caller_pid, "caller"));

    let sent = Instant::now();
    let (status, _) = h.notify(vec![invite.notification()]).await;
    assert_eq!(status, 202);
    let answers =
        h.ms.wait_graph(1, |c| c.action == "answer", Duration::from_secs(5))
            .await;
    assert_eq!(answers.len(), 1, "no answer within 5 s");
    let answer = &answers[0];
    assert!(
        answer.at.duration_since(sent) < Duration::from_secs(5),
        "answered after {:?}",
        answer.at.duration_since(sent)
    );
    assert_eq!(answer.call_id, "call-1");
    assert_eq!(
        answer.body,
        json!({
            "callbackUri": CALLBACK_URL,
            "acceptedModalities": ["audio"],
            "mediaConfig": {"@odata.type": "#microsoft.graph.appHostedMediaConfig", "blob": MEDIA_BLOB},
            "participantCapacity": 5,
        })
    );
    // The app-only token was fetched for the call's tenant.
    let tokens = h.ms.token_calls();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].tenant, h.tid);

    let rec = h.recording("call-1").await;
    assert_eq!(rec.kind, RecordingKind::Call);
    assert_eq!(rec.direction, Direction::Inbound);
    assert_eq!(rec.status, RecordingStatus::Recording);
    assert_eq!(rec.call_chain_id.as_deref(), Some(invite.chain_id.as_str()));
    assert_eq!(rec.participants.len(), 1, "only the recorded user so far");
    let a = &rec.participants[0];
    assert_eq!(a.role, ParticipantRole::Callee);
    assert!(a.recorded_user);
    assert_eq!(a.directory_user_id, Some(alice_dir));
    assert_eq!(a.email.as_deref(), Some("alice.keller@contoso.example"));
    assert_eq!(a.display_name.as_deref(), Some("Alice Keller"));

    // Established, then the roster: the bot, Alice and the PSTN caller.
    h.wait_answered("call-1").await;
    let (s, _) = h.notify(vec![notify::state("call-1", "established")]).await;
    assert_eq!(s, 202);
    let (s, _) = h
        .notify(vec![notify::roster(
            "call-1",
            vec![
                notify::bot_participant(),
                notify::participant(&alice.participant_id, alice.identity(&h.tid), "10"),
                notify::participant(
                    &caller_pid,
                    notify::phone_identity("+44 20 7946 0958"),
                    "11",
                ),
            ],
        )])
        .await;
    assert_eq!(s, 202);
    let rec = h.recording("call-1").await;
    assert_eq!(rec.participants.len(), 2, "{:?}", rec.participants);
    let caller = rec
        .participants
        .iter()
        .find(|p| !p.recorded_user)
        .unwrap_or_else(|| panic!("no caller"));
    assert_eq!(caller.role, ParticipantRole::Caller);
    assert_eq!(caller.phone_number.as_deref(), Some("+442079460958"));
    assert_eq!(caller.uri.as_deref(), Some("tel:+442079460958"));

    // The media side maps active-speaker source ids to participants.
    let info = h
        .state
        .registry
        .call_info("call-1")
        .await
        .unwrap_or_else(|| panic!("call gone"));
    assert_eq!(info.state, CallState::Established);
    let by_source = |s: &str| {
        info.participants
            .iter()
            .find(|m| m.audio_source_ids.iter().any(|x| x == s))
            .map(|m| m.participant_id)
    };
    assert_eq!(by_source("10"), Some(a.id));
    assert_eq!(by_source("11"), Some(caller.id));

    // Hang-up: result code kept, message not.
    let (s, _) = h
        .notify(vec![notify::deleted(
            "call-1",
            200,
            5001,
            "Call ended by Alice Keller",
        )])
        .await;
    assert_eq!(s, 202);
    let rec = h.recording("call-1").await;
    assert_eq!(rec.result_code.as_deref(), Some("200/5001"));
    assert!(rec.ended_at.is_some());
    assert!(rec.duration_ms.is_some());
    // No media ever began: the recording failed; the result code says why.
    assert_eq!(rec.status, RecordingStatus::Failed);
    assert!(h.state.registry.call_info("call-1").await.is_none());
    assert_eq!(h.state.registry.active_calls().await, 0);
    h.ms.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_states_never_regress_and_recording_status_gates_media() {
    let h = Harness::start().await;
    let bob = Person::new("Bob Brandt", "bob.brandt@contoso.example");
    let eve = Person::new("Eve Example", "eve@fabrikam.example");
    let mut invite = Invite::new("call-2", &h.tid, &bob, "caller");
    invite.other_side = Some(notify::other_user(
        &eve,
        "0f7d7b4e-3d8b-4c7a-9d5f-1f2e3d4c5b6a",
        "callee",
    ));
    assert_eq!(h.notify(vec![invite.notification()]).await.0, 202);
    // Before the answer reached Graph, media must not begin.
    h.wait_answered("call-2").await;

    // established arrives before establishing.
    assert_eq!(
        h.notify(vec![notify::state("call-2", "established")])
            .await
            .0,
        202
    );
    assert_eq!(
        h.notify(vec![notify::state("call-2", "establishing")])
            .await
            .0,
        202
    );
    let info = h.state.registry.call_info("call-2").await;
    assert_eq!(info.map(|i| i.state), Some(CallState::Established));
    // Replayed and reordered in one batch: still established.
    assert_eq!(
        h.notify(vec![
            notify::state("call-2", "establishing"),
            notify::state("call-2", "established"),
            notify::state("call-2", "establishing"),
        ])
        .await
        .0,
        202
    );
    let info = h.state.registry.call_info("call-2").await;
    assert_eq!(info.map(|i| i.state), Some(CallState::Established));

    // The invite named the other side (an external Teams user) by id only:
    // stored once the roster tells their name.
    let rec = h.recording("call-2").await;
    assert_eq!(rec.participants.len(), 1);
    assert_eq!(
        h.notify(vec![notify::roster(
            "call-2",
            vec![
                notify::participant(&bob.participant_id, bob.identity(&h.tid), "1"),
                notify::participant(
                    &eve.participant_id,
                    eve.identity("0f7d7b4e-3d8b-4c7a-9d5f-1f2e3d4c5b6a"),
                    "2"
                ),
            ]
        )])
        .await
        .0,
        202
    );
    let rec = h.recording("call-2").await;
    assert_eq!(rec.direction, Direction::Outbound);
    assert_eq!(
        role_of(&rec, "Bob Brandt"),
        vec![(ParticipantRole::Caller, true)]
    );
    assert_eq!(
        role_of(&rec, "Eve Example"),
        vec![(ParticipantRole::Callee, false)]
    );

    // Recording begins only after Graph acknowledged `recording`.
    let handle = h
        .state
        .registry
        .begin_recording("call-2")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let statuses =
        h.ms.wait_graph(
            1,
            |c| c.action == "updateRecordingStatus",
            Duration::from_secs(1),
        )
        .await;
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].body["status"], "recording");
    assert_eq!(handle.recording_id, rec.id);
    let info = h.state.registry.call_info("call-2").await;
    assert_eq!(
        info.and_then(|i| i.reported_status),
        Some(RecordingStatusReport::Recording)
    );
    // The media side gives up: `failed` is reported.
    handle
        .fail(bot_gateway::calls::FailureReason::SpoolError)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let statuses =
        h.ms.wait_graph(
            2,
            |c| c.action == "updateRecordingStatus",
            Duration::from_secs(1),
        )
        .await;
    assert_eq!(statuses[1].body["status"], "failed");

    // End: media began, so the status is left to the media side.
    assert_eq!(
        h.notify(vec![notify::deleted("call-2", 0, 0, "")]).await.0,
        202
    );
    let rec = h.recording("call-2").await;
    assert_eq!(rec.status, RecordingStatus::Recording);
    assert!(rec.ended_at.is_some());
    assert_eq!(rec.result_code.as_deref(), Some("0/0"));
    // Nothing can begin on an ended call.
    assert!(h.state.registry.begin_recording("call-2").await.is_err());
    h.ms.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_joins_leaves_and_redirects_are_tracked_without_duplicates() {
    let h = Harness::start().await;
    let carl = Person::new("Carl Recorded", "carl@contoso.example");
    let tom = Person::new("Tom Transferor", "tom@contoso.example");
    let rita = Person::new("Rita Redirected", "rita@contoso.example");
    let ada = Person::new("Ada Added", "ada@contoso.example");
    h.add_directory_user(&carl).await;
    let caller_pid = uuid::Uuid::new_v4().to_string();
    // Carl receives a call transferred to him by Tom.
    let mut invite = Invite::new("call-3", &h.tid, &carl, "callee");
    invite.other_side = Some(notify::other_participant(&caller_pid, "caller"));
    invite.transferor = Some(tom.identity(&h.tid));
    assert_eq!(h.notify(vec![invite.notification()]).await.0, 202);
    h.wait_answered("call-3").await;
    let established_roster = vec![
        notify::bot_participant(),
        notify::participant(&carl.participant_id, carl.identity(&h.tid), "20"),
        notify::participant(&caller_pid, notify::phone_identity("+14255550100"), "21"),
    ];
    assert_eq!(
        h.notify(vec![
            notify::state("call-3", "established"),
            notify::roster("call-3", established_roster.clone()),
        ])
        .await
        .0,
        202
    );
    let rec = h.recording("call-3").await;
    assert_eq!(
        role_of(&rec, "Tom Transferor"),
        vec![(ParticipantRole::RedirectedBy, false)]
    );
    assert_eq!(rec.participants.len(), 3);

    // A third party joins an established 1:1 call: an attendee.
    let ada_p = notify::participant(&ada.participant_id, ada.identity(&h.tid), "22");
    assert_eq!(
        h.notify(vec![notify::roster("call-3", vec![ada_p.clone()])])
            .await
            .0,
        202
    );
    // The call is redirected: who joins now is redirected-to.
    let rita_p = notify::participant(&rita.participant_id, rita.identity(&h.tid), "23");
    assert_eq!(
        h.notify(vec![
            notify::state("call-3", "transferring"),
            notify::roster("call-3", vec![rita_p.clone()]),
            notify::state("call-3", "established"),
        ])
        .await
        .0,
        202
    );
    let rec = h.recording("call-3").await;
    assert_eq!(
        role_of(&rec, "Ada Added"),
        vec![(ParticipantRole::Attendee, false)]
    );
    assert_eq!(
        role_of(&rec, "Rita Redirected"),
        vec![(ParticipantRole::RedirectedTo, false)]
    );
    let rita_id = rec
        .participants
        .iter()
        .find(|p| p.display_name.as_deref() == Some("Rita Redirected"))
        .map(|p| p.id);

    // Ada leaves (roster `deleted`), Rita leaves via removedState.
    let mut rita_gone = rita_p.clone();
    rita_gone["removedState"] = json!({"reason": "hangup"});
    assert_eq!(
        h.notify(vec![
            notify::roster_removed("call-3", vec![ada_p.clone()]),
            notify::roster("call-3", vec![rita_gone]),
        ])
        .await
        .0,
        202
    );
    let info = h
        .state
        .registry
        .call_info("call-3")
        .await
        .unwrap_or_else(|| panic!("call gone"));
    let member = |name: &str| {
        let rec_id = rec
            .participants
            .iter()
            .find(|p| p.display_name.as_deref() == Some(name))
            .map(|p| p.id);
        info.participants
            .iter()
            .find(|m| Some(m.participant_id) == rec_id)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in roster"))
    };
    assert!(!member("Ada Added").present);
    assert!(member("Ada Added").left_ms.is_some());
    assert!(!member("Rita Redirected").present);
    assert!(member("Carl Recorded").present);
    assert_eq!(Some(member("Rita Redirected").participant_id), rita_id);

    // Ada rejoins and the whole roster is replayed: nobody is stored twice.
    assert_eq!(
        h.notify(vec![
            notify::roster("call-3", established_roster.clone()),
            notify::roster("call-3", vec![ada_p.clone()]),
            notify::roster("call-3", established_roster),
        ])
        .await
        .0,
        202
    );
    let info = h.state.registry.call_info("call-3").await;
    assert!(info.is_some_and(|i| {
        i.participants
            .iter()
            .filter(|m| m.role == ParticipantRole::Attendee)
            .all(|m| m.present)
    }));
    let rec = h.recording("call-3").await;
    assert_eq!(rec.participants.len(), 5, "{:?}", rec.participants);
    let mut names: Vec<_> = rec
        .participants
        .iter()
        .filter_map(|p| p.display_name.clone())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 4, "every named party once: {names:?}");
    h.ms.assert_no_problems();
}

/// The recording policy applies to a recorded user who joins a meeting
/// later (participant-joining) as it does at an invite, with the policy
/// as it is then: one on the never-record list is refused (busy), and
/// the bot Graph invites for them instead is answered `notRecording`,
/// audited, and stores nothing of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::unwrap_used)] // a failed step is the test failing
async fn a_user_joining_later_is_decided_by_the_policy_in_force() {
    let h = Harness::start_with(|g| g.participant_capacity = 3).await;
    let u1 = Person::new("Una One", "una@contoso.example");
    let u2 = Person::new("Udo Two", "udo@contoso.example");
    let org = Person::new("Otto Organizer", "otto@contoso.example");
    for p in [&u1, &u2, &org] {
        h.add_directory_user(p).await;
    }
    let mk = |call: &str, who: &Person| {
        let mut i = Invite::new(call, &h.tid, who, "attendee");
        i.chain_id = "7a1d8f0e-7b0e-4d0a-9d55-0c5b8f6f2a11".into();
        i.meeting_organizer = Some(org.identity(&h.tid));
        i
    };
    assert_eq!(
        h.notify(vec![mk("j-call-1", &u1).notification()]).await.0,
        202
    );
    h.wait_answered("j-call-1").await;
    // The policy changes mid-meeting: Udo is never recorded.
    let mut policy = RecordingPolicy::default_for(h.tenant.id);
    policy.rules.push(
        PolicyRule::new(
            PolicyList::NeverRecord,
            RuleKind::User,
            "udo@contoso.example",
            None,
        )
        .unwrap(),
    );
    h.store
        .put_recording_policy(h.tenant.id, &policy)
        .await
        .unwrap();
    let (s, body) = h
        .notify(vec![notify::joining("j-call-1", &mk("j-call-1", &u2))])
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        body,
        json!({"@odata.type": "#microsoft.graph.rejectJoinResponse", "reason": "busy"})
    );
    // Graph invites a bot for Udo instead: answered, not recorded.
    assert_eq!(
        h.notify(vec![mk("j-call-2", &u2).notification()]).await.0,
        202
    );
    let answers =
        h.ms.wait_graph(
            1,
            |c| c.call_id == "j-call-2" && c.action == "answer",
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(answers.len(), 1, "Udo's bot leg is answered");
    let statuses =
        h.ms.wait_graph(
            1,
            |c| c.call_id == "j-call-2" && c.action == "updateRecordingStatus",
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(statuses[0].body["status"], "notRecording");
    let decisions = h
        .store
        .list_audit(
            h.tenant.id,
            &AuditQuery {
                action: Some(AuditAction::RecordingNotRecorded),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(
        decisions[0].details["rule_id"],
        policy.rules[0].id.to_string()
    );
    // Una's recording holds no recorded Udo.
    let rec = h.recording("j-call-1").await;
    assert!(
        !rec.participants
            .iter()
            .any(|p| p.recorded_user && p.email.as_deref() == Some("udo@contoso.example")),
        "{:?}",
        rec.participants
    );
    h.ms.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_with_three_recorded_users_is_stored_once() {
    let h = Harness::start_with(|g| g.participant_capacity = 2).await;
    let u1 = Person::new("Una One", "una@contoso.example");
    let u2 = Person::new("Udo Two", "udo@contoso.example");
    let u3 = Person::new("Uma Three", "uma@contoso.example");
    let org = Person::new("Otto Organizer", "otto@contoso.example");
    let guest = Person::new("Gina Guest", "gina@fabrikam.example");
    for p in [&u1, &u2, &u3, &org] {
        h.add_directory_user(p).await;
    }
    let thread = "19:meeting_NTg0NmQ3NTctZDVkZC00YzRhLThmNmEtOGQ3M2E0ODdmZDZk@thread.v2";
    let mk = |call: &str, who: &Person| {
        let mut i = Invite::new(call, &h.tid, who, "attendee");
        i.chain_id = "05f2f70f-3a9c-47c1-80a9-cc79e91d8cec".into();
        i.meeting_organizer = Some(org.identity(&h.tid));
        i.thread_id = Some(thread.into());
        i
    };
    // U1's invite opens the meeting recording.
    assert_eq!(
        h.notify(vec![mk("m-call-1", &u1).notification()]).await.0,
        202
    );
    h.wait_answered("m-call-1").await;
    // U2 arrives as a participant-joining notification: accepted (twice,
    // as a replay, but counted once against the capacity).
    for _ in 0..2 {
        let (s, body) = h
            .notify(vec![notify::joining("m-call-1", &mk("m-call-1", &u2))])
            .await;
        assert_eq!(s, 200);
        assert_eq!(
            body,
            json!({"@odata.type": "#microsoft.graph.acceptJoinResponse"})
        );
    }
    // U3 too, but the call instance is at capacity (2): refused busy...
    let (s, body) = h
        .notify(vec![notify::joining("m-call-1", &mk("m-call-1", &u3))])
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        body,
        json!({"@odata.type": "#microsoft.graph.rejectJoinResponse", "reason": "busy"})
    );
    // ...so Graph invites the bot anew for U3: same chain, same recording.
    assert_eq!(
        h.notify(vec![mk("m-call-2", &u3).notification()]).await.0,
        202
    );
    h.wait_answered("m-call-2").await;
    let answers =
        h.ms.wait_graph(2, |c| c.action == "answer", Duration::from_secs(5))
            .await;
    let mut answered: Vec<_> = answers.iter().map(|a| a.call_id.as_str()).collect();
    answered.sort_unstable();
    assert_eq!(answered, vec!["m-call-1", "m-call-2"]);

    // The roster of both legs names everyone, the bots included.
    let everyone = vec![
        notify::bot_participant(),
        notify::participant(&u1.participant_id, u1.identity(&h.tid), "31"),
        notify::participant(&u2.participant_id, u2.identity(&h.tid), "32"),
        notify::participant(&u3.participant_id, u3.identity(&h.tid), "33"),
        notify::participant(&org.participant_id, org.identity(&h.tid), "34"),
        notify::participant(
            &guest.participant_id,
            json!({"guest": {"id": guest.oid, "displayName": guest.name}}),
            "35",
        ),
    ];
    assert_eq!(
        h.notify(vec![
            notify::state("m-call-1", "established"),
            notify::state("m-call-2", "established"),
            notify::roster("m-call-1", everyone.clone()),
            notify::roster("m-call-2", everyone),
        ])
        .await
        .0,
        202
    );
    let all = h.recordings().await;
    assert_eq!(all.len(), 1, "one recording for the meeting");
    let rec = &all[0];
    assert_eq!(rec.kind, RecordingKind::Meeting);
    let recorded: Vec<_> = rec
        .participants
        .iter()
        .filter(|p| p.recorded_user)
        .filter_map(|p| p.display_name.clone())
        .collect();
    assert_eq!(recorded.len(), 3, "{recorded:?}");
    for p in [&u1, &u2, &u3] {
        assert_eq!(
            role_of(rec, &p.name),
            vec![(ParticipantRole::Attendee, true)]
        );
        assert!(
            rec.participants
                .iter()
                .any(|x| x.display_name.as_deref() == Some(p.name.as_str())
                    && x.directory_user_id.is_some())
        );
    }
    assert_eq!(
        role_of(rec, "Otto Organizer"),
        vec![(ParticipantRole::Organizer, false)]
    );
    assert_eq!(
        role_of(rec, "Gina Guest"),
        vec![(ParticipantRole::Attendee, false)]
    );
    assert_eq!(rec.participants.len(), 5);

    // The leg recording the meeting ends: so does its recording (its
    // media went with it). The other leg, a standby, ends within the
    // grace in which it would have continued the meeting: nothing more
    // is stored.
    assert_eq!(
        h.notify(vec![notify::deleted("m-call-1", 200, 0, "")])
            .await
            .0,
        202
    );
    let rec = &h.recordings().await[0];
    assert!(rec.ended_at.is_some());
    assert_eq!(rec.result_code.as_deref(), Some("200/0"));
    assert_eq!(
        h.notify(vec![notify::deleted("m-call-2", 200, 5010, "")])
            .await
            .0,
        202
    );
    let all = h.recordings().await;
    assert_eq!(all.len(), 1, "the standby stored nothing of its own");
    assert_eq!(all[0].result_code.as_deref(), Some("200/0"));
    h.ms.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_notifications_change_nothing() {
    let h = Harness::start().await;
    let dora = Person::new("Dora Double", "dora@contoso.example");
    let pid = uuid::Uuid::new_v4().to_string();
    let mut invite = Invite::new("call-5", &h.tid, &dora, "callee");
    invite.other_side = Some(notify::other_participant(&pid, "caller"));
    let roster = notify::roster(
        "call-5",
        vec![
            notify::participant(&dora.participant_id, dora.identity(&h.tid), "1"),
            notify::participant(&pid, notify::phone_identity("+4930123456"), "2"),
        ],
    );
    for _ in 0..2 {
        assert_eq!(
            h.notify(vec![invite.notification(), invite.notification()])
                .await
                .0,
            202
        );
    }
    h.wait_answered("call-5").await;
    for _ in 0..2 {
        assert_eq!(
            h.notify(vec![roster.clone(), notify::state("call-5", "established")])
                .await
                .0,
            202
        );
    }
    let before_end = h.snapshot().await;
    assert_eq!(h.recordings().await[0].participants.len(), 2);
    for _ in 0..2 {
        assert_eq!(
            h.notify(vec![notify::deleted("call-5", 200, 5001, "")])
                .await
                .0,
            202
        );
    }
    let after_end = h.snapshot().await;
    assert_ne!(before_end, after_end);
    // A late replay of everything after the end changes nothing either.
    assert_eq!(
        h.notify(vec![
            invite.notification(),
            roster,
            notify::state("call-5", "established")
        ])
        .await
        .0,
        202
    );
    assert_eq!(h.snapshot().await, after_end);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answers: Vec<_> =
        h.ms.graph_calls()
            .into_iter()
            .filter(|c| c.action == "answer")
            .collect();
    assert_eq!(answers.len(), 1, "answered once");
    h.ms.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tenants_and_non_policy_invites_are_not_answered() {
    let h = Harness::start().await;
    let stranger = Person::new("Sam Stranger", "sam@elsewhere.example");
    let other_tid = uuid::Uuid::new_v4().to_string();
    let foreign = Invite::new("call-6", &other_tid, &stranger, "callee");
    // The token of the foreign tenant is otherwise valid.
    let auth = format!(
        "Bearer {}",
        h.key.token(support::APP_ID, support::ISSUER, &other_tid)
    );
    assert_eq!(
        h.notify_with(&auth, vec![foreign.notification()]).await.0,
        202
    );
    let mut plain = Invite::new("call-7", &h.tid, &stranger, "callee");
    plain.invite_reasons = vec![];
    assert_eq!(h.notify(vec![plain.notification()]).await.0, 202);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(h.ms.graph_calls().is_empty());
    assert!(h.recordings().await.is_empty());
    assert_eq!(h.state.registry.active_calls().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_answer_honours_retry_after_and_still_answers_in_time() {
    let h = Harness::start().await;
    h.ms.script(vec![Scripted {
        status: 429,
        retry_after: Some("1".into()),
    }]);
    let tara = Person::new("Tara Throttled", "tara@contoso.example");
    let sent = Instant::now();
    assert_eq!(
        h.notify(vec![
            Invite::new("call-8", &h.tid, &tara, "caller").notification()
        ])
        .await
        .0,
        202
    );
    let answers =
        h.ms.wait_graph(2, |c| c.action == "answer", Duration::from_secs(5))
            .await;
    assert_eq!(answers.len(), 2, "one 429, then the retry");
    let gap = answers[1].at.duration_since(answers[0].at);
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    assert!(answers[1].at.duration_since(sent) < Duration::from_secs(5));
    h.wait_answered("call-8").await;

    // A Retry-After beyond the answer budget is not waited out.
    h.ms.script(vec![Scripted {
        status: 503,
        retry_after: Some("30".into()),
    }]);
    let (s, _) = h
        .notify(vec![
            Invite::new("call-9", &h.tid, &tara, "caller").notification(),
        ])
        .await;
    assert_eq!(s, 202);
    let reg = h.state.registry.clone();
    h.wait_until("the unanswered call to end", || {
        let reg = reg.clone();
        async move { reg.call_info("call-9").await.is_none() }
    })
    .await;
    let rec = h.recording("call-9").await;
    assert_eq!(rec.status, RecordingStatus::Failed);
    assert_eq!(rec.result_code.as_deref(), Some("answer-failed"));
    h.ms.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gateway_resumes_a_live_call_from_the_store() {
    let mut h = Harness::start().await;
    let rosa = Person::new("Rosa Restart", "rosa@contoso.example");
    h.add_directory_user(&rosa).await;
    let pid = uuid::Uuid::new_v4().to_string();
    let mut invite = Invite::new("call-r", &h.tid, &rosa, "caller");
    invite.other_side = Some(notify::other_participant(&pid, "callee"));
    assert_eq!(h.notify(vec![invite.notification()]).await.0, 202);
    h.wait_answered("call-r").await;
    let roster = notify::roster(
        "call-r",
        vec![
            notify::participant(&rosa.participant_id, rosa.identity(&h.tid), "1"),
            notify::participant(&pid, notify::phone_identity("+33 1 23 45 67 89"), "2"),
        ],
    );
    assert_eq!(h.notify(vec![roster.clone()]).await.0, 202);
    assert_eq!(h.recording("call-r").await.participants.len(), 2);

    h.restart_gateway().await;
    assert_eq!(h.state.registry.active_calls().await, 0);
    // The roster again (Graph does not know we restarted), then the end.
    assert_eq!(h.notify(vec![roster]).await.0, 202);
    let info = h.state.registry.call_info("call-r").await;
    assert_eq!(info.map(|i| i.participants.len()), Some(2));
    assert_eq!(
        h.notify(vec![notify::deleted("call-r", 200, 5002, "")])
            .await
            .0,
        202
    );
    let rec = h.recording("call-r").await;
    assert_eq!(rec.participants.len(), 2, "nobody stored twice");
    assert_eq!(rec.result_code.as_deref(), Some("200/5002"));
    assert!(rec.ended_at.is_some());
    // Media may have been recorded before the restart: not marked failed.
    assert_eq!(rec.status, RecordingStatus::Recording);
    h.ms.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_graph_token_is_renewed_once() {
    let h = Harness::start().await;
    let tim = Person::new("Tim Token", "tim@contoso.example");
    h.ms.script(vec![Scripted {
        status: 401,
        retry_after: None,
    }]);
    assert_eq!(
        h.notify(vec![
            Invite::new("call-t", &h.tid, &tim, "caller").notification()
        ])
        .await
        .0,
        202
    );
    h.wait_answered("call-t").await;
    assert_eq!(h.ms.token_calls().len(), 2, "the token was fetched anew");
    let answers: Vec<_> =
        h.ms.graph_calls()
            .into_iter()
            .filter(|c| c.action == "answer")
            .collect();
    assert_eq!(answers.len(), 2);
    h.ms.assert_no_problems();
}
