//! Four-eyes access requests ([`ApprovalStore`]).
//!
//! [`ApprovalStore`]: insights_core::store::ApprovalStore

use super::fixtures::*;

pub async fn access_requests_four_eyes(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let rec = full_recording(t, now() - Duration::hours(1));
    must(s.insert_recording(t, &rec).await, "recording");

    let r1 = AccessRequest::new(
        t,
        rec.id,
        "account:sup".into(),
        "case 42".into(),
        now() - Duration::minutes(5),
    );
    let r2 = AccessRequest::new(t, rec.id, "account:sup2".into(), "QA sample".into(), now());
    must(s.create_access_request(t, &r1).await, "r1");
    must(s.create_access_request(t, &r2).await, "r2");
    assert_eq!(must(s.get_access_request(t, r1.id).await, "get"), r1);
    assert_eq!(
        must(s.list_access_requests(t, None, None).await, "all"),
        vec![r2.clone(), r1.clone()],
        "newest first"
    );
    assert_eq!(
        must(
            s.list_access_requests(t, None, Some("account:sup")).await,
            "mine"
        ),
        vec![r1.clone()]
    );

    // Another tenant sees nothing, cannot decide, cannot file against
    // this tenant's recording.
    assert_not_found(s.get_access_request(other, r1.id).await, "other tenant get");
    assert!(must(s.list_access_requests(other, None, None).await, "other").is_empty());
    let stray = AccessRequest::new(other, rec.id, "account:x".into(), "r".into(), now());
    assert_not_found(
        s.create_access_request(other, &stray).await,
        "other tenant's recording",
    );
    let missing = AccessRequest::new(t, RecordingId::new(), "account:x".into(), "r".into(), now());
    assert_not_found(
        s.create_access_request(t, &missing).await,
        "no such recording",
    );

    let at = now();
    let approve = AccessDecision {
        approve: true,
        by: "account:officer".into(),
        note: Some("ok".into()),
        at,
        expires_at: at + Duration::minutes(60),
    };
    assert_not_found(
        s.decide_access_request(other, r1.id, &approve).await,
        "other tenant decide",
    );
    // Nobody approves their own request.
    assert_invalid(
        s.decide_access_request(
            t,
            r1.id,
            &AccessDecision {
                by: "account:sup".into(),
                ..approve.clone()
            },
        )
        .await,
        "self-approval",
    );
    let decided = must(s.decide_access_request(t, r1.id, &approve).await, "approve");
    assert_eq!(decided.status, AccessRequestStatus::Approved);
    assert_eq!(decided.decided_by.as_deref(), Some("account:officer"));
    assert_eq!(decided.decided_at, Some(at));
    assert_eq!(decided.expires_at, Some(at + Duration::minutes(60)));
    assert_eq!(decided.decision_note.as_deref(), Some("ok"));
    assert!(decided.grants("account:sup", rec.id, at));
    assert_eq!(
        must(s.get_access_request(t, r1.id).await, "reread"),
        decided
    );
    // A decision is final.
    assert_conflict(
        s.decide_access_request(
            t,
            r1.id,
            &AccessDecision {
                approve: false,
                ..approve.clone()
            },
        )
        .await,
        "decided twice",
    );
    let denied = must(
        s.decide_access_request(
            t,
            r2.id,
            &AccessDecision {
                approve: false,
                ..approve.clone()
            },
        )
        .await,
        "deny",
    );
    assert_eq!(denied.status, AccessRequestStatus::Denied);
    assert_eq!(denied.expires_at, None, "a denial grants no window");
    assert_eq!(
        must(
            s.list_access_requests(t, Some(AccessRequestStatus::Approved), None)
                .await,
            "approved"
        ),
        vec![decided]
    );
    assert!(
        must(
            s.list_access_requests(t, Some(AccessRequestStatus::Pending), None)
                .await,
            "pending"
        )
        .is_empty()
    );

    // Requests go with their recording.
    must(s.delete_recording(t, rec.id).await, "delete recording");
    assert_not_found(
        s.get_access_request(t, r1.id).await,
        "gone with the recording",
    );
}

/// Two-person governance: a pending change is decided once, never by its
/// requester, and is invisible to other tenants.
pub async fn governance_changes_are_decided_once_by_someone_else(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let ch = GovernanceChange::new(
        t,
        ChangeKind::LegalHoldLift,
        LegalHoldId::new().to_string(),
        serde_json::json!({ "reason": "case closed" }),
        "account:a".into(),
        now(),
    );
    must(s.create_governance_change(t, &ch).await, "create");
    assert_eq!(must(s.get_governance_change(t, ch.id).await, "get"), ch);
    assert_not_found(s.get_governance_change(other, ch.id).await, "other tenant");
    assert!(must(s.list_governance_changes(other, None).await, "other list").is_empty());
    let pending = must(
        s.list_governance_changes(t, Some(ChangeStatus::Pending))
            .await,
        "list pending",
    );
    assert_eq!(pending, vec![ch.clone()]);

    assert_invalid(
        s.decide_governance_change(t, ch.id, true, "account:a", now())
            .await,
        "own change",
    );
    assert_not_found(
        s.decide_governance_change(other, ch.id, true, "account:b", now())
            .await,
        "other tenant decides",
    );
    let done = must(
        s.decide_governance_change(t, ch.id, true, "account:b", now())
            .await,
        "approve",
    );
    assert_eq!(done.status, ChangeStatus::Approved);
    assert_eq!(done.decided_by.as_deref(), Some("account:b"));
    assert_conflict(
        s.decide_governance_change(t, ch.id, false, "account:c", now())
            .await,
        "decided twice",
    );
    assert!(
        must(
            s.list_governance_changes(t, Some(ChangeStatus::Pending))
                .await,
            "none pending"
        )
        .is_empty()
    );
}
