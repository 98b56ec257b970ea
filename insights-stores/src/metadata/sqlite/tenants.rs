//! Tenants (platform scope: the only table not filtered by a tenant).

use async_trait::async_trait;
use insights_core::domain::{NewTenant, Tenant, TenantId, TenantSettings, now};
use insights_core::store::{StoreError, StoreResult, TenantStore};
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::SqliteStore;
use super::util::{col, conflict_as, db, id, json_col, micros, to_json, ts};

#[async_trait]
impl TenantStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn health(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(db)
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

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, directory_tenant_id, settings, created_at FROM tenants ",
            $tail
        )
    };
}

fn from_row(row: &SqliteRow) -> StoreResult<Tenant> {
    Ok(Tenant {
        id: id(row, "id")?,
        name: col(row, "name")?,
        directory_tenant_id: col(row, "directory_tenant_id")?,
        settings: json_col(row, "settings")?,
        created_at: ts(row, "created_at")?,
    })
}

pub(super) async fn create(pool: &SqlitePool, new: NewTenant) -> StoreResult<Tenant> {
    let tenant = Tenant {
        id: TenantId::new(),
        name: new.name,
        directory_tenant_id: new.directory_tenant_id,
        settings: TenantSettings::default(),
        created_at: now(),
    };
    sqlx::query(
        "INSERT INTO tenants (id, name, directory_tenant_id, settings, created_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(tenant.id.0)
    .bind(&tenant.name)
    .bind(tenant.directory_tenant_id)
    .bind(to_json(&tenant.settings)?)
    .bind(micros(tenant.created_at))
    .execute(pool)
    .await
    .map_err(conflict_as(
        "a tenant with this name or directory tenant id exists",
    ))?;
    Ok(tenant)
}

pub(super) async fn list(pool: &SqlitePool) -> StoreResult<Vec<Tenant>> {
    sqlx::query(select!("ORDER BY name, id"))
        .fetch_all(pool)
        .await
        .map_err(db)?
        .iter()
        .map(from_row)
        .collect()
}

fn one(row: Option<SqliteRow>) -> StoreResult<Tenant> {
    row.as_ref()
        .map(from_row)
        .unwrap_or(Err(StoreError::NotFound))
}

pub(super) async fn get(pool: &SqlitePool, tenant: TenantId) -> StoreResult<Tenant> {
    one(sqlx::query(select!("WHERE id = ?"))
        .bind(tenant.0)
        .fetch_optional(pool)
        .await
        .map_err(db)?)
}

pub(super) async fn by_name(pool: &SqlitePool, name: &str) -> StoreResult<Tenant> {
    one(sqlx::query(select!("WHERE name = ?"))
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(db)?)
}

pub(super) async fn by_directory_id(pool: &SqlitePool, directory_id: Uuid) -> StoreResult<Tenant> {
    one(sqlx::query(select!("WHERE directory_tenant_id = ?"))
        .bind(directory_id)
        .fetch_optional(pool)
        .await
        .map_err(db)?)
}

pub(super) async fn update_settings(
    pool: &SqlitePool,
    tenant: TenantId,
    settings: &TenantSettings,
) -> StoreResult<()> {
    let done = sqlx::query("UPDATE tenants SET settings = ? WHERE id = ?")
        .bind(to_json(settings)?)
        .bind(tenant.0)
        .execute(pool)
        .await
        .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
