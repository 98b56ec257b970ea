//! `insights admin ...`: tenants (`admin tenant`, in `tenant`) and local
//! accounts (`admin user`, in `users`).

use clap::Subcommand;
use insights_core::config::Settings;

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
}

/// Runs an `admin` subcommand.
pub async fn run(command: AdminCommand, settings: &Settings) -> anyhow::Result<()> {
    match command {
        AdminCommand::Tenant { command } => tenant::run(command, settings).await,
        AdminCommand::User { command } => users::run(command, settings).await,
    }
}
