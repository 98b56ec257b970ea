//! `insights gdpr erase`: dry-run report, then execute (resumable) and
//! write the signed certificate.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use gdpr_tools::certificate::CertificateSigner;
use gdpr_tools::erasure::{self, ErasureEnv};
use indicatif::{ProgressBar, ProgressStyle};
use insights_core::config::Settings;
use insights_core::fsio;

use super::{ACTOR, SubjectArgs};
use crate::cli::lookup::find_tenant;
use crate::platform::Platform;

#[derive(Debug, Args)]
pub struct EraseArgs {
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// Why (ticket number, legal basis); kept in the audit trail and the
    /// certificate.
    #[arg(long)]
    pub reason: Option<String>,
    /// Only record the request and print the report.
    #[arg(long)]
    pub dry_run: bool,
    /// Execute (or resume) an existing request instead of a new one.
    #[arg(long, value_name = "REQUEST_ID")]
    pub resume: Option<uuid::Uuid>,
    /// Write the signed certificate here.
    #[arg(long, value_name = "FILE")]
    pub certificate: Option<PathBuf>,
}

/// This node's certificate signer, registered in the signing-key registry
/// first (so the certificate verifies on every node).
async fn signer(settings: &Settings, p: &Platform) -> anyhow::Result<CertificateSigner> {
    crate::cli::signing::open_and_register(settings, p.store.as_ref()).await?;
    let path = crate::cli::signing::key_file(settings);
    Ok(CertificateSigner::open_or_create(path)?)
}

pub async fn erase(settings: &Settings, args: EraseArgs) -> anyhow::Result<()> {
    let p = Platform::open(settings).await?;
    let t = find_tenant(p.store.as_ref(), &args.subject.tenant).await?;
    let signer = signer(settings, &p).await?;
    let env = ErasureEnv {
        store: p.store.as_ref(),
        blobs: p.blobs.as_ref(),
        signer: &signer,
        // Removes spool copies only while no gateway holds the spool.
        spool: Some(std::sync::Arc::new(bot_gateway::spool::SpoolDir::new(
            settings.spool.dir(&settings.data_dir),
        ))),
        find: args.subject.options(),
    };
    let id = match args.resume {
        Some(id) => id,
        None => {
            let reason = args
                .reason
                .as_deref()
                .context("--reason is required for a new erasure request")?;
            let req =
                erasure::request(&env, t.id, &args.subject.identifiers(), reason, ACTOR).await?;
            println!("erasure request {} (waiver: {})", req.id, req.report.waiver);
            for i in &req.report.recordings {
                let holds: Vec<_> = i.holds.iter().map(|h| h.case_name.as_str()).collect();
                println!(
                    "  recording {} {:<27} {:<16} {}",
                    i.id,
                    i.action,
                    i.mode,
                    if holds.is_empty() {
                        String::new()
                    } else {
                        format!("held by: {}", holds.join(", "))
                    }
                );
            }
            for u in &req.report.directory_users {
                println!(
                    "  directory user {} {} {}",
                    u.id,
                    u.action,
                    u.reason.as_deref().unwrap_or_default()
                );
            }
            if args.dry_run {
                println!(
                    "dry run: nothing erased; run again with --resume {}",
                    req.id
                );
                return Ok(());
            }
            req.id
        }
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} recordings {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let done = erasure::execute(&env, t.id, id, ACTOR, Some(&progress)).await;
    bar.finish_and_clear();
    let done = done.with_context(|| {
        format!("the erasure stopped; run again with --resume {id} to continue")
    })?;
    println!("erasure {}: {}", done.id, done.status);
    for (rec, o) in &done.outcomes {
        let holds: Vec<_> = o.holds.iter().map(|h| h.case_name.as_str()).collect();
        println!("  recording {rec} {} {}", o.result, holds.join(", "));
    }
    if let Some(path) = &args.certificate
        && let Some(cert) = erasure::certificate(p.store.as_ref(), t.id, id).await?
    {
        // Crash-safe: a certificate is there whole or not at all.
        let target = path.clone();
        tokio::task::spawn_blocking(move || fsio::write_atomic(&target, cert.as_bytes()))
            .await
            .context("writing the certificate")?
            .with_context(|| format!("writing {}", path.display()))?;
        println!("certificate written to {}", path.display());
    }
    Ok(())
}
