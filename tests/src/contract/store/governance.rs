//! Retention policies and legal holds ([`GovernanceStore`]).
//!
//! [`GovernanceStore`]: insights_core::store::GovernanceStore

use super::fixtures::*;

fn policy(t: TenantId, name: &str, days: i32) -> RetentionPolicy {
    RetentionPolicy {
        id: RetentionPolicyId::new(),
        tenant_id: t,
        name: name.to_owned(),
        scope: RetentionScope {
            kind: Some(RecordingKind::Call),
            direction: Some(Direction::Inbound),
            group: Some("sales".into()),
            retention_class: Some("finance".into()),
        },
        retain_days: days,
        action: RetentionAction::DeleteMedia,
        enabled: true,
        updated_at: now(),
    }
}

pub async fn retention_policies_crud(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let by_id = |mut v: Vec<RetentionPolicy>| {
        v.sort_by_key(|p| p.id);
        v
    };
    let a = policy(t, "calls 90 days", 90);
    let b = RetentionPolicy {
        scope: RetentionScope::default(),
        action: RetentionAction::DeleteRecording,
        enabled: false,
        ..policy(t, "everything 10 years", 3650)
    };
    must(s.upsert_retention_policy(t, &a).await, "a");
    must(s.upsert_retention_policy(t, &b).await, "b");
    assert_eq!(
        by_id(must(s.list_retention_policies(t).await, "list")),
        by_id(vec![a.clone(), b.clone()])
    );

    let a2 = RetentionPolicy {
        retain_days: 30,
        name: "calls 30 days".into(),
        updated_at: now(),
        ..a.clone()
    };
    must(s.upsert_retention_policy(t, &a2).await, "replace a");
    assert_eq!(
        by_id(must(s.list_retention_policies(t).await, "list")),
        by_id(vec![a2.clone(), b.clone()])
    );

    assert!(must(s.list_retention_policies(other).await, "other").is_empty());
    assert_not_found(s.delete_retention_policy(other, a.id).await, "other delete");
    must(s.delete_retention_policy(t, a.id).await, "delete");
    assert_eq!(must(s.list_retention_policies(t).await, "list"), vec![b]);
    assert_not_found(s.delete_retention_policy(t, a.id).await, "delete twice");
}

pub async fn legal_holds_create_list_lift(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let t0 = now() - Duration::days(3);
    let h1 = LegalHold {
        id: LegalHoldId::new(),
        tenant_id: t,
        case_name: "Case A v. B".into(),
        reason: Some("litigation".into()),
        scope: HoldScope {
            user_id: Some(UserId::new()),
            participant_identifier: Some("+14255550100".into()),
            from: Some(t0 - Duration::days(30)),
            to: Some(t0),
            recording_ids: vec![RecordingId::new(), RecordingId::new()],
        },
        placed_by: "acc-1".into(),
        placed_at: t0 + Duration::hours(2),
        lifted_by: None,
        lifted_at: None,
    };
    let h2 = LegalHold {
        id: LegalHoldId::new(),
        case_name: "Regulator inquiry".into(),
        reason: None,
        scope: HoldScope::default(),
        placed_at: t0,
        ..h1.clone()
    };
    must(s.create_legal_hold(t, &h1).await, "h1");
    must(s.create_legal_hold(t, &h2).await, "h2");
    assert_eq!(
        must(s.list_legal_holds(t, false).await, "all"),
        vec![h2.clone(), h1.clone()],
        "ordered by placed_at"
    );
    assert_eq!(
        must(s.list_legal_holds(t, true).await, "active"),
        vec![h2.clone(), h1.clone()]
    );

    let before = now();
    must(s.lift_legal_hold(t, h2.id, "acc-2").await, "lift");
    let all = must(s.list_legal_holds(t, false).await, "all");
    assert_eq!(all.len(), 2);
    let lifted = &all[0];
    assert_eq!(lifted.id, h2.id);
    assert_eq!(lifted.lifted_by.as_deref(), Some("acc-2"));
    let lifted_at = lifted
        .lifted_at
        .unwrap_or_else(|| panic!("lifted_at is set"));
    assert!(lifted_at >= before && lifted_at <= now());
    assert!(!lifted.is_active());
    assert_eq!(
        LegalHold {
            lifted_by: None,
            lifted_at: None,
            ..lifted.clone()
        },
        h2,
        "lifting changes nothing else"
    );
    assert_eq!(all[1], h1);
    assert_eq!(
        must(s.list_legal_holds(t, true).await, "active"),
        vec![h1.clone()]
    );

    assert_not_found(
        s.lift_legal_hold(t, LegalHoldId::new(), "acc-2").await,
        "missing",
    );
    assert_not_found(
        s.lift_legal_hold(other, h1.id, "acc-9").await,
        "other tenant",
    );
    assert!(must(s.list_legal_holds(other, false).await, "other").is_empty());
    assert_eq!(
        must(s.list_legal_holds(t, true).await, "still active"),
        vec![h1]
    );
}

pub async fn recording_policy_round_trips_per_tenant(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    assert_eq!(must(s.recording_policy(t).await, "none yet"), None);
    let rule = |list, kind, value: &str| {
        must(
            PolicyRule::new(list, kind, value, Some("works council".into())),
            "rule",
        )
    };
    let mut p = RecordingPolicy {
        mode: PolicyMode::IncludeOnly,
        failure_mode: FailureMode::BestEffort,
        rules: vec![
            rule(PolicyList::Include, RuleKind::Group, "Trading"),
            rule(PolicyList::NeverRecord, RuleKind::NumberPrefix, "+4930"),
            rule(PolicyList::NeverRecord, RuleKind::Domain, "doctor.example"),
        ],
        updated_at: now(),
        updated_by: "cli".into(),
        ..RecordingPolicy::default_for(t)
    };
    must(s.put_recording_policy(t, &p).await, "put");
    assert_eq!(must(s.recording_policy(t).await, "get"), Some(p.clone()));
    assert_eq!(
        must(s.recording_policy(other).await, "other tenant"),
        None,
        "another tenant sees nothing"
    );
    // Replaced as a whole.
    p.rules.remove(0);
    p.mode = PolicyMode::RecordAll;
    p.failure_mode = FailureMode::Required;
    p.updated_at = now();
    must(s.put_recording_policy(t, &p).await, "replace");
    assert_eq!(must(s.recording_policy(t).await, "get"), Some(p.clone()));
    // Another tenant's policy, or one that does not validate, is refused.
    assert!(matches!(
        s.put_recording_policy(other, &p).await,
        Err(StoreError::Invalid(_))
    ));
    let mut bad = p.clone();
    bad.rules[0].value = "+49 30".into();
    assert!(matches!(
        s.put_recording_policy(t, &bad).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(must(s.recording_policy(t).await, "unchanged"), Some(p));
}

fn completeness_call(
    id: &str,
    at: chrono::DateTime<chrono::Utc>,
    status: CompletenessStatus,
) -> CallCompleteness {
    CallCompleteness {
        call_id: id.to_owned(),
        call_type: "peerToPeer".into(),
        started_at: at,
        ended_at: at + chrono::Duration::minutes(8),
        status,
        coverage_permille: if status == CompletenessStatus::Recorded {
            1000
        } else {
            0
        },
        reason: (status == CompletenessStatus::NotRecorded).then_some(GapReason::NotInvited),
        result_code: None,
        rule: None,
        rule_id: None,
        gaps: vec![],
        recording_ids: vec![RecordingId::new()],
        user_ids: vec![],
        participants: 2,
    }
}

fn completeness_run(
    t: TenantId,
    at: chrono::DateTime<chrono::Utc>,
    calls: &[CallCompleteness],
) -> CompletenessRun {
    CompletenessRun {
        id: uuid::Uuid::new_v4(),
        tenant_id: t,
        from: at - chrono::Duration::days(1),
        to: at,
        trigger: CompletenessTrigger::OnDemand,
        actor: "cli".into(),
        started_at: at,
        finished_at: at,
        totals: CompletenessTotals::of(calls),
        call_records: u32::try_from(calls.len()).unwrap_or(0),
        pstn_rows: 0,
        throttled_retries: 0,
        threshold_permille: 990,
        below_threshold: false,
    }
}

pub async fn completeness_runs_calls_and_threshold_per_tenant(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let at = now();
    let early = at - chrono::Duration::hours(3);
    let calls = vec![
        completeness_call("b", early, CompletenessStatus::NotRecorded),
        completeness_call(
            "a",
            at - chrono::Duration::hours(1),
            CompletenessStatus::Recorded,
        ),
    ];
    let run = completeness_run(t, at, &calls);
    must(s.put_completeness(t, &run, &calls).await, "put");
    let got = must(
        s.list_completeness_calls(t, at - chrono::Duration::days(1), at)
            .await,
        "list",
    );
    assert_eq!(
        got.iter().map(|c| c.call_id.as_str()).collect::<Vec<_>>(),
        ["b", "a"],
        "oldest first"
    );
    assert_eq!(got[0], calls[0]);
    // A later run replaces a call's outcome, keeps the others.
    let mut again = calls[0].clone();
    again.status = CompletenessStatus::Recorded;
    again.coverage_permille = 1000;
    again.reason = None;
    let run2 = completeness_run(
        t,
        at + chrono::Duration::seconds(1),
        std::slice::from_ref(&again),
    );
    must(
        s.put_completeness(t, &run2, std::slice::from_ref(&again))
            .await,
        "again",
    );
    let got = must(s.list_completeness_calls(t, early, at).await, "list");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], again);
    // The window is [from, to).
    assert!(
        must(
            s.list_completeness_calls(t, early + chrono::Duration::seconds(1), at)
                .await,
            "list"
        )
        .len()
            == 1
    );
    let runs = must(s.list_completeness_runs(t, 10).await, "runs");
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        [run2.id, run.id],
        "newest first"
    );
    assert_eq!(runs[1], run);
    // Another tenant sees nothing and cannot write this tenant's run.
    assert!(must(s.list_completeness_calls(other, early, at).await, "other").is_empty());
    assert!(must(s.list_completeness_runs(other, 10).await, "other").is_empty());
    assert!(matches!(
        s.put_completeness(other, &run, &calls).await,
        Err(StoreError::Invalid(_))
    ));
    // The threshold.
    assert_eq!(must(s.completeness_threshold(t).await, "none yet"), None);
    let th = CompletenessThreshold {
        tenant_id: t,
        threshold_permille: 975,
        updated_at: at,
        updated_by: "cli".into(),
    };
    must(s.put_completeness_threshold(t, &th).await, "put");
    assert_eq!(
        must(s.completeness_threshold(t).await, "get"),
        Some(th.clone())
    );
    assert_eq!(must(s.completeness_threshold(other).await, "other"), None);
    assert!(matches!(
        s.put_completeness_threshold(
            t,
            &CompletenessThreshold {
                threshold_permille: 1001,
                ..th.clone()
            }
        )
        .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.put_completeness_threshold(other, &th).await,
        Err(StoreError::Invalid(_))
    ));
}
