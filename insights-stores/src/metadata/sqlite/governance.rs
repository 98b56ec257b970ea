//! Retention policies, legal holds and security profiles.

use async_trait::async_trait;
use insights_core::domain::{
    AccountId, HoldScope, LegalHold, LegalHoldId, LocalAccount, Realm, Recording, RecordingId,
    RecordingPolicy, RetentionPolicy, RetentionPolicyId, Role, SecurityProfile, TenantId, now,
};
use insights_core::store::{
    AccountChange, GovernanceQuery, GovernanceStore, StoreError, StoreResult,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{SqliteConnection, SqlitePool};

use super::SqliteStore;
use super::recordings::{attach_children, from_row, recording_columns};
use super::util::{
    check_tenant, col, conflict_as, db, enum_col, id, json_col, micros, opt_ts, to_json, ts,
    uuid_list,
};

#[async_trait]
impl GovernanceStore for SqliteStore {
    async fn upsert_retention_policy(
        &self,
        tenant: TenantId,
        p: &RetentionPolicy,
    ) -> StoreResult<()> {
        upsert_retention_policy(&self.pool, tenant, p).await
    }

    async fn list_retention_policies(&self, tenant: TenantId) -> StoreResult<Vec<RetentionPolicy>> {
        list_retention_policies(&self.pool, tenant).await
    }

    async fn delete_retention_policy(
        &self,
        tenant: TenantId,
        id: RetentionPolicyId,
    ) -> StoreResult<()> {
        delete_retention_policy(&self.pool, tenant, id).await
    }

    async fn create_legal_hold(&self, tenant: TenantId, hold: &LegalHold) -> StoreResult<()> {
        create_legal_hold(&self.pool, tenant, hold).await
    }

    async fn list_legal_holds(
        &self,
        tenant: TenantId,
        active_only: bool,
    ) -> StoreResult<Vec<LegalHold>> {
        list_legal_holds(&self.pool, tenant, active_only).await
    }

    async fn lift_legal_hold(
        &self,
        tenant: TenantId,
        id: LegalHoldId,
        by: &str,
    ) -> StoreResult<()> {
        lift_legal_hold(&self.pool, tenant, id, by).await
    }

    async fn list_recordings_for_governance(
        &self,
        tenant: TenantId,
        query: &GovernanceQuery,
    ) -> StoreResult<Vec<Recording>> {
        list_recordings_for_governance(&self.pool, tenant, query).await
    }

    async fn apply_legal_holds(&self, tenant: TenantId, id: RecordingId) -> StoreResult<bool> {
        apply_legal_holds(&self.pool, tenant, id).await
    }

    async fn recording_policy(&self, tenant: TenantId) -> StoreResult<Option<RecordingPolicy>> {
        let row = sqlx::query(
            "SELECT tenant_id, mode, failure_mode, rules, updated_at, updated_by \
             FROM recording_policies WHERE tenant_id = ?",
        )
        .bind(tenant.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(|row| {
            Ok(RecordingPolicy {
                tenant_id: id(&row, "tenant_id")?,
                mode: enum_col(&row, "mode")?,
                failure_mode: enum_col(&row, "failure_mode")?,
                rules: json_col(&row, "rules")?,
                updated_at: ts(&row, "updated_at")?,
                updated_by: col(&row, "updated_by")?,
            })
        })
        .transpose()
    }

    async fn put_recording_policy(
        &self,
        tenant: TenantId,
        policy: &RecordingPolicy,
    ) -> StoreResult<()> {
        check_tenant(tenant, policy.tenant_id, "the recording policy")?;
        policy.validate().map_err(StoreError::Invalid)?;
        sqlx::query(
            "INSERT INTO recording_policies (tenant_id, mode, failure_mode, rules, updated_at, \
             updated_by) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (tenant_id) DO UPDATE SET mode = excluded.mode, \
             failure_mode = excluded.failure_mode, rules = excluded.rules, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(tenant.0)
        .bind(policy.mode.as_str())
        .bind(policy.failure_mode.as_str())
        .bind(to_json(&policy.rules)?)
        .bind(micros(policy.updated_at))
        .bind(&policy.updated_by)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn put_completeness(
        &self,
        tenant: TenantId,
        run: &insights_core::domain::CompletenessRun,
        calls: &[insights_core::domain::CallCompleteness],
    ) -> StoreResult<()> {
        super::completeness::put_completeness(&self.pool, tenant, run, calls).await
    }

    async fn list_completeness_calls(
        &self,
        tenant: TenantId,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<insights_core::domain::CallCompleteness>> {
        super::completeness::list_completeness_calls(&self.pool, tenant, from, to).await
    }

    async fn list_completeness_runs(
        &self,
        tenant: TenantId,
        limit: u32,
    ) -> StoreResult<Vec<insights_core::domain::CompletenessRun>> {
        super::completeness::list_completeness_runs(&self.pool, tenant, limit).await
    }

    async fn completeness_threshold(
        &self,
        tenant: TenantId,
    ) -> StoreResult<Option<insights_core::domain::CompletenessThreshold>> {
        super::completeness::completeness_threshold(&self.pool, tenant).await
    }

    async fn put_completeness_threshold(
        &self,
        tenant: TenantId,
        settings: &insights_core::domain::CompletenessThreshold,
    ) -> StoreResult<()> {
        super::completeness::put_completeness_threshold(&self.pool, tenant, settings).await
    }
}

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

// ---- governance sweeps and the legal-hold flag ----

/// Recordings for retention and hold sweeps, oldest first, keyset-paged.
pub(super) async fn list_recordings_for_governance(
    pool: &SqlitePool,
    tenant: TenantId,
    q: &GovernanceQuery,
) -> StoreResult<Vec<Recording>> {
    let ids = q.ids.as_ref().map(|v| uuid_list(v.iter().map(|r| r.0)));
    let mut tx = pool.begin().await.map_err(db)?;
    let rows = sqlx::query(concat!(
        "SELECT ",
        recording_columns!(),
        " FROM recordings r WHERE r.tenant_id = ?1 \
         AND (?2 IS NULL OR r.started_at < ?2) \
         AND (?3 IS NULL OR r.started_at >= ?3) \
         AND (?4 IS NULL OR r.id IN (SELECT unhex(value) FROM json_each(?4))) \
         AND (?5 IS NULL OR EXISTS (SELECT 1 FROM participants p WHERE p.tenant_id = r.tenant_id \
              AND p.recording_id = r.id AND p.directory_user_id = ?5)) \
         AND (?6 IS NULL OR r.legal_hold = ?6) \
         AND (?7 IS NULL OR r.started_at > ?7 OR (r.started_at = ?7 AND r.id > ?8)) \
         ORDER BY r.started_at, r.id LIMIT ?9"
    ))
    .bind(tenant.0)
    .bind(q.started_before.map(micros))
    .bind(q.started_from.map(micros))
    .bind(ids)
    .bind(q.user_id.map(|u| u.0))
    .bind(q.legal_hold)
    .bind(q.after.map(|(t, _)| micros(t)))
    .bind(q.after.map(|(_, id)| id.0))
    .bind(i64::from(q.limit.clamp(1, 1000)))
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let mut recs = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
    attach_children(&mut tx, tenant, &mut recs).await?;
    tx.commit().await.map_err(db)?;
    Ok(recs)
}

/// The scopes of the tenant's active holds.
async fn active_scopes(
    conn: &mut SqliteConnection,
    tenant: TenantId,
) -> StoreResult<Vec<HoldScope>> {
    sqlx::query("SELECT scope FROM legal_holds WHERE tenant_id = ? AND lifted_at IS NULL")
        .bind(tenant.0)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?
        .iter()
        .map(|row| json_col(row, "scope"))
        .collect()
}

/// The recording as stored, with its participants.
async fn load(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    id: RecordingId,
) -> StoreResult<Recording> {
    let row = sqlx::query(concat!(
        "SELECT ",
        recording_columns!(),
        " FROM recordings r WHERE r.tenant_id = ? AND r.id = ?"
    ))
    .bind(tenant.0)
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound)?;
    let mut recs = [from_row(&row)?];
    attach_children(conn, tenant, &mut recs).await?;
    let [rec] = recs;
    Ok(rec)
}

async fn store_flag(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    id: RecordingId,
    held: bool,
) -> StoreResult<()> {
    sqlx::query("UPDATE recordings SET legal_hold = ? WHERE tenant_id = ? AND id = ?")
        .bind(held)
        .bind(tenant.0)
        .bind(id.0)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// Sets the flag of a recording that an active hold covers, inside the
/// caller's write transaction (insert, new participant). Only ever raises
/// the flag: a caller may insert a recording already flagged.
pub(super) async fn raise_if_held(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    id: RecordingId,
) -> StoreResult<()> {
    let scopes = active_scopes(conn, tenant).await?;
    if scopes.is_empty() {
        return Ok(());
    }
    let rec = load(conn, tenant, id).await?;
    if !rec.legal_hold && scopes.iter().any(|s| s.covers(&rec)) {
        store_flag(conn, tenant, id, true).await?;
    }
    Ok(())
}

/// Re-evaluates the flag from the active holds, in one write transaction
/// (IMMEDIATE: no hold or participant can change in between).
pub(super) async fn apply_legal_holds(
    pool: &SqlitePool,
    tenant: TenantId,
    id: RecordingId,
) -> StoreResult<bool> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let rec = load(&mut tx, tenant, id).await?;
    let scopes = active_scopes(&mut tx, tenant).await?;
    let held = scopes.iter().any(|s| s.covers(&rec));
    if held != rec.legal_hold {
        store_flag(&mut tx, tenant, id, held).await?;
    }
    tx.commit().await.map_err(db)?;
    Ok(held)
}

/// Whether an active hold covers the recording now, decided inside the
/// caller's write transaction (`BEGIN IMMEDIATE`, so no hold can be
/// placed between this check and the caller's deletion). A covered
/// recording whose flag is not yet set (a hold whose sweep has not
/// reached it) gets its flag here. `NotFound` for a missing recording.
pub(super) async fn held_now(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    id: RecordingId,
) -> StoreResult<bool> {
    let rec = load(conn, tenant, id).await?;
    let scopes = active_scopes(conn, tenant).await?;
    let covered = scopes.iter().any(|s| s.covers(&rec));
    if covered && !rec.legal_hold {
        store_flag(conn, tenant, id, true).await?;
    }
    Ok(rec.legal_hold || covered)
}

/// The first recording using data key `key` that a hold covers now
/// (see [`held_now`]), inside the caller's write transaction.
pub(super) async fn held_by_key(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    key: insights_core::domain::KeyId,
) -> StoreResult<Option<RecordingId>> {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM recordings WHERE tenant_id = ? AND media_data_key_id = ?",
    )
    .bind(tenant.0)
    .bind(key.0)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    for id in ids {
        let id = RecordingId(id);
        if held_now(conn, tenant, id).await? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

// ---- tenant accounts (administration) ----

pub(super) async fn update_account(
    pool: &SqlitePool,
    tenant: TenantId,
    id: AccountId,
    change: &AccountChange,
) -> StoreResult<LocalAccount> {
    if change.role == Some(Role::PlatformOperator) {
        return Err(StoreError::Invalid(
            "a tenant account cannot become a platform operator".into(),
        ));
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    if let Some(Some(profile)) = change.security_profile_id {
        let found = sqlx::query("SELECT 1 FROM security_profiles WHERE tenant_id = ? AND id = ?")
            .bind(tenant.0)
            .bind(profile.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if found.is_none() {
            return Err(StoreError::Invalid(format!(
                "no security profile {profile} in this tenant"
            )));
        }
    }
    let done = sqlx::query(
        "UPDATE accounts SET role = COALESCE(?1, role), \
         security_profile_id = CASE WHEN ?2 THEN ?3 ELSE security_profile_id END, \
         active = COALESCE(?4, active) WHERE tenant_id = ?5 AND id = ?6",
    )
    .bind(change.role.map(|r| r.as_str()))
    .bind(change.security_profile_id.is_some())
    .bind(change.security_profile_id.flatten().map(|p| p.0))
    .bind(change.active)
    .bind(tenant.0)
    .bind(id.0)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    tx.commit().await.map_err(db)?;
    super::accounts::get_account(pool, Realm::Tenant(tenant), id).await
}
