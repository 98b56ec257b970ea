//! Directory users.

use async_trait::async_trait;
use insights_core::domain::{
    DirectorySyncState, DirectoryUser, OidcSession, OidcSessionClaims, TenantId, UserId,
};
use insights_core::store::{DirectoryStore, StoreError, StoreResult};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use super::PgStore;
use super::error::{DbResultExt, col};

#[async_trait]
impl DirectoryStore for PgStore {
    async fn upsert_directory_user(
        &self,
        tenant: TenantId,
        user: &DirectoryUser,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| upsert(c, tenant, user))
    }

    async fn get_directory_user(&self, tenant: TenantId, id: UserId) -> StoreResult<DirectoryUser> {
        in_tenant!(self, tenant, |c| get(c, tenant, id))
    }

    async fn directory_user_by_object_id(
        &self,
        tenant: TenantId,
        object_id: &str,
    ) -> StoreResult<DirectoryUser> {
        in_tenant!(self, tenant, |c| by_object_id(c, tenant, object_id))
    }

    async fn list_directory_users(&self, tenant: TenantId) -> StoreResult<Vec<DirectoryUser>> {
        in_tenant!(self, tenant, |c| list(c, tenant))
    }

    async fn delete_directory_user(&self, tenant: TenantId, id: UserId) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| delete(c, tenant, id))
    }

    async fn upsert_directory_users(
        &self,
        tenant: TenantId,
        users: &[DirectoryUser],
    ) -> StoreResult<()> {
        if users.is_empty() {
            return Ok(());
        }
        in_tenant!(self, tenant, |c| super::entra::upsert_users(
            c, tenant, users
        ))
    }

    async fn get_directory_sync_state(
        &self,
        tenant: TenantId,
    ) -> StoreResult<Option<DirectorySyncState>> {
        in_tenant!(self, tenant, |c| super::entra::get_sync_state(c, tenant))
    }

    async fn put_directory_sync_state(
        &self,
        tenant: TenantId,
        state: &DirectorySyncState,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| super::entra::put_sync_state(
            c, tenant, state
        ))
    }

    async fn create_oidc_session(
        &self,
        tenant: TenantId,
        session: &OidcSession,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| super::entra::create_session(
            c, tenant, session
        ))
    }

    async fn get_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
    ) -> StoreResult<OidcSession> {
        in_tenant!(self, tenant, |c| super::entra::get_session(
            c, tenant, token_hash
        ))
    }

    async fn touch_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| super::entra::touch_session(
            c, tenant, token_hash, at
        ))
    }

    async fn revoke_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        in_tenant!(self, tenant, |c| super::entra::revoke_session(
            c, tenant, token_hash, at
        ))
    }

    async fn set_oidc_session_claims(
        &self,
        tenant: TenantId,
        token_hash: &str,
        claims: &OidcSessionClaims,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| super::entra::set_session_claims(
            c, tenant, token_hash, claims
        ))
    }

    async fn get_oidc_session_claims(
        &self,
        tenant: TenantId,
        token_hash: &str,
    ) -> StoreResult<OidcSessionClaims> {
        in_tenant!(self, tenant, |c| super::entra::get_session_claims(
            c, tenant, token_hash
        ))
    }

    async fn confirm_oidc_session_active(
        &self,
        tenant: TenantId,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| super::entra::confirm_session_active(
            c, tenant, token_hash, at
        ))
    }

    async fn link_participants_to_directory(&self, tenant: TenantId) -> StoreResult<u64> {
        in_tenant!(self, tenant, |c| super::entra::link_participants(c, tenant))
    }
}

macro_rules! select_user {
    ($rest:literal) => {
        concat!(
            "SELECT tenant_id, id, directory_object_id, first_name, last_name, display_name, \
             alias, email, upn, phone_numbers, sip_uri, tel_uri, groups, active, updated_at \
             FROM directory_users ",
            $rest
        )
    };
}

fn from_row(row: &PgRow) -> StoreResult<DirectoryUser> {
    Ok(DirectoryUser {
        id: UserId(col(row, "id")?),
        tenant_id: TenantId(col(row, "tenant_id")?),
        directory_object_id: col(row, "directory_object_id")?,
        first_name: col(row, "first_name")?,
        last_name: col(row, "last_name")?,
        display_name: col(row, "display_name")?,
        alias: col(row, "alias")?,
        email: col(row, "email")?,
        upn: col(row, "upn")?,
        phone_numbers: col(row, "phone_numbers")?,
        sip_uri: col(row, "sip_uri")?,
        tel_uri: col(row, "tel_uri")?,
        groups: col(row, "groups")?,
        active: col(row, "active")?,
        updated_at: col(row, "updated_at")?,
    })
}

pub(super) async fn upsert(
    c: &mut PgConnection,
    tenant: TenantId,
    u: &DirectoryUser,
) -> StoreResult<()> {
    if u.tenant_id != tenant {
        return Err(StoreError::Invalid("user belongs to another tenant".into()));
    }
    sqlx::query(
        "INSERT INTO directory_users (tenant_id, id, directory_object_id, first_name, last_name, \
         display_name, alias, email, upn, phone_numbers, sip_uri, tel_uri, groups, active, \
         updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET \
         directory_object_id = EXCLUDED.directory_object_id, first_name = EXCLUDED.first_name, \
         last_name = EXCLUDED.last_name, display_name = EXCLUDED.display_name, \
         alias = EXCLUDED.alias, email = EXCLUDED.email, upn = EXCLUDED.upn, \
         phone_numbers = EXCLUDED.phone_numbers, sip_uri = EXCLUDED.sip_uri, \
         tel_uri = EXCLUDED.tel_uri, groups = EXCLUDED.groups, active = EXCLUDED.active, \
         updated_at = EXCLUDED.updated_at",
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
    .bind(&u.phone_numbers)
    .bind(&u.sip_uri)
    .bind(&u.tel_uri)
    .bind(&u.groups)
    .bind(u.active)
    .bind(u.updated_at)
    .execute(c)
    .await
    .db()?;
    Ok(())
}

pub(super) async fn get(
    c: &mut PgConnection,
    tenant: TenantId,
    id: UserId,
) -> StoreResult<DirectoryUser> {
    let row = sqlx::query(select_user!("WHERE tenant_id = $1 AND id = $2"))
        .bind(tenant.0)
        .bind(id.0)
        .fetch_optional(c)
        .await
        .db()?
        .ok_or(StoreError::NotFound)?;
    from_row(&row)
}

/// The user with this Entra object id. Object ids are unique in a
/// directory; should two rows carry one anyway, the active, most recently
/// updated one wins.
pub(super) async fn by_object_id(
    c: &mut PgConnection,
    tenant: TenantId,
    object_id: &str,
) -> StoreResult<DirectoryUser> {
    let row = sqlx::query(select_user!(
        "WHERE tenant_id = $1 AND directory_object_id = $2 \
         ORDER BY active DESC, updated_at DESC, id LIMIT 1"
    ))
    .bind(tenant.0)
    .bind(object_id)
    .fetch_optional(c)
    .await
    .db()?
    .ok_or(StoreError::NotFound)?;
    from_row(&row)
}

/// Ordered like `(last_name, first_name, id)` in Rust: a missing name
/// first, then byte order.
pub(super) async fn list(
    c: &mut PgConnection,
    tenant: TenantId,
) -> StoreResult<Vec<DirectoryUser>> {
    sqlx::query(select_user!(
        "WHERE tenant_id = $1 \
         ORDER BY last_name COLLATE \"C\" NULLS FIRST, first_name COLLATE \"C\" NULLS FIRST, id"
    ))
    .bind(tenant.0)
    .fetch_all(c)
    .await
    .db()?
    .iter()
    .map(from_row)
    .collect()
}

pub(super) async fn delete(c: &mut PgConnection, tenant: TenantId, id: UserId) -> StoreResult<()> {
    let active: bool = sqlx::query_scalar(
        "SELECT active FROM directory_users WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tenant.0)
    .bind(id.0)
    .fetch_optional(&mut *c)
    .await
    .db()?
    .ok_or(StoreError::NotFound)?;
    if active {
        return Err(StoreError::Refused(
            "an active directory user cannot be deleted".into(),
        ));
    }
    sqlx::query("DELETE FROM directory_users WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.0)
        .bind(id.0)
        .execute(c)
        .await
        .db()?;
    Ok(())
}
