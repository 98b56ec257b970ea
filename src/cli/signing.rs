//! Signing keys every node can verify: this node's key registered in the
//! metadata store, the trusted key set of `verify-recording` and
//! `gdpr verify-certificate` (the registry, or an exported file with
//! `--trusted-keys`), and `insights keys export-public|rotate-signing`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use bot_gateway::custody::InstallationKey;
use insights_core::config::Settings;
use insights_core::crypto::installation_key;
use insights_core::domain::{PublicKeySet, SigningKeyRecord};
use insights_core::store::MetadataStore;

/// The installation key file of this node.
pub fn key_file(settings: &Settings) -> PathBuf {
    settings.spool.signing_key_file(&settings.key_file())
}

/// This node's name: `node_name`, else the host name.
pub fn node_name(settings: &Settings) -> anyhow::Result<String> {
    match &settings.node_name {
        Some(n) => Ok(n.clone()),
        None => whoami::hostname().context("no node_name configured and no host name to use"),
    }
}

/// Opens (creating on first start) this node's signing key and registers
/// its public half. Refuses a key the registry says was rotated out: a
/// node never signs new evidence with a retired key.
pub async fn open_and_register(
    settings: &Settings,
    store: &dyn MetadataStore,
) -> anyhow::Result<InstallationKey> {
    let path = key_file(settings);
    let key = tokio::task::spawn_blocking(move || InstallationKey::open_or_create(path))
        .await
        .context("opening the installation signing key")?
        .context("opening the installation signing key")?;
    let registered = store
        .register_signing_key(&key.record(&node_name(settings)?))
        .await
        .context("registering this node's signing key")?;
    if let Some(until) = registered.valid_until {
        anyhow::bail!(
            "this node's signing key {} was retired at {until}; run `insights keys rotate-signing` to make a new one",
            registered.key_id
        );
    }
    tracing::info!(key_id = %registered.key_id, "signing key registered");
    Ok(key)
}

/// The keys evidence is checked against: the exported set in `file`, or
/// the registry (plus this node's installation key, if it has one, for
/// evidence written before keys were registered).
pub async fn trusted_keys(
    settings: &Settings,
    store: Option<&dyn MetadataStore>,
    file: Option<&Path>,
) -> anyhow::Result<PublicKeySet> {
    if let Some(file) = file {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        return PublicKeySet::from_json(&bytes)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{} is not an exported key set", file.display()));
    }
    let mut set = match store {
        Some(store) => PublicKeySet::new(
            store
                .list_signing_keys()
                .await
                .context("reading the signing-key registry")?,
        ),
        None => PublicKeySet::new(Vec::new()),
    };
    let path = key_file(settings);
    if path.exists() {
        let local = InstallationKey::open_or_create(&path)
            .context("opening the installation signing key")?;
        set.add(local.record(&node_name(settings)?));
    }
    Ok(set)
}

/// `insights keys export-public`: the registry as JSON on stdout.
pub async fn export_public(store: &dyn MetadataStore) -> anyhow::Result<()> {
    let set = PublicKeySet::new(
        store
            .list_signing_keys()
            .await
            .context("reading the signing-key registry")?,
    );
    print!("{}", set.to_json()?);
    Ok(())
}

/// `insights keys rotate-signing`: a new signing key for this node. The
/// old key's public half stays registered with `valid_until` set to the
/// new key's creation, so the evidence it signed before keeps verifying.
///
/// No restart: the whole rotation (file replaced, new key registered, old
/// one retired) happens under the exclusive lock of the key file, and a
/// running `insights serve` signs each manifest or certificate under the
/// shared lock after checking whether the file changed (see
/// [`installation_key`]): its next evidence is signed by the new key, and
/// nothing it signed with the old key is dated after the retirement.
pub async fn rotate_signing(settings: &Settings, store: &dyn MetadataStore) -> anyhow::Result<()> {
    let node = node_name(settings)?;
    let path = key_file(settings);
    // The key file must exist for its lock to sit beside it.
    let p = path.clone();
    let lock = tokio::task::spawn_blocking(move || {
        InstallationKey::open_or_create(&p)?;
        Ok::<_, anyhow::Error>(installation_key::lock(&p, true)?)
    })
    .await
    .context("locking the installation signing key")?
    .context("locking the installation signing key")?;
    // The old key is registered before its secret is replaced: whatever
    // happens next, the evidence it signed stays verifiable.
    let old = open_and_register(settings, store).await?;
    let old_record: SigningKeyRecord = old.record(&node);
    let p = path.clone();
    tokio::task::spawn_blocking(move || installation_key::rotate(p))
        .await
        .context("rotating the installation signing key")?
        .context("rotating the installation signing key")?;
    let new = InstallationKey::open_or_create(&path).context("reading the new signing key")?;
    let new_record = new.record(&node);
    store
        .register_signing_key(&new_record)
        .await
        .context("registering the new signing key")?;
    store
        .retire_signing_key(&old_record.key_id, new_record.valid_from)
        .await
        .context("retiring the old signing key")?;
    drop(lock);
    println!(
        "signing key rotated on node {node}: {} retired at {} (still verifies the evidence it signed before), {} signs from now on, also in this node's running services",
        old_record.key_id, new_record.valid_from, new_record.key_id
    );
    Ok(())
}
