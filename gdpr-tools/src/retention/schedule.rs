//! Periodic retention enforcement (`[retention] enabled`, run by the
//! nodes with the `scheduler` role): every tenant, once per
//! `interval_secs` interval (aligned on the Unix epoch) on whichever node
//! leads the `retention` lease ([`crate::leader`]), not before
//! `initial_delay_secs` after start, as the actor `scheduler`; the due
//! gauge is refreshed after each tenant's run. Errors are logged (ids
//! only) and retried at the next interval; a run cut short by a lost
//! lease is finished by the next leader.

use std::sync::Arc;

use insights_core::blob::BlobStore;
use insights_core::config::RetentionSettings;
use insights_core::domain::now;
use insights_core::store::MetadataStore;

use super::{RunOptions, due_with_minimum, run};
use crate::leader::{Fence, Leadership, LeasedJob, Schedule};

/// The name of retention's lease and runs.
pub const JOB: &str = "retention";

/// The running schedule; [`Scheduler::stop`] ends it.
pub struct Scheduler {
    job: LeasedJob,
}

impl Scheduler {
    /// Starts competing for the `retention` lease on the current Tokio
    /// runtime (`None` when `[retention] enabled = false`).
    pub fn start(
        settings: &RetentionSettings,
        leadership: &Leadership,
        store: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
    ) -> Option<Scheduler> {
        if !settings.enabled {
            return None;
        }
        let schedule = Schedule {
            every: settings.interval(),
            first_after: settings.initial_delay(),
        };
        let minimum_days = settings.minimum_days;
        let job = LeasedJob::start(JOB, schedule, leadership, store, move |store, fence| {
            let blobs = blobs.clone();
            async move { run_all_fenced(store.as_ref(), blobs.as_ref(), minimum_days, &fence).await }
        });
        Some(Scheduler { job })
    }

    /// Stops the schedule (a run in progress is abandoned between two
    /// store calls; whatever it did is complete and audited, the rest is
    /// done by the next run) and gives the lease up.
    pub async fn stop(self) {
        self.job.stop().await;
    }
}

/// One scheduled pass over every tenant, as the actor `scheduler`.
pub async fn run_all(store: &dyn MetadataStore, blobs: &dyn BlobStore) {
    run_all_with_minimum(store, blobs, 0).await;
}

/// [`run_all`] under the installation's minimum retention.
pub async fn run_all_with_minimum(
    store: &dyn MetadataStore,
    blobs: &dyn BlobStore,
    minimum_days: u32,
) {
    let _ = run_tenants(store, blobs, minimum_days, &|| true).await;
}

/// [`run_all_with_minimum`] as the leader: stops at the first tenant
/// after the lease was lost and says so (the run is then not finished).
async fn run_all_fenced(
    store: &dyn MetadataStore,
    blobs: &dyn BlobStore,
    minimum_days: u32,
    fence: &Fence,
) -> Result<(), String> {
    run_tenants(store, blobs, minimum_days, &|| fence.valid()).await
}

async fn run_tenants(
    store: &dyn MetadataStore,
    blobs: &dyn BlobStore,
    minimum_days: u32,
    leading: &(dyn Fn() -> bool + Send + Sync),
) -> Result<(), String> {
    let tenants = match store.list_tenants().await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "retention: cannot list tenants");
            return Err(format!("cannot list tenants: {e}"));
        }
    };
    for t in tenants {
        if !leading() {
            return Err(insights_core::domain::LEASE_LOST.into());
        }
        let opts = RunOptions {
            dry_run: false,
            actor: "scheduler".into(),
            source: None,
            now: now(),
            minimum_days,
        };
        if let Err(e) = run(store, blobs, t.id, &opts, &|_| {}).await {
            tracing::warn!(tenant = %t.id, error = %e, "retention run failed");
        }
        if let Err(e) = due_with_minimum(store, t.id, now(), minimum_days).await {
            tracing::warn!(tenant = %t.id, error = %e, "retention: cannot count due recordings");
        }
    }
    match leading() {
        true => Ok(()),
        false => Err(insights_core::domain::LEASE_LOST.into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::{Duration, Instant};

    use insights_core::domain::{
        AuditAction, AuditQuery, Direction, NewTenant, Recording, RecordingKind, RetentionAction,
        RetentionPolicy, RetentionPolicyId, RetentionScope,
    };
    use insights_core::store::StoreError;
    use insights_stores::blob::LocalBlobStore;
    use insights_stores::metadata::sqlite::SqliteStore;

    use super::*;

    fn leadership() -> Leadership {
        Leadership::new(
            "test-node",
            &insights_core::config::SchedulerSettings::default(),
        )
    }

    async fn world() -> (
        tempfile::TempDir,
        Arc<dyn MetadataStore>,
        Arc<dyn BlobStore>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("insights.db").display());
        let store = SqliteStore::connect(&url, 4).await.unwrap();
        let blobs = LocalBlobStore::new(dir.path().join("blobs"));
        (dir, Arc::new(store), Arc::new(blobs))
    }

    #[tokio::test]
    async fn a_disabled_schedule_does_not_start() {
        let (_dir, store, blobs) = world().await;
        let off = RetentionSettings {
            enabled: false,
            ..RetentionSettings::default()
        };
        assert!(Scheduler::start(&off, &leadership(), store, blobs).is_none());
    }

    #[tokio::test]
    async fn the_first_run_enforces_as_the_scheduler_and_stop_ends_it() {
        let (_dir, store, blobs) = world().await;
        let t = store
            .create_tenant(NewTenant {
                name: "acme".into(),
                directory_tenant_id: None,
            })
            .await
            .unwrap();
        let old = Recording::new(
            t.id,
            RecordingKind::Call,
            Direction::Inbound,
            now() - chrono::Duration::days(400),
        );
        store.insert_recording(t.id, &old).await.unwrap();
        let policy = RetentionPolicy {
            id: RetentionPolicyId::new(),
            tenant_id: t.id,
            name: "one year".into(),
            scope: RetentionScope::default(),
            retain_days: 365,
            action: RetentionAction::DeleteRecording,
            enabled: true,
            updated_at: now(),
        };
        store.upsert_retention_policy(t.id, &policy).await.unwrap();
        let settings = RetentionSettings {
            enabled: true,
            interval_secs: 3600,
            initial_delay_secs: 0,
            minimum_days: 0,
        };
        let scheduler = Scheduler::start(&settings, &leadership(), store.clone(), blobs).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match store.get_recording(t.id, old.id).await {
                Err(StoreError::NotFound) => break,
                Ok(_) => assert!(Instant::now() < deadline, "not enforced within 30 s"),
                Err(e) => panic!("reading the recording: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Waiting for the next tick (an hour away), stop returns at once.
        tokio::time::timeout(Duration::from_secs(10), scheduler.stop())
            .await
            .expect("the schedule stops");
        let events = store
            .list_audit(
                t.id,
                &AuditQuery {
                    action: Some(AuditAction::RetentionDelete),
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].actor, "scheduler");
        assert_eq!(events[0].recording_id, Some(old.id));
    }
}
