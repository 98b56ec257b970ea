//! `insights gdpr find`: a subject's recordings, directory users and
//! audit events, with why each matched.

use clap::Args;
use insights_core::config::Settings;

use super::{ACTOR, SubjectArgs};
use crate::cli::lookup::find_tenant;
use crate::platform::Platform;

#[derive(Debug, Args)]
pub struct FindArgs {
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// Print `{"matches":[...]}` as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn find(settings: &Settings, args: FindArgs) -> anyhow::Result<()> {
    let p = Platform::open(settings).await?;
    let t = find_tenant(p.store.as_ref(), &args.subject.tenant).await?;
    let found = gdpr_tools::subject::find(
        p.store.as_ref(),
        t.id,
        &args.subject.identifiers(),
        &args.subject.options(),
    )
    .await?;
    let matches = found.matches();
    p.store
        .append_audit(
            t.id,
            insights_core::domain::NewAuditEvent {
                actor: ACTOR.into(),
                action: insights_core::domain::AuditAction::Search,
                recording_id: None,
                target: Some("gdpr-find".into()),
                reason: None,
                source: None,
                details: serde_json::json!({"gdpr_find": true, "matches": matches.len()}),
            },
        )
        .await?;
    if args.json {
        println!("{}", serde_json::json!({ "matches": matches }));
        return Ok(());
    }
    println!("{} match(es) in tenant {}", matches.len(), t.name);
    for m in matches {
        let reasons: Vec<String> = m
            .reasons
            .iter()
            .map(|r| match &r.role {
                Some(role) => format!("{} as {role} = {}", r.field, r.matched),
                None => format!("{} = {}", r.field, r.matched),
            })
            .collect();
        let when = m.started_at.map(|t| t.to_rfc3339()).unwrap_or_default();
        println!("{:<15} {} {when}  {}", m.kind, m.id, reasons.join("; "));
    }
    Ok(())
}
