//! `insights directory ...`: directory sync from the command line, and
//! the schedule `insights serve` runs it on.
//!
//! `insights directory sync [--tenant T] [--json]` syncs one tenant (name
//! or id) or every tenant that has a directory tenant id, printing one
//! line per tenant with the counts (never a name or address), and exits
//! with 1 if any tenant failed.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use gdpr_tools::directory::{DirectoryError, DirectorySync, SyncReport};
use insights_core::config::Settings;
use insights_core::domain::TenantId;
use insights_core::store::MetadataStore;
use tokio_util::sync::CancellationToken;

use crate::cli::lookup::find_tenant;

/// `insights directory <command>`.
#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Sync users from Entra ID (Microsoft Graph delta query) now.
    Sync {
        /// Tenant name or id (default: every tenant with a directory
        /// tenant id).
        #[arg(long)]
        tenant: Option<String>,
        /// Print one JSON object per tenant instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `directory` subcommand.
pub async fn run(command: DirectoryCommand, settings: &Settings) -> anyhow::Result<()> {
    match command {
        DirectoryCommand::Sync { tenant, json } => sync(settings, tenant.as_deref(), json).await,
    }
}

async fn sync(settings: &Settings, tenant: Option<&str>, json: bool) -> anyhow::Result<()> {
    let store = insights_stores::open_metadata(settings)
        .await
        .context("opening the metadata store")?;
    let sync = DirectorySync::from_settings(&settings.directory, store.clone())
        .context("directory sync")?;
    let results: Vec<(TenantId, String, Result<SyncReport, DirectoryError>)> = match tenant {
        Some(name) => {
            let t = find_tenant(store.as_ref(), name).await?;
            let r = sync.sync_tenant(&t, "cli").await;
            vec![(t.id, t.name, r)]
        }
        None => {
            let names: std::collections::HashMap<TenantId, String> = store
                .list_tenants()
                .await?
                .into_iter()
                .map(|t| (t.id, t.name))
                .collect();
            sync.sync_all("cli")
                .await
                .into_iter()
                .map(|(id, r)| (id, names.get(&id).cloned().unwrap_or_default(), r))
                .collect()
        }
    };
    let mut failed = 0;
    for (id, name, r) in &results {
        match (r, json) {
            (Ok(rep), true) => println!(
                "{}",
                serde_json::json!({ "tenant": name, "tenant_id": id, "report": rep })
            ),
            (Ok(rep), false) => println!(
                "tenant {name} ({id}): {} added, {} updated, {} deactivated, {} page{}, \
                 {} throttled retr{}, {}",
                rep.added,
                rep.updated,
                rep.deactivated,
                rep.pages,
                if rep.pages == 1 { "" } else { "s" },
                rep.throttled_retries,
                if rep.throttled_retries == 1 {
                    "y"
                } else {
                    "ies"
                },
                if rep.delta { "delta" } else { "full sync" },
            ),
            (Err(e), true) => {
                failed += 1;
                println!(
                    "{}",
                    serde_json::json!({ "tenant": name, "tenant_id": id, "error": e.to_string() })
                );
            }
            (Err(e), false) => {
                failed += 1;
                println!("tenant {name} ({id}): FAILED: {e}");
            }
        }
    }
    if results.is_empty() {
        println!("no tenant has a directory tenant id: nothing to sync");
    }
    if failed > 0 {
        anyhow::bail!("directory sync failed for {failed} tenant(s)");
    }
    Ok(())
}

/// The directory sync of `insights serve`, when `[directory]` is set up:
/// the shared runner (also behind `POST /api/directory/sync`) and, with
/// `interval_secs > 0`, a task syncing every tenant on that schedule (the
/// first run shortly after start).
pub struct Scheduled {
    pub sync: Arc<DirectorySync>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Scheduled {
    /// `None` when directory sync is not configured; an error when it is
    /// but cannot start (e.g. the secret variable is unset).
    /// `schedule: false` (the `gateway` process) only serves the API's
    /// `POST /api/directory/sync`.
    pub fn start(
        settings: &Settings,
        store: Arc<dyn MetadataStore>,
        schedule: bool,
    ) -> anyhow::Result<Option<Scheduled>> {
        if !settings.directory.enabled() {
            return Ok(None);
        }
        let sync = Arc::new(
            DirectorySync::from_settings(&settings.directory, store)
                .context("starting directory sync")?,
        );
        let stop = CancellationToken::new();
        let task = (schedule && settings.directory.interval_secs > 0).then(|| {
            let every = Duration::from_secs(settings.directory.interval_secs);
            let (sync, stop) = (sync.clone(), stop.clone());
            tokio::spawn(async move {
                let mut next = Duration::from_secs(5);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(next) => {}
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = sync.sync_all("system:directory-sync") => {}
                    }
                    next = every;
                }
            })
        });
        tracing::info!(
            interval_secs = settings.directory.interval_secs,
            "directory sync configured"
        );
        Ok(Some(Scheduled { sync, stop, task }))
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
