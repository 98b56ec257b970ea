//! `insights admin ...`: tenants (`admin tenant`, in `tenant`), local
//! accounts (`admin user`, in `users`) and a tenant's recording policy
//! (`admin policy`, in `policy`) and the completeness reconciliation
//! (`admin completeness`, in `completeness`).

use clap::Subcommand;
use insights_core::config::Settings;

pub mod completeness;
pub mod policy;
pub mod setup;
pub mod tenant;
pub mod users;

// `insights admin <command>`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Tenants (customer organisations).
    Tenant {
        #[command(subcommand)]
        command: tenant::TenantCommand,
    },
    /// Local accounts (tenant users, platform operators).
    User {
        #[command(subcommand)]
        command: users::UserCommand,
    },
    /// A tenant's recording policy: which calls are recorded, and what
    /// happens when recording cannot proceed.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// The completeness reconciliation against Microsoft's call records:
    /// run a period, show its outcome, set the alert threshold.
    Completeness {
        #[command(subcommand)]
        command: completeness::CompletenessCommand,
    },
}

/// Runs an `admin` subcommand.
pub async fn run(command: AdminCommand, settings: &Settings) -> anyhow::Result<()> {
    match command {
        AdminCommand::Tenant { command } => tenant::run(command, settings).await,
        AdminCommand::User { command } => users::run(command, settings).await,
        AdminCommand::Policy { command } => policy::run(command, settings).await,
        AdminCommand::Completeness { command } => completeness::run(command, settings).await,
    }
}
