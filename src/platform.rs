//! Opening the platform's backends from settings, and the start-up
//! reconciliation shared by every subcommand.

use std::sync::Arc;

use anyhow::Context;
use insights_core::blob::BlobStore;
use insights_core::config::{KeyProviderKind, Settings};
use insights_core::crypto::{CryptoError, DatabaseKeyProvider, KeyProvider, LocalKeyFile, RootKey};
use insights_core::domain::{AuditAction, NewAuditEvent, NewTenant, Tenant, validate_tenant_name};
use insights_core::store::MetadataStore;

/// The three backends every service works through.
#[derive(Clone)]
pub struct Platform {
    pub store: Arc<dyn MetadataStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub keys: Arc<dyn KeyProvider>,
}

impl Platform {
    /// Opens (and on first start creates) the metadata store, the blob
    /// store and the key provider chosen by `settings`.
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        let store = insights_stores::open_metadata(settings)
            .await
            .context("opening the metadata store")?;
        // The key provider before anything else: a node with the wrong
        // root key stops here, having written nothing.
        let keys = open_keys(settings, &store).await?;
        let blobs = insights_stores::open_blobs(settings).context("opening the blob store")?;
        Ok(Self { store, blobs, keys })
    }

    /// Makes sure every tenant has its blob container, and a key-encryption
    /// key if it has no data yet (heals a tenant whose provisioning was
    /// interrupted). A tenant that has data keys but no KEK gets none: a
    /// new KEK could not read its media, and inventing one here would hide
    /// the loss; the alarm is raised instead (its recordings are refused)
    /// and `insights keys ensure` is the operator's explicit decision.
    pub async fn reconcile_tenants(&self) -> anyhow::Result<()> {
        for t in self.store.list_tenants().await? {
            match self.keys.current_kek(t.id).await {
                Ok(_) => {}
                Err(CryptoError::NoKek(_)) if !self.has_data_keys(t.id).await? => {
                    self.create_kek(&t).await?;
                }
                Err(e) => {
                    // Alarm (error log, metric); the node serves the
                    // other tenants.
                    insights_core::crypto::key_alarm(self.keys.backend(), t.id, &e);
                    tracing::warn!(
                        tenant = %t.id,
                        "calls of this tenant are refused until it has a usable key-encryption \
                         key (see `insights keys ensure`)"
                    );
                }
            }
            self.ensure_container(&t).await?;
        }
        Ok(())
    }

    /// Whether the tenant has any wrapped data key (any media or sealed
    /// data of its own).
    pub async fn has_data_keys(
        &self,
        tenant: insights_core::domain::TenantId,
    ) -> anyhow::Result<bool> {
        Ok(!self
            .store
            .data_keys_not_under(tenant, "", 1)
            .await
            .context("reading the tenant's data keys")?
            .is_empty())
    }

    async fn create_kek(&self, t: &Tenant) -> anyhow::Result<()> {
        self.keys
            .ensure_kek(t.id)
            .await
            .with_context(|| format!("creating the key-encryption key of tenant {}", t.id))?;
        Ok(())
    }

    async fn ensure_container(&self, t: &Tenant) -> anyhow::Result<()> {
        self.blobs
            .ensure_container(&Tenant::container_name(t.id))
            .await
            .with_context(|| format!("creating the blob container of tenant {}", t.id))?;
        Ok(())
    }

    async fn provision(&self, t: &Tenant) -> anyhow::Result<()> {
        self.keys
            .ensure_kek(t.id)
            .await
            .with_context(|| format!("creating the key-encryption key of tenant {}", t.id))?;
        self.blobs
            .ensure_container(&Tenant::container_name(t.id))
            .await
            .with_context(|| format!("creating the blob container of tenant {}", t.id))?;
        Ok(())
    }

    /// Creates a tenant with its blob container and key-encryption key,
    /// and opens its audit chain with the creation event.
    pub async fn add_tenant(&self, new: NewTenant, actor: &str) -> anyhow::Result<Tenant> {
        validate_tenant_name(&new.name).map_err(anyhow::Error::msg)?;
        let tenant = self
            .store
            .create_tenant(new)
            .await
            .context("creating the tenant")?;
        self.provision(&tenant).await?;
        self.store
            .append_audit(
                tenant.id,
                NewAuditEvent {
                    actor: actor.to_owned(),
                    action: AuditAction::TenantCreate,
                    recording_id: None,
                    target: Some(tenant.id.to_string()),
                    reason: None,
                    source: None,
                    details: serde_json::json!({ "container": Tenant::container_name(tenant.id) }),
                },
            )
            .await?;
        Ok(tenant)
    }
}

/// Opens the key provider chosen by `[keys] provider`.
pub async fn open_keys(
    settings: &Settings,
    store: &Arc<dyn MetadataStore>,
) -> anyhow::Result<Arc<dyn KeyProvider>> {
    Ok(match settings.keys.provider {
        KeyProviderKind::LocalFile => {
            Arc::new(LocalKeyFile::open(settings.key_file()).context("opening the local key file")?)
        }
        KeyProviderKind::Database => Arc::new(open_database_keys(settings, store).await?),
        KeyProviderKind::AzureKeyVault => Arc::new(
            insights_http::key_vault::from_settings(settings)
                .context("opening the Azure Key Vault key provider")?,
        ),
    })
}

/// Opens the `database` key provider (also for `insights keys migrate`,
/// whatever `[keys] provider` says).
pub async fn open_database_keys(
    settings: &Settings,
    store: &Arc<dyn MetadataStore>,
) -> anyhow::Result<DatabaseKeyProvider> {
    let root = match (&settings.keys.root_key_file, &settings.keys.root_key_env) {
        (Some(path), _) => RootKey::from_file(path),
        (None, Some(var)) => RootKey::from_env(var),
        (None, None) => anyhow::bail!(
            "configuration key `keys.root_key_file`: required (or keys.root_key_env) for the \
             database key provider"
        ),
    }
    .context("loading the root key of the database key provider")?;
    let kek_store: Arc<dyn insights_core::store::DataKeyStore> = store.clone();
    DatabaseKeyProvider::open(
        kek_store,
        root,
        std::time::Duration::from_secs(settings.keys.cache_ttl_secs),
    )
    .await
    .context("opening the database key provider")
}
