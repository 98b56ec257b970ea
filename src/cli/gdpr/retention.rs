//! `insights gdpr retention [--tenant T] [--dry-run] [--json]`: enforces
//! the retention policies of one tenant or of every tenant, like the
//! schedule in `insights serve` does, and prints the report (one line
//! per tenant, or the whole report as JSON with `--json`). A progress
//! spinner on stderr shows recordings examined and done on long runs.
//!
//! The schedule `insights serve` runs is `gdpr_tools::retention::Scheduler`.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use gdpr_tools::retention::{self, Progress, RetentionReport, RunOptions};
use indicatif::{ProgressBar, ProgressStyle};
use insights_core::config::Settings;
use insights_core::domain::{Tenant, now};

use crate::cli::lookup::find_tenant;
use crate::platform::Platform;

/// Arguments of `insights gdpr retention`.
#[derive(Debug, Args)]
pub struct RetentionArgs {
    /// Tenant name or id (default: every tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Report what would be deleted; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the reports as JSON (one object per tenant per line).
    #[arg(long)]
    pub json: bool,
}

/// One summary line of a report.
pub fn render(t: &Tenant, r: &RetentionReport) -> String {
    format!(
        "tenant {} ({}): {}examined {}, due {}, {} {} media, {} {} recordings, blocked by legal hold {}, failed {}",
        t.name,
        t.id,
        if r.dry_run { "DRY RUN: " } else { "" },
        r.examined,
        r.due,
        if r.dry_run { "would delete" } else { "deleted" },
        if r.dry_run {
            count(r, retention::Outcome::WouldDeleteMedia)
        } else {
            r.deleted_media
        },
        if r.dry_run { "would delete" } else { "deleted" },
        if r.dry_run {
            count(r, retention::Outcome::WouldDeleteRecording)
        } else {
            r.deleted_recordings
        },
        r.blocked.len(),
        r.failed,
    )
}

fn count(r: &RetentionReport, o: retention::Outcome) -> u64 {
    r.items.iter().filter(|i| i.outcome == o).count() as u64
}

/// Runs `insights gdpr retention`.
pub async fn run(args: RetentionArgs, settings: &Settings) -> anyhow::Result<()> {
    let platform = Platform::open(settings).await?;
    let tenants = match &args.tenant {
        Some(t) => vec![find_tenant(platform.store.as_ref(), t).await?],
        None => platform.store.list_tenants().await?,
    };
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut failed = 0u64;
    for t in &tenants {
        bar.set_prefix(t.name.clone());
        let opts = RunOptions {
            dry_run: args.dry_run,
            actor: "cli".into(),
            source: None,
            now: now(),
            minimum_days: settings.retention.minimum_days,
        };
        let b = bar.clone();
        let report = retention::run(
            platform.store.as_ref(),
            platform.blobs.as_ref(),
            t.id,
            &opts,
            &move |p: Progress| {
                b.set_message(format!(
                    "examined {}, due {}, done {}",
                    p.examined, p.due, p.done
                ))
            },
        )
        .await
        .with_context(|| format!("retention for tenant {}", t.name))?;
        failed += report.failed;
        bar.suspend(|| {
            if args.json {
                match serde_json::to_string(&serde_json::json!({
                    "tenant": t.id, "name": t.name, "report": report
                })) {
                    Ok(line) => println!("{line}"),
                    Err(e) => eprintln!("insights: cannot print the report: {e}"),
                }
            } else {
                println!("{}", render(t, &report));
                for b in &report.blocked {
                    let holds: Vec<String> = b
                        .holds
                        .iter()
                        .map(|h| format!("{} ({})", h.case_name, h.id))
                        .collect();
                    println!(
                        "  recording {} blocked by legal hold: {}",
                        b.recording_id,
                        holds.join(", ")
                    );
                }
            }
        });
        // Refresh the due gauge for this tenant.
        retention::due_with_minimum(
            platform.store.as_ref(),
            t.id,
            now(),
            settings.retention.minimum_days,
        )
        .await?;
    }
    bar.finish_and_clear();
    if failed > 0 {
        anyhow::bail!("{failed} recording(s) could not be deleted; the next run tries again");
    }
    Ok(())
}
