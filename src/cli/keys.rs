//! `insights keys shred`: crypto-shredding a data key, audited as the
//! actor `cli`; `insights keys export-public|rotate-signing`: the
//! signing keys (`signing.rs`).

use anyhow::Context as _;
use clap::Subcommand;
use insights_core::config::Settings;
use insights_core::domain::{AuditAction, KeyId, NewAuditEvent};
use insights_core::store::StoreError;

use super::lookup::find_tenant;
use crate::platform::Platform;

// `insights keys <command>`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Crypto-shred a data key: every copy of the media encrypted with it
    /// (backups included) becomes unreadable. Irreversible.
    Shred {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        /// The data key id (a recording's `data_key_id`).
        #[arg(long, value_name = "UUID")]
        key_id: KeyId,
    },
    /// Print every registered signing key (public halves) as JSON, for
    /// offline verification with `--trusted-keys`.
    ExportPublic,
    /// Make a new signing key for this node; the old one stays registered
    /// (retired) so the evidence it signed keeps verifying.
    RotateSigning,
}

/// Runs a `keys` subcommand.
pub async fn run(command: KeysCommand, settings: &Settings) -> anyhow::Result<()> {
    match command {
        KeysCommand::Shred { tenant, key_id } => shred(settings, &tenant, key_id).await,
        KeysCommand::ExportPublic => {
            let store = insights_stores::open_metadata(settings)
                .await
                .context("opening the metadata store")?;
            super::signing::export_public(store.as_ref()).await
        }
        KeysCommand::RotateSigning => {
            let store = insights_stores::open_metadata(settings)
                .await
                .context("opening the metadata store")?;
            super::signing::rotate_signing(settings, store.as_ref()).await
        }
    }
}

async fn shred(settings: &Settings, tenant: &str, key_id: KeyId) -> anyhow::Result<()> {
    let platform = Platform::open(settings).await?;
    let t = find_tenant(platform.store.as_ref(), tenant).await?;
    // The store refuses a key of a recording on legal hold, deciding in
    // the transaction that would delete it.
    let destroyed = match platform.store.shred_data_key(t.id, key_id).await {
        Ok(d) => d,
        Err(StoreError::Refused(why)) => {
            platform
                .store
                .append_audit(
                    t.id,
                    NewAuditEvent {
                        actor: "cli".into(),
                        action: AuditAction::KeyShred,
                        recording_id: None,
                        target: Some(key_id.to_string()),
                        reason: None,
                        source: None,
                        details: serde_json::json!({ "destroyed": false, "refused": "legal-hold" }),
                    },
                )
                .await?;
            anyhow::bail!("refused: {why}; lift the hold first");
        }
        Err(e) => return Err(e).context("shredding the data key"),
    };
    platform
        .store
        .append_audit(
            t.id,
            NewAuditEvent {
                actor: "cli".into(),
                action: AuditAction::KeyShred,
                recording_id: None,
                target: Some(key_id.to_string()),
                reason: None,
                source: None,
                details: serde_json::json!({ "destroyed": destroyed }),
            },
        )
        .await?;
    if destroyed {
        println!("data key {key_id} destroyed: media encrypted with it can no longer be read");
    } else {
        println!(
            "data key {key_id} was already destroyed (or never existed in tenant {})",
            t.name
        );
    }
    Ok(())
}
