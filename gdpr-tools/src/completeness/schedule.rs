//! The daily reconciliation of the `scheduler` role, when `[directory]`
//! (Graph) is set up and `[completeness] enabled`: every tenant with a
//! directory tenant id reconciled over the last `lookback_hours`, once per
//! `interval_secs` (aligned on the Unix epoch), by whichever node leads
//! the `completeness` lease ([`crate::leader`]), audited as
//! [`SCHEDULE_ACTOR`]. API nodes build the runner only, for on-demand
//! runs.

use std::sync::Arc;
use std::time::Duration;

use insights_core::config::{CompletenessConfig, DirectorySettings};
use insights_core::domain::CompletenessTrigger;
use insights_core::store::MetadataStore;

use super::{CompletenessError, Reconciler, scheduled_period};
use crate::leader::{Leadership, LeasedJob, Schedule};

/// The audit actor of scheduled runs.
pub const SCHEDULE_ACTOR: &str = "system:completeness";

/// The name of the schedule's lease and runs.
pub const JOB: &str = "completeness";

/// The runner and its schedule; [`Scheduler::stop`] ends the schedule.
pub struct Scheduler {
    runner: Arc<Reconciler>,
    task: Option<LeasedJob>,
}

impl Scheduler {
    /// Builds the runner and, with `schedule` (the scheduler role) and
    /// `enabled`, starts competing for the schedule's lease. `None` when
    /// Graph is not configured (`[directory] client_id` unset); an error
    /// when it is but cannot start (e.g. the secret variable is unset).
    pub fn start(
        directory: &DirectorySettings,
        cfg: &CompletenessConfig,
        store: Arc<dyn MetadataStore>,
        schedule: Option<&Leadership>,
    ) -> Result<Option<Scheduler>, CompletenessError> {
        if !directory.enabled() {
            return Ok(None);
        }
        let runner = Arc::new(Reconciler::from_settings(directory, cfg, store.clone())?);
        let task = match schedule {
            Some(leadership) if cfg.enabled => {
                let (directory, cfg) = (directory.clone(), cfg.clone());
                let schedule = Schedule {
                    every: Duration::from_secs(cfg.interval_secs),
                    first_after: cfg.initial_delay(),
                };
                Some(LeasedJob::start(
                    JOB,
                    schedule,
                    leadership,
                    store,
                    move |fenced, _| {
                        // A runner over the fenced store: its writes and
                        // audit events stop with the lease.
                        let runner = Reconciler::from_settings(&directory, &cfg, fenced);
                        let cfg = cfg.clone();
                        async move {
                            let runner = runner.map_err(|e| e.to_string())?;
                            let (from, to) = scheduled_period(&cfg, insights_core::domain::now());
                            let failed = runner
                                .run_all(from, to, CompletenessTrigger::Scheduled, SCHEDULE_ACTOR)
                                .await
                                .into_iter()
                                .filter(|(_, r)| r.is_err())
                                .count();
                            tracing::debug!(failed, "scheduled completeness pass");
                            Ok(())
                        }
                    },
                ))
            }
            _ => None,
        };
        tracing::info!(
            interval_secs = cfg.interval_secs,
            scheduled = task.is_some(),
            "completeness reconciliation configured"
        );
        Ok(Some(Scheduler { runner, task }))
    }

    /// The runner, shared with the API.
    pub fn runner(&self) -> &Arc<Reconciler> {
        &self.runner
    }

    /// Stops the schedule and gives the lease up.
    pub async fn stop(self) {
        if let Some(t) = self.task {
            t.stop().await;
        }
    }
}
