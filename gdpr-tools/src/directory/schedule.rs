//! The directory sync of `insights serve`, when `[directory]` is set up:
//! the shared runner (also behind `POST /api/directory/sync`) and, with
//! `interval_secs > 0`, a task syncing every tenant on that schedule (the
//! first run shortly after start), audited as [`SCHEDULE_ACTOR`].

use std::sync::Arc;
use std::time::Duration;

use insights_core::config::DirectorySettings;
use insights_core::store::MetadataStore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{DirectoryError, DirectorySync};

/// The audit actor of scheduled runs.
pub const SCHEDULE_ACTOR: &str = "system:directory-sync";

/// How long after start the first scheduled run begins.
const FIRST_RUN_AFTER: Duration = Duration::from_secs(5);

/// The runner and its schedule; [`Scheduler::stop`] ends the schedule.
pub struct Scheduler {
    sync: Arc<DirectorySync>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Scheduler {
    /// Builds the runner and, if `schedule` and `interval_secs > 0`,
    /// starts the schedule on the current Tokio runtime. `None` when
    /// directory sync is not configured; an error when it is but cannot
    /// start (e.g. the secret variable is unset). `schedule: false` (the
    /// `gateway` process) only serves the API's `POST /api/directory/sync`.
    pub fn start(
        settings: &DirectorySettings,
        store: Arc<dyn MetadataStore>,
        schedule: bool,
    ) -> Result<Option<Scheduler>, DirectoryError> {
        if !settings.enabled() {
            return Ok(None);
        }
        let sync = Arc::new(DirectorySync::from_settings(settings, store)?);
        let stop = CancellationToken::new();
        let task = (schedule && settings.interval_secs > 0).then(|| {
            let every = Duration::from_secs(settings.interval_secs);
            let (sync, stop) = (sync.clone(), stop.clone());
            tokio::spawn(async move {
                let mut next = FIRST_RUN_AFTER;
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(next) => {}
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = sync.sync_all(SCHEDULE_ACTOR) => {}
                    }
                    next = every;
                }
            })
        });
        tracing::info!(
            interval_secs = settings.interval_secs,
            "directory sync configured"
        );
        Ok(Some(Scheduler { sync, stop, task }))
    }

    /// The runner, shared with the API (runs are serialised inside it).
    pub fn sync(&self) -> &Arc<DirectorySync> {
        &self.sync
    }

    /// Stops the schedule (a run in progress is abandoned; it is
    /// repeated next time, its writes being idempotent).
    pub async fn stop(self) {
        self.stop.cancel();
        if let Some(t) = self.task {
            let _ = t.await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use insights_stores::metadata::sqlite::SqliteStore;

    use super::*;

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
        let s = Scheduler::start(&DirectorySettings::default(), store, true).unwrap();
        assert!(s.is_none());
    }

    #[tokio::test]
    async fn a_missing_secret_is_an_error_at_start() {
        let (_dir, store) = store().await;
        let settings = configured("INSIGHTS_TEST_SECRET_THAT_IS_NEVER_SET");
        assert!(matches!(
            Scheduler::start(&settings, store, true),
            Err(DirectoryError::MissingSecret(_))
        ));
    }

    #[tokio::test]
    async fn stop_ends_the_schedule_before_its_first_run() {
        let (_dir, store) = store().await;
        for schedule in [false, true] {
            let s = Scheduler::start(&configured("PATH"), store.clone(), schedule)
                .unwrap()
                .expect("configured");
            assert_eq!(s.task.is_some(), schedule);
            tokio::time::timeout(Duration::from_secs(2), s.stop())
                .await
                .expect("stops at once");
        }
    }
}
