//! Finding the tenant a command names, or the one that holds a recording:
//! the one implementation every command uses, so they all answer an
//! unknown tenant the same way (``no tenant `x` ``, exit code 1).

use insights_core::domain::{RecordingId, Tenant, TenantId};
use insights_core::store::{MetadataStore, StoreError};

/// Finds a tenant by id or, if `name_or_id` is not a UUID, by name.
pub(crate) async fn find_tenant(
    store: &dyn MetadataStore,
    name_or_id: &str,
) -> anyhow::Result<Tenant> {
    let found = match name_or_id.parse::<TenantId>() {
        Ok(id) => store.get_tenant(id).await,
        Err(_) => store.tenant_by_name(name_or_id).await,
    };
    match found {
        Ok(t) => Ok(t),
        Err(StoreError::NotFound) => anyhow::bail!("no tenant `{name_or_id}`"),
        Err(e) => Err(e.into()),
    }
}

/// The tenant that holds recording `id` (for commands whose `--tenant` is
/// optional): the tenants are asked in turn, the first that has it wins.
pub(crate) async fn tenant_holding(
    store: &dyn MetadataStore,
    id: RecordingId,
) -> anyhow::Result<Tenant> {
    for t in store.list_tenants().await? {
        match store.get_recording(t.id, id).await {
            Ok(_) => return Ok(t),
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!("no recording {id} in any tenant")
}
