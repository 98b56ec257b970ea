//! Directory users (synchronised from Entra ID).

use async_trait::async_trait;
use insights_core::domain::{
    DirectorySyncState, DirectoryUser, OidcSession, OidcSessionClaims, TenantId, UserId,
};
use insights_core::store::{DirectoryStore, StoreError, StoreResult};
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use super::util::{check_tenant, col, conflict_as, db, id, json_col, micros, to_json, ts};

#[async_trait]
impl DirectoryStore for SqliteStore {
    async fn upsert_directory_user(
        &self,
        tenant: TenantId,
        user: &DirectoryUser,
    ) -> StoreResult<()> {
        upsert(&self.pool, tenant, user).await
    }

    async fn get_directory_user(&self, tenant: TenantId, id: UserId) -> StoreResult<DirectoryUser> {
        get(&self.pool, tenant, id).await
    }

    async fn directory_user_by_object_id(
        &self,
        tenant: TenantId,
        object_id: &str,
    ) -> StoreResult<DirectoryUser> {
        by_object_id(&self.pool, tenant, object_id).await
    }

    async fn list_directory_users(&self, tenant: TenantId) -> StoreResult<Vec<DirectoryUser>> {
        list(&self.pool, tenant).await
    }

    async fn delete_directory_user(&self, tenant: TenantId, id: UserId) -> StoreResult<()> {
        delete(&self.pool, tenant, id).await
    }

    async fn upsert_directory_users(
        &self,
        tenant: TenantId,
        users: &[DirectoryUser],
    ) -> StoreResult<()> {
        super::entra::upsert_users(&self.pool, tenant, users).await
    }

    async fn get_directory_sync_state(
        &self,
        tenant: TenantId,
    ) -> StoreResult<Option<DirectorySyncState>> {
        super::entra::get_sync_state(&self.pool, tenant).await
    }

    async fn put_directory_sync_state(
        &self,
        tenant: TenantId,
        state: &DirectorySyncState,
    ) -> StoreResult<()> {
        super::entra::put_sync_state(&self.pool, tenant, state).await
    }

    async fn create_oidc_session(
        &self,
        tenant: TenantId,
        session: &OidcSession,
    ) -> StoreResult<()> {
        super::entra::create_session(&self.pool, tenant, session).await
    }

    async fn get_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
    ) -> StoreResult<OidcSession> {
        super::entra::get_session(&self.pool, tenant, token_hash).await
    }

    async fn touch_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        super::entra::touch_session(&self.pool, tenant, token_hash, at).await
    }

    async fn revoke_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        super::entra::revoke_session(&self.pool, tenant, token_hash, at).await
    }

    async fn set_oidc_session_claims(
        &self,
        tenant: TenantId,
        token_hash: &str,
        claims: &OidcSessionClaims,
    ) -> StoreResult<()> {
        super::entra::set_session_claims(&self.pool, tenant, token_hash, claims).await
    }

    async fn get_oidc_session_claims(
        &self,
        tenant: TenantId,
        token_hash: &str,
    ) -> StoreResult<OidcSessionClaims> {
        super::entra::get_session_claims(&self.pool, tenant, token_hash).await
    }

    async fn confirm_oidc_session_active(
        &self,
        tenant: TenantId,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        super::entra::confirm_session_active(&self.pool, tenant, token_hash, at).await
    }

    async fn link_participants_to_directory(&self, tenant: TenantId) -> StoreResult<u64> {
        super::entra::link_participants(&self.pool, tenant).await
    }
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT tenant_id, id, directory_object_id, first_name, last_name, display_name, \
             alias, email, upn, phone_numbers, sip_uri, tel_uri, groups, active, updated_at \
             FROM directory_users WHERE tenant_id = ? ",
            $tail
        )
    };
}

fn from_row(row: &SqliteRow) -> StoreResult<DirectoryUser> {
    Ok(DirectoryUser {
        id: id(row, "id")?,
        tenant_id: id(row, "tenant_id")?,
        directory_object_id: col(row, "directory_object_id")?,
        first_name: col(row, "first_name")?,
        last_name: col(row, "last_name")?,
        display_name: col(row, "display_name")?,
        alias: col(row, "alias")?,
        email: col(row, "email")?,
        upn: col(row, "upn")?,
        phone_numbers: json_col(row, "phone_numbers")?,
        sip_uri: col(row, "sip_uri")?,
        tel_uri: col(row, "tel_uri")?,
        groups: json_col(row, "groups")?,
        active: col(row, "active")?,
        updated_at: ts(row, "updated_at")?,
    })
}

pub(super) async fn upsert<'c>(
    pool: impl sqlx::SqliteExecutor<'c>,
    tenant: TenantId,
    u: &DirectoryUser,
) -> StoreResult<()> {
    check_tenant(tenant, u.tenant_id, "the directory user")?;
    sqlx::query(
        "INSERT INTO directory_users (tenant_id, id, directory_object_id, first_name, last_name, \
         display_name, alias, email, upn, phone_numbers, sip_uri, tel_uri, groups, active, \
         updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET \
         directory_object_id = excluded.directory_object_id, first_name = excluded.first_name, \
         last_name = excluded.last_name, display_name = excluded.display_name, \
         alias = excluded.alias, email = excluded.email, upn = excluded.upn, \
         phone_numbers = excluded.phone_numbers, sip_uri = excluded.sip_uri, \
         tel_uri = excluded.tel_uri, groups = excluded.groups, active = excluded.active, \
         updated_at = excluded.updated_at",
    )
    .bind(tenant.0)
    .bind(u.id.0)
    .bind(&u.directory_object_id)
    .bind(&u.first_name)
    .bind(&u.last_name)
    .bind(&u.display_name)
    .bind(&u.alias)
    .bind(&u.email)
    .bind(&u.upn)
    .bind(to_json(&u.phone_numbers)?)
    .bind(&u.sip_uri)
    .bind(&u.tel_uri)
    .bind(to_json(&u.groups)?)
    .bind(u.active)
    .bind(micros(u.updated_at))
    .execute(pool)
    .await
    .map_err(conflict_as(
        "another directory user has this directory object id",
    ))?;
    Ok(())
}

fn one(row: Option<SqliteRow>) -> StoreResult<DirectoryUser> {
    row.as_ref()
        .map(from_row)
        .unwrap_or(Err(StoreError::NotFound))
}

pub(super) async fn get(
    pool: &SqlitePool,
    tenant: TenantId,
    user: UserId,
) -> StoreResult<DirectoryUser> {
    one(sqlx::query(select!("AND id = ?"))
        .bind(tenant.0)
        .bind(user.0)
        .fetch_optional(pool)
        .await
        .map_err(db)?)
}

pub(super) async fn by_object_id(
    pool: &SqlitePool,
    tenant: TenantId,
    object_id: &str,
) -> StoreResult<DirectoryUser> {
    one(sqlx::query(select!("AND directory_object_id = ?"))
        .bind(tenant.0)
        .bind(object_id)
        .fetch_optional(pool)
        .await
        .map_err(db)?)
}

pub(super) async fn list(pool: &SqlitePool, tenant: TenantId) -> StoreResult<Vec<DirectoryUser>> {
    sqlx::query(select!(
        "ORDER BY last_name NULLS LAST, first_name NULLS LAST, id"
    ))
    .bind(tenant.0)
    .fetch_all(pool)
    .await
    .map_err(db)?
    .iter()
    .map(from_row)
    .collect()
}

pub(super) async fn delete(pool: &SqlitePool, tenant: TenantId, user: UserId) -> StoreResult<()> {
    // One statement decides atomically; a second read only explains a miss.
    let done =
        sqlx::query("DELETE FROM directory_users WHERE tenant_id = ? AND id = ? AND active = 0")
            .bind(tenant.0)
            .bind(user.0)
            .execute(pool)
            .await
            .map_err(db)?;
    if done.rows_affected() > 0 {
        return Ok(());
    }
    let exists = sqlx::query("SELECT 1 FROM directory_users WHERE tenant_id = ? AND id = ?")
        .bind(tenant.0)
        .bind(user.0)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    match exists {
        Some(_) => Err(StoreError::Refused(format!(
            "directory user {user} is active; deactivate it first"
        ))),
        None => Err(StoreError::NotFound),
    }
}
