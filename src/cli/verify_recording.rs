//! `insights verify-recording ID [--tenant T]`: a recording's chain of
//! custody checked offline (blobs, signed manifest, metadata).

use anyhow::Context;
use bot_gateway::custody::{self, InstallationKey};
use insights_core::config::Settings;
use insights_core::domain::RecordingId;
use insights_core::store::StoreError;

use super::lookup::find_tenant;
use crate::platform::Platform;

/// Runs `insights verify-recording`: prints the report, and fails (exit
/// code 1) if anything does not match.
pub async fn run(settings: &Settings, id: RecordingId, tenant: Option<&str>) -> anyhow::Result<()> {
    let platform = Platform::open(settings).await?;
    let tenant = match tenant {
        Some(t) => find_tenant(&platform, t).await?,
        None => {
            let mut found = None;
            for t in platform.store.list_tenants().await? {
                match platform.store.get_recording(t.id, id).await {
                    Ok(_) => {
                        found = Some(t);
                        break;
                    }
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            found.ok_or_else(|| anyhow::anyhow!("no recording {id} in any tenant"))?
        }
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
