//! Directory sync state (the Graph delta link per tenant) and browser
//! sessions of principals signed in through OIDC.

use chrono::{DateTime, Utc};
use insights_core::domain::{DirectorySyncState, DirectoryUser, OidcSession, TenantId, UserId};
use insights_core::store::{StoreError, StoreResult};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

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
