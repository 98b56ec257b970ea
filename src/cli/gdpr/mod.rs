//! `insights gdpr ...`: the DPO's tools on the command line. Each
//! subcommand's code lives in a file of its own: retention in
//! `retention.rs`; data-subject requests in `subject/`, one module per
//! verb (`find.rs`, `access.rs`, `erase.rs`, `verify.rs`).

use clap::Subcommand;
use insights_core::config::Settings;

pub mod retention;
pub mod subject;

/// `insights gdpr <command>`.
#[derive(Debug, Subcommand)]
pub enum GdprCommand {
    /// Enforce the retention policies now (or, with --dry-run, report
    /// what would be deleted). Legal holds always win.
    Retention(retention::RetentionArgs),
    /// Find a data subject: recordings (every participant role),
    /// directory users and audit events, with why each matched.
    Find(subject::FindArgs),
    /// Build a subject's access/portability bundle (zip with manifest).
    Access(subject::AccessArgs),
    /// Erase a subject: dry-run report, then execute (resumable) and
    /// write the signed certificate.
    Erase(subject::EraseArgs),
    /// Check an erasure certificate's signature (exit code 1 if it fails).
    VerifyCertificate(subject::VerifyArgs),
}

/// Runs a `gdpr` subcommand.
pub async fn run(command: GdprCommand, settings: &Settings) -> anyhow::Result<()> {
    use self::subject as s;
    match command {
        GdprCommand::Retention(args) => retention::run(args, settings).await,
        GdprCommand::Find(a) => s::find(settings, a).await,
        GdprCommand::Access(a) => s::access(settings, a).await,
        GdprCommand::Erase(a) => s::erase(settings, a).await,
        GdprCommand::VerifyCertificate(a) => s::verify_certificate(settings, a).await,
    }
}
