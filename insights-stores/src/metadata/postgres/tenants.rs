//! Tenants: platform scope, run as the connecting user (the `tenants`
//! table has no row-level security; it is the list of tenants itself).

use async_trait::async_trait;
use insights_core::domain::{NewTenant, Tenant, TenantId, TenantSettings, validate_tenant_name};
use insights_core::store::{StoreError, StoreResult, TenantStore};
use sqlx::PgPool;
use sqlx::postgres::PgRow;

use super::PgStore;
use super::error::{DbResultExt, col, found};

#[async_trait]
impl TenantStore for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn health(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.db()?;
        Ok(())
    }

    async fn create_tenant(&self, new: NewTenant) -> StoreResult<Tenant> {
        create(&self.pool, new).await
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        list(&self.pool).await
    }

    async fn get_tenant(&self, id: TenantId) -> StoreResult<Tenant> {
        get(&self.pool, id).await
    }

    async fn tenant_by_name(&self, name: &str) -> StoreResult<Tenant> {
        by_name(&self.pool, name).await
    }

    async fn tenant_by_directory_id(&self, directory_tenant_id: uuid::Uuid) -> StoreResult<Tenant> {
        by_directory_id(&self.pool, directory_tenant_id).await
    }

    async fn update_tenant_settings(
        &self,
        id: TenantId,
        settings: &TenantSettings,
    ) -> StoreResult<()> {
        update_settings(&self.pool, id, settings).await
    }
}

macro_rules! select_tenant {
    ($($rest:literal)?) => {
        concat!(
            "SELECT id, name, directory_tenant_id, cloud_ai_enabled, media_deletion_waiver, \
             require_access_reason, four_eyes_playback, created_at FROM tenants ",
            $($rest)?
        )
    };
}

fn from_row(row: &PgRow) -> StoreResult<Tenant> {
    Ok(Tenant {
        id: TenantId(col(row, "id")?),
        name: col(row, "name")?,
        directory_tenant_id: col(row, "directory_tenant_id")?,
        settings: TenantSettings {
            cloud_ai_enabled: col(row, "cloud_ai_enabled")?,
            media_deletion_waiver: col(row, "media_deletion_waiver")?,
            require_access_reason: col(row, "require_access_reason")?,
            four_eyes_playback: col(row, "four_eyes_playback")?,
        },
        created_at: col(row, "created_at")?,
    })
}

pub(super) async fn create(pool: &PgPool, new: NewTenant) -> StoreResult<Tenant> {
    validate_tenant_name(&new.name).map_err(StoreError::Invalid)?;
    let tenant = Tenant {
        id: TenantId::new(),
        name: new.name,
        directory_tenant_id: new.directory_tenant_id,
        settings: TenantSettings::default(),
        created_at: insights_core::domain::now(),
    };
    sqlx::query(
        "INSERT INTO tenants (id, name, directory_tenant_id, cloud_ai_enabled, \
         media_deletion_waiver, require_access_reason, four_eyes_playback, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(tenant.id.0)
    .bind(&tenant.name)
    .bind(tenant.directory_tenant_id)
    .bind(tenant.settings.cloud_ai_enabled)
    .bind(tenant.settings.media_deletion_waiver)
    .bind(tenant.settings.require_access_reason)
    .bind(tenant.settings.four_eyes_playback)
    .bind(tenant.created_at)
    .execute(pool)
    .await
    .db()?;
    Ok(tenant)
}

pub(super) async fn list(pool: &PgPool) -> StoreResult<Vec<Tenant>> {
    sqlx::query(select_tenant!("ORDER BY name COLLATE \"C\", id"))
        .fetch_all(pool)
        .await
        .db()?
        .iter()
        .map(from_row)
        .collect()
}

pub(super) async fn get(pool: &PgPool, id: TenantId) -> StoreResult<Tenant> {
    let row = sqlx::query(select_tenant!("WHERE id = $1"))
        .bind(id.0)
        .fetch_optional(pool)
        .await
        .db()?
        .ok_or(StoreError::NotFound)?;
    from_row(&row)
}

pub(super) async fn by_name(pool: &PgPool, name: &str) -> StoreResult<Tenant> {
    let row = sqlx::query(select_tenant!("WHERE name = $1"))
        .bind(name)
        .fetch_optional(pool)
        .await
        .db()?
        .ok_or(StoreError::NotFound)?;
    from_row(&row)
}

pub(super) async fn by_directory_id(
    pool: &PgPool,
    directory_id: uuid::Uuid,
) -> StoreResult<Tenant> {
    let row = sqlx::query(select_tenant!("WHERE directory_tenant_id = $1"))
        .bind(directory_id)
        .fetch_optional(pool)
        .await
        .db()?
        .ok_or(StoreError::NotFound)?;
    from_row(&row)
}

pub(super) async fn update_settings(
    pool: &PgPool,
    id: TenantId,
    s: &TenantSettings,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE tenants SET cloud_ai_enabled = $2, media_deletion_waiver = $3, \
         require_access_reason = $4, four_eyes_playback = $5 WHERE id = $1",
    )
    .bind(id.0)
    .bind(s.cloud_ai_enabled)
    .bind(s.media_deletion_waiver)
    .bind(s.require_access_reason)
    .bind(s.four_eyes_playback)
    .execute(pool)
    .await
    .db()?;
    found(done)
}
