//! `insights gdpr verify-certificate`: checks an erasure certificate's
//! signature (exit code 1 if it fails).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use gdpr_tools::certificate::{verify, verify_trusting};
use insights_core::config::Settings;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The certificate file.
    pub file: PathBuf,
    /// Trust only this public key (hex).
    #[arg(long, conflicts_with = "trusted_keys")]
    pub public_key: Option<String>,
    /// Trust the signing keys in this file (`insights keys
    /// export-public`): offline, without the metadata store. Default: the
    /// metadata store's signing-key registry.
    #[arg(long, value_name = "FILE")]
    pub trusted_keys: Option<PathBuf>,
}

pub async fn verify_certificate(settings: &Settings, args: VerifyArgs) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let v = match (&args.public_key, &args.trusted_keys) {
        (Some(k), _) => verify(&bytes, Some(k))?,
        (None, Some(file)) => {
            let set = crate::cli::signing::trusted_keys(settings, None, Some(file)).await?;
            verify_trusting(&bytes, &set)?
        }
        (None, None) => {
            let store = insights_stores::open_metadata(settings)
                .await
                .context("opening the metadata store")?;
            let set =
                crate::cli::signing::trusted_keys(settings, Some(store.as_ref()), None).await?;
            verify_trusting(&bytes, &set)?
        }
    };
    println!(
        "certificate OK: request {} signed by installation {} (key {}{})",
        v.certificate["request_id"].as_str().unwrap_or("?"),
        v.installation_id,
        v.key_id.as_deref().unwrap_or("without id"),
        format_args!(", public key {}", v.public_key),
    );
    Ok(())
}
