//! Periodic retention enforcement (`[retention] enabled`, run by
//! `insights serve`): every tenant, every `interval_secs` after a first
//! run `initial_delay_secs` after start, as the actor `scheduler`; the
//! due gauge is refreshed after each tenant's run. Errors are logged (ids
//! only) and retried at the next tick.

use std::sync::Arc;

use insights_core::blob::BlobStore;
use insights_core::config::RetentionSettings;
use insights_core::domain::now;
use insights_core::store::MetadataStore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{RunOptions, due_with_minimum, run};

/// The running schedule; [`Scheduler::stop`] ends it.
pub struct Scheduler {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Scheduler {
    /// Starts the schedule on the current Tokio runtime (`None` when
    /// `[retention] enabled = false`).
    pub fn start(
        settings: &RetentionSettings,
        store: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
    ) -> Option<Scheduler> {
        if !settings.enabled {
            return None;
        }
        let stop = CancellationToken::new();
        let (interval, delay) = (settings.interval(), settings.initial_delay());
        let minimum_days = settings.minimum_days;
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut wait = delay;
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = interval;
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = run_all_with_minimum(store.as_ref(), blobs.as_ref(), minimum_days) => {}
                }
            }
        });
        Some(Scheduler { stop, task })
    }

    /// Stops the schedule (a run in progress is abandoned between two
    /// store calls; whatever it did is complete and audited, the rest is
    /// done by the next run).
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
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
    let tenants = match store.list_tenants().await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "retention: cannot list tenants");
            return;
        }
    };
    for t in tenants {
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
        assert!(Scheduler::start(&off, store, blobs).is_none());
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
        let scheduler = Scheduler::start(&settings, store.clone(), blobs).unwrap();
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
