//! `insights gdpr verify-certificate`: checks an erasure certificate's
//! signature (exit code 1 if it fails).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use gdpr_tools::certificate::{CertificateSigner, verify};
use insights_core::config::Settings;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The certificate file.
    pub file: PathBuf,
    /// The signer's public key (hex). Default: this installation's key.
    #[arg(long)]
    pub public_key: Option<String>,
}

pub fn verify_certificate(settings: &Settings, args: VerifyArgs) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let trusted = match args.public_key {
        Some(k) => Some(k),
        None => {
            let path = settings.spool.signing_key_file(&settings.key_file());
            if path.exists() {
                Some(CertificateSigner::open_or_create(path)?.public_key_hex())
            } else {
                None
            }
        }
    };
    let v = verify(&bytes, trusted.as_deref())?;
    println!(
        "certificate OK: request {} signed by installation {} (key {}){}",
        v.certificate["request_id"].as_str().unwrap_or("?"),
        v.installation_id,
        v.public_key,
        if trusted.is_none() {
            " — integrity only: no trusted key given"
        } else {
            ""
        }
    );
    Ok(())
}
