//! `insights verify-recording ID [--tenant T] [--trusted-keys FILE]`: a
//! recording's chain of custody checked offline (blobs, signed manifest,
//! metadata); the signer is checked against the signing-key registry, or
//! against an exported key set.

use std::path::Path;

use bot_gateway::custody;
use insights_core::config::Settings;
use insights_core::domain::RecordingId;

use super::lookup::{find_tenant, tenant_holding};
use crate::platform::Platform;

/// Runs `insights verify-recording`: prints the report, and fails (exit
/// code 1) if anything does not match.
pub async fn run(
    settings: &Settings,
    id: RecordingId,
    tenant: Option<&str>,
    trusted_keys: Option<&Path>,
) -> anyhow::Result<()> {
    let platform = Platform::open(settings).await?;
    let tenant = match tenant {
        Some(t) => find_tenant(platform.store.as_ref(), t).await?,
        None => tenant_holding(platform.store.as_ref(), id).await?,
    };
    let trusted =
        super::signing::trusted_keys(settings, Some(platform.store.as_ref()), trusted_keys).await?;
    let report = custody::verify_recording_trusting(
        platform.store.as_ref(),
        platform.blobs.as_ref(),
        platform.keys.as_ref(),
        &trusted,
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
