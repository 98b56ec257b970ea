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

use super::{RunOptions, due, run};

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
                    _ = run_all(store.as_ref(), blobs.as_ref()) => {}
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
        };
        if let Err(e) = run(store, blobs, t.id, &opts, &|_| {}).await {
            tracing::warn!(tenant = %t.id, error = %e, "retention run failed");
        }
        if let Err(e) = due(store, t.id, now()).await {
            tracing::warn!(tenant = %t.id, error = %e, "retention: cannot count due recordings");
        }
    }
}
