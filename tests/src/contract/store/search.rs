//! Recording search ([`SearchStore`]).
//!
//! [`SearchStore`]: insights_core::store::SearchStore

use super::fixtures::*;

/// Seven recordings in one tenant (plus a look-alike in another tenant
/// that must never show up):
///
/// | # | kind    | direction | start | duration  | parties                             | transcript words              | hold |
/// |---|---------|-----------|-------|-----------|-------------------------------------|-------------------------------|------|
/// | 0 | call    | inbound   | +0h   | 60 000    | Carol Danvers +14255550100, Alice   | project invoice               |      |
/// | 1 | call    | outbound  | +1h   | 120 000   | Alice, Dieter Mueller +4930123456   |                               |      |
/// | 2 | meeting | internal  | +2h   | 1 800 000 | Bob, Alice                          | quarterly budget; project     | yes  |
/// | 3 | call    | inbound   | +3h   | 60 000    | Eve Adams +14255550199, Bob         | signed project contract       |      |
/// | 4 | call    | unknown   | +4h   | none      | +442079460958 (no name), Bob        |                               |      |
/// | 5 | meeting | internal  | +4h   | 300 000   | Frank Castle (email, sip), Alice    |                               |      |
/// | 6 | call    | outbound  | +6h   | 45 000    | Bob, Grace Hopper 030123456         |                               |      |
///
/// Alice and Bob are directory users (`alice`, `bob`) with
/// `alice.smith@contoso.com` / `sip:alice.smith@contoso.com` and the like.
struct SearchFixture {
    t: TenantId,
    recs: Vec<Recording>,
    alice: UserId,
    bob: UserId,
    base: DateTime<Utc>,
}

impl SearchFixture {
    fn ids(&self, idx: &[usize]) -> BTreeSet<RecordingId> {
        idx.iter().map(|i| self.recs[*i].id).collect()
    }
}

async fn search_fixture(s: &Store) -> SearchFixture {
    use ParticipantRole::*;
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let alice = UserId::new();
    let bob = UserId::new();
    let base = now() - Duration::days(10);
    let alice_p = |role| internal(role, alice, "Alice", "Smith");
    let bob_p = |role| internal(role, bob, "Bob", "Jones");
    let mk = |kind, dir, hours: i64, dur: Option<i64>, parts: Vec<Participant>| {
        let started = base + Duration::hours(hours);
        let mut r = Recording::new(t, kind, dir, started);
        r.duration_ms = dur;
        r.ended_at = dur.map(|d| started + Duration::milliseconds(d));
        r.status = if dur.is_some() {
            RecordingStatus::Stored
        } else {
            RecordingStatus::Recording
        };
        r.participants = parts;
        r
    };
    use Direction::*;
    use RecordingKind::*;
    let mut recs = vec![
        mk(
            Call,
            Inbound,
            0,
            Some(60_000),
            vec![
                external(Caller, "Carol Danvers", "+14255550100"),
                alice_p(Callee),
            ],
        ),
        mk(
            Call,
            Outbound,
            1,
            Some(120_000),
            vec![
                alice_p(Caller),
                external(Callee, "Dieter Mueller", "+4930123456"),
            ],
        ),
        mk(
            Meeting,
            Internal,
            2,
            Some(1_800_000),
            vec![bob_p(Organizer), alice_p(Attendee)],
        ),
        mk(
            Call,
            Inbound,
            3,
            Some(60_000),
            vec![external(Caller, "Eve Adams", "+14255550199"), bob_p(Callee)],
        ),
        mk(
            Call,
            Unknown,
            4,
            None,
            vec![
                Participant {
                    phone_number: Some("+442079460958".into()),
                    uri: Some("tel:+442079460958".into()),
                    ..party(Caller)
                },
                bob_p(Callee),
            ],
        ),
        mk(
            Meeting,
            Internal,
            4,
            Some(300_000),
            vec![
                Participant {
                    display_name: Some("Frank Castle".into()),
                    email: Some("frank@partner.example".into()),
                    uri: Some("sip:frank@partner.example".into()),
                    ..party(Organizer)
                },
                alice_p(Attendee),
            ],
        ),
        mk(
            Call,
            Outbound,
            6,
            Some(45_000),
            vec![bob_p(Caller), external(Callee, "Grace Hopper", "030123456")],
        ),
    ];
    recs[2].legal_hold = true;
    for r in &recs {
        must(s.insert_recording(t, r).await, "insert fixture");
    }
    let transcripts: [(usize, &[&str]); 3] = [
        (
            0,
            &["hello this is carol calling about the project invoice"],
        ),
        (
            2,
            &[
                "let us review the quarterly budget",
                "the project budget looks fine to me",
            ],
        ),
        (3, &["please send the signed project contract today"]),
    ];
    for (i, lines) in transcripts {
        let id = recs[i].id;
        let segs: Vec<_> = lines
            .iter()
            .enumerate()
            .map(|(n, l)| segment(id, n as i64 * 2000, l))
            .collect();
        must(s.put_transcript_segments(t, id, &segs).await, "transcript");
        recs[i].has_transcript = true;
    }

    // A look-alike of everything in another tenant (even the same user id).
    let mut decoy = Recording::new(other, Call, Inbound, base);
    decoy.duration_ms = Some(60_000);
    decoy.participants = vec![
        external(Caller, "Carol Danvers", "+14255550100"),
        internal(Callee, alice, "Alice", "Smith"),
        internal(Attendee, bob, "Bob", "Jones"),
    ];
    must(s.insert_recording(other, &decoy).await, "decoy");
    must(
        s.put_transcript_segments(
            other,
            decoy.id,
            &[segment(
                decoy.id,
                0,
                "quarterly budget invoice signed contract",
            )],
        )
        .await,
        "decoy transcript",
    );

    SearchFixture {
        t,
        recs,
        alice,
        bob,
        base,
    }
}

/// Runs a one-page search and returns the page, checking its total.
async fn search_all(s: &Store, t: TenantId, q: RecordingQuery) -> SearchPage {
    let q = RecordingQuery { limit: 500, ..q };
    let page = must(s.search_recordings(t, &q).await, "search");
    assert_eq!(
        page.total,
        page.items.len() as u64,
        "total of a single page for {q:?}"
    );
    assert!(page.next_cursor.is_none(), "no next page for {q:?}");
    page
}

async fn hit_set(s: &Store, t: TenantId, q: RecordingQuery) -> BTreeSet<RecordingId> {
    let page = search_all(s, t, q.clone()).await;
    let set: BTreeSet<_> = page.items.iter().map(|i| i.recording.id).collect();
    assert_eq!(set.len(), page.items.len(), "duplicates in {q:?}");
    set
}

#[track_caller]
fn assert_hits(fx: &SearchFixture, got: BTreeSet<RecordingId>, want: &[usize], what: &str) {
    let want_set = fx.ids(want);
    if got != want_set {
        let names: Vec<usize> = (0..fx.recs.len())
            .filter(|i| got.contains(&fx.recs[*i].id))
            .collect();
        panic!("{what}: expected recordings {want:?}, got {names:?}");
    }
}

pub async fn search_filters_individually(s: &Store) {
    let fx = search_fixture(s).await;
    let t = fx.t;
    let h = Duration::hours;

    // No filter: everything, as full recordings, without snippets.
    let page = search_all(s, t, RecordingQuery::default()).await;
    assert_eq!(page.total, 7);
    for item in &page.items {
        let want = fx
            .recs
            .iter()
            .find(|r| r.id == item.recording.id)
            .unwrap_or_else(|| panic!("unknown recording in results"));
        assert_eq!(&item.recording, want, "search returns the full recording");
        assert!(
            item.snippets.is_empty(),
            "no snippets without transcript_text"
        );
    }

    let cases: Vec<(&str, RecordingQuery, &[usize])> = vec![
        (
            "from (inclusive)",
            RecordingQuery {
                from: Some(fx.base + h(2)),
                ..Default::default()
            },
            &[2, 3, 4, 5, 6],
        ),
        (
            "to (exclusive)",
            RecordingQuery {
                to: Some(fx.base + h(4)),
                ..Default::default()
            },
            &[0, 1, 2, 3],
        ),
        (
            "from..to",
            RecordingQuery {
                from: Some(fx.base + h(1)),
                to: Some(fx.base + h(3)),
                ..Default::default()
            },
            &[1, 2],
        ),
        (
            "direction inbound",
            RecordingQuery {
                direction: Some(Direction::Inbound),
                ..Default::default()
            },
            &[0, 3],
        ),
        (
            "direction outbound",
            RecordingQuery {
                direction: Some(Direction::Outbound),
                ..Default::default()
            },
            &[1, 6],
        ),
        (
            "direction internal",
            RecordingQuery {
                direction: Some(Direction::Internal),
                ..Default::default()
            },
            &[2, 5],
        ),
        (
            "kind meeting",
            RecordingQuery {
                kind: Some(RecordingKind::Meeting),
                ..Default::default()
            },
            &[2, 5],
        ),
        (
            "kind call",
            RecordingQuery {
                kind: Some(RecordingKind::Call),
                ..Default::default()
            },
            &[0, 1, 3, 4, 6],
        ),
        (
            "min duration (inclusive)",
            RecordingQuery {
                min_duration_ms: Some(60_000),
                ..Default::default()
            },
            &[0, 1, 2, 3, 5],
        ),
        (
            "max duration (inclusive)",
            RecordingQuery {
                max_duration_ms: Some(60_000),
                ..Default::default()
            },
            &[0, 3, 6],
        ),
        (
            "duration range",
            RecordingQuery {
                min_duration_ms: Some(60_000),
                max_duration_ms: Some(120_000),
                ..Default::default()
            },
            &[0, 1, 3],
        ),
        (
            "has transcript",
            RecordingQuery {
                has_transcript: Some(true),
                ..Default::default()
            },
            &[0, 2, 3],
        ),
        (
            "has no transcript",
            RecordingQuery {
                has_transcript: Some(false),
                ..Default::default()
            },
            &[1, 4, 5, 6],
        ),
        (
            "legal hold",
            RecordingQuery {
                legal_hold: Some(true),
                ..Default::default()
            },
            &[2],
        ),
        (
            "no legal hold",
            RecordingQuery {
                legal_hold: Some(false),
                ..Default::default()
            },
            &[0, 1, 3, 4, 5, 6],
        ),
        (
            "user alice",
            RecordingQuery {
                user_id: Some(fx.alice),
                ..Default::default()
            },
            &[0, 1, 2, 5],
        ),
        (
            "user bob",
            RecordingQuery {
                user_id: Some(fx.bob),
                ..Default::default()
            },
            &[2, 3, 4, 6],
        ),
        (
            "unknown user",
            RecordingQuery {
                user_id: Some(UserId::new()),
                ..Default::default()
            },
            &[],
        ),
        (
            "participant",
            RecordingQuery {
                participant: Some("danvers".into()),
                ..Default::default()
            },
            &[0],
        ),
        (
            "transcript text",
            RecordingQuery {
                transcript_text: Some("invoice".into()),
                ..Default::default()
            },
            &[0],
        ),
    ];
    for (what, q, want) in cases {
        let got = hit_set(s, t, q).await;
        assert_hits(&fx, got, want, what);
    }
}

pub async fn search_participant_words(s: &Store) {
    let fx = search_fixture(s).await;
    let cases: &[(&str, &[usize])] = &[
        ("carol", &[0]),
        ("CAROL", &[0]),
        ("car", &[0]),
        ("danv", &[0]),
        ("carol danvers", &[0]),
        ("Danvers Carol", &[0]),
        ("alice", &[0, 1, 2, 5]),
        ("smi", &[0, 1, 2, 5]),
        ("alice.smith@contoso.com", &[0, 1, 2, 5]),
        ("sip:bob.jones@contoso.com", &[2, 3, 4, 6]),
        ("bob jon", &[2, 3, 4, 6]),
        ("frank@partner.example", &[5]),
        ("sip:frank@partner.example", &[5]),
        ("partner", &[5]),
        ("hopper grace", &[6]),
        ("mueller", &[1]),
        ("zed", &[]),
        ("carol zed", &[]),
    ];
    for (words, want) in cases {
        let got = hit_set(
            s,
            fx.t,
            RecordingQuery {
                participant: Some((*words).to_owned()),
                ..Default::default()
            },
        )
        .await;
        assert_hits(&fx, got, want, &format!("participant {words:?}"));
    }
}

pub async fn search_phone_digits(s: &Store) {
    let fx = search_fixture(s).await;
    let cases: &[(&str, &[usize])] = &[
        ("+14255550100", &[0]),
        ("4255550100", &[0]),
        ("425 555 0100", &[0]),
        ("+1 (425) 555-0100", &[0]),
        ("001 425 555 0100", &[0]),
        ("tel:+14255550100", &[0]),
        ("555 01", &[0, 3]),
        ("0199", &[3]),
        ("+44 20 7946 0958", &[4]),
        ("0044 20 7946 0958", &[4]),
        ("7946", &[4]),
        ("(030) 123456", &[6]),
        ("30123456", &[1, 6]),
        ("+49 30 123456", &[1]),
        ("999999", &[]),
    ];
    for (number, want) in cases {
        let got = hit_set(
            s,
            fx.t,
            RecordingQuery {
                participant: Some((*number).to_owned()),
                ..Default::default()
            },
        )
        .await;
        assert_hits(&fx, got, want, &format!("number {number:?}"));
    }
}

pub async fn search_transcript_text_and_snippets(s: &Store) {
    let fx = search_fixture(s).await;
    let cases: &[(&str, &[usize])] = &[
        ("budget", &[2]),
        ("Budget", &[2]),
        ("quarterly budget", &[2]),
        ("invoice", &[0]),
        ("contract", &[3]),
        ("signed contract", &[3]),
        ("project", &[0, 2, 3]),
        // Both words exist, but in different recordings.
        ("invoice contract", &[]),
        ("elephant", &[]),
    ];
    for (text, want) in cases {
        let got = hit_set(
            s,
            fx.t,
            RecordingQuery {
                transcript_text: Some((*text).to_owned()),
                ..Default::default()
            },
        )
        .await;
        assert_hits(&fx, got, want, &format!("transcript {text:?}"));
    }

    let page = search_all(
        s,
        fx.t,
        RecordingQuery {
            transcript_text: Some("budget".into()),
            ..Default::default()
        },
    )
    .await;
    let item = &page.items[0];
    assert!(!item.snippets.is_empty(), "snippets for a transcript match");
    assert!(
        item.snippets.iter().any(|s| s.contains("[[budget]]")),
        "a snippet marks the match: {:?}",
        item.snippets
    );
    for snip in &item.snippets {
        assert!(
            snip.contains("[[") && snip.contains("]]"),
            "every snippet marks a match: {snip:?}"
        );
    }

    let page = search_all(
        s,
        fx.t,
        RecordingQuery {
            transcript_text: Some("signed contract".into()),
            ..Default::default()
        },
    )
    .await;
    let snips = &page.items[0].snippets;
    assert!(
        snips
            .iter()
            .any(|s| s.contains("[[signed]]") && s.contains("[[contract]]")),
        "every matched word is marked: {snips:?}"
    );
}

pub async fn search_combined_filters(s: &Store) {
    let fx = search_fixture(s).await;
    let h = Duration::hours;
    let cases: Vec<(&str, RecordingQuery, &[usize])> = vec![
        (
            "inbound, >= 60s, transcribed",
            RecordingQuery {
                direction: Some(Direction::Inbound),
                min_duration_ms: Some(60_000),
                has_transcript: Some(true),
                ..Default::default()
            },
            &[0, 3],
        ),
        (
            "... and participant eve",
            RecordingQuery {
                direction: Some(Direction::Inbound),
                min_duration_ms: Some(60_000),
                has_transcript: Some(true),
                participant: Some("eve".into()),
                ..Default::default()
            },
            &[3],
        ),
        (
            "alice's meetings from +1h",
            RecordingQuery {
                from: Some(fx.base + h(1)),
                user_id: Some(fx.alice),
                kind: Some(RecordingKind::Meeting),
                ..Default::default()
            },
            &[2, 5],
        ),
        (
            "... not on hold",
            RecordingQuery {
                from: Some(fx.base + h(1)),
                user_id: Some(fx.alice),
                kind: Some(RecordingKind::Meeting),
                legal_hold: Some(false),
                ..Default::default()
            },
            &[5],
        ),
        (
            "bob + text",
            RecordingQuery {
                user_id: Some(fx.bob),
                transcript_text: Some("project".into()),
                ..Default::default()
            },
            &[2, 3],
        ),
        (
            "number + visible to bob + before +4h",
            RecordingQuery {
                participant: Some("425 555".into()),
                visible_to_users: Some(vec![fx.bob]),
                to: Some(fx.base + h(4)),
                ..Default::default()
            },
            &[3],
        ),
        (
            "participant + text in different recordings",
            RecordingQuery {
                participant: Some("carol".into()),
                transcript_text: Some("budget".into()),
                ..Default::default()
            },
            &[],
        ),
    ];
    for (what, q, want) in cases {
        let got = hit_set(s, fx.t, q).await;
        assert_hits(&fx, got, want, what);
    }
}

pub async fn search_visible_to_users(s: &Store) {
    let fx = search_fixture(s).await;
    type Case<'a> = (&'a str, Option<Vec<UserId>>, &'a [usize]);
    let cases: Vec<Case> = vec![
        ("no restriction", None, &[0, 1, 2, 3, 4, 5, 6]),
        ("empty list matches nothing", Some(vec![]), &[]),
        ("alice", Some(vec![fx.alice]), &[0, 1, 2, 5]),
        ("bob", Some(vec![fx.bob]), &[2, 3, 4, 6]),
        (
            "alice or bob",
            Some(vec![fx.alice, fx.bob]),
            &[0, 1, 2, 3, 4, 5, 6],
        ),
        ("unknown user", Some(vec![UserId::new()]), &[]),
    ];
    for (what, users, want) in cases {
        let got = hit_set(
            s,
            fx.t,
            RecordingQuery {
                visible_to_users: users,
                ..Default::default()
            },
        )
        .await;
        assert_hits(&fx, got, want, what);
    }
    // Combined with user_id: both must hold.
    let got = hit_set(
        s,
        fx.t,
        RecordingQuery {
            user_id: Some(fx.alice),
            visible_to_users: Some(vec![fx.bob]),
            ..Default::default()
        },
    )
    .await;
    assert_hits(&fx, got, &[2], "user alice visible to bob");
}

fn assert_sorted(items: &[RecordingSummary], sort: SortKey) {
    let keys: Vec<(DateTime<Utc>, Option<i64>)> = items
        .iter()
        .map(|i| (i.recording.started_at, i.recording.duration_ms))
        .collect();
    let ok = |ok: bool, w: &[(DateTime<Utc>, Option<i64>)]| {
        assert!(ok, "{sort}: {:?} out of order", w);
    };
    match sort {
        SortKey::StartedDesc => keys.windows(2).for_each(|w| ok(w[0].0 >= w[1].0, w)),
        SortKey::StartedAsc => keys.windows(2).for_each(|w| ok(w[0].0 <= w[1].0, w)),
        SortKey::DurationDesc | SortKey::DurationAsc => {
            let durations: Vec<i64> = keys.iter().filter_map(|k| k.1).collect();
            for w in durations.windows(2) {
                let in_order = if sort == SortKey::DurationDesc {
                    w[0] >= w[1]
                } else {
                    w[0] <= w[1]
                };
                assert!(in_order, "{sort}: durations {durations:?} out of order");
            }
            // Recordings without a duration are kept together (first or
            // last; not pinned).
            let none_at: Vec<usize> = keys
                .iter()
                .enumerate()
                .filter(|(_, k)| k.1.is_none())
                .map(|(i, _)| i)
                .collect();
            if let (Some(first), Some(last)) = (none_at.first(), none_at.last()) {
                assert!(
                    *first == 0 || *last == keys.len() - 1,
                    "{sort}: recordings without duration at {none_at:?}"
                );
            }
        }
    }
}

pub async fn search_sort_orders(s: &Store) {
    let fx = search_fixture(s).await;
    let all = fx.ids(&[0, 1, 2, 3, 4, 5, 6]);
    for sort in SortKey::ALL {
        let q = RecordingQuery {
            sort: *sort,
            ..Default::default()
        };
        let page = search_all(s, fx.t, q.clone()).await;
        let got: BTreeSet<_> = page.items.iter().map(|i| i.recording.id).collect();
        assert_eq!(got, all, "{sort}: every recording");
        assert_sorted(&page.items, *sort);
        // Deterministic: the same query gives the same order.
        let again = search_all(s, fx.t, q).await;
        let ids = |p: &SearchPage| p.items.iter().map(|i| i.recording.id).collect::<Vec<_>>();
        assert_eq!(ids(&page), ids(&again), "{sort}: deterministic order");
    }
    // The exact order where keys differ.
    let order = |p: &SearchPage| p.items.iter().map(|i| i.recording.id).collect::<Vec<_>>();
    let started_desc = order(
        &search_all(
            s,
            fx.t,
            RecordingQuery {
                sort: SortKey::StartedDesc,
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!(started_desc[0], fx.recs[6].id);
    assert_eq!(started_desc[3..], [3, 2, 1, 0].map(|i| fx.recs[i].id));
    let started_asc = order(
        &search_all(
            s,
            fx.t,
            RecordingQuery {
                sort: SortKey::StartedAsc,
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!(started_asc[..4], [0, 1, 2, 3].map(|i| fx.recs[i].id));
    assert_eq!(started_asc[6], fx.recs[6].id);
    let duration_desc = order(
        &search_all(
            s,
            fx.t,
            RecordingQuery {
                sort: SortKey::DurationDesc,
                legal_hold: Some(false),
                max_duration_ms: Some(1_000_000),
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!(duration_desc[..2], [5, 1].map(|i| fx.recs[i].id));
    assert_eq!(duration_desc[4], fx.recs[6].id);
}

pub async fn search_pagination_exact_once(s: &Store) {
    let fx = search_fixture(s).await;
    let cases: Vec<(RecordingQuery, u64)> = SortKey::ALL
        .iter()
        .map(|sort| {
            (
                RecordingQuery {
                    sort: *sort,
                    limit: 2,
                    ..Default::default()
                },
                7,
            )
        })
        .chain([
            (
                RecordingQuery {
                    sort: SortKey::StartedAsc,
                    user_id: Some(fx.bob),
                    limit: 1,
                    ..Default::default()
                },
                4,
            ),
            (
                RecordingQuery {
                    sort: SortKey::DurationAsc,
                    participant: Some("alice".into()),
                    limit: 3,
                    ..Default::default()
                },
                4,
            ),
            (
                RecordingQuery {
                    sort: SortKey::StartedDesc,
                    transcript_text: Some("project".into()),
                    limit: 2,
                    ..Default::default()
                },
                3,
            ),
        ])
        .collect();
    for (q, total) in cases {
        let single = search_all(s, fx.t, q.clone()).await;
        let want: Vec<RecordingId> = single.items.iter().map(|i| i.recording.id).collect();
        assert_eq!(want.len() as u64, total, "{q:?}: matches");

        let mut got: Vec<RecordingId> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            pages += 1;
            assert!(pages <= 10, "{q:?}: pagination does not end");
            let page = must(
                s.search_recordings(
                    fx.t,
                    &RecordingQuery {
                        cursor: cursor.clone(),
                        ..q.clone()
                    },
                )
                .await,
                "page",
            );
            assert_eq!(page.total, total, "{q:?}: total on page {pages}");
            assert!(page.items.len() <= q.limit as usize, "page size");
            got.extend(page.items.iter().map(|i| i.recording.id));
            match page.next_cursor {
                Some(c) => {
                    assert_eq!(page.items.len(), q.limit as usize, "only full pages go on");
                    cursor = Some(c);
                }
                None => break,
            }
        }
        let unique: BTreeSet<_> = got.iter().copied().collect();
        assert_eq!(unique.len(), got.len(), "{q:?}: duplicates across pages");
        assert_eq!(
            got, want,
            "{q:?}: pages concatenate to the single-page order"
        );
        assert_eq!(
            pages as u64,
            total.div_ceil(u64::from(q.limit)),
            "{q:?}: page count"
        );
    }

    // `limit` is clamped: 0 behaves as 1.
    let page = must(
        s.search_recordings(
            fx.t,
            &RecordingQuery {
                limit: 0,
                ..Default::default()
            },
        )
        .await,
        "limit 0",
    );
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.total, 7);
    assert!(page.next_cursor.is_some());
}

pub async fn search_bad_cursor_is_invalid(s: &Store) {
    let fx = search_fixture(s).await;
    for bad in [
        "definitely not a cursor",
        "!!!",
        "AAAA",
        "eyJ9",
        "' OR 1=1 --",
        "\"",
    ] {
        assert_invalid(
            s.search_recordings(
                fx.t,
                &RecordingQuery {
                    cursor: Some(bad.to_owned()),
                    ..Default::default()
                },
            )
            .await,
            &format!("cursor {bad:?}"),
        );
    }
}

pub async fn search_hostile_input_is_harmless(s: &Store) {
    let fx = search_fixture(s).await;
    let long = "budget ".repeat(300);
    let inputs: Vec<&str> = vec![
        "\"",
        "\"\"",
        "'",
        "AND (",
        "OR",
        "NOT",
        "NEAR(a b)",
        "budget*\"",
        "text:budget",
        "a\" OR \"1\"=\"1",
        "'; DROP TABLE recordings; --",
        "\\",
        "^",
        "-budget",
        "+",
        "()",
        "{}",
        "[[",
        "📞 ☎",
        "budget AND",
        "!budget | budget & (",
        ":*",
        "%",
        "_",
        "*",
        &long,
    ];
    for input in &inputs {
        for q in [
            RecordingQuery {
                participant: Some((*input).to_owned()),
                ..Default::default()
            },
            RecordingQuery {
                transcript_text: Some((*input).to_owned()),
                ..Default::default()
            },
        ] {
            let page = must(s.search_recordings(fx.t, &q).await, &format!("{q:?}"));
            assert!(page.total <= 7, "{q:?}: at most the tenant's recordings");
        }
    }
    // Wildcard characters are not wildcards.
    for input in ["%", "_", "*", "\"", "%%%%"] {
        let page = must(
            s.search_recordings(
                fx.t,
                &RecordingQuery {
                    participant: Some(input.to_owned()),
                    ..Default::default()
                },
            )
            .await,
            "wildcard",
        );
        assert_eq!(page.total, 0, "participant {input:?} matches nothing");
    }
    // Quotes around a word do not stop it from matching.
    let got = hit_set(
        s,
        fx.t,
        RecordingQuery {
            transcript_text: Some("\"budget\"".into()),
            ..Default::default()
        },
    )
    .await;
    assert_hits(&fx, got, &[2], "quoted word");
    // Everything is still there.
    assert_eq!(
        search_all(s, fx.t, RecordingQuery::default()).await.total,
        7
    );
}
