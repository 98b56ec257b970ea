#![allow(clippy::expect_used, clippy::unwrap_used)] // contract cases: a failed expectation is the case failing
//! Segment uploads of live calls ([`SegmentUploadStore`]): one row per
//! recording, written only by its node at its epoch, leases renewed per
//! node, taken over once (and only once) they ran out.
//!
//! [`SegmentUploadStore`]: insights_core::store::SegmentUploadStore

use super::fixtures::*;

fn row(tenant: TenantId, node: &str, lease_until: DateTime<Utc>) -> SegmentUpload {
    let id = RecordingId::new();
    let at = now();
    SegmentUpload {
        tenant_id: tenant,
        recording_id: id,
        node: node.to_owned(),
        epoch: 1,
        lease_until,
        object_key: format!("recordings/{id}/spool.log"),
        blocks: 0,
        staged_len: 0,
        journal: "{\"recording_id\":\"…\"}".into(),
        created_at: at,
        updated_at: at,
    }
}

pub async fn segment_upload_rows_are_fenced_by_node_and_epoch(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let node_a = format!("a-{}", Uuid::new_v4().simple());
    let node_b = format!("b-{}", Uuid::new_v4().simple());
    let lease = now() + Duration::seconds(30);
    let r = row(t, &node_a, lease);
    let id = r.recording_id;
    assert_eq!(must(s.segment_upload(t, id).await, "none yet"), None);

    let begun = must(s.begin_segment_upload(t, &r).await, "begin");
    assert_eq!(
        (
            begun.node.as_str(),
            begun.epoch,
            begun.blocks,
            begun.staged_len
        ),
        (node_a.as_str(), 1, 0, 0)
    );
    assert_eq!(
        (&begun.object_key, &begun.journal),
        (&r.object_key, &r.journal)
    );
    // Beginning again (another node, or a restart) returns the row as is.
    let again = must(
        s.begin_segment_upload(
            t,
            &SegmentUpload {
                node: node_b.clone(),
                ..r.clone()
            },
        )
        .await,
        "begin again",
    );
    assert_eq!(again, begun);
    // Another tenant neither sees nor writes it; a row for the wrong tenant is refused.
    assert_eq!(
        must(s.segment_upload(other, id).await, "other tenant"),
        None
    );
    assert_invalid(s.begin_segment_upload(other, &r).await, "wrong tenant");
    assert!(!must(
        s.record_segments(other, id, &node_a, 1, 1, 10, lease).await,
        "record in another tenant"
    ));

    // Only the holder at its epoch records progress.
    assert!(!must(
        s.record_segments(t, id, &node_b, 1, 1, 10, lease).await,
        "another node"
    ));
    assert!(!must(
        s.record_segments(t, id, &node_a, 2, 1, 10, lease).await,
        "another epoch"
    ));
    assert!(must(
        s.record_segments(t, id, &node_a, 1, 3, 4242, lease).await,
        "record"
    ));
    let got = must(s.segment_upload(t, id).await, "get").unwrap();
    assert_eq!((got.blocks, got.staged_len), (3, 4242));

    // Deleting: only the holder, or anyone when no node is named.
    assert!(!must(
        s.delete_segment_upload(t, id, Some(&node_b)).await,
        "delete by another node"
    ));
    assert!(!must(
        s.delete_segment_upload(other, id, None).await,
        "delete in another tenant"
    ));
    assert!(must(
        s.delete_segment_upload(t, id, Some(&node_a)).await,
        "delete"
    ));
    assert_eq!(must(s.segment_upload(t, id).await, "gone"), None);
    let r2 = row(t, &node_a, lease);
    must(s.begin_segment_upload(t, &r2).await, "begin 2");
    assert!(must(
        s.delete_segment_upload(t, r2.recording_id, None).await,
        "delete (erasure)"
    ));
}

pub async fn lapsed_segment_uploads_are_taken_over_once(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let node_a = format!("a-{}", Uuid::new_v4().simple());
    let node_b = format!("b-{}", Uuid::new_v4().simple());
    let node_c = format!("c-{}", Uuid::new_v4().simple());
    let at = now();
    let r1 = row(t, &node_a, at + Duration::seconds(5));
    let r2 = row(other, &node_a, at + Duration::seconds(5));
    let r3 = row(t, &node_c, at + Duration::seconds(60));
    for r in [&r1, &r2, &r3] {
        must(s.begin_segment_upload(r.tenant_id, r).await, "begin");
    }
    let mine = |v: Vec<SegmentUpload>| -> BTreeSet<RecordingId> {
        v.into_iter()
            .filter(|r| [&node_a, &node_b, &node_c].contains(&&r.node))
            .map(|r| r.recording_id)
            .collect()
    };
    // Nothing lapsed yet; a node's rows are found across tenants.
    assert!(mine(must(s.lapsed_segment_uploads(at, 100).await, "lapsed")).is_empty());
    assert_eq!(
        mine(must(s.node_segment_uploads(&node_a).await, "node rows")),
        BTreeSet::from([r1.recording_id, r2.recording_id])
    );
    // Not lapsed: no takeover.
    assert_eq!(
        must(
            s.take_over_segment_upload(
                t,
                r1.recording_id,
                1,
                &node_b,
                at,
                at + Duration::seconds(30)
            )
            .await,
            "early takeover"
        ),
        None
    );
    // The heartbeat extends every row of the node, in every tenant.
    let renewed = must(
        s.renew_segment_leases(&node_a, at + Duration::seconds(20))
            .await,
        "renew",
    );
    assert_eq!(renewed, 2);
    let later = at + Duration::seconds(10);
    assert!(mine(must(s.lapsed_segment_uploads(later, 100).await, "lapsed")).is_empty());

    // Node a goes silent: after its lease, its rows lapse (oldest first).
    let dead = at + Duration::seconds(21);
    let lapsed = must(s.lapsed_segment_uploads(dead, 100).await, "lapsed");
    assert_eq!(
        mine(lapsed.clone()),
        BTreeSet::from([r1.recording_id, r2.recording_id])
    );
    assert_eq!(
        mine(must(s.lapsed_segment_uploads(dead, 1).await, "limit")).len(),
        1
    );
    // One taker wins: the second (same epoch seen) gets nothing.
    let won = must(
        s.take_over_segment_upload(
            t,
            r1.recording_id,
            1,
            &node_b,
            dead,
            dead + Duration::seconds(30),
        )
        .await,
        "takeover",
    )
    .expect("the lapsed row is taken over");
    assert_eq!((won.node.as_str(), won.epoch), (node_b.as_str(), 2));
    assert_eq!(won.journal, r1.journal);
    assert_eq!(
        must(
            s.take_over_segment_upload(
                t,
                r1.recording_id,
                1,
                &node_c,
                dead,
                dead + Duration::seconds(30)
            )
            .await,
            "second takeover"
        ),
        None
    );
    // The old holder is fenced out.
    assert!(!must(
        s.record_segments(t, r1.recording_id, &node_a, 1, 9, 9, dead)
            .await,
        "old holder"
    ));
    assert!(must(
        s.record_segments(
            t,
            r1.recording_id,
            &node_b,
            2,
            9,
            9,
            dead + Duration::seconds(30)
        )
        .await,
        "new holder"
    ));
    // Its heartbeat no longer covers the row taken over.
    assert_eq!(
        must(
            s.renew_segment_leases(&node_a, dead + Duration::seconds(60))
                .await,
            "renew a"
        ),
        1
    );
    assert_eq!(
        mine(must(s.node_segment_uploads(&node_b).await, "b rows")),
        BTreeSet::from([r1.recording_id])
    );

    // Stored by b: the row is retired, not deleted (the mark for a).
    assert!(!must(
        s.retire_segment_upload(t, r1.recording_id, &node_a, 1)
            .await,
        "retire by the old holder"
    ));
    assert!(must(
        s.retire_segment_upload(t, r1.recording_id, &node_b, 2)
            .await,
        "retire"
    ));
    let retired =
        must(s.segment_upload(t, r1.recording_id).await, "get").expect("a retired row stays");
    assert!(retired.is_retired());
    assert_eq!(
        (
            retired.node.as_str(),
            retired.epoch,
            retired.blocks,
            retired.staged_len
        ),
        (node_b.as_str(), 2, 0, 0)
    );
    assert_eq!(retired.lease_until, retired_lease_until());
    // Never renewed, never listed as the node's, never lapsing.
    assert_eq!(
        must(
            s.renew_segment_leases(&node_b, dead + Duration::seconds(60))
                .await,
            "renew b"
        ),
        0
    );
    assert!(mine(must(s.node_segment_uploads(&node_b).await, "b rows")).is_empty());
    let far = dead + Duration::days(3650);
    assert!(
        !mine(must(s.lapsed_segment_uploads(far, 100).await, "lapsed")).contains(&r1.recording_id)
    );
    // An erasure deletes it.
    assert!(must(
        s.delete_segment_upload(t, r1.recording_id, None).await,
        "delete retired"
    ));
}
