//! Retention policies, legal holds and security profiles.

use insights_core::domain::{
    LegalHold, LegalHoldId, RetentionPolicy, RetentionPolicyId, SecurityProfile, TenantId, now,
};
use insights_core::store::{StoreError, StoreResult};
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteRow;

use super::util::{
    check_tenant, col, conflict_as, db, enum_col, id, json_col, micros, opt_ts, to_json, ts,
};

// ---- retention policies ----

pub(super) async fn upsert_retention_policy(
    pool: &SqlitePool,
    tenant: TenantId,
    p: &RetentionPolicy,
) -> StoreResult<()> {
    check_tenant(tenant, p.tenant_id, "the retention policy")?;
    sqlx::query(
        "INSERT INTO retention_policies (tenant_id, id, name, scope, retain_days, action, \
         enabled, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET name = excluded.name, \
         scope = excluded.scope, retain_days = excluded.retain_days, action = excluded.action, \
         enabled = excluded.enabled, updated_at = excluded.updated_at",
    )
    .bind(tenant.0)
    .bind(p.id.0)
    .bind(&p.name)
    .bind(to_json(&p.scope)?)
    .bind(p.retain_days)
    .bind(p.action.as_str())
    .bind(p.enabled)
    .bind(micros(p.updated_at))
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

fn policy_from_row(row: &SqliteRow) -> StoreResult<RetentionPolicy> {
    Ok(RetentionPolicy {
        id: id(row, "id")?,
        tenant_id: id(row, "tenant_id")?,
        name: col(row, "name")?,
        scope: json_col(row, "scope")?,
        retain_days: col(row, "retain_days")?,
        action: enum_col(row, "action")?,
        enabled: col(row, "enabled")?,
        updated_at: ts(row, "updated_at")?,
    })
}

/// Policies ordered by name (then id).
pub(super) async fn list_retention_policies(
    pool: &SqlitePool,
    tenant: TenantId,
) -> StoreResult<Vec<RetentionPolicy>> {
    sqlx::query(
        "SELECT tenant_id, id, name, scope, retain_days, action, enabled, updated_at \
         FROM retention_policies WHERE tenant_id = ? ORDER BY name, id",
    )
    .bind(tenant.0)
    .fetch_all(pool)
    .await
    .map_err(db)?
    .iter()
    .map(policy_from_row)
    .collect()
}

pub(super) async fn delete_retention_policy(
    pool: &SqlitePool,
    tenant: TenantId,
    id: RetentionPolicyId,
) -> StoreResult<()> {
    let done = sqlx::query("DELETE FROM retention_policies WHERE tenant_id = ? AND id = ?")
        .bind(tenant.0)
        .bind(id.0)
        .execute(pool)
        .await
        .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

// ---- legal holds ----

pub(super) async fn create_legal_hold(
    pool: &SqlitePool,
    tenant: TenantId,
    h: &LegalHold,
) -> StoreResult<()> {
    check_tenant(tenant, h.tenant_id, "the legal hold")?;
    sqlx::query(
        "INSERT INTO legal_holds (tenant_id, id, case_name, reason, scope, placed_by, placed_at, \
         lifted_by, lifted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(tenant.0)
    .bind(h.id.0)
    .bind(&h.case_name)
    .bind(&h.reason)
    .bind(to_json(&h.scope)?)
    .bind(&h.placed_by)
    .bind(micros(h.placed_at))
    .bind(&h.lifted_by)
    .bind(h.lifted_at.map(micros))
    .execute(pool)
    .await
    .map_err(conflict_as("a legal hold with this id exists"))?;
    Ok(())
}

fn hold_from_row(row: &SqliteRow) -> StoreResult<LegalHold> {
    Ok(LegalHold {
        id: id(row, "id")?,
        tenant_id: id(row, "tenant_id")?,
        case_name: col(row, "case_name")?,
        reason: col(row, "reason")?,
        scope: json_col(row, "scope")?,
        placed_by: col(row, "placed_by")?,
        placed_at: ts(row, "placed_at")?,
        lifted_by: col(row, "lifted_by")?,
        lifted_at: opt_ts(row, "lifted_at")?,
    })
}

pub(super) async fn list_legal_holds(
    pool: &SqlitePool,
    tenant: TenantId,
    active_only: bool,
) -> StoreResult<Vec<LegalHold>> {
    sqlx::query(
        "SELECT tenant_id, id, case_name, reason, scope, placed_by, placed_at, lifted_by, \
         lifted_at FROM legal_holds WHERE tenant_id = ? AND (? = 0 OR lifted_at IS NULL) \
         ORDER BY placed_at, id",
    )
    .bind(tenant.0)
    .bind(active_only)
    .fetch_all(pool)
    .await
    .map_err(db)?
    .iter()
    .map(hold_from_row)
    .collect()
}

/// Lifts an active hold. Lifting a hold that is already lifted changes
/// nothing (the first lift is what the record keeps) and succeeds.
pub(super) async fn lift_legal_hold(
    pool: &SqlitePool,
    tenant: TenantId,
    id: LegalHoldId,
    by: &str,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE legal_holds SET lifted_by = ?, lifted_at = ? \
         WHERE tenant_id = ? AND id = ? AND lifted_at IS NULL",
    )
    .bind(by)
    .bind(micros(now()))
    .bind(tenant.0)
    .bind(id.0)
    .execute(pool)
    .await
    .map_err(db)?;
    if done.rows_affected() > 0 {
        return Ok(());
    }
    let exists = sqlx::query("SELECT 1 FROM legal_holds WHERE tenant_id = ? AND id = ?")
        .bind(tenant.0)
        .bind(id.0)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    match exists {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound),
    }
}

// ---- security profiles ----

pub(super) async fn upsert_security_profile(
    pool: &SqlitePool,
    tenant: TenantId,
    p: &SecurityProfile,
) -> StoreResult<()> {
    check_tenant(tenant, p.tenant_id, "the security profile")?;
    p.validate().map_err(StoreError::Invalid)?;
    sqlx::query(
        "INSERT INTO security_profiles (tenant_id, id, name, role, permissions, scope) \
         VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET name = excluded.name, role = excluded.role, \
         permissions = excluded.permissions, scope = excluded.scope",
    )
    .bind(tenant.0)
    .bind(p.id.0)
    .bind(&p.name)
    .bind(p.role.as_str())
    .bind(to_json(&p.permissions)?)
    .bind(to_json(&p.scope)?)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

fn profile_from_row(row: &SqliteRow) -> StoreResult<SecurityProfile> {
    Ok(SecurityProfile {
        id: id(row, "id")?,
        tenant_id: id(row, "tenant_id")?,
        name: col(row, "name")?,
        role: enum_col(row, "role")?,
        permissions: json_col(row, "permissions")?,
        scope: json_col(row, "scope")?,
    })
}

/// Profiles ordered by name (then id).
pub(super) async fn list_security_profiles(
    pool: &SqlitePool,
    tenant: TenantId,
) -> StoreResult<Vec<SecurityProfile>> {
    sqlx::query(
        "SELECT tenant_id, id, name, role, permissions, scope FROM security_profiles \
         WHERE tenant_id = ? ORDER BY name, id",
    )
    .bind(tenant.0)
    .fetch_all(pool)
    .await
    .map_err(db)?
    .iter()
    .map(profile_from_row)
    .collect()
}
