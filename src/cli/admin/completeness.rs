//! `insights admin completeness run|show|threshold`: the completeness
//! reconciliation of Microsoft's call records against the recordings from
//! the command line (the daily run is `gdpr_tools::completeness::Scheduler`
//! in `insights serve`; the API is `/api/completeness`).
//!
//! * `run --from --to [--tenant T] [--json]` reconciles the period for one
//!   tenant or every tenant with a directory tenant id, prints one line
//!   per tenant (counts and coverage, never a name or number) and exits
//!   with 1 if any tenant failed;
//! * `show --tenant T --from --to [--json]` prints the stored outcome per
//!   call (call id, status, coverage, reason or rule);
//! * `threshold --tenant T PERCENT` sets the tenant's alert threshold.

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Subcommand;
use gdpr_tools::completeness::{CompletenessError, Reconciler, RunSummary};
use insights_core::config::Settings;
use insights_core::domain::{
    AuditAction, CompletenessRun, CompletenessThreshold, CompletenessTotals, CompletenessTrigger,
    NewAuditEvent, TenantId, now,
};

use crate::cli::lookup::find_tenant;

/// `insights admin completeness ...`.
#[derive(Debug, Subcommand)]
pub enum CompletenessCommand {
    /// Reconcile a period now.
    Run {
        /// Start (RFC 3339 or YYYY-MM-DD, UTC), inclusive.
        #[arg(long, value_parser = parse_time)]
        from: DateTime<Utc>,
        /// End (RFC 3339 or YYYY-MM-DD, UTC), exclusive.
        #[arg(long, value_parser = parse_time)]
        to: DateTime<Utc>,
        /// Tenant name or id (default: every tenant with a directory
        /// tenant id).
        #[arg(long)]
        tenant: Option<String>,
        /// One JSON object per tenant instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the stored outcome of each call of a period.
    Show {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        /// Start (RFC 3339 or YYYY-MM-DD, UTC), inclusive.
        #[arg(long, value_parser = parse_time)]
        from: DateTime<Utc>,
        /// End (RFC 3339 or YYYY-MM-DD, UTC), exclusive.
        #[arg(long, value_parser = parse_time)]
        to: DateTime<Utc>,
        /// One JSON object per call instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Set the tenant's alert threshold (coverage percentage, 0-100).
    Threshold {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        /// Coverage of in-scope call time below this raises the alert.
        percent: f64,
    },
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    insights_api::completeness_time(s).ok_or_else(|| "an RFC 3339 time or YYYY-MM-DD".into())
}

/// Runs `insights admin completeness ...`.
pub async fn run(command: CompletenessCommand, settings: &Settings) -> anyhow::Result<()> {
    let store = insights_stores::open_metadata(settings)
        .await
        .context("opening the metadata store")?;
    match command {
        CompletenessCommand::Run {
            from,
            to,
            tenant,
            json,
        } => {
            let runner = Reconciler::from_settings(
                &settings.directory,
                &settings.completeness,
                store.clone(),
            )
            .context("completeness reconciliation")?;
            let results: Vec<(TenantId, String, Result<CompletenessRun, CompletenessError>)> =
                match tenant {
                    Some(name) => {
                        let t = find_tenant(store.as_ref(), &name).await?;
                        let r = runner
                            .run_tenant(&t, from, to, CompletenessTrigger::OnDemand, "cli")
                            .await;
                        vec![(t.id, t.name, r)]
                    }
                    None => {
                        let names: std::collections::HashMap<TenantId, String> = store
                            .list_tenants()
                            .await?
                            .into_iter()
                            .map(|t| (t.id, t.name))
                            .collect();
                        runner
                            .run_all(from, to, CompletenessTrigger::OnDemand, "cli")
                            .await
                            .into_iter()
                            .map(|(id, r)| (id, names.get(&id).cloned().unwrap_or_default(), r))
                            .collect()
                    }
                };
            let mut failed = 0;
            for (id, name, r) in &results {
                match (r, json) {
                    (Ok(run), true) => println!(
                        "{}",
                        serde_json::json!({ "tenant": name, "tenant_id": id, "run": RunSummary::of(run) })
                    ),
                    (Ok(run), false) => println!(
                        "tenant {name} ({id}): {}{}",
                        totals_line(&run.totals),
                        if run.below_threshold {
                            format!(
                                " — below the threshold of {:.1} %",
                                f64::from(run.threshold_permille) / 10.0
                            )
                        } else {
                            String::new()
                        }
                    ),
                    (Err(e), _) => {
                        failed += 1;
                        eprintln!("tenant {name} ({id}): failed: {e}");
                    }
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} tenant(s) failed");
            }
            Ok(())
        }
        CompletenessCommand::Show {
            tenant,
            from,
            to,
            json,
        } => {
            let t = find_tenant(store.as_ref(), &tenant).await?;
            let calls = store.list_completeness_calls(t.id, from, to).await?;
            store
                .append_audit(
                    t.id,
                    NewAuditEvent {
                        actor: "cli".into(),
                        action: AuditAction::CompletenessView,
                        recording_id: None,
                        target: None,
                        reason: None,
                        source: None,
                        details: serde_json::json!({ "from": from, "to": to, "calls": calls.len() }),
                    },
                )
                .await?;
            for c in &calls {
                if json {
                    println!("{}", serde_json::to_string(c)?);
                } else {
                    let why = c
                        .reason
                        .map(|r| r.to_string())
                        .or_else(|| c.rule.clone())
                        .or_else(|| c.gaps.first().map(|g| g.reason.to_string()))
                        .unwrap_or_default();
                    println!(
                        "{} {} {} {:.1}% {}",
                        c.call_id,
                        c.started_at.to_rfc3339(),
                        c.status,
                        f64::from(c.coverage_permille) / 10.0,
                        why
                    );
                }
            }
            if !json {
                println!("{}", totals_line(&CompletenessTotals::of(&calls)));
            }
            Ok(())
        }
        CompletenessCommand::Threshold { tenant, percent } => {
            if !(0.0..=100.0).contains(&percent) {
                anyhow::bail!("the threshold is a percentage, 0-100");
            }
            let t = find_tenant(store.as_ref(), &tenant).await?;
            let permille = (percent * 10.0).round() as u32;
            store
                .put_completeness_threshold(
                    t.id,
                    &CompletenessThreshold {
                        tenant_id: t.id,
                        threshold_permille: permille,
                        updated_at: now(),
                        updated_by: "cli".into(),
                    },
                )
                .await?;
            store
                .append_audit(
                    t.id,
                    NewAuditEvent {
                        actor: "cli".into(),
                        action: AuditAction::SettingsChange,
                        recording_id: None,
                        target: None,
                        reason: None,
                        source: None,
                        details: serde_json::json!({ "completeness_threshold_permille": permille }),
                    },
                )
                .await?;
            println!("tenant {}: completeness threshold {percent:.1} %", t.name);
            Ok(())
        }
    }
}

fn totals_line(t: &CompletenessTotals) -> String {
    format!(
        "{} calls, {} in scope: {} recorded, {} partial, {} not recorded; {} out of scope; \
         coverage {:.1} %",
        t.calls,
        t.in_scope,
        t.recorded,
        t.partial,
        t.not_recorded,
        t.out_of_scope,
        f64::from(t.coverage_permille) / 10.0
    )
}
