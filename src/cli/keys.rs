//! `insights keys`: crypto-shredding a data key (`shred`), creating a
//! tenant's key-encryption key explicitly (`ensure`), rotating it
//! (`rotate`) and moving an installation off the local key file
//! (`migrate --to database`), audited as the actor `cli`; the signing
//! keys: `export-public`, `rotate-signing` (`signing.rs`).

use std::io::IsTerminal as _;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use insights_core::config::Settings;
use insights_core::crypto::{CryptoError, LocalKeyFile, PLATFORM_KEY_OWNER, SealedSecret};
use insights_core::domain::{AuditAction, KeyId, NewAuditEvent, Realm, Tenant};
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
    /// Create a tenant's key-encryption key through the configured key
    /// provider, if it has none (`admin tenant add` does this for new
    /// tenants). Refused for a tenant that already has data, whose media a
    /// new KEK could not read, unless --accept-unreadable-data.
    Ensure {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        /// Create a KEK even though the tenant has data keys without one
        /// (their media stays unreadable; new calls are recorded again).
        #[arg(long)]
        accept_unreadable_data: bool,
    },
    /// Rotate a tenant's key-encryption key: a new KEK version, every data
    /// key of the tenant rewrapped under it in batches (no media is
    /// re-encrypted), then the old versions destroyed, unless recordings
    /// not yet stored (still in a node's spool) may use them: those are
    /// kept, and it says to run it again once they are stored. Resumable:
    /// run it again after an interruption and it carries on.
    Rotate {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        /// Data keys rewrapped per batch.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch: u32,
    },
    /// Move the installation's key-encryption keys off the local key file:
    /// each tenant's KEK is wrapped under the root key and stored in the
    /// metadata store, keeping its id, so no data key changes. Idempotent
    /// and resumable. Then set `[keys] provider = "database"` on every node.
    Migrate {
        /// The provider to move to.
        #[arg(long, value_enum)]
        to: MigrateTarget,
    },
}

/// Where `insights keys migrate` moves the KEKs.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum MigrateTarget {
    Database,
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
        KeysCommand::Ensure {
            tenant,
            accept_unreadable_data,
        } => ensure(settings, &tenant, accept_unreadable_data).await,
        KeysCommand::Rotate { tenant, batch } => rotate(settings, &tenant, batch).await,
        KeysCommand::Migrate {
            to: MigrateTarget::Database,
        } => migrate_to_database(settings).await,
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

async fn audit(
    platform: &Platform,
    tenant: &Tenant,
    details: serde_json::Value,
) -> anyhow::Result<()> {
    platform
        .store
        .append_audit(
            tenant.id,
            NewAuditEvent {
                actor: "cli".into(),
                action: AuditAction::KeyRotate,
                recording_id: None,
                target: Some(tenant.id.to_string()),
                reason: None,
                source: None,
                details,
            },
        )
        .await?;
    Ok(())
}

async fn ensure(settings: &Settings, tenant: &str, accept_unreadable: bool) -> anyhow::Result<()> {
    let platform = Platform::open(settings).await?;
    let t = find_tenant(platform.store.as_ref(), tenant).await?;
    match platform.keys.current_kek(t.id).await {
        Ok(id) => {
            println!("tenant {} has its key-encryption key {id}", t.name);
            return Ok(());
        }
        Err(CryptoError::NoKek(_)) => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("reading the key-encryption key of tenant {}", t.id));
        }
    }
    if platform.has_data_keys(t.id).await? && !accept_unreadable {
        anyhow::bail!(
            "tenant {} ({}) has data but no key-encryption key in the {} key provider: a new KEK \
             cannot read that data. Restore the KEK (or point this node at the provider that holds \
             it); --accept-unreadable-data creates a new one anyway",
            t.name,
            t.id,
            platform.keys.backend()
        );
    }
    let id = platform
        .keys
        .ensure_kek(t.id)
        .await
        .with_context(|| format!("creating the key-encryption key of tenant {}", t.id))?;
    audit(
        &platform,
        &t,
        serde_json::json!({ "step": "created", "kek_id": id, "provider": platform.keys.backend() }),
    )
    .await?;
    println!("tenant {}: key-encryption key {id} created", t.name);
    Ok(())
}

/// Progress of a rewrap: a bar on a terminal, plain lines otherwise.
enum Progress {
    Bar(indicatif::ProgressBar),
    Lines { total: u64, done: u64 },
}

impl Progress {
    fn new(total: u64) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "rewrapping data keys {bar:40} {pos}/{len} ({eta} left)",
            ) {
                bar.set_style(style);
            }
            Self::Bar(bar)
        } else {
            Self::Lines { total, done: 0 }
        }
    }

    fn add(&mut self, n: u64) {
        match self {
            Self::Bar(b) => b.inc(n),
            Self::Lines { total, done } => {
                *done += n;
                println!("rewrapped {done}/{total} data keys");
            }
        }
    }

    fn finish(self) {
        if let Self::Bar(b) = self {
            b.finish();
        }
    }
}

async fn rotate(settings: &Settings, tenant: &str, batch: u32) -> anyhow::Result<()> {
    let platform = Platform::open(settings).await?;
    let t = find_tenant(platform.store.as_ref(), tenant).await?;
    let keys = &platform.keys;
    // Step 1 (or the resumption of an interrupted rotation): the new
    // version is current from here on, on every node.
    let kek_id = keys
        .begin_rotation(t.id)
        .await
        .with_context(|| format!("rotating the key-encryption key of tenant {}", t.id))?;
    audit(
        &platform,
        &t,
        serde_json::json!({ "step": "begun", "kek_id": kek_id }),
    )
    .await?;
    // Step 2: rewrap in batches. Progress is the data itself: a key
    // already under the new version is not picked again, so a killed
    // run resumes where it stopped.
    let total = platform
        .store
        .count_data_keys_not_under(t.id, &kek_id)
        .await?;
    let mut progress = Progress::new(total);
    let mut rewrapped = 0u64;
    loop {
        let keys_batch = platform
            .store
            .data_keys_not_under(t.id, &kek_id, batch)
            .await?;
        if keys_batch.is_empty() {
            break;
        }
        let mut n = 0u64;
        for old in &keys_batch {
            let dk = keys
                .unwrap(old)
                .await
                .with_context(|| format!("unwrapping data key {} of tenant {}", old.id, t.id))?;
            let new = keys.wrap(t.id, &dk).await?;
            anyhow::ensure!(
                new.kek_id == kek_id,
                "the current key-encryption key of tenant {} changed during the rotation; run \
                 `insights keys rotate` again",
                t.id
            );
            if platform
                .store
                .rewrap_data_key(t.id, &new, &old.kek_id)
                .await?
            {
                n += 1;
            }
        }
        rewrapped += n;
        progress.add(keys_batch.len() as u64);
    }
    progress.finish();
    // The tenant's sealed secrets (TOTP seeds of its accounts) have data
    // keys of their own: rewrapped too, or their owners could no longer
    // sign in once the old version is gone.
    let realm = Realm::Tenant(t.id);
    let mut secrets = 0u64;
    for account in platform.store.list_accounts(realm).await? {
        for old in [account.totp.as_ref(), account.totp_pending.as_ref()]
            .into_iter()
            .flatten()
        {
            if old.key.kek_id == kek_id {
                continue;
            }
            let dk = keys
                .unwrap(&old.key)
                .await
                .with_context(|| format!("unwrapping a sealed secret of account {}", account.id))?;
            let new = SealedSecret {
                key: keys.wrap(t.id, &dk).await?,
                sealed: old.sealed.clone(),
            };
            if platform
                .store
                .rewrap_totp(realm, account.id, old, &new)
                .await?
            {
                secrets += 1;
            }
        }
    }
    // A call not yet stored has its data key, wrapped when the call began
    // (perhaps under an old version), only in a node's spool: the old
    // versions stay until it is stored, or that evidence could never be
    // decrypted. Counted before the stored keys are checked: a recording
    // stored after this count has its key in the store by then.
    let unstored = platform.store.count_unstored_recordings(t.id).await?;
    anyhow::ensure!(
        platform
            .store
            .count_data_keys_not_under(t.id, &kek_id)
            .await?
            == 0,
        "data keys of tenant {} are still under an old key-encryption key; run `insights keys \
         rotate` again",
        t.id
    );
    if unstored > 0 {
        audit(
            &platform,
            &t,
            serde_json::json!({ "step": "kept-old-versions", "kek_id": kek_id, "rewrapped": rewrapped, "sealed_secrets": secrets, "unstored_recordings": unstored }),
        )
        .await?;
        println!(
            "tenant {}: key-encryption key rotated to {kek_id}; {rewrapped} data keys rewrapped, \
             old version(s) kept: {unstored} recordings not yet stored still use the old \
             key-encryption key; run `insights keys rotate` again once they are stored",
            t.name
        );
        return Ok(());
    }
    // Step 3: nothing is left under an old version: destroy them.
    let destroyed = keys.finish_rotation(t.id).await?;
    audit(
        &platform,
        &t,
        serde_json::json!({ "step": "finished", "kek_id": kek_id, "rewrapped": rewrapped, "sealed_secrets": secrets, "destroyed_versions": destroyed }),
    )
    .await?;
    println!(
        "tenant {}: key-encryption key rotated to {kek_id}; {rewrapped} data keys rewrapped, \
         {destroyed} old version(s) destroyed",
        t.name
    );
    Ok(())
}

async fn migrate_to_database(settings: &Settings) -> anyhow::Result<()> {
    let store = insights_stores::open_metadata(settings)
        .await
        .context("opening the metadata store")?;
    let db = crate::platform::open_database_keys(settings, &store).await?;
    let path = settings.key_file();
    anyhow::ensure!(
        path.exists(),
        "no local key file at {}: nothing to migrate",
        path.display()
    );
    let local = LocalKeyFile::open(&path).context("opening the local key file")?;
    let tenants = store.list_tenants().await?;
    let (mut moved, mut present) = (0usize, 0usize);
    for (tenant, kek_id, kek) in local.export_keks().await? {
        let known = tenant == PLATFORM_KEY_OWNER || tenants.iter().any(|t| t.id == tenant);
        if !known {
            println!("skipping a key-encryption key of unknown tenant {tenant}");
            continue;
        }
        if db
            .import_kek(tenant, &kek_id, &kek)
            .await
            .with_context(|| format!("moving the key-encryption key of tenant {tenant}"))?
        {
            moved += 1;
        } else {
            present += 1;
        }
    }
    println!(
        "{moved} key-encryption key(s) moved to the database, {present} already there. Set \
         [keys] provider = \"database\" (with the same root key) on every node, then keep the \
         local key file {} offline until the nodes run on the database provider",
        path.display()
    );
    Ok(())
}
