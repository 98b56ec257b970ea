//! Directory sync state (the Graph delta link per tenant) and browser
//! sessions of principals signed in through OIDC.

use chrono::{DateTime, Utc};
use insights_core::domain::{
    DirectorySyncState, DirectoryUser, OidcSession, OidcSessionClaims, TenantId,
};
use insights_core::store::{StoreError, StoreResult};
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteRow;

use super::util::{
    check_tenant, col, conflict_as, db, enum_col, id, json_col, micros, opt_id, opt_ts, to_json, ts,
};

pub(super) async fn get_sync_state(
    pool: &SqlitePool,
    tenant: TenantId,
) -> StoreResult<Option<DirectorySyncState>> {
    let row = sqlx::query(
        "SELECT tenant_id, delta_link, last_sync_at, last_full_sync_at \
         FROM directory_sync_state WHERE tenant_id = ?",
    )
    .bind(tenant.0)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    row.map(|r| {
        Ok(DirectorySyncState {
            tenant_id: id(&r, "tenant_id")?,
            delta_link: col(&r, "delta_link")?,
            last_sync_at: ts(&r, "last_sync_at")?,
            last_full_sync_at: opt_ts(&r, "last_full_sync_at")?,
        })
    })
    .transpose()
}

pub(super) async fn put_sync_state(
    pool: &SqlitePool,
    tenant: TenantId,
    s: &DirectorySyncState,
) -> StoreResult<()> {
    check_tenant(tenant, s.tenant_id, "the directory sync state")?;
    sqlx::query(
        "INSERT INTO directory_sync_state (tenant_id, delta_link, last_sync_at, \
         last_full_sync_at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (tenant_id) DO UPDATE SET delta_link = excluded.delta_link, \
         last_sync_at = excluded.last_sync_at, last_full_sync_at = excluded.last_full_sync_at",
    )
    .bind(tenant.0)
    .bind(&s.delta_link)
    .bind(micros(s.last_sync_at))
    .bind(s.last_full_sync_at.map(micros))
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

fn session_from_row(r: &SqliteRow) -> StoreResult<OidcSession> {
    Ok(OidcSession {
        token_hash: col(r, "token_hash")?,
        tenant_id: id(r, "tenant_id")?,
        subject: col(r, "subject")?,
        role: enum_col(r, "role")?,
        directory_user_id: opt_id(r, "directory_user_id")?,
        created_at: ts(r, "created_at")?,
        last_seen_at: ts(r, "last_seen_at")?,
        expires_at: ts(r, "expires_at")?,
        revoked_at: opt_ts(r, "revoked_at")?,
    })
}

pub(super) async fn create_session(
    pool: &SqlitePool,
    tenant: TenantId,
    s: &OidcSession,
) -> StoreResult<()> {
    check_tenant(tenant, s.tenant_id, "the session")?;
    sqlx::query(
        "INSERT INTO oidc_sessions (tenant_id, token_hash, subject, role, directory_user_id, \
         created_at, last_seen_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(tenant.0)
    .bind(&s.token_hash)
    .bind(&s.subject)
    .bind(s.role.as_str())
    .bind(s.directory_user_id.map(|u| u.0))
    .bind(micros(s.created_at))
    .bind(micros(s.last_seen_at))
    .bind(micros(s.expires_at))
    .bind(s.revoked_at.map(micros))
    .execute(pool)
    .await
    .map_err(conflict_as("a session with this token exists"))?;
    Ok(())
}

pub(super) async fn get_session(
    pool: &SqlitePool,
    tenant: TenantId,
    token_hash: &str,
) -> StoreResult<OidcSession> {
    let row = sqlx::query(
        "SELECT tenant_id, token_hash, subject, role, directory_user_id, created_at, \
         last_seen_at, expires_at, revoked_at FROM oidc_sessions \
         WHERE tenant_id = ? AND token_hash = ?",
    )
    .bind(tenant.0)
    .bind(token_hash)
    .fetch_optional(pool)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound)?;
    session_from_row(&row)
}

pub(super) async fn touch_session(
    pool: &SqlitePool,
    tenant: TenantId,
    token_hash: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE oidc_sessions SET last_seen_at = max(last_seen_at, ?) \
         WHERE tenant_id = ? AND token_hash = ?",
    )
    .bind(micros(at))
    .bind(tenant.0)
    .bind(token_hash)
    .execute(pool)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) async fn revoke_session(
    pool: &SqlitePool,
    tenant: TenantId,
    token_hash: &str,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE oidc_sessions SET revoked_at = ? \
         WHERE tenant_id = ? AND token_hash = ? AND revoked_at IS NULL",
    )
    .bind(micros(at))
    .bind(tenant.0)
    .bind(token_hash)
    .execute(pool)
    .await
    .map_err(db)?;
    if done.rows_affected() > 0 {
        return Ok(true);
    }
    get_session(pool, tenant, token_hash).await.map(|_| false)
}

pub(super) async fn set_session_claims(
    pool: &SqlitePool,
    tenant: TenantId,
    token_hash: &str,
    c: &OidcSessionClaims,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE oidc_sessions SET claim_roles = ?, claim_groups = ?, active_confirmed_at = ? \
         WHERE tenant_id = ? AND token_hash = ?",
    )
    .bind(to_json(&c.roles)?)
    .bind(to_json(&c.groups)?)
    .bind(c.active_confirmed_at.map(micros))
    .bind(tenant.0)
    .bind(token_hash)
    .execute(pool)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) async fn get_session_claims(
    pool: &SqlitePool,
    tenant: TenantId,
    token_hash: &str,
) -> StoreResult<OidcSessionClaims> {
    let row = sqlx::query(
        "SELECT claim_roles, claim_groups, active_confirmed_at FROM oidc_sessions \
         WHERE tenant_id = ? AND token_hash = ?",
    )
    .bind(tenant.0)
    .bind(token_hash)
    .fetch_optional(pool)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound)?;
    Ok(OidcSessionClaims {
        roles: json_col(&row, "claim_roles")?,
        groups: json_col(&row, "claim_groups")?,
        active_confirmed_at: opt_ts(&row, "active_confirmed_at")?,
    })
}

pub(super) async fn confirm_session_active(
    pool: &SqlitePool,
    tenant: TenantId,
    token_hash: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE oidc_sessions SET active_confirmed_at = max(coalesce(active_confirmed_at, ?), ?) \
         WHERE tenant_id = ? AND token_hash = ?",
    )
    .bind(micros(at))
    .bind(micros(at))
    .bind(tenant.0)
    .bind(token_hash)
    .execute(pool)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Fills what capture could not know of participants whose directory user
/// was synchronised later (matched by Entra object id). The update
/// triggers rewrite the participant FTS index.
pub(super) async fn link_participants(pool: &SqlitePool, tenant: TenantId) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE participants AS p SET \
             email = coalesce(p.email, d.email, d.upn), \
             uri = coalesce(p.uri, d.sip_uri), \
             directory_user_id = coalesce(p.directory_user_id, d.id) \
         FROM directory_users AS d \
         WHERE p.tenant_id = ? AND d.tenant_id = p.tenant_id \
           AND p.directory_object_id IS NOT NULL \
           AND (p.email IS NULL OR p.directory_user_id IS NULL) \
           AND lower(d.directory_object_id) = p.directory_object_id",
    )
    .bind(tenant.0)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(done.rows_affected())
}

/// Several directory users in one transaction: all or none.
pub(super) async fn upsert_users(
    pool: &SqlitePool,
    tenant: TenantId,
    users: &[DirectoryUser],
) -> StoreResult<()> {
    if users.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await.map_err(db)?;
    for u in users {
        super::directory::upsert(&mut *tx, tenant, u).await?;
    }
    tx.commit().await.map_err(db)
}
