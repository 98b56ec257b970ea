//! `insights directory ...`: directory sync from the command line (the
//! schedule `insights serve` runs it on is
//! `gdpr_tools::directory::Scheduler`).
//!
//! `insights directory sync [--tenant T] [--json]` syncs one tenant (name
//! or id) or every tenant that has a directory tenant id, printing one
//! line per tenant with the counts (never a name or address), and exits
//! with 1 if any tenant failed.

use anyhow::Context;
use clap::Subcommand;
use gdpr_tools::directory::{DirectoryError, DirectorySync, SyncReport};
use insights_core::config::Settings;
use insights_core::domain::TenantId;

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
                 {} throttled retr{}, {}, {} participant{} linked",
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
                rep.participants_linked,
                if rep.participants_linked == 1 {
                    ""
                } else {
                    "s"
                },
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
