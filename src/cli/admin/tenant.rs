//! `insights admin tenant add|list`: tenants (customer organisations),
//! each created with its blob container, key-encryption key and the first
//! event of its audit chain.

use clap::Subcommand;
use insights_core::config::Settings;
use insights_core::domain::{NewTenant, Tenant};
use insights_core::store::StoreError;

use crate::platform::Platform;

// `insights admin tenant <command>`.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant with its blob container and key-encryption key.
    Add {
        /// Short unique name (a-z, 0-9, '-', '_').
        name: String,
        /// Entra ID tenant id that Teams notifications carry.
        #[arg(long, value_name = "GUID")]
        directory_tenant_id: Option<uuid::Uuid>,
    },
    /// List tenants.
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `insights admin tenant ...`.
pub async fn run(command: TenantCommand, settings: &Settings) -> anyhow::Result<()> {
    let platform = Platform::open(settings).await?;
    match command {
        TenantCommand::Add {
            name,
            directory_tenant_id,
        } => {
            let t = match platform
                .add_tenant(
                    NewTenant {
                        name: name.clone(),
                        directory_tenant_id,
                    },
                    "cli",
                )
                .await
            {
                Ok(t) => t,
                Err(e)
                    if matches!(
                        e.downcast_ref::<StoreError>(),
                        Some(StoreError::Conflict(_))
                    ) =>
                {
                    anyhow::bail!(
                        "a tenant named `{name}` or with that directory tenant id already exists"
                    )
                }
                Err(e) => return Err(e),
            };
            println!(
                "created tenant {} ({}), container {}",
                t.name,
                t.id,
                Tenant::container_name(t.id)
            );
        }
        TenantCommand::List { json } => {
            let tenants = platform.store.list_tenants().await?;
            if json {
                for t in &tenants {
                    println!("{}", serde_json::to_string(t)?);
                }
            } else {
                println!(
                    "{:<24} {:<36} {:<36} CREATED",
                    "NAME", "ID", "DIRECTORY TENANT"
                );
                for t in &tenants {
                    let dir = t
                        .directory_tenant_id
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "-".into());
                    println!(
                        "{:<24} {:<36} {:<36} {}",
                        t.name,
                        t.id,
                        dir,
                        t.created_at.format("%Y-%m-%d %H:%M:%SZ")
                    );
                }
            }
        }
    }
    Ok(())
}
