//! `insights gdpr find|access|erase|verify-certificate`: data-subject
//! requests (GDPR Art. 15–17, 20) from the command line.
//!
//! Identifiers are given as flags (never logged); phone numbers without a
//! country code are read in `--default-region` (or
//! `INSIGHTS_GDPR_DEFAULT_REGION`). Every command acts as the actor `cli`
//! in the tenant's audit trail.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use gdpr_tools::access::{AccessEnv, AccessOptions, Requester, build_bundle};
use gdpr_tools::certificate::{CertificateSigner, verify, verify_trusting};
use gdpr_tools::erasure::{self, ErasureEnv};
use gdpr_tools::subject::{FindOptions, SubjectIdentifiers};
use indicatif::{ProgressBar, ProgressStyle};
use insights_core::config::Settings;
use insights_core::fsio;

use crate::cli::lookup::find_tenant;
use crate::platform::Platform;

const ACTOR: &str = "cli";

/// Who the subject is (any mix, at least one).
#[derive(Debug, Args)]
pub struct SubjectArgs {
    /// Tenant name or id.
    #[arg(long)]
    pub tenant: String,
    #[arg(long)]
    pub phone: Option<String>,
    #[arg(long)]
    pub email: Option<String>,
    #[arg(long)]
    pub upn: Option<String>,
    /// A `sip:` or `tel:` URI.
    #[arg(long)]
    pub uri: Option<String>,
    /// Entra object id or directory user id.
    #[arg(long)]
    pub directory_id: Option<String>,
    /// Full name (matched whole, case-insensitively).
    #[arg(long)]
    pub name: Option<String>,
    /// Region (ISO 3166, e.g. DE) for phone numbers without country code.
    #[arg(long, env = "INSIGHTS_GDPR_DEFAULT_REGION")]
    pub default_region: Option<String>,
}

impl SubjectArgs {
    fn identifiers(&self) -> SubjectIdentifiers {
        SubjectIdentifiers {
            phone: self.phone.clone(),
            email: self.email.clone(),
            upn: self.upn.clone(),
            uri: self.uri.clone(),
            directory_id: self.directory_id.clone(),
            name: self.name.clone(),
        }
    }
    fn options(&self) -> FindOptions {
        FindOptions {
            default_region: self.default_region.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct FindArgs {
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// Print `{"matches":[...]}` as JSON.
    #[arg(long)]
    pub json: bool,
}

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

#[derive(Debug, Args)]
pub struct EraseArgs {
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// Why (ticket number, legal basis); kept in the audit trail and the
    /// certificate.
    #[arg(long)]
    pub reason: Option<String>,
    /// Only record the request and print the report.
    #[arg(long)]
    pub dry_run: bool,
    /// Execute (or resume) an existing request instead of a new one.
    #[arg(long, value_name = "REQUEST_ID")]
    pub resume: Option<uuid::Uuid>,
    /// Write the signed certificate here.
    #[arg(long, value_name = "FILE")]
    pub certificate: Option<PathBuf>,
}

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

/// This node's certificate signer, registered in the signing-key registry
/// first (so the certificate verifies on every node).
async fn signer(settings: &Settings, p: &Platform) -> anyhow::Result<CertificateSigner> {
    crate::cli::signing::open_and_register(settings, p.store.as_ref()).await?;
    let path = crate::cli::signing::key_file(settings);
    Ok(CertificateSigner::open_or_create(path)?)
}

pub async fn find(settings: &Settings, args: FindArgs) -> anyhow::Result<()> {
    let p = Platform::open(settings).await?;
    let t = find_tenant(p.store.as_ref(), &args.subject.tenant).await?;
    let found = gdpr_tools::subject::find(
        p.store.as_ref(),
        t.id,
        &args.subject.identifiers(),
        &args.subject.options(),
    )
    .await?;
    let matches = found.matches();
    p.store
        .append_audit(
            t.id,
            insights_core::domain::NewAuditEvent {
                actor: ACTOR.into(),
                action: insights_core::domain::AuditAction::Search,
                recording_id: None,
                target: Some("gdpr-find".into()),
                reason: None,
                source: None,
                details: serde_json::json!({"gdpr_find": true, "matches": matches.len()}),
            },
        )
        .await?;
    if args.json {
        println!("{}", serde_json::json!({ "matches": matches }));
        return Ok(());
    }
    println!("{} match(es) in tenant {}", matches.len(), t.name);
    for m in matches {
        let reasons: Vec<String> = m
            .reasons
            .iter()
            .map(|r| match &r.role {
                Some(role) => format!("{} as {role} = {}", r.field, r.matched),
                None => format!("{} = {}", r.field, r.matched),
            })
            .collect();
        let when = m.started_at.map(|t| t.to_rfc3339()).unwrap_or_default();
        println!("{:<15} {} {when}  {}", m.kind, m.id, reasons.join("; "));
    }
    Ok(())
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

pub async fn erase(settings: &Settings, args: EraseArgs) -> anyhow::Result<()> {
    let p = Platform::open(settings).await?;
    let t = find_tenant(p.store.as_ref(), &args.subject.tenant).await?;
    let signer = signer(settings, &p).await?;
    let env = ErasureEnv {
        store: p.store.as_ref(),
        blobs: p.blobs.as_ref(),
        signer: &signer,
        // Removes spool copies only while no gateway holds the spool.
        spool: Some(std::sync::Arc::new(bot_gateway::spool::SpoolDir::new(
            settings.spool.dir(&settings.data_dir),
        ))),
        bundle_dir: Some(settings.data_dir.join("gdpr").join("bundles")),
        find: args.subject.options(),
    };
    let id = match args.resume {
        Some(id) => id,
        None => {
            let reason = args
                .reason
                .as_deref()
                .context("--reason is required for a new erasure request")?;
            let req =
                erasure::request(&env, t.id, &args.subject.identifiers(), reason, ACTOR).await?;
            println!("erasure request {} (waiver: {})", req.id, req.report.waiver);
            for i in &req.report.recordings {
                let holds: Vec<_> = i.holds.iter().map(|h| h.case_name.as_str()).collect();
                println!(
                    "  recording {} {:<27} {:<16} {}",
                    i.id,
                    i.action,
                    i.mode,
                    if holds.is_empty() {
                        String::new()
                    } else {
                        format!("held by: {}", holds.join(", "))
                    }
                );
            }
            for u in &req.report.directory_users {
                println!(
                    "  directory user {} {} {}",
                    u.id,
                    u.action,
                    u.reason.as_deref().unwrap_or_default()
                );
            }
            if args.dry_run {
                println!(
                    "dry run: nothing erased; run again with --resume {}",
                    req.id
                );
                return Ok(());
            }
            req.id
        }
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} recordings {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let done = erasure::execute(&env, t.id, id, ACTOR, Some(&progress)).await;
    bar.finish_and_clear();
    let done = done.with_context(|| {
        format!("the erasure stopped; run again with --resume {id} to continue")
    })?;
    println!("erasure {}: {}", done.id, done.status);
    for (rec, o) in &done.outcomes {
        let holds: Vec<_> = o.holds.iter().map(|h| h.case_name.as_str()).collect();
        println!("  recording {rec} {} {}", o.result, holds.join(", "));
    }
    if let Some(path) = &args.certificate
        && let Some(cert) = erasure::certificate(p.store.as_ref(), t.id, id).await?
    {
        // Crash-safe: a certificate is there whole or not at all.
        let target = path.clone();
        tokio::task::spawn_blocking(move || fsio::write_atomic(&target, cert.as_bytes()))
            .await
            .context("writing the certificate")?
            .with_context(|| format!("writing {}", path.display()))?;
        println!("certificate written to {}", path.display());
    }
    Ok(())
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
