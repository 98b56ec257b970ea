//! The local extractive recap on realistic transcripts: a three-person
//! pricing meeting and a two-party call. Every item must cite the
//! segments it came from (ids and times), action items must name the
//! right owner, and the recap must be the same every time.

use ai_pipeline::recap::{EXTRACTIVE_ID, Extractive, RecapEngine, RecapInput};
use chrono::{DateTime, TimeZone, Utc};
use insights_core::domain::*;

fn person(role: ParticipantRole, name: &str) -> Participant {
    Participant {
        id: ParticipantId::new(),
        role,
        display_name: Some(name.to_owned()),
        phone_number: None,
        uri: None,
        email: None,
        directory_user_id: None,
        recorded_user: false,
        joined_ms: Some(0),
        left_ms: None,
    }
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 9, 30, 0)
        .single()
        .unwrap_or_else(|| panic!("valid time"))
}

struct Meeting {
    recording: RecordingId,
    people: Vec<Participant>,
    segments: Vec<TranscriptSegment>,
}

impl Meeting {
    fn new(people: Vec<Participant>, lines: &[(usize, &str)]) -> Self {
        let recording = RecordingId::new();
        let mut t = 0;
        let segments = lines
            .iter()
            .map(|(who, text)| {
                let start = t;
                let end = start + 1_000 + 60 * text.len() as i64;
                t = end + 500;
                TranscriptSegment {
                    id: SegmentId::new(),
                    recording_id: recording,
                    participant_id: Some(people[*who].id),
                    start_ms: start,
                    end_ms: end,
                    text: (*text).to_owned(),
                    confidence: 0.9,
                    language: Some("en".into()),
                }
            })
            .collect();
        Self {
            recording,
            people,
            segments,
        }
    }

    async fn recap(&self) -> Vec<Insight> {
        let input = RecapInput {
            recording_id: self.recording,
            participants: &self.people,
            segments: &self.segments,
            at: at(),
        };
        Extractive
            .recap(&input)
            .await
            .unwrap_or_else(|e| panic!("recap: {e}"))
    }

    /// Citations of segments `idx`, exactly as the recap must give them.
    fn cites(&self, idx: &[usize]) -> Vec<Citation> {
        idx.iter()
            .map(|&i| Citation::of(&self.segments[i]))
            .collect()
    }

    /// Index of a cited segment.
    fn index_of(&self, c: &Citation) -> usize {
        self.segments
            .iter()
            .position(|s| s.id == c.segment_id)
            .unwrap_or_else(|| panic!("citation of an unknown segment"))
    }
}

const ALICE: usize = 0;
const BOB: usize = 1;
const CAROL: usize = 2;

fn pricing_meeting() -> Meeting {
    Meeting::new(
        vec![
            person(ParticipantRole::Organizer, "Alice Martin"),
            person(ParticipantRole::Attendee, "Bob Chen"),
            person(ParticipantRole::Attendee, "Carol Diaz"),
        ],
        &[
            (
                ALICE,
                "Good morning everyone, thanks for joining the quarterly pricing review.",
            ),
            (
                ALICE,
                "The main goal today is to agree on the new pricing for the enterprise plan before the customer renewal in March.",
            ),
            (
                BOB,
                "The enterprise customers pushed back on the price increase, and three renewals are at risk.",
            ),
            (
                CAROL,
                "Our competitors lowered their enterprise pricing by ten percent last quarter.",
            ),
            (ALICE, "Can you hear me okay, Bob?"),
            (BOB, "Yes, loud and clear."),
            (
                BOB,
                "I think a smaller increase with a longer contract term would keep the renewals.",
            ),
            (
                CAROL,
                "We decided to keep the enterprise price flat for existing customers.",
            ),
            (ALICE, "Carol, can you update the pricing sheet by Friday?"),
            (CAROL, "Sure, will do."),
            (
                BOB,
                "I'll send the renewal offer to the three customers at risk.",
            ),
            (
                ALICE,
                "Could you also prepare the contract terms for the legal review?",
            ),
            (BOB, "Yes, I can do that tomorrow."),
            (
                ALICE,
                "Let's go with the longer contract term for the enterprise renewals.",
            ),
            (
                ALICE,
                "To summarize, pricing stays flat and the renewal offers go out this week.",
            ),
        ],
    )
}

fn of_kind(items: &[Insight], kind: InsightKind) -> Vec<&Insight> {
    items.iter().filter(|i| i.kind == kind).collect()
}

#[tokio::test]
async fn meeting_decisions_cite_the_segment_they_were_said_in() {
    let m = pricing_meeting();
    let recap = m.recap().await;
    let decisions = of_kind(&recap, InsightKind::Decision);
    let got: Vec<(&str, &[Citation])> = decisions
        .iter()
        .map(|d| (d.text.as_str(), d.citations.as_slice()))
        .collect();
    assert_eq!(
        got,
        vec![
            (m.segments[7].text.as_str(), m.cites(&[7]).as_slice()),
            (m.segments[13].text.as_str(), m.cites(&[13]).as_slice()),
        ]
    );
    assert!(decisions.iter().all(|d| d.owner_participant_id.is_none()));
}

#[tokio::test]
async fn meeting_action_items_have_owners_and_evidence() {
    let m = pricing_meeting();
    let recap = m.recap().await;
    let actions = of_kind(&recap, InsightKind::ActionItem);
    let got: Vec<(String, Option<ParticipantId>, Vec<Citation>)> = actions
        .iter()
        .map(|a| (a.text.clone(), a.owner_participant_id, a.citations.clone()))
        .collect();
    let want = vec![
        // Addressed by name: Carol, not the speaker.
        (
            m.segments[8].text.clone(),
            Some(m.people[CAROL].id),
            m.cites(&[8]),
        ),
        // First-person commitment: the speaker.
        (
            m.segments[10].text.clone(),
            Some(m.people[BOB].id),
            m.cites(&[10]),
        ),
        // "Could you" to nobody by name in a meeting: whoever says yes
        // next, and the answer is cited as evidence too.
        (
            m.segments[11].text.clone(),
            Some(m.people[BOB].id),
            m.cites(&[11, 12]),
        ),
    ];
    assert_eq!(got, want);
}

#[tokio::test]
async fn meeting_chatter_and_questions_are_not_tasks() {
    let m = pricing_meeting();
    let recap = m.recap().await;
    for item in &recap {
        for c in &item.citations {
            let i = m.index_of(c);
            if matches!(item.kind, InsightKind::ActionItem | InsightKind::Decision) {
                assert!(
                    ![0, 4, 5, 9].contains(&i),
                    "{:?} cites segment {i} ({})",
                    item.kind,
                    m.segments[i].text
                );
            }
        }
    }
}

#[tokio::test]
async fn summary_and_key_points_quote_the_cited_segments() {
    let m = pricing_meeting();
    let recap = m.recap().await;
    let summary = of_kind(&recap, InsightKind::Summary);
    assert_eq!(summary.len(), 1, "one summary item");
    let s = summary[0];
    assert!(!s.citations.is_empty() && s.citations.len() <= 3);
    // Every cited segment's sentence is in the summary, in time order.
    let mut last = None;
    for c in &s.citations {
        let i = m.index_of(c);
        assert!(
            s.text.contains(&m.segments[i].text),
            "summary quotes segment {i}"
        );
        assert!(last < Some(i), "citations in transcript order");
        last = Some(i);
    }
    // Questions and chatter are not summary material.
    for i in [4, 5, 9, 12] {
        assert!(
            !s.text.contains(&m.segments[i].text),
            "segment {i} in summary"
        );
    }

    let key_points = of_kind(&recap, InsightKind::KeyPoint);
    assert!((2..=5).contains(&key_points.len()), "{}", key_points.len());
    for k in &key_points {
        assert_eq!(k.citations.len(), 1);
        let i = m.index_of(&k.citations[0]);
        assert_eq!(
            k.text, m.segments[i].text,
            "a key point is the cited sentence"
        );
        assert_eq!(
            k.citations[0],
            Citation::of(&m.segments[i]),
            "with its times"
        );
        assert!(
            !s.citations.contains(&k.citations[0]),
            "key points repeat nothing of the summary"
        );
        assert!(
            recap
                .iter()
                .filter(|i| matches!(i.kind, InsightKind::Decision | InsightKind::ActionItem))
                .all(|i| i.text != k.text),
            "key points repeat no decision or action item"
        );
    }
}

#[tokio::test]
async fn topics_cite_exactly_the_segments_that_mention_them() {
    let m = pricing_meeting();
    let recap = m.recap().await;
    let topics = of_kind(&recap, InsightKind::Topic);
    let names: Vec<&str> = topics.iter().map(|t| t.text.as_str()).collect();
    assert!(names.contains(&"enterprise"), "{names:?}");
    assert!(names.contains(&"pricing"), "{names:?}");
    assert!(topics.len() <= 5);
    let enterprise = topics
        .iter()
        .find(|t| t.text == "enterprise")
        .unwrap_or_else(|| panic!("enterprise topic"));
    assert_eq!(enterprise.citations, m.cites(&[1, 2, 3, 7, 13]));
    for t in &topics {
        // Plural folding: "renewal" also cites "renewals".
        let stem: String = t
            .text
            .split(' ')
            .next()
            .unwrap_or("")
            .chars()
            .take(5)
            .collect();
        for c in &t.citations {
            let text = m.segments[m.index_of(c)].text.to_lowercase();
            assert!(
                text.contains(&stem),
                "topic {} cites a segment without it",
                t.text
            );
        }
    }
}

#[tokio::test]
async fn recap_is_deterministic_labelled_and_stamped() {
    let m = pricing_meeting();
    let a = m.recap().await;
    let b = m.recap().await;
    assert_eq!(a, b, "same transcript, same recap (ids included)");
    assert!(!a.is_empty());
    for i in &a {
        assert_eq!(i.provider, EXTRACTIVE_ID);
        assert!(i.is_local());
        assert_eq!(i.recording_id, m.recording);
        assert_eq!(i.created_at, at());
    }
    // Items come out in recap order, which the store's (kind, created_at,
    // id) order keeps.
    let mut sorted = a.clone();
    sorted.sort_by_key(|i| (i.kind, i.created_at, i.id));
    assert_eq!(sorted, a);
}

#[tokio::test]
async fn two_party_call_request_is_owned_by_the_other_party() {
    let m = Meeting::new(
        vec![
            person(ParticipantRole::Caller, "Dana Smith"),
            person(ParticipantRole::Callee, "Evan Brooks"),
        ],
        &[
            (
                0,
                "Hi, I am calling about the delayed shipment of order forty two.",
            ),
            (
                1,
                "Let me check the shipment status in our warehouse system.",
            ),
            (0, "Can you send me the tracking number by email today?"),
            (1, "Of course."),
            (
                1,
                "Our logistics team will also call the carrier about the delay.",
            ),
        ],
    );
    let recap = m.recap().await;
    let actions = of_kind(&recap, InsightKind::ActionItem);
    let got: Vec<(usize, Option<ParticipantId>)> = actions
        .iter()
        .map(|a| (m.index_of(&a.citations[0]), a.owner_participant_id))
        .collect();
    assert_eq!(
        got,
        vec![
            // "Let me check": the speaker, Evan.
            (1, Some(m.people[1].id)),
            // Dana asks "can you": the other party of the call, Evan.
            (2, Some(m.people[1].id)),
        ]
    );
}

#[tokio::test]
async fn a_named_participant_with_will_owns_the_task() {
    let m = Meeting::new(
        vec![
            person(ParticipantRole::Organizer, "Alice Martin"),
            person(ParticipantRole::Attendee, "Bob Chen"),
        ],
        &[
            (
                0,
                "Bob will draft the migration plan for the billing database.",
            ),
            (1, "We'll see how the vendor responds next week."),
            (
                0,
                "Action item: Alice Martin reviews the security audit findings.",
            ),
        ],
    );
    let recap = m.recap().await;
    let actions = of_kind(&recap, InsightKind::ActionItem);
    let got: Vec<(usize, Option<ParticipantId>)> = actions
        .iter()
        .map(|a| (m.index_of(&a.citations[0]), a.owner_participant_id))
        .collect();
    assert_eq!(
        got,
        vec![(0, Some(m.people[1].id)), (2, Some(m.people[0].id))],
        "\"we'll see\" is no task; a named owner wins"
    );
}

#[tokio::test]
async fn an_empty_transcript_has_no_recap() {
    let m = Meeting::new(vec![person(ParticipantRole::Caller, "Dana Smith")], &[]);
    assert!(m.recap().await.is_empty());
}
