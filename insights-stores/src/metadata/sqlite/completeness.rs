//! Completeness reconciliation: runs, calls and the tenant's threshold
//! (migration 0036).

use chrono::{DateTime, Utc};
use insights_core::domain::{CallCompleteness, CompletenessRun, CompletenessThreshold, TenantId};
use insights_core::store::{StoreError, StoreResult};
use sqlx::SqlitePool;

use super::util::{check_tenant, col, db, id, json_col, micros, to_json, ts};

/// At most this many calls come back from one listing.
const MAX_CALLS: i64 = 100_000;

pub(super) async fn put_completeness(
    pool: &SqlitePool,
    tenant: TenantId,
    run: &CompletenessRun,
    calls: &[CallCompleteness],
) -> StoreResult<()> {
    check_tenant(tenant, run.tenant_id, "the completeness run")?;
    let mut tx = pool.begin().await.map_err(db)?;
    sqlx::query(
        "INSERT INTO completeness_runs (tenant_id, id, started_at, detail) VALUES (?, ?, ?, ?)",
    )
    .bind(tenant.0)
    .bind(run.id)
    .bind(micros(run.started_at))
    .bind(to_json(run)?)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    for c in calls {
        sqlx::query(
            "INSERT INTO completeness_calls (tenant_id, call_id, started_at, status, detail, \
             run_id) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (tenant_id, call_id) DO UPDATE SET started_at = excluded.started_at, \
             status = excluded.status, detail = excluded.detail, run_id = excluded.run_id",
        )
        .bind(tenant.0)
        .bind(&c.call_id)
        .bind(micros(c.started_at))
        .bind(c.status.as_str())
        .bind(to_json(c)?)
        .bind(run.id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

pub(super) async fn list_completeness_calls(
    pool: &SqlitePool,
    tenant: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> StoreResult<Vec<CallCompleteness>> {
    let rows = sqlx::query(
        "SELECT detail FROM completeness_calls WHERE tenant_id = ? AND started_at >= ? \
         AND started_at < ? ORDER BY started_at, call_id LIMIT ?",
    )
    .bind(tenant.0)
    .bind(micros(from))
    .bind(micros(to))
    .bind(MAX_CALLS)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(|r| json_col(r, "detail")).collect()
}

pub(super) async fn list_completeness_runs(
    pool: &SqlitePool,
    tenant: TenantId,
    limit: u32,
) -> StoreResult<Vec<CompletenessRun>> {
    let rows = sqlx::query(
        "SELECT detail FROM completeness_runs WHERE tenant_id = ? \
         ORDER BY started_at DESC, id LIMIT ?",
    )
    .bind(tenant.0)
    .bind(i64::from(limit.clamp(1, 1000)))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(|r| json_col(r, "detail")).collect()
}

pub(super) async fn completeness_threshold(
    pool: &SqlitePool,
    tenant: TenantId,
) -> StoreResult<Option<CompletenessThreshold>> {
    let row = sqlx::query(
        "SELECT tenant_id, threshold_permille, updated_at, updated_by \
         FROM completeness_settings WHERE tenant_id = ?",
    )
    .bind(tenant.0)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    row.map(|row| {
        let t: i64 = col(&row, "threshold_permille")?;
        Ok(CompletenessThreshold {
            tenant_id: id(&row, "tenant_id")?,
            threshold_permille: u32::try_from(t)
                .map_err(|_| StoreError::Corrupt("column `threshold_permille`".into()))?,
            updated_at: ts(&row, "updated_at")?,
            updated_by: col(&row, "updated_by")?,
        })
    })
    .transpose()
}

pub(super) async fn put_completeness_threshold(
    pool: &SqlitePool,
    tenant: TenantId,
    s: &CompletenessThreshold,
) -> StoreResult<()> {
    check_tenant(tenant, s.tenant_id, "the completeness settings")?;
    if s.threshold_permille > 1000 {
        return Err(StoreError::Invalid(
            "the threshold is at most 1000 (100 %)".into(),
        ));
    }
    sqlx::query(
        "INSERT INTO completeness_settings (tenant_id, threshold_permille, updated_at, \
         updated_by) VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id) DO UPDATE SET \
         threshold_permille = excluded.threshold_permille, updated_at = excluded.updated_at, \
         updated_by = excluded.updated_by",
    )
    .bind(tenant.0)
    .bind(i64::from(s.threshold_permille))
    .bind(micros(s.updated_at))
    .bind(&s.updated_by)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}
