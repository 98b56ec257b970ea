//! `insights gdpr access`: a subject's access/portability bundle (zip
//! with manifest), written crash-safely.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use gdpr_tools::access::{AccessEnv, AccessOptions, Requester, build_bundle};
use indicatif::ProgressBar;
use insights_core::config::Settings;
use insights_core::fsio;

use super::{ACTOR, SubjectArgs};
use crate::cli::lookup::find_tenant;
use crate::platform::Platform;

#[derive(Debug, Args)]
pub struct AccessArgs {
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// Where to write the zip bundle.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Include the decrypted media.
    #[arg(long)]
    pub include_media: bool,
    /// Columns of the recordings list, comma separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// Show other parties' personal data instead of masking it.
    #[arg(long)]
    pub no_mask: bool,
    /// Why (ticket number, legal basis); kept in the audit trail.
    #[arg(long)]
    pub reason: Option<String>,
}

pub async fn access(settings: &Settings, args: AccessArgs) -> anyhow::Result<()> {
    let p = Platform::open(settings).await?;
    let t = find_tenant(p.store.as_ref(), &args.subject.tenant).await?;
    let env = AccessEnv {
        store: p.store.as_ref(),
        blobs: p.blobs.as_ref(),
        keys: p.keys.as_ref(),
        find: args.subject.options(),
    };
    let opts = AccessOptions {
        include_media: args.include_media,
        columns: args.columns.clone(),
        mask_others: !args.no_mask,
        media_max_secs: settings.gdpr.bundle_media_max_secs,
    };
    let dir = args
        .out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let tmp = tempfile::NamedTempFile::new_in(&dir).context("creating the bundle file")?;
    let spinner = ProgressBar::new_spinner().with_message("building the bundle");
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let mut writer = std::io::BufWriter::new(tmp.reopen()?);
    let who = Requester {
        actor: ACTOR.into(),
        reason: args.reason.clone(),
        source: None,
        bundle_id: None,
        rerun: false,
    };
    let (summary, _) = build_bundle(
        &env,
        t.id,
        &args.subject.identifiers(),
        &opts,
        &who,
        &mut writer,
    )
    .await?;
    spinner.finish_and_clear();
    // The last buffered bytes: an error here (disk full) must fail the
    // command, where dropping the BufWriter would have ignored it.
    writer.flush().context("writing the bundle")?;
    drop(writer);
    // The crash-safe protocol of `insights_core::fsio` (temporary file
    // beside the target, fsync, rename, fsync of the directory), done
    // here by hand only because the bundle is streamed, not held in
    // memory: a crash leaves the old file or the whole bundle, never a
    // truncated zip under the requested name.
    let out = args.out.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        tmp.as_file().sync_all()?;
        tmp.persist(&out)
            .with_context(|| format!("writing {}", out.display()))?;
        fsio::sync_dir(&dir).with_context(|| format!("syncing {}", dir.display()))
    })
    .await
    .context("writing the bundle")??;
    println!(
        "wrote {}: {} recording(s), {} transcript segment(s), {} media file(s), {} files in the manifest",
        args.out.display(),
        summary.recordings.len(),
        summary.segments,
        summary.media_files,
        summary.files.len()
    );
    Ok(())
}
