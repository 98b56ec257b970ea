//! The job queue contract on PostgreSQL (one fresh database per test), and
//! claims from several independent pools at once, as several `insights
//! worker` processes sharing one database make them.

use std::collections::HashSet;
use std::sync::Arc;

use insights_core::domain::*;
use insights_core::store::prelude::*;
use insights_stores::metadata::postgres::PgStore;
use insights_tests::contract::store::StoreUnderTest;

async fn make() -> StoreUnderTest {
    let url = insights_tests::fresh_pg_database().await;
    // Enough connections for the concurrent claimers to really overlap.
    let store = PgStore::connect(&url, 12)
        .await
        .unwrap_or_else(|e| panic!("cannot open the PostgreSQL store: {e:?}"));
    StoreUnderTest::new(store)
}

insights_tests::jobs_contract_tests!(make);

#[track_caller]
fn ok<T, E: std::fmt::Debug>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

/// Four pools ("processes"), eight claimers each, 200 jobs: every job is
/// claimed exactly once and the claims really ran side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_pools_claim_concurrently_without_sharing() {
    let url = insights_tests::fresh_pg_database().await;
    let first = ok(PgStore::connect(&url, 4).await, "connect");
    let t = ok(
        first
            .create_tenant(NewTenant {
                name: "contoso".into(),
                directory_tenant_id: None,
            })
            .await,
        "tenant",
    )
    .id;
    let mut want = HashSet::new();
    for _ in 0..200 {
        let r = Recording::new(t, RecordingKind::Call, Direction::Inbound, now());
        ok(first.insert_recording(t, &r).await, "recording");
        let e = ok(
            first
                .enqueue_job(t, &NewJob::now(r.id, JobKind::Transcribe))
                .await,
            "enqueue",
        );
        want.insert(e.job.id);
    }
    let at = now() + chrono::Duration::seconds(1);
    let mut tasks = Vec::new();
    for p in 0..4 {
        let store: Arc<dyn MetadataStore> = Arc::new(ok(PgStore::connect(&url, 8).await, "pool"));
        for w in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let req = ClaimRequest {
                        worker_id: format!("p{p}w{w}"),
                        kinds: vec![JobKind::Transcribe],
                        now: at,
                        lease_until: at + chrono::Duration::seconds(60),
                    };
                    match store.claim_job(&req).await {
                        Ok(Some(c)) => mine.push(c.job.id),
                        Ok(None) => break,
                        Err(e) => panic!("claim: {e:?}"),
                    }
                }
                mine
            }));
        }
    }
    let mut seen = HashSet::new();
    let mut busy = 0;
    for task in tasks {
        let mine = ok(task.await, "task");
        if !mine.is_empty() {
            busy += 1;
        }
        for id in mine {
            assert!(seen.insert(id), "job {id} claimed twice");
        }
    }
    assert_eq!(seen, want);
    assert!(busy > 1, "more than one claimer got work ({busy})");
}
