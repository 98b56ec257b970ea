//! The directory sync of the `api` and `scheduler` roles, when
//! `[directory]` is set up: the shared runner (behind `POST
//! /api/directory/sync` on API nodes) and, on scheduler nodes with
//! `interval_secs > 0`, every tenant synced once per interval (aligned on
//! the Unix epoch, the first not before shortly after start) by whichever
//! node leads the `directory-sync` lease ([`crate::leader`]), audited as
//! [`SCHEDULE_ACTOR`].

use std::sync::Arc;
use std::time::Duration;

use insights_core::config::DirectorySettings;
use insights_core::store::MetadataStore;

use super::{DirectoryError, DirectorySync};
use crate::leader::{Leadership, LeasedJob, Schedule};

/// The audit actor of scheduled runs.
pub const SCHEDULE_ACTOR: &str = "system:directory-sync";

/// The name of the schedule's lease and runs.
pub const JOB: &str = "directory-sync";

/// How long after start the first scheduled run may begin.
const FIRST_RUN_AFTER: Duration = Duration::from_secs(5);

/// The runner and its schedule; [`Scheduler::stop`] ends the schedule.
pub struct Scheduler {
    sync: Arc<DirectorySync>,
    task: Option<LeasedJob>,
}

impl Scheduler {
    /// Builds the runner and, with `schedule` (the scheduler role) and
    /// `interval_secs > 0`, starts competing for the schedule's lease on
    /// the current Tokio runtime. `None` when directory sync is not
    /// configured; an error when it is but cannot start (e.g. the secret
    /// variable is unset). Without `schedule` it only serves the API's
    /// `POST /api/directory/sync`.
    pub fn start(
        settings: &DirectorySettings,
        store: Arc<dyn MetadataStore>,
        schedule: Option<&Leadership>,
    ) -> Result<Option<Scheduler>, DirectoryError> {
        if !settings.enabled() {
            return Ok(None);
        }
        let sync = Arc::new(DirectorySync::from_settings(settings, store.clone())?);
        let task = match schedule {
            Some(leadership) if settings.interval_secs > 0 => {
                let every = Duration::from_secs(settings.interval_secs);
                let settings = settings.clone();
                let schedule = Schedule {
                    every,
                    first_after: FIRST_RUN_AFTER,
                };
                Some(LeasedJob::start(
                    JOB,
                    schedule,
                    leadership,
                    store,
                    move |fenced, _| {
                        // A runner over the fenced store: its writes and its
                        // audit event stop with the lease.
                        let runner = DirectorySync::from_settings(&settings, fenced);
                        async move {
                            let runner = runner.map_err(|e| e.to_string())?;
                            let failed = runner
                                .sync_all(SCHEDULE_ACTOR)
                                .await
                                .into_iter()
                                .filter(|(_, r)| r.is_err())
                                .count();
                            tracing::debug!(failed, "scheduled directory sync pass");
                            Ok(())
                        }
                    },
                ))
            }
            _ => None,
        };
        tracing::info!(
            interval_secs = settings.interval_secs,
            scheduled = task.is_some(),
            "directory sync configured"
        );
        Ok(Some(Scheduler { sync, task }))
    }

    /// The runner, shared with the API (runs are serialised inside it).
    pub fn sync(&self) -> &Arc<DirectorySync> {
        &self.sync
    }

    /// Stops the schedule (a run in progress is abandoned; it is
    /// repeated next time, its writes being idempotent) and gives the
    /// lease up.
    pub async fn stop(self) {
        if let Some(t) = self.task {
            t.stop().await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use insights_stores::metadata::sqlite::SqliteStore;

    use super::*;

    fn leadership() -> Leadership {
        Leadership::new(
            "test-node",
            &insights_core::config::SchedulerSettings::default(),
        )
    }

    async fn store() -> (tempfile::TempDir, Arc<dyn MetadataStore>) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("insights.db").display());
        let store = SqliteStore::connect(&url, 2).await.unwrap();
        (dir, Arc::new(store))
    }

    /// Configured, with a secret variable every process has (tests must
    /// not set variables), and a Graph that is never reached.
    fn configured(secret_env: &str) -> DirectorySettings {
        DirectorySettings {
            client_id: Some("app".into()),
            client_secret_env: secret_env.into(),
            graph_base_url: "http://127.0.0.1:9".into(),
            token_url: "http://127.0.0.1:9/{tenant}/token".into(),
            ..DirectorySettings::default()
        }
    }

    #[tokio::test]
    async fn nothing_starts_unless_configured() {
        let (_dir, store) = store().await;
        let s =
            Scheduler::start(&DirectorySettings::default(), store, Some(&leadership())).unwrap();
        assert!(s.is_none());
    }

    #[tokio::test]
    async fn a_missing_secret_is_an_error_at_start() {
        let (_dir, store) = store().await;
        let settings = configured("INSIGHTS_TEST_SECRET_THAT_IS_NEVER_SET");
        assert!(matches!(
            Scheduler::start(&settings, store, Some(&leadership())),
            Err(DirectoryError::MissingSecret(_))
        ));
    }

    #[tokio::test]
    async fn stop_ends_the_schedule_before_its_first_run() {
        let (_dir, store) = store().await;
        for schedule in [false, true] {
            let who = leadership();
            let s = Scheduler::start(&configured("PATH"), store.clone(), schedule.then_some(&who))
                .unwrap()
                .expect("configured");
            assert_eq!(s.task.is_some(), schedule);
            tokio::time::timeout(Duration::from_secs(2), s.stop())
                .await
                .expect("stops at once");
        }
    }
}
