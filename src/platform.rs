//! Opening the platform's backends from settings, and the start-up
//! reconciliation shared by every subcommand.

use std::sync::Arc;

use anyhow::Context;
use insights_core::blob::BlobStore;
use insights_core::config::{KeyProviderKind, Settings};
use insights_core::crypto::{KeyProvider, LocalKeyFile};
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
        let blobs = insights_stores::open_blobs(settings).context("opening the blob store")?;
        let keys = open_keys(settings)?;
        Ok(Self { store, blobs, keys })
    }

    /// Makes sure every tenant has its blob container and key-encryption
    /// key (idempotent; heals a tenant whose provisioning was interrupted).
    pub async fn reconcile_tenants(&self) -> anyhow::Result<()> {
        for t in self.store.list_tenants().await? {
            self.provision(&t).await?;
        }
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

/// The key provider chosen by `[keys] provider`.
pub fn open_keys(settings: &Settings) -> anyhow::Result<Arc<dyn KeyProvider>> {
    Ok(match settings.keys.provider {
        KeyProviderKind::Local => {
            Arc::new(LocalKeyFile::open(settings.key_file()).context("opening the local key file")?)
        }
        KeyProviderKind::AzureKeyVault => Arc::new(
            insights_http::key_vault::from_settings(settings)
                .context("opening the Azure Key Vault key provider")?,
        ),
    })
}
