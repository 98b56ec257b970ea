//! Finding the tenant a command names.

use insights_core::domain::{Tenant, TenantId};
use insights_core::store::StoreError;

use crate::platform::Platform;

/// Finds a tenant by id or by name.
pub(crate) async fn find_tenant(platform: &Platform, name_or_id: &str) -> anyhow::Result<Tenant> {
    let found = match name_or_id.parse::<TenantId>() {
        Ok(id) => platform.store.get_tenant(id).await,
        Err(_) => platform.store.tenant_by_name(name_or_id).await,
    };
    match found {
        Ok(t) => Ok(t),
        Err(StoreError::NotFound) => anyhow::bail!("no tenant `{name_or_id}`"),
        Err(e) => Err(e.into()),
    }
}
