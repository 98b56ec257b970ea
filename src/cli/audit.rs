//! `insights audit ...`: the audit trail from the command line.
//!
//! `insights audit verify --tenant T` reads the tenant's whole hash chain
//! and the head kept apart from it, and prints either
//!
//! ```text
//! audit chain of tenant acme (<id>): intact, 5 events, head 5 <hash>
//! ```
//!
//! or one line per problem, each starting with the sequence number it
//! concerns (`seq 3: edited: ...`, `seq 2: reordered: ...`,
//! `seq 4: deleted: ...`, `seq 6: truncated: ...`), and exits with 1.

use clap::Subcommand;
use insights_core::config::Settings;
use insights_core::domain::{ChainReport, Tenant};
use insights_core::store::check_audit_chain;

use crate::cli::lookup::find_tenant;

/// `insights audit <command>`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check a tenant's audit hash chain: reports every edited, deleted,
    /// reordered or truncated event by sequence number (exit code 1 if
    /// any).
    Verify {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        /// Print the report as one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an `audit` subcommand.
pub async fn run(command: AuditCommand, settings: &Settings) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { tenant, json } => verify(settings, &tenant, json).await,
    }
}

async fn verify(settings: &Settings, tenant: &str, json: bool) -> anyhow::Result<()> {
    // Only the metadata store is needed: no keys, no blobs.
    let store = insights_stores::open_metadata(settings).await?;
    let t = find_tenant(store.as_ref(), tenant).await?;
    tracing::info!(tenant = %t.id, "verifying the audit chain");
    let report = check_audit_chain(store.as_ref(), t.id).await?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", render(&t, &report));
    }
    if report.is_intact() {
        Ok(())
    } else {
        anyhow::bail!(
            "the audit chain of tenant {} is broken ({} problem{})",
            t.name,
            report.problems.len(),
            if report.problems.len() == 1 { "" } else { "s" }
        )
    }
}

/// The text report: a summary line, then one line per problem.
pub fn render(t: &Tenant, r: &ChainReport) -> String {
    let head = match &r.head {
        Some((seq, hash)) => format!("head {seq} {hash}"),
        None => "no head".to_owned(),
    };
    let mut out = if r.is_intact() {
        format!(
            "audit chain of tenant {} ({}): intact, {} events, {head}\n",
            t.name, t.id, r.events
        )
    } else {
        format!(
            "audit chain of tenant {} ({}): BROKEN, {} problem{} in {} events, recorded {head}\n",
            t.name,
            t.id,
            r.problems.len(),
            if r.problems.len() == 1 { "" } else { "s" },
            r.events
        )
    };
    for p in &r.problems {
        out.push_str(&p.to_string());
        out.push('\n');
    }
    out
}
