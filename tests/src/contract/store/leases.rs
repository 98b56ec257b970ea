#![allow(clippy::expect_used, clippy::unwrap_used)] // contract cases: a failed expectation is the case failing
//! Scheduler leases and interval runs ([`LeaseStore`]): acquire, renew,
//! release, the fencing token, the fenced writes and the runs recorded
//! once per interval.
//!
//! [`LeaseStore`]: insights_core::store::LeaseStore

use std::time::Duration as Std;

use super::fixtures::*;

const TTL: Std = Std::from_secs(30);

async fn expire(s: &Store, lease: &Lease) {
    // A lease of 1 s, then past it: the store's own clock decides.
    let short = must(s.renew_lease(lease, Std::from_secs(1)).await, "shorten");
    assert!(short.is_some(), "the holder renews");
    tokio::time::sleep(Std::from_millis(1200)).await;
}

pub async fn a_lease_has_one_holder_and_a_growing_fencing_token(s: &Store) {
    assert_eq!(must(s.get_lease("retention").await, "none yet"), None);
    let a = must(
        s.acquire_lease("retention", "node-a#1", TTL).await,
        "a takes it",
    )
    .expect("free: granted");
    assert_eq!(
        (a.job.as_str(), a.holder.as_str()),
        ("retention", "node-a#1")
    );
    assert!(a.token >= 1);
    assert!(a.expires_at > now(), "expires in the future");
    // Held: another holder gets nothing; the holder itself extends it.
    assert_eq!(
        must(
            s.acquire_lease("retention", "node-b#1", TTL).await,
            "b tries"
        ),
        None
    );
    let again = must(
        s.acquire_lease("retention", "node-a#1", TTL).await,
        "a again",
    )
    .expect("the holder keeps it");
    assert_eq!(again.token, a.token, "same holder, same token");
    // Jobs are independent.
    let other = must(
        s.acquire_lease("directory-sync", "node-b#1", TTL).await,
        "b, other job",
    )
    .expect("another job's lease is free");
    assert_eq!(other.holder, "node-b#1");
    // Renewal extends and keeps the token.
    let renewed = must(s.renew_lease(&a, TTL).await, "renew").expect("still held");
    assert_eq!(renewed.token, a.token);
    assert!(renewed.expires_at >= a.expires_at);
    assert!(must(s.check_lease(&a, Std::from_secs(5)).await, "check"));
    assert!(
        !must(s.check_lease(&a, Std::from_secs(60)).await, "check"),
        "not valid for longer than it lasts"
    );

    // Expired: anyone takes it, with a greater token; the old holder can
    // neither renew nor pass the check.
    expire(s, &a).await;
    let b = must(
        s.acquire_lease("retention", "node-b#1", TTL).await,
        "b takes over",
    )
    .expect("expired: granted");
    assert!(
        b.token > a.token,
        "the token grows: {} > {}",
        b.token,
        a.token
    );
    assert_eq!(must(s.renew_lease(&a, TTL).await, "a renews"), None);
    assert!(!must(s.check_lease(&a, Std::ZERO).await, "a checks"));
    assert_eq!(must(s.get_lease("retention").await, "row"), Some(b.clone()));

    // Released: free at once for another holder, with a greater token;
    // releasing a lost lease changes nothing.
    must(s.release_lease(&a).await, "a releases what it lost");
    assert_eq!(
        must(s.get_lease("retention").await, "row").map(|l| l.token),
        Some(b.token)
    );
    must(s.release_lease(&b).await, "b releases");
    let c =
        must(s.acquire_lease("retention", "node-c#1", TTL).await, "c").expect("released: granted");
    assert!(c.token > b.token);
}

pub async fn only_one_of_many_racing_holders_gets_a_free_lease(s: &Store) {
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.acquire_lease("race", &format!("node-{i}#x"), TTL).await
        }));
    }
    let mut granted = Vec::new();
    for t in tasks {
        if let Some(l) = must(t.await.expect("task"), "acquire") {
            granted.push(l);
        }
    }
    assert_eq!(granted.len(), 1, "one winner: {granted:?}");
}

pub async fn a_leader_whose_lease_was_taken_over_cannot_write(s: &Store) {
    let t = tenant(s, "contoso").await;
    let old = must(s.acquire_lease("retention", "node-a#1", TTL).await, "a").expect("granted");
    let at = interval_start(now(), Std::from_secs(60));
    assert_eq!(
        must(s.claim_scheduled_run(&old, at).await, "claim"),
        RunClaim::Started
    );
    let ev = must(
        s.append_audit_fenced(
            t,
            &old,
            audit_event("scheduler", AuditAction::RetentionDelete, None),
        )
        .await,
        "fenced append while held",
    );
    assert_eq!(ev.seq, 1);

    expire(s, &old).await;
    // Expired, not yet taken: already refused.
    assert_refused(
        s.append_audit_fenced(
            t,
            &old,
            audit_event("scheduler", AuditAction::RetentionDelete, None),
        )
        .await,
        "an expired lease appends nothing",
    );
    let new = must(s.acquire_lease("retention", "node-b#1", TTL).await, "b").expect("granted");
    // Taken over: every fenced write of the old leader is refused.
    let refused = s
        .append_audit_fenced(
            t,
            &old,
            audit_event("scheduler", AuditAction::RetentionDelete, None),
        )
        .await;
    match refused {
        Err(StoreError::Refused(m)) => assert_eq!(m, LEASE_LOST),
        other => panic!("expected the lease-lost refusal, got {other:?}"),
    }
    assert_refused(s.claim_scheduled_run(&old, at).await, "old claims");
    assert_refused(s.finish_scheduled_run(&old, at).await, "old finishes");
    let events = must(s.list_audit(t, &AuditQuery::default()).await, "audit");
    assert_eq!(
        events.len(),
        1,
        "nothing written by the old leader: {events:?}"
    );

    // The new leader resumes the interval the old one left unfinished,
    // finishes it, and its audit event chains on.
    assert_eq!(
        must(s.claim_scheduled_run(&new, at).await, "claim"),
        RunClaim::Resumed
    );
    must(
        s.append_audit_fenced(
            t,
            &new,
            audit_event("scheduler", AuditAction::RetentionDelete, None),
        )
        .await,
        "new leader appends",
    );
    must(s.finish_scheduled_run(&new, at).await, "finish");
    let runs = must(s.list_scheduled_runs("retention").await, "runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].holder, "node-b#1");
    assert_eq!(runs[0].token, new.token);
    assert_eq!(runs[0].attempts, 2);
    assert!(runs[0].finished_at.is_some());
    let events = must(s.list_audit(t, &AuditQuery::default()).await, "audit");
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
}

pub async fn each_interval_is_recorded_once(s: &Store) {
    let a = must(
        s.acquire_lease("directory-sync", "node-a#1", TTL).await,
        "a",
    )
    .expect("granted");
    let every = Std::from_secs(60);
    let first = interval_start(now(), every);
    let second = first + Duration::seconds(60);
    assert_eq!(
        must(s.claim_scheduled_run(&a, first).await, "claim"),
        RunClaim::Started
    );
    // Claimed again by the same holder (a retry): still its run.
    assert_eq!(
        must(s.claim_scheduled_run(&a, first).await, "claim again"),
        RunClaim::Resumed
    );
    must(s.finish_scheduled_run(&a, first).await, "finish");
    assert_eq!(
        must(s.claim_scheduled_run(&a, first).await, "after finishing"),
        RunClaim::Done
    );
    assert_not_found(s.finish_scheduled_run(&a, first).await, "finishing twice");
    assert_eq!(
        must(s.claim_scheduled_run(&a, second).await, "next interval"),
        RunClaim::Started
    );
    let runs = must(s.list_scheduled_runs("directory-sync").await, "runs");
    assert_eq!(
        runs.iter().map(|r| r.interval_start).collect::<Vec<_>>(),
        vec![first, second]
    );
    assert_eq!(
        runs[0].attempts, 1,
        "a retry by the holder is no new attempt"
    );
    assert!(runs[0].finished_at.is_some() && runs[1].finished_at.is_none());
    assert!(must(s.list_scheduled_runs("retention").await, "other job").is_empty());
}
