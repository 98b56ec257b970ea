//! Directory sync state (the Graph delta link per tenant) and browser
//! sessions of principals signed in through OIDC.

use chrono::{DateTime, Utc};
use insights_core::domain::{
    DirectorySyncState, DirectoryUser, OidcSession, OidcSessionClaims, TenantId, UserId,
};
use insights_core::store::{StoreError, StoreResult};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use sqlx::types::Json;

use super::error::{DbResultExt, col, enum_col};

pub(super) async fn get_sync_state(
    c: &mut PgConnection,
    tenant: TenantId,
) -> StoreResult<Option<DirectorySyncState>> {
    let row = sqlx::query(
        "SELECT tenant_id, delta_link, last_sync_at, last_full_sync_at \
         FROM directory_sync_state WHERE tenant_id = $1",
    )
    .bind(tenant.0)
    .fetch_optional(c)
    .await
    .db()?;
    row.map(|r| {
        Ok(DirectorySyncState {
            tenant_id: TenantId(col(&r, "tenant_id")?),
            delta_link: col(&r, "delta_link")?,
            last_sync_at: col(&r, "last_sync_at")?,
            last_full_sync_at: col(&r, "last_full_sync_at")?,
        })
    })
    .transpose()
}

pub(super) async fn put_sync_state(
    c: &mut PgConnection,
    tenant: TenantId,
    s: &DirectorySyncState,
) -> StoreResult<()> {
    if s.tenant_id != tenant {
        return Err(StoreError::Invalid(
            "the directory sync state belongs to another tenant".into(),
        ));
    }
    sqlx::query(
        "INSERT INTO directory_sync_state (tenant_id, delta_link, last_sync_at, \
         last_full_sync_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id) DO UPDATE SET delta_link = EXCLUDED.delta_link, \
         last_sync_at = EXCLUDED.last_sync_at, last_full_sync_at = EXCLUDED.last_full_sync_at",
    )
    .bind(tenant.0)
    .bind(&s.delta_link)
    .bind(s.last_sync_at)
    .bind(s.last_full_sync_at)
    .execute(c)
    .await
    .db()?;
    Ok(())
}

fn session_from_row(r: &PgRow) -> StoreResult<OidcSession> {
    Ok(OidcSession {
        token_hash: col(r, "token_hash")?,
        tenant_id: TenantId(col(r, "tenant_id")?),
        subject: col(r, "subject")?,
        role: enum_col(r, "role")?,
        directory_user_id: col::<Option<uuid::Uuid>>(r, "directory_user_id")?.map(UserId),
        created_at: col(r, "created_at")?,
        last_seen_at: col(r, "last_seen_at")?,
        expires_at: col(r, "expires_at")?,
        revoked_at: col(r, "revoked_at")?,
    })
}

pub(super) async fn create_session(
    c: &mut PgConnection,
    tenant: TenantId,
    s: &OidcSession,
) -> StoreResult<()> {
    if s.tenant_id != tenant {
        return Err(StoreError::Invalid(
            "the session belongs to another tenant".into(),
        ));
    }
    sqlx::query(
        "INSERT INTO oidc_sessions (tenant_id, token_hash, subject, role, directory_user_id, \
         created_at, last_seen_at, expires_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(tenant.0)
    .bind(&s.token_hash)
    .bind(&s.subject)
    .bind(s.role.as_str())
    .bind(s.directory_user_id.map(|u| u.0))
    .bind(s.created_at)
    .bind(s.last_seen_at)
    .bind(s.expires_at)
    .bind(s.revoked_at)
    .execute(c)
    .await
    .db()?;
    Ok(())
}

pub(super) async fn get_session(
    c: &mut PgConnection,
    tenant: TenantId,
    token_hash: &str,
) -> StoreResult<OidcSession> {
    let row = sqlx::query(
        "SELECT tenant_id, token_hash, subject, role, directory_user_id, created_at, \
         last_seen_at, expires_at, revoked_at FROM oidc_sessions \
         WHERE tenant_id = $1 AND token_hash = $2",
    )
    .bind(tenant.0)
    .bind(token_hash)
    .fetch_optional(c)
    .await
    .db()?
    .ok_or(StoreError::NotFound)?;
    session_from_row(&row)
}

pub(super) async fn touch_session(
    c: &mut PgConnection,
    tenant: TenantId,
    token_hash: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE oidc_sessions SET last_seen_at = GREATEST(last_seen_at, $3) \
         WHERE tenant_id = $1 AND token_hash = $2",
    )
    .bind(tenant.0)
    .bind(token_hash)
    .bind(at)
    .execute(c)
    .await
    .db()?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) async fn revoke_session(
    c: &mut PgConnection,
    tenant: TenantId,
    token_hash: &str,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE oidc_sessions SET revoked_at = $3 \
         WHERE tenant_id = $1 AND token_hash = $2 AND revoked_at IS NULL",
    )
    .bind(tenant.0)
    .bind(token_hash)
    .bind(at)
    .execute(&mut *c)
    .await
    .db()?;
    if done.rows_affected() > 0 {
        return Ok(true);
    }
    get_session(c, tenant, token_hash).await.map(|_| false)
}

pub(super) async fn set_session_claims(
    c: &mut PgConnection,
    tenant: TenantId,
    token_hash: &str,
    claims: &OidcSessionClaims,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE oidc_sessions SET claim_roles = $3, claim_groups = $4, active_confirmed_at = $5 \
         WHERE tenant_id = $1 AND token_hash = $2",
    )
    .bind(tenant.0)
    .bind(token_hash)
    .bind(Json(&claims.roles))
    .bind(Json(&claims.groups))
    .bind(claims.active_confirmed_at)
    .execute(c)
    .await
    .db()?;
    super::error::found(done)
}

pub(super) async fn get_session_claims(
    c: &mut PgConnection,
    tenant: TenantId,
    token_hash: &str,
) -> StoreResult<OidcSessionClaims> {
    let row = sqlx::query(
        "SELECT claim_roles, claim_groups, active_confirmed_at FROM oidc_sessions \
         WHERE tenant_id = $1 AND token_hash = $2",
    )
    .bind(tenant.0)
    .bind(token_hash)
    .fetch_optional(c)
    .await
    .db()?
    .ok_or(StoreError::NotFound)?;
    let Json(roles): Json<Vec<String>> = col(&row, "claim_roles")?;
    let Json(groups): Json<Vec<String>> = col(&row, "claim_groups")?;
    Ok(OidcSessionClaims {
        roles,
        groups,
        active_confirmed_at: col(&row, "active_confirmed_at")?,
    })
}

pub(super) async fn confirm_session_active(
    c: &mut PgConnection,
    tenant: TenantId,
    token_hash: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE oidc_sessions \
         SET active_confirmed_at = greatest(coalesce(active_confirmed_at, $3), $3) \
         WHERE tenant_id = $1 AND token_hash = $2",
    )
    .bind(tenant.0)
    .bind(token_hash)
    .bind(at)
    .execute(c)
    .await
    .db()?;
    super::error::found(done)
}

/// Fills what capture could not know of participants whose directory user
/// was synchronised later (matched by Entra object id); the generated
/// search columns follow.
pub(super) async fn link_participants(c: &mut PgConnection, tenant: TenantId) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE participants AS p SET \
             email = coalesce(p.email, d.email, d.upn), \
             uri = coalesce(p.uri, d.sip_uri), \
             directory_user_id = coalesce(p.directory_user_id, d.id) \
         FROM directory_users AS d \
         WHERE p.tenant_id = $1 AND d.tenant_id = p.tenant_id \
           AND p.directory_object_id IS NOT NULL \
           AND (p.email IS NULL OR p.directory_user_id IS NULL) \
           AND lower(d.directory_object_id) = p.directory_object_id",
    )
    .bind(tenant.0)
    .execute(c)
    .await
    .db()?;
    Ok(done.rows_affected())
}

/// Several directory users in the caller's transaction.
pub(super) async fn upsert_users(
    c: &mut PgConnection,
    tenant: TenantId,
    users: &[DirectoryUser],
) -> StoreResult<()> {
    for u in users {
        super::directory::upsert(&mut *c, tenant, u).await?;
    }
    Ok(())
}
