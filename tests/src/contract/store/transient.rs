#![allow(clippy::expect_used, clippy::unwrap_used)] // contract cases: a failed expectation is the case failing
//! Short-lived state shared by API nodes ([`TransientStore`]): pending
//! sign-ins (single use under concurrency), address throttle windows
//! (atomic counts), export and access-bundle jobs (lease, end, tenant
//! isolation).
//!
//! [`TransientStore`]: insights_core::store::TransientStore

use super::fixtures::*;

fn sealed(byte: u8) -> insights_core::crypto::SealedSecret {
    insights_core::crypto::SealedSecret {
        key: WrappedDataKey {
            id: KeyId::new(),
            tenant_id: insights_core::crypto::PLATFORM_KEY_OWNER,
            kek_id: "local:kek".into(),
            wrapped: vec![byte; 60],
            created_at: now(),
        },
        sealed: vec![byte; 48],
    }
}

fn pending(hash: &str, client: Option<&str>, at: DateTime<Utc>) -> PendingSignIn {
    PendingSignIn {
        state_hash: hash.into(),
        sealed: sealed(hash.len() as u8),
        client_key: client.map(str::to_owned),
        created_at: at,
        expires_at: at + Duration::minutes(10),
    }
}

pub async fn pending_sign_ins_are_taken_once(s: &Store) {
    let at = now();
    let p = pending("a1", Some("client-1"), at);
    must(s.put_pending_sign_in(&p, 20, 100).await, "put");
    assert_conflict(s.put_pending_sign_in(&p, 20, 100).await, "same state twice");
    // Concurrent callbacks (as on several nodes): exactly one wins.
    let takes = (0..8).map(|_| {
        let s = s.clone();
        tokio::spawn(async move { s.take_pending_sign_in("a1", now()).await })
    });
    let mut won = Vec::new();
    for t in takes {
        if let Some(got) = must(must(t.await, "task"), "take") {
            won.push(got);
        }
    }
    assert_eq!(won, vec![p], "taken exactly once, as stored");
    assert!(must(s.take_pending_sign_in("a1", now()).await, "replay").is_none());
    assert!(must(s.take_pending_sign_in("nope", now()).await, "unknown").is_none());

    // Expired: never handed out.
    let old = pending("b2", None, at - Duration::minutes(11));
    must(s.put_pending_sign_in(&old, 20, 100).await, "old");
    assert!(must(s.take_pending_sign_in("b2", at).await, "expired").is_none());
}

pub async fn pending_sign_ins_are_bounded(s: &Store) {
    let at = now();
    // Per client: the oldest gives way.
    for i in 0..3 {
        let p = pending(
            &format!("c{i}"),
            Some("client-1"),
            at + Duration::seconds(i),
        );
        must(s.put_pending_sign_in(&p, 3, 100).await, "put");
    }
    let newest = pending("c3", Some("client-1"), at + Duration::seconds(3));
    must(s.put_pending_sign_in(&newest, 3, 100).await, "fourth");
    assert!(must(s.take_pending_sign_in("c0", now()).await, "oldest").is_none());
    for h in ["c1", "c2", "c3"] {
        assert!(
            must(s.take_pending_sign_in(h, now()).await, h).is_some(),
            "{h}"
        );
    }
    // In all: refused when full (other clients are not pushed out).
    for i in 0..3 {
        let p = pending(&format!("d{i}"), Some(&format!("client-{i}")), at);
        must(s.put_pending_sign_in(&p, 20, 3).await, "put");
    }
    assert_refused(
        s.put_pending_sign_in(&pending("d9", Some("client-9"), at), 20, 3)
            .await,
        "full",
    );
    assert!(must(s.take_pending_sign_in("d9", now()).await, "refused").is_none());
    assert!(must(s.take_pending_sign_in("d0", now()).await, "kept").is_some());
}

pub async fn address_windows_count_atomically(s: &Store) {
    let at = now();
    let window = Duration::seconds(60);
    assert!(must(s.address_window("k", at - window).await, "none").is_none());
    // Concurrent failures (as on several nodes) are all counted.
    let counts = (0..10).map(|_| {
        let s = s.clone();
        tokio::spawn(async move { s.count_address_failure("k", at, window).await })
    });
    for c in counts {
        must(must(c.await, "task"), "count");
    }
    let w = must(s.address_window("k", at - window).await, "window").unwrap();
    assert_eq!(w.failures, 10);
    assert_eq!(w.started_at, at);
    // Another key is another window.
    must(s.count_address_failure("other", at, window).await, "other");
    let later = at + Duration::seconds(30);
    let w = must(s.count_address_failure("k", later, window).await, "11th");
    assert_eq!((w.failures, w.started_at), (11, at));
    // Once the window is over it is gone, and the next failure starts anew.
    let over = at + Duration::seconds(61);
    assert!(must(s.address_window("k", over - window).await, "over").is_none());
    let w = must(
        s.count_address_failure("k", over, window).await,
        "new window",
    );
    assert_eq!((w.failures, w.started_at), (1, over));
}

fn job(t: TenantId, kind: FileJobKind, at: DateTime<Utc>) -> FileJob {
    FileJob {
        id: FileJobId::new(),
        tenant_id: t,
        kind,
        owner: "account:dpo".into(),
        state: FileJobState::Running,
        error: None,
        done: 0,
        total: 0,
        details: serde_json::json!({"include_media": true}),
        recordings: Vec::new(),
        output: None,
        lease_until: at + Duration::seconds(60),
        created_at: at,
        expires_at: at + Duration::days(7),
        attempt: 1,
        request: None,
    }
}

pub async fn file_jobs_run_end_and_stay_in_their_tenant(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let at = now();
    let a = job(t, FileJobKind::AccessBundle, at);
    let b = job(t, FileJobKind::Export, at + Duration::seconds(1));
    must(s.create_file_job(t, &a).await, "a");
    must(s.create_file_job(t, &b).await, "b");
    assert_conflict(s.create_file_job(t, &a).await, "same id");
    assert_invalid(
        s.create_file_job(other, &job(t, FileJobKind::Export, at))
            .await,
        "a job of another tenant",
    );
    assert_eq!(must(s.get_file_job(t, a.id).await, "get"), a);
    assert_eq!(
        must(s.list_file_jobs(t).await, "list"),
        vec![a.clone(), b.clone()]
    );
    // Another tenant sees nothing and changes nothing.
    assert_not_found(s.get_file_job(other, a.id).await, "other tenant");
    assert!(must(s.list_file_jobs(other).await, "other list").is_empty());
    assert!(!must(
        s.renew_file_job(other, a.id, 1, 1, 2, at).await,
        "other renew"
    ));
    assert!(!must(s.delete_file_job(other, a.id).await, "other delete"));

    // Renewed while running: progress and lease move.
    let lease = at + Duration::seconds(120);
    assert!(must(
        s.renew_file_job(t, a.id, 1, 3, 7, lease).await,
        "renew"
    ));
    let got = must(s.get_file_job(t, a.id).await, "renewed");
    assert_eq!((got.done, got.total, got.lease_until), (3, 7, lease));
    assert!(!got.lost(at + Duration::seconds(119)));
    assert!(got.lost(at + Duration::seconds(121)), "past its lease");

    // Done: the file's key and the recordings it holds.
    let rec = RecordingId::new();
    let output = FileJobOutput {
        blob_key: format!("bundles/{}.zip.env", a.id),
        data_key: WrappedDataKey {
            id: KeyId::new(),
            tenant_id: t,
            kek_id: "local:kek".into(),
            wrapped: vec![5; 60],
            created_at: at,
        },
        byte_size: 4096,
    };
    let done = FileJobEnd::Done {
        output: output.clone(),
        recordings: vec![rec],
        details: serde_json::json!({"include_media": false}),
        done: 7,
        total: 7,
    };
    assert!(must(s.finish_file_job(t, a.id, 1, &done).await, "finish"));
    let got = must(s.get_file_job(t, a.id).await, "done");
    assert_eq!(got.state, FileJobState::Done);
    assert_eq!(got.output, Some(output));
    assert_eq!(got.recordings, vec![rec]);
    assert_eq!(got.details, serde_json::json!({"include_media": false}));
    assert_eq!((got.done, got.total), (7, 7));
    assert!(
        !got.lost(at + Duration::days(1)),
        "a done job is never lost"
    );
    // Ended once: neither renewed nor ended again.
    assert!(!must(
        s.renew_file_job(t, a.id, 1, 1, 1, lease).await,
        "renew done"
    ));
    let fail = FileJobEnd::Failed {
        error: "node-lost".into(),
    };
    assert!(!must(
        s.finish_file_job(t, a.id, 1, &fail).await,
        "fail done"
    ));
    assert_eq!(
        must(s.get_file_job(t, a.id).await, "still done").state,
        FileJobState::Done
    );

    // Failed: with its code; a late success changes nothing.
    assert!(must(s.finish_file_job(t, b.id, 1, &fail).await, "fail b"));
    let got = must(s.get_file_job(t, b.id).await, "failed");
    assert_eq!(
        (got.state, got.error.as_deref(), got.output),
        (FileJobState::Failed, Some("node-lost"), None)
    );
    assert!(!must(
        s.finish_file_job(t, b.id, 1, &done).await,
        "late done"
    ));

    // Deleted (expiry, erasure): gone with the wrapped key.
    assert!(must(s.delete_file_job(t, a.id).await, "delete"));
    assert!(!must(s.delete_file_job(t, a.id).await, "twice"));
    assert_not_found(s.get_file_job(t, a.id).await, "deleted");
    assert_eq!(must(s.list_file_jobs(t).await, "left").len(), 1);
}

pub async fn file_job_keys_are_rewrapped_once_and_only_when_done(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let at = now();
    let key = |kek: &str, byte: u8| WrappedDataKey {
        id: KeyId::new(),
        tenant_id: t,
        kek_id: kek.into(),
        wrapped: vec![byte; 60],
        created_at: at,
    };
    let running = job(t, FileJobKind::Export, at);
    must(s.create_file_job(t, &running).await, "running");
    let new = key("local:kek#2", 9);
    assert!(
        !must(
            s.rewrap_file_job_key(t, running.id, "local:kek", &new)
                .await,
            "running"
        ),
        "a running job has no stored key to rewrap"
    );
    let output = FileJobOutput {
        blob_key: format!("exports/{}.xlsx.env", running.id),
        data_key: key("local:kek", 5),
        byte_size: 10,
    };
    let done = FileJobEnd::Done {
        output: output.clone(),
        recordings: vec![],
        details: serde_json::json!({}),
        done: 1,
        total: 1,
    };
    assert!(must(
        s.finish_file_job(t, running.id, 1, &done).await,
        "finish"
    ));
    assert!(!must(
        s.rewrap_file_job_key(other, running.id, "local:kek", &new)
            .await,
        "other tenant"
    ));
    assert!(!must(
        s.rewrap_file_job_key(t, running.id, "local:kek#7", &new)
            .await,
        "not under that version"
    ));
    assert!(must(
        s.rewrap_file_job_key(t, running.id, "local:kek", &new)
            .await,
        "rewrap"
    ));
    assert!(
        !must(
            s.rewrap_file_job_key(t, running.id, "local:kek", &new)
                .await,
            "again"
        ),
        "compare-and-swap: done once"
    );
    let got = must(s.get_file_job(t, running.id).await, "get");
    let want = FileJobOutput {
        data_key: new,
        ..output
    };
    assert_eq!(got.output, Some(want), "only the key changed");
    assert_eq!(got.state, FileJobState::Done);
}

/// A job whose node died is taken over by exactly one node, at the next
/// attempt, which fences the old run out; its stored request is kept
/// while it runs and cleared when it ends.
pub async fn lost_file_jobs_are_taken_over_once(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let at = now();
    let mut j = job(t, FileJobKind::Export, at - Duration::minutes(2));
    j.lease_until = at - Duration::seconds(1);
    j.request = Some(serde_json::json!({"columns": ["started_at"]}));
    must(s.create_file_job(t, &j).await, "create");
    assert_eq!(must(s.get_file_job(t, j.id).await, "get"), j);

    // Not before its lease ran out, not in another tenant, not from
    // another attempt.
    let lease = at + Duration::seconds(60);
    let early = at - Duration::seconds(2);
    assert_eq!(
        must(
            s.take_over_file_job(t, j.id, 1, early, lease).await,
            "early"
        ),
        None
    );
    assert_eq!(
        must(
            s.take_over_file_job(other, j.id, 1, at, lease).await,
            "other"
        ),
        None
    );
    assert_eq!(
        must(s.take_over_file_job(t, j.id, 2, at, lease).await, "attempt"),
        None
    );

    // Concurrent takers: one wins.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let s = s.clone();
        let id = j.id;
        tasks.spawn(async move { s.take_over_file_job(t, id, 1, at, lease).await });
    }
    let mut won = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Some(got) = must(must(r, "task"), "take over") {
            won.push(got);
        }
    }
    assert_eq!(won.len(), 1, "exactly one taker");
    let taken = &won[0];
    assert_eq!((taken.attempt, taken.lease_until), (2, lease));
    assert_eq!(taken.state, FileJobState::Running);
    assert_eq!(taken.request, j.request, "the request goes with it");
    assert!(!taken.lost(at));

    // The old run is fenced out: its renewal and its end change nothing.
    assert!(!must(
        s.renew_file_job(t, j.id, 1, 5, 9, lease).await,
        "old renew"
    ));
    let fail = FileJobEnd::Failed {
        error: "export-failed".into(),
    };
    assert!(!must(s.finish_file_job(t, j.id, 1, &fail).await, "old end"));
    assert_eq!(
        must(s.get_file_job(t, j.id).await, "still").state,
        FileJobState::Running
    );
    // The new one runs and ends; the request goes with the end.
    assert!(must(
        s.renew_file_job(t, j.id, 2, 5, 9, lease).await,
        "renew"
    ));
    let output = FileJobOutput {
        blob_key: format!("exports/{}.2.xlsx.env", j.id),
        data_key: WrappedDataKey {
            id: KeyId::new(),
            tenant_id: t,
            kek_id: "local:kek".into(),
            wrapped: vec![5; 60],
            created_at: at,
        },
        byte_size: 10,
    };
    let done = FileJobEnd::Done {
        output: output.clone(),
        recordings: vec![],
        details: serde_json::json!({}),
        done: 9,
        total: 9,
    };
    assert!(must(s.finish_file_job(t, j.id, 2, &done).await, "end"));
    let got = must(s.get_file_job(t, j.id).await, "done");
    assert_eq!((got.state, got.attempt), (FileJobState::Done, 2));
    assert_eq!(got.output, Some(output));
    assert_eq!(got.request, None, "cleared when it ended");
    assert_eq!(
        must(
            s.take_over_file_job(t, j.id, 2, at + Duration::days(1), lease)
                .await,
            "done"
        ),
        None,
        "a finished job is never taken over"
    );
}
