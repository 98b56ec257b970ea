//! `insights admin policy show|set|add|remove`: a tenant's recording
//! policy (which calls the gateway records, and what it does when
//! recording cannot proceed), the CLI face of
//! `GET|PUT /api/admin/recording-policy`. Every change is audited as a
//! policy change by `cli`, naming rule ids, never values.

use clap::Subcommand;
use insights_core::config::Settings;
use insights_core::domain::{
    AuditAction, FailureMode, NewAuditEvent, PolicyList, PolicyMode, PolicyRule, RecordingPolicy,
    RuleKind, now,
};
use uuid::Uuid;

use crate::cli::lookup::find_tenant;
use crate::platform::Platform;

/// `insights admin policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show the tenant's recording policy.
    Show {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Set the mode and/or the failure mode.
    Set {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        /// record-all (every call of a policy-recorded user) or
        /// include-only (only calls an include rule matches).
        #[arg(long, value_parser = parse::<PolicyMode>)]
        mode: Option<PolicyMode>,
        /// required (recording failures block the call) or best-effort
        /// (the call goes on unrecorded and an alert is raised).
        #[arg(long, value_parser = parse::<FailureMode>)]
        failure_mode: Option<FailureMode>,
    },
    /// Add a rule (evaluated after the rules already on its list).
    Add {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        /// include or never-record.
        #[arg(long, value_parser = parse::<PolicyList>)]
        list: PolicyList,
        /// user, group, number, number-prefix or domain.
        #[arg(long, value_parser = parse::<RuleKind>)]
        kind: RuleKind,
        /// Why the rule exists (e.g. "works council").
        #[arg(long)]
        label: Option<String>,
        /// The user (directory id, object id, e-mail or UPN), group,
        /// number (+…), number prefix (+…) or domain.
        value: String,
    },
    /// Remove a rule by its id (see `show`).
    Remove {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        /// The rule's id.
        id: Uuid,
    },
}

fn parse<T: std::str::FromStr>(s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(|e| e.to_string())
}

/// Runs `insights admin policy ...`.
pub async fn run(command: PolicyCommand, settings: &Settings) -> anyhow::Result<()> {
    let platform = Platform::open(settings).await?;
    let store = platform.store.as_ref();
    let tenant_arg = match &command {
        PolicyCommand::Show { tenant, .. }
        | PolicyCommand::Set { tenant, .. }
        | PolicyCommand::Add { tenant, .. }
        | PolicyCommand::Remove { tenant, .. } => tenant.clone(),
    };
    let tenant = find_tenant(store, &tenant_arg).await?.id;
    let old = store
        .recording_policy(tenant)
        .await?
        .unwrap_or_else(|| RecordingPolicy::default_for(tenant));
    let mut new = old.clone();
    match command {
        PolicyCommand::Show { json, .. } => {
            if json {
                println!("{}", serde_json::to_string(&old)?);
            } else {
                print_policy(&old);
            }
            return Ok(());
        }
        PolicyCommand::Set {
            mode, failure_mode, ..
        } => {
            if mode.is_none() && failure_mode.is_none() {
                anyhow::bail!("nothing to set: give --mode and/or --failure-mode");
            }
            new.mode = mode.unwrap_or(new.mode);
            new.failure_mode = failure_mode.unwrap_or(new.failure_mode);
        }
        PolicyCommand::Add {
            list,
            kind,
            label,
            value,
            ..
        } => {
            let rule = PolicyRule::new(list, kind, &value, label).map_err(anyhow::Error::msg)?;
            println!("added rule {}", rule.id);
            new.rules.push(rule);
        }
        PolicyCommand::Remove { id, .. } => {
            let before = new.rules.len();
            new.rules.retain(|r| r.id != id);
            if new.rules.len() == before {
                anyhow::bail!("no rule {id} in this tenant's recording policy");
            }
            println!("removed rule {id}");
        }
    }
    new.updated_at = now();
    new.updated_by = "cli".into();
    store.put_recording_policy(tenant, &new).await?;
    store
        .append_audit(
            tenant,
            NewAuditEvent {
                actor: "cli".into(),
                action: AuditAction::PolicyChange,
                recording_id: None,
                target: None,
                reason: None,
                source: None,
                details: insights_api::recording_policy_change_details(&old, &new),
            },
        )
        .await?;
    print_policy(&new);
    Ok(())
}

fn print_policy(p: &RecordingPolicy) {
    println!("mode: {}", p.mode);
    println!("failure mode: {}", p.failure_mode);
    if p.rules.is_empty() {
        println!("rules: none");
        return;
    }
    println!("{:<36} {:<12} {:<13} VALUE (LABEL)", "ID", "LIST", "KIND");
    for r in &p.rules {
        let label = r
            .label
            .as_deref()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default();
        println!(
            "{:<36} {:<12} {:<13} {}{label}",
            r.id, r.list, r.kind, r.value
        );
    }
}
