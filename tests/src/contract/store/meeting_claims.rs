#![allow(clippy::expect_used, clippy::unwrap_used)] // contract cases: a failed expectation is the case failing
//! Meeting claims of gateway nodes ([`MeetingClaimStore`]): one recording
//! per (tenant, call chain) whichever node claims first, a lease renewed
//! only by its holder, taken over only once it ran out.
//!
//! [`MeetingClaimStore`]: insights_core::store::MeetingClaimStore

use super::fixtures::*;

pub async fn meeting_claim_is_won_once_per_tenant_and_chain(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let at = now();
    let lease = at + Duration::seconds(3);
    let (r1, r2) = (RecordingId::new(), RecordingId::new());
    assert_eq!(must(s.meeting_claim(t, "chain-1").await, "none yet"), None);

    let won = must(
        s.claim_meeting(t, "chain-1", r1, "node-a", at, lease).await,
        "first claim",
    );
    assert_eq!(
        (
            won.recording_id,
            won.holder.as_str(),
            won.epoch,
            won.tenant_id
        ),
        (r1, "node-a", 1, t)
    );
    assert_eq!(won.chain_key, "chain-1");
    // A second leg of the same meeting on another node joins it.
    let joined = must(
        s.claim_meeting(t, "chain-1", r2, "node-b", at, lease).await,
        "second claim",
    );
    assert_eq!(joined, won, "the live claim is returned unchanged");
    // The same chain key in another tenant is another meeting.
    let theirs = must(
        s.claim_meeting(other, "chain-1", r2, "node-b", at, lease)
            .await,
        "other tenant",
    );
    assert_eq!(
        (theirs.recording_id, theirs.holder.as_str()),
        (r2, "node-b")
    );
    assert_eq!(
        must(s.meeting_claim(t, "chain-1").await, "get").map(|c| c.recording_id),
        Some(r1)
    );

    // Only the holder renews, at its epoch.
    let later = lease + Duration::seconds(3);
    assert!(!must(
        s.renew_meeting_claim(t, "chain-1", "node-b", 1, later)
            .await,
        "renew by another node"
    ));
    assert!(!must(
        s.renew_meeting_claim(t, "chain-1", "node-a", 2, later)
            .await,
        "renew at another epoch"
    ));
    assert!(must(
        s.renew_meeting_claim(t, "chain-1", "node-a", 1, later)
            .await,
        "renew"
    ));
    let renewed =
        must(s.meeting_claim(t, "chain-1").await, "get").unwrap_or_else(|| panic!("claim gone"));
    assert_eq!(
        renewed.lease_until.timestamp_millis(),
        later.timestamp_millis()
    );
    // A heartbeat renews all of a node's claims of a tenant at once:
    // each answer says whether that claim is still held.
    let (r3, r4) = (RecordingId::new(), RecordingId::new());
    must(
        s.claim_meeting(t, "chain-2", r3, "node-a", at, lease).await,
        "second chain",
    );
    must(
        s.claim_meeting(t, "chain-3", r4, "node-b", at, lease).await,
        "third chain, another node",
    );
    let batch = [
        ("chain-1".to_owned(), 1),
        ("chain-2".to_owned(), 1),
        ("chain-3".to_owned(), 1),
        ("chain-2".to_owned(), 2),
    ];
    let latest = later + Duration::seconds(3);
    assert_eq!(
        must(
            s.renew_meeting_claims(t, "node-a", &batch, latest).await,
            "batch renew"
        ),
        vec![true, true, false, false],
        "held, held, another node's, another epoch"
    );
    assert_eq!(
        must(
            s.renew_meeting_claims(other, "node-a", &batch, latest)
                .await,
            "batch renew in another tenant"
        ),
        vec![false; 4],
        "the same chain keys in another tenant are not this node's"
    );
    for (chain, until) in [("chain-1", latest), ("chain-2", latest), ("chain-3", lease)] {
        let claim =
            must(s.meeting_claim(t, chain).await, "get").unwrap_or_else(|| panic!("{chain} gone"));
        assert_eq!(
            claim.lease_until.timestamp_millis(),
            until.timestamp_millis(),
            "{chain}"
        );
    }
    assert!(
        must(
            s.renew_meeting_claims(t, "node-a", &[], latest).await,
            "empty batch"
        )
        .is_empty()
    );
    for (chain, node) in [("chain-2", "node-a"), ("chain-3", "node-b")] {
        assert!(must(
            s.release_meeting_claim(t, chain, node).await,
            "release"
        ));
    }

    // Only the holder releases; then the chain is free again.
    assert!(!must(
        s.release_meeting_claim(t, "chain-1", "node-b").await,
        "release by another node"
    ));
    assert!(must(
        s.release_meeting_claim(t, "chain-1", "node-a").await,
        "release"
    ));
    assert_eq!(must(s.meeting_claim(t, "chain-1").await, "released"), None);
    let again = must(
        s.claim_meeting(t, "chain-1", r2, "node-b", at, lease).await,
        "claim after release",
    );
    assert_eq!((again.recording_id, again.epoch), (r2, 1));
    // The other tenant's claim was never touched.
    assert_eq!(
        must(s.meeting_claim(other, "chain-1").await, "other").map(|c| c.recording_id),
        Some(r2)
    );
}

/// Nodes claiming at the same moment agree on one recording.
pub async fn concurrent_meeting_claims_agree_on_one_recording(s: &Store) {
    let t = tenant(s, "contoso").await;
    let store: Arc<dyn insights_core::store::MetadataStore> = Arc::clone(s);
    let at = now();
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .claim_meeting(
                    t,
                    "meeting-chain",
                    RecordingId::new(),
                    &format!("node-{n}"),
                    at,
                    at + Duration::seconds(5),
                )
                .await
        }));
    }
    let mut seen = BTreeSet::new();
    for task in tasks {
        let claim = must(must(task.await, "task"), "concurrent claim");
        seen.insert((claim.recording_id.0, claim.holder, claim.epoch));
    }
    assert_eq!(seen.len(), 1, "every node sees the same claim: {seen:?}");
}

/// A claim whose lease ran out (its node died) is taken over by another
/// node for its continuation recording: new recording, new holder, the
/// next epoch, what was lost in `previous`; the old holder can no longer renew
/// or release it.
pub async fn expired_meeting_claim_is_taken_over_with_a_new_epoch(s: &Store) {
    let t = tenant(s, "contoso").await;
    let at = now();
    let (r1, r2) = (RecordingId::new(), RecordingId::new());
    let lost_lease = at + Duration::seconds(2);
    must(
        s.claim_meeting(t, "chain", r1, "node-a", at, lost_lease)
            .await,
        "claim",
    );
    // Still live one second later: not taken over.
    let live = must(
        s.claim_meeting(
            t,
            "chain",
            r2,
            "node-b",
            at + Duration::seconds(1),
            at + Duration::seconds(4),
        )
        .await,
        "claim while live",
    );
    assert_eq!(
        (
            live.recording_id,
            live.holder.as_str(),
            live.epoch,
            live.previous
        ),
        (r1, "node-a", 1, None)
    );
    // Expired: taken over.
    let taken = must(
        s.claim_meeting(
            t,
            "chain",
            r2,
            "node-b",
            at + Duration::seconds(2),
            at + Duration::seconds(5),
        )
        .await,
        "takeover",
    );
    assert_eq!(
        (taken.recording_id, taken.holder.as_str(), taken.epoch),
        (r2, "node-b", 2),
        "the continuation, the new holder and epoch"
    );
    let previous = taken
        .previous
        .clone()
        .unwrap_or_else(|| panic!("the takeover is remembered"));
    assert_eq!(
        (previous.recording_id, previous.holder.as_str()),
        (r1, "node-a")
    );
    assert_eq!(
        previous.lease_until.timestamp_millis(),
        lost_lease.timestamp_millis()
    );
    assert!(!must(
        s.renew_meeting_claim(t, "chain", "node-a", 1, at + Duration::seconds(9))
            .await,
        "the old holder renews"
    ));
    assert!(!must(
        s.release_meeting_claim(t, "chain", "node-a").await,
        "the old holder releases"
    ));
    assert!(must(
        s.renew_meeting_claim(t, "chain", "node-b", 2, at + Duration::seconds(9))
            .await,
        "the new holder renews"
    ));
}

/// The continuation of a lost meeting recording is marked with the
/// interval and the reason, found from either recording, idempotently,
/// and only in its tenant.
pub async fn meeting_failover_marks_both_recordings(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let at = now();
    let lost = Recording::new(t, RecordingKind::Meeting, Direction::Unknown, at);
    let cont = Recording::new(t, RecordingKind::Meeting, Direction::Unknown, at);
    must(s.insert_recording(t, &lost).await, "insert lost");
    must(s.insert_recording(t, &cont).await, "insert continuation");
    let mark = MeetingFailover {
        tenant_id: t,
        recording_id: cont.id,
        continues: lost.id,
        gap_from: at + Duration::seconds(10),
        gap_to: at + Duration::milliseconds(13_500),
        reason: FAILOVER_PRIMARY_NODE_LOST.into(),
        node: "node-b".into(),
    };
    must(s.record_meeting_failover(t, &mark).await, "mark");
    let again = MeetingFailover {
        node: "node-c".into(),
        ..mark.clone()
    };
    must(s.record_meeting_failover(t, &again).await, "mark again");
    for id in [lost.id, cont.id] {
        let got = must(s.meeting_failovers(t, id).await, "marks");
        assert_eq!(got.len(), 1, "one mark, the first kept");
        let g = &got[0];
        assert_eq!(
            (
                g.recording_id,
                g.continues,
                g.reason.as_str(),
                g.node.as_str()
            ),
            (cont.id, lost.id, FAILOVER_PRIMARY_NODE_LOST, "node-b")
        );
        assert_eq!(
            (g.gap_to - g.gap_from).num_milliseconds(),
            3_500,
            "the interval is kept"
        );
    }
    assert!(must(s.meeting_failovers(other, lost.id).await, "other tenant").is_empty());
    // A continuation that is no recording of the tenant is refused.
    let foreign = MeetingFailover {
        tenant_id: other,
        ..mark.clone()
    };
    assert_not_found(
        s.record_meeting_failover(other, &foreign).await,
        "a recording of another tenant",
    );
}
