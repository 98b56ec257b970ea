//! `insights keys`: crypto-shredding a data key (`shred`), creating a
//! tenant's key-encryption key explicitly (`ensure`), rotating it
//! (`rotate`, every provider) and moving an installation to another
//! provider (`migrate --to database|azure-key-vault`), audited as the
//! actor `cli`; the signing keys: `export-public`, `rotate-signing`
//! (`signing.rs`).
//!
//! Rotation and the move to the vault share one rewrap loop
//! ([`rewrap_owner`]): every data key of a tenant not yet under the
//! target key-encryption key, in batches, then the sealed secrets (TOTP
//! seeds) of its accounts. Progress is the data itself (a key under the
//! target is not picked again), so a killed run resumes where it stopped.

use std::io::IsTerminal as _;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use insights_core::config::KeyProviderKind;
use insights_core::config::Settings;
use insights_core::crypto::{
    CryptoError, DataKey, KeyProvider, LocalKeyFile, PLATFORM_KEY_OWNER, SealedSecret,
    WrappedDataKey,
};
use insights_core::domain::{
    AuditAction, FileJobState, KeyId, NewAuditEvent, Realm, Tenant, TenantId,
};
use insights_core::store::{MetadataStore, StoreError};
use insights_http::key_vault::AzureKeyVaultProvider;

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
    /// Rotate a tenant's key-encryption key: a new KEK version (local-file:
    /// in the key file; database: a new row; azure-key-vault: a new
    /// version of the tenant's vault key), every data key and sealed
    /// secret of the tenant rewrapped under it in batches (no media is
    /// re-encrypted), then the old versions destroyed (azure-key-vault:
    /// disabled), unless recordings not yet stored (still in a node's
    /// spool) may use them: those are kept, and it says to run it again
    /// once they are stored. Resumable: run it again after an
    /// interruption and it carries on.
    Rotate {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        /// Data keys rewrapped per batch.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch: u32,
    },
    /// Move the installation to another key provider. `--to database`:
    /// each tenant's KEK is taken from the local key file, wrapped under
    /// the root key and stored in the metadata store, keeping its id, so
    /// no data key changes. `--to azure-key-vault` (run with `[keys]
    /// provider` still local-file or database, and `[keys.azure_key_vault]`
    /// set): every data key and sealed secret of every tenant is unwrapped
    /// by the current provider and wrapped again by the tenant's vault key
    /// (created if missing), in batches, with progress. Both are
    /// idempotent and resumable. Then set `[keys] provider` to the target
    /// on every node.
    Migrate {
        /// The provider to move to.
        #[arg(long, value_enum)]
        to: MigrateTarget,
        /// Data keys rewrapped per batch (azure-key-vault).
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch: u32,
    },
}

/// Where `insights keys migrate` moves the KEKs.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum MigrateTarget {
    Database,
    AzureKeyVault,
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
            ..
        } => migrate_to_database(settings).await,
        KeysCommand::Migrate {
            to: MigrateTarget::AzureKeyVault,
            batch,
        } => migrate_to_vault(settings, batch).await,
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
    audit_in(platform.store.as_ref(), tenant, details).await
}

async fn audit_in(
    store: &dyn MetadataStore,
    tenant: &Tenant,
    details: serde_json::Value,
) -> anyhow::Result<()> {
    store
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
    let rewrap = Rewrap {
        from: keys.as_ref(),
        vault: None,
        to: keys.as_ref(),
    };
    let (rewrapped, secrets) = rewrap_owner(
        platform.store.as_ref(),
        &rewrap,
        &t,
        &kek_id,
        batch,
        "insights keys rotate",
    )
    .await?;
    // Export and access-bundle files kept for download: a finished one's
    // wrapped key (the only copy) is rewrapped; a running one wraps its
    // key when it starts and stores it when it ends, so it holds the old
    // versions back like an unstored call.
    let (files, running) = rewrap_file_jobs(platform.store.as_ref(), &rewrap, &t, &kek_id).await?;
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
    if unstored > 0 || running > 0 {
        audit(
            &platform,
            &t,
            serde_json::json!({ "step": "kept-old-versions", "kek_id": kek_id, "rewrapped": rewrapped, "sealed_secrets": secrets, "file_keys": files, "unstored_recordings": unstored, "running_file_jobs": running }),
        )
        .await?;
        println!(
            "tenant {}: key-encryption key rotated to {kek_id}; {rewrapped} data keys rewrapped, \
             old version(s) kept: {unstored} recordings not yet stored and {running} export or \
             access-bundle jobs still running may use the old key-encryption key; run \
             `insights keys rotate` again once they are stored and finished",
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
    // The vault disables old key versions; the other providers delete them.
    let gone = if keys.backend() == "azure-key-vault" {
        "disabled"
    } else {
        "destroyed"
    };
    println!(
        "tenant {}: key-encryption key rotated to {kek_id}; {rewrapped} data keys rewrapped, \
         {destroyed} old version(s) {gone}",
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

/// Who unwraps and who wraps during a rewrap: one provider (rotation), or,
/// on the way to the vault, the source provider for data keys not yet
/// there and the vault for those already moved (a run resumed after the
/// vault key was rotated).
struct Rewrap<'a> {
    from: &'a dyn KeyProvider,
    vault: Option<&'a AzureKeyVaultProvider>,
    to: &'a dyn KeyProvider,
}

impl Rewrap<'_> {
    async fn unwrap(&self, w: &WrappedDataKey) -> Result<DataKey, CryptoError> {
        match self.vault {
            Some(v) if v.wraps(w) => v.unwrap(w).await,
            _ => self.from.unwrap(w).await,
        }
    }

    /// Wraps `dk` for `owner`, checking it lands under `target`.
    async fn wrap(
        &self,
        owner: TenantId,
        dk: &DataKey,
        target: &str,
        again: &str,
    ) -> anyhow::Result<WrappedDataKey> {
        let new = self.to.wrap(owner, dk).await?;
        anyhow::ensure!(
            new.kek_id == target,
            "the current key-encryption key of tenant {owner} changed while its keys were \
             rewrapped; run `{again}` again"
        );
        Ok(new)
    }
}

/// Rewraps every data key of `tenant` not under `target`, in batches of
/// `batch` (progress shown), then the sealed secrets of its accounts.
/// Returns how many data keys and secrets were rewrapped.
async fn rewrap_owner(
    store: &dyn MetadataStore,
    rewrap: &Rewrap<'_>,
    t: &Tenant,
    target: &str,
    batch: u32,
    again: &str,
) -> anyhow::Result<(u64, u64)> {
    let total = store.count_data_keys_not_under(t.id, target).await?;
    let mut progress = Progress::new(total);
    let mut rewrapped = 0u64;
    loop {
        let keys_batch = store.data_keys_not_under(t.id, target, batch).await?;
        if keys_batch.is_empty() {
            break;
        }
        let mut n = 0u64;
        for old in &keys_batch {
            let dk = rewrap
                .unwrap(old)
                .await
                .with_context(|| format!("unwrapping data key {} of tenant {}", old.id, t.id))?;
            let new = rewrap.wrap(t.id, &dk, target, again).await?;
            if store.rewrap_data_key(t.id, &new, &old.kek_id).await? {
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
    let secrets = rewrap_secrets(store, rewrap, Realm::Tenant(t.id), target, again).await?;
    Ok((rewrapped, secrets))
}

/// Rewraps the keys of the tenant's finished export and access-bundle
/// files not under `target`; returns how many were rewrapped and how many
/// jobs are still running (their keys are not stored yet).
async fn rewrap_file_jobs(
    store: &dyn MetadataStore,
    rewrap: &Rewrap<'_>,
    t: &Tenant,
    target: &str,
) -> anyhow::Result<(u64, u64)> {
    let (mut rewrapped, mut running) = (0u64, 0u64);
    for job in store.list_file_jobs(t.id).await? {
        if job.state == FileJobState::Running {
            running += 1;
            continue;
        }
        let Some(output) = job.output.as_ref() else {
            continue;
        };
        if output.data_key.kek_id == target {
            continue;
        }
        let dk = rewrap.unwrap(&output.data_key).await.with_context(|| {
            format!(
                "unwrapping the key of file job {} of tenant {}",
                job.id, t.id
            )
        })?;
        let new = rewrap
            .wrap(t.id, &dk, target, "insights keys rotate")
            .await?;
        if store
            .rewrap_file_job_key(t.id, job.id, &output.data_key.kek_id, &new)
            .await?
        {
            rewrapped += 1;
        }
    }
    Ok((rewrapped, running))
}

/// Rewraps the sealed secrets (TOTP seeds, pending and enrolled) of the
/// accounts of `realm` not under `target`.
async fn rewrap_secrets(
    store: &dyn MetadataStore,
    rewrap: &Rewrap<'_>,
    realm: Realm,
    target: &str,
    again: &str,
) -> anyhow::Result<u64> {
    let mut secrets = 0u64;
    for account in store.list_accounts(realm).await? {
        for old in [account.totp.as_ref(), account.totp_pending.as_ref()]
            .into_iter()
            .flatten()
        {
            if old.key.kek_id == target {
                continue;
            }
            let dk = rewrap
                .unwrap(&old.key)
                .await
                .with_context(|| format!("unwrapping a sealed secret of account {}", account.id))?;
            let new = SealedSecret {
                key: rewrap.wrap(old.key.tenant_id, &dk, target, again).await?,
                sealed: old.sealed.clone(),
            };
            if store.rewrap_totp(realm, account.id, old, &new).await? {
                secrets += 1;
            }
        }
    }
    Ok(secrets)
}

/// `insights keys migrate --to azure-key-vault`: see [`KeysCommand::Migrate`].
async fn migrate_to_vault(settings: &Settings, batch: u32) -> anyhow::Result<()> {
    let source = settings.keys.provider;
    anyhow::ensure!(
        source != KeyProviderKind::AzureKeyVault,
        "`insights keys migrate --to azure-key-vault` unwraps the data keys with the provider \
         that holds them now: run it with `[keys] provider` still set to local-file or database \
         (and `[keys.azure_key_vault]` set), then switch the provider"
    );
    settings
        .keys
        .azure_key_vault
        .validate(settings.allow_insecure_http)?;
    let platform = Platform::open(settings).await?;
    let vault = insights_http::key_vault::from_settings(settings)
        .context("opening the Azure Key Vault key provider")?;
    let from = platform.keys.as_ref();
    let rewrap = Rewrap {
        from,
        vault: Some(&vault),
        to: &vault,
    };
    let again = "insights keys migrate --to azure-key-vault";
    let (mut tenants, mut data_keys, mut secrets, mut unstored) = (0usize, 0u64, 0u64, 0u64);
    for t in platform.store.list_tenants().await? {
        // The tenant's vault key: made now if it has none (the operator's
        // explicit move), read otherwise.
        let kid = vault
            .ensure_kek(t.id)
            .await
            .with_context(|| format!("the vault key of tenant {}", t.id))?;
        println!("tenant {}: moving its data keys to the vault", t.name);
        let (n, s) = rewrap_owner(platform.store.as_ref(), &rewrap, &t, &kid, batch, again).await?;
        let left = platform.store.count_data_keys_not_under(t.id, &kid).await?;
        anyhow::ensure!(
            left == 0,
            "{left} data keys of tenant {} are not under its vault key yet; run `{again}` again",
            t.id
        );
        // Finished export and bundle files move too; running ones store
        // a key of the source provider when they end.
        let (files, running) = rewrap_file_jobs(platform.store.as_ref(), &rewrap, &t, &kid).await?;
        // Calls not yet stored keep their data key, wrapped by the source
        // provider, in a node's spool until they are stored.
        let waiting = platform.store.count_unstored_recordings(t.id).await? + running;
        audit(
            &platform,
            &t,
            serde_json::json!({ "step": "migrated", "from": from.backend(), "to": vault.backend(), "kek_id": kid, "rewrapped": n, "sealed_secrets": s, "file_keys": files, "unstored_recordings": waiting - running, "running_file_jobs": running }),
        )
        .await?;
        tenants += 1;
        data_keys += n;
        secrets += s;
        unstored += waiting;
    }
    // The platform operators' sealed secrets, under the reserved owner.
    let operators = platform.store.list_accounts(Realm::Platform).await?;
    let sealed = operators
        .iter()
        .flat_map(|a| [a.totp.as_ref(), a.totp_pending.as_ref()])
        .flatten()
        .any(|s| s.key.tenant_id == PLATFORM_KEY_OWNER);
    if sealed {
        let kid = vault
            .ensure_kek(PLATFORM_KEY_OWNER)
            .await
            .context("the vault key of the platform operators' secrets")?;
        secrets += rewrap_secrets(
            platform.store.as_ref(),
            &rewrap,
            Realm::Platform,
            &kid,
            again,
        )
        .await?;
    }
    if unstored > 0 {
        println!(
            "{tenants} tenant(s): {data_keys} data keys and {secrets} sealed secrets moved to the \
             vault, but {unstored} recordings (or export and access-bundle jobs) are not stored \
             (finished) yet: their data keys are under the {} provider. Keep `[keys] provider` as \
             it is until they are stored, then run `{again}` again",
            from.backend()
        );
        return Ok(());
    }
    println!(
        "{tenants} tenant(s): {data_keys} data keys and {secrets} sealed secrets moved to the \
         vault; every data key is under its tenant's vault key. Set [keys] provider = \
         \"azure-key-vault\" on every node (stop them, switch, start them), then keep the {} \
         provider's keys offline until the nodes run on the vault",
        from.backend()
    );
    Ok(())
}
