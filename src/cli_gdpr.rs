//! `insights gdpr ...`: data-protection tools from the command line. Each
//! subcommand's code lives in a file of its own (`cli_retention.rs`, ...).

use clap::Subcommand;
use insights_core::config::Settings;

/// `insights gdpr <command>`.
#[derive(Debug, Subcommand)]
pub enum GdprCommand {
    /// Enforce the retention policies now (or, with --dry-run, report
    /// what would be deleted). Legal holds always win.
    Retention(crate::cli_retention::RetentionArgs),
}

/// Runs a `gdpr` subcommand.
pub async fn run(command: GdprCommand, settings: &Settings) -> anyhow::Result<()> {
    match command {
        GdprCommand::Retention(args) => crate::cli_retention::run(args, settings).await,
    }
}
