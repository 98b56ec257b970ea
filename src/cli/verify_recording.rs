//! `insights verify-recording ID [--tenant T]`: a recording's chain of
//! custody checked offline (blobs, signed manifest, metadata).

use anyhow::Context;
use bot_gateway::custody::{self, InstallationKey};
use insights_core::config::Settings;
use insights_core::domain::RecordingId;

use super::lookup::{find_tenant, tenant_holding};
use crate::platform::Platform;

/// Runs `insights verify-recording`: prints the report, and fails (exit
/// code 1) if anything does not match.
pub async fn run(settings: &Settings, id: RecordingId, tenant: Option<&str>) -> anyhow::Result<()> {
    let platform = Platform::open(settings).await?;
    let tenant = match tenant {
        Some(t) => find_tenant(platform.store.as_ref(), t).await?,
        None => tenant_holding(platform.store.as_ref(), id).await?,
    };
    let signer =
        InstallationKey::open_or_create(settings.spool.signing_key_file(&settings.key_file()))
            .context("opening the installation signing key")?;
    let report = custody::verify_recording(
        platform.store.as_ref(),
        platform.blobs.as_ref(),
        platform.keys.as_ref(),
        &[signer.verifying_key()],
        tenant.id,
        id,
    )
    .await?;
    print!("{report}");
    if report.is_ok() {
        Ok(())
    } else {
        anyhow::bail!(
            "recording {id} failed verification ({} mismatches)",
            report.mismatches.len()
        )
    }
}
