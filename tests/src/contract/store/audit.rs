//! The audit chain ([`AuditStore`]).
//!
//! [`AuditStore`]: insights_core::store::AuditStore

use super::fixtures::*;

pub async fn audit_chain_appends_and_verifies(s: &Store) {
    let t = tenant(s, "contoso").await;
    assert_eq!(must(s.audit_head(t).await, "empty head"), None);
    assert!(must(s.list_audit(t, &AuditQuery::default()).await, "empty").is_empty());
    assert_eq!(verify_chain(&[], None), ChainVerdict::Intact { events: 0 });

    let rec = RecordingId::new();
    let news = [
        audit_event("cli", AuditAction::TenantCreate, None),
        audit_event("acc-1", AuditAction::Login, None),
        audit_event("acc-1", AuditAction::Search, None),
        audit_event("acc-1", AuditAction::Play, Some(rec)),
        NewAuditEvent {
            target: None,
            reason: None,
            source: None,
            details: serde_json::Value::Null,
            ..audit_event("oidc:sub-9", AuditAction::Download, Some(rec))
        },
    ];
    let mut stored: Vec<AuditEvent> = Vec::new();
    for (i, n) in news.iter().enumerate() {
        let before = now();
        let ev = must(s.append_audit(t, n.clone()).await, "append");
        assert_eq!(ev.seq, i as i64 + 1, "seq");
        assert_eq!(ev.tenant_id, t);
        assert_eq!(ev.actor, n.actor);
        assert_eq!(ev.action, n.action);
        assert_eq!(ev.recording_id, n.recording_id);
        assert_eq!(ev.target, n.target);
        assert_eq!(ev.reason, n.reason);
        assert_eq!(ev.source, n.source);
        assert_eq!(ev.details, n.details);
        assert!(ev.at >= before && ev.at <= now(), "time of the append");
        let want_prev = stored
            .last()
            .map(|e| e.hash.clone())
            .unwrap_or_else(|| "0".repeat(64));
        assert_eq!(ev.prev_hash, want_prev, "linked to the previous event");
        assert_eq!(ev.hash, ev.compute_hash(), "hash over the stored fields");
        assert_eq!(
            must(s.audit_head(t).await, "head"),
            Some((ev.seq, ev.hash.clone()))
        );
        stored.push(ev);
    }
    let listed = must(s.list_audit(t, &AuditQuery::default()).await, "list");
    assert_eq!(listed, stored, "events read back exactly as appended");
    let head = must(s.audit_head(t).await, "head");
    assert_eq!(
        verify_chain(&listed, head.as_ref().map(|(q, h)| (*q, h.as_str()))),
        ChainVerdict::Intact { events: 5 }
    );
}

pub async fn audit_concurrent_appends_are_gap_free(s: &Store) {
    let t = tenant(s, "contoso").await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = Arc::clone(s);
            tokio::spawn(async move {
                s.append_audit(t, audit_event(&format!("acc-{i}"), AuditAction::Play, None))
                    .await
            })
        })
        .collect();
    let mut seqs = BTreeSet::new();
    for r in futures::future::join_all(tasks).await {
        let ev = must(must(r, "task"), "append");
        assert!(seqs.insert(ev.seq), "seq {} handed out twice", ev.seq);
    }
    assert_eq!(seqs, (1..=20).collect::<BTreeSet<i64>>(), "no gaps");
    let listed = must(s.list_audit(t, &AuditQuery::default()).await, "list");
    assert_eq!(listed.len(), 20);
    let actors: BTreeSet<_> = listed.iter().map(|e| e.actor.clone()).collect();
    assert_eq!(actors.len(), 20, "every append stored once");
    let head = must(s.audit_head(t).await, "head");
    assert_eq!(
        verify_chain(&listed, head.as_ref().map(|(q, h)| (*q, h.as_str()))),
        ChainVerdict::Intact { events: 20 }
    );
}

pub async fn audit_filters(s: &Store) {
    let t = tenant(s, "contoso").await;
    let r1 = RecordingId::new();
    let r2 = RecordingId::new();
    let plan = [
        ("acc-1", AuditAction::Login, None),
        ("acc-1", AuditAction::Play, Some(r1)),
        ("acc-2", AuditAction::Play, Some(r2)),
        ("acc-2", AuditAction::Download, Some(r1)),
        ("acc-1", AuditAction::Search, None),
        ("acc-3", AuditAction::Play, Some(r1)),
        ("acc-1", AuditAction::Logout, None),
    ];
    let mut all = Vec::new();
    for (actor, action, rec) in plan {
        all.push(must(
            s.append_audit(t, audit_event(actor, action, rec)).await,
            "append",
        ));
        // Spread the events in time so `from`/`to` can split them.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let seqs = |v: Vec<AuditEvent>| v.into_iter().map(|e| e.seq).collect::<Vec<_>>();
    let list = |q: AuditQuery| {
        let s = Arc::clone(s);
        async move { seqs(must(s.list_audit(t, &q).await, "list")) }
    };
    assert_eq!(
        list(AuditQuery {
            action: Some(AuditAction::Play),
            ..Default::default()
        })
        .await,
        [2, 3, 6]
    );
    assert_eq!(
        list(AuditQuery {
            recording_id: Some(r1),
            ..Default::default()
        })
        .await,
        [2, 4, 6]
    );
    assert_eq!(
        list(AuditQuery {
            actor: Some("acc-1".into()),
            ..Default::default()
        })
        .await,
        [1, 2, 5, 7]
    );
    assert_eq!(
        list(AuditQuery {
            action: Some(AuditAction::Play),
            recording_id: Some(r1),
            actor: Some("acc-3".into()),
            ..Default::default()
        })
        .await,
        [6]
    );
    assert_eq!(
        list(AuditQuery {
            after_seq: Some(2),
            limit: 2,
            ..Default::default()
        })
        .await,
        [3, 4]
    );
    assert_eq!(
        list(AuditQuery {
            after_seq: Some(5),
            ..Default::default()
        })
        .await,
        [6, 7]
    );
    assert_eq!(
        list(AuditQuery {
            limit: 3,
            ..Default::default()
        })
        .await,
        [1, 2, 3]
    );
    assert_eq!(
        list(AuditQuery {
            after_seq: Some(7),
            ..Default::default()
        })
        .await,
        Vec::<i64>::new()
    );
    // Paging with after_seq + limit walks the whole chain once.
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let page = list(AuditQuery {
            after_seq: after,
            limit: 3,
            ..Default::default()
        })
        .await;
        let Some(last) = page.last().copied() else {
            break;
        };
        walked.extend(page);
        after = Some(last);
    }
    assert_eq!(walked, (1..=7).collect::<Vec<i64>>());

    // Newest first: filtered, paged backwards with before_seq.
    let newest = |q: AuditQuery, before: Option<i64>| {
        let s = Arc::clone(s);
        async move {
            seqs(must(
                s.list_audit_newest_first(t, &q, before).await,
                "newest first",
            ))
        }
    };
    assert_eq!(
        newest(AuditQuery::default(), None).await,
        [7, 6, 5, 4, 3, 2, 1]
    );
    let acc1 = AuditQuery {
        actor: Some("acc-1".into()),
        limit: 2,
        ..Default::default()
    };
    assert_eq!(newest(acc1.clone(), None).await, [7, 5]);
    assert_eq!(newest(acc1.clone(), Some(5)).await, [2, 1]);
    assert_eq!(newest(acc1, Some(1)).await, Vec::<i64>::new());

    // Time window: from inclusive, to exclusive.
    let from = all[2].at;
    let to = all[5].at;
    let want: Vec<i64> = all
        .iter()
        .filter(|e| e.at >= from && e.at < to)
        .map(|e| e.seq)
        .collect();
    assert!(want.contains(&3) && !want.contains(&6));
    assert_eq!(
        list(AuditQuery {
            from: Some(from),
            to: Some(to),
            ..Default::default()
        })
        .await,
        want
    );
}

pub async fn audit_chains_are_per_tenant(s: &Store) {
    let a = tenant(s, "contoso").await;
    let b = tenant(s, "fabrikam").await;
    for i in 0..3 {
        must(
            s.append_audit(a, audit_event(&format!("a-{i}"), AuditAction::Login, None))
                .await,
            "append a",
        );
    }
    let first_b = must(
        s.append_audit(b, audit_event("b-0", AuditAction::Login, None))
            .await,
        "append b",
    );
    assert_eq!(first_b.seq, 1, "every tenant's chain starts at 1");
    assert_eq!(first_b.prev_hash, "0".repeat(64));
    assert_eq!(first_b.tenant_id, b);
    let c = tenant(s, "northwind").await;
    assert_eq!(must(s.audit_head(c).await, "no head"), None);
    assert!(must(s.list_audit(c, &AuditQuery::default()).await, "none").is_empty());

    for (t, n) in [(a, 3), (b, 1)] {
        let listed = must(s.list_audit(t, &AuditQuery::default()).await, "list");
        assert_eq!(listed.len(), n);
        assert!(listed.iter().all(|e| e.tenant_id == t), "only own events");
        let head = must(s.audit_head(t).await, "head");
        assert_eq!(
            verify_chain(&listed, head.as_ref().map(|(q, h)| (*q, h.as_str()))),
            ChainVerdict::Intact { events: n as u64 }
        );
    }
}
