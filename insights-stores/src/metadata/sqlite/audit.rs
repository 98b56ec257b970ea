//! The per-tenant audit hash chain.

use async_trait::async_trait;
use insights_core::domain::{AuditEvent, AuditQuery, NewAuditEvent, TenantId, now};
use insights_core::store::{AuditStore, StoreResult};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::SqliteStore;
use super::util::{col, db, enum_col, id, json_col, micros, opt_id, to_json, ts};

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(
        &self,
        tenant: TenantId,
        event: NewAuditEvent,
    ) -> StoreResult<AuditEvent> {
        append(&self.pool, tenant, event).await
    }

    async fn list_audit(
        &self,
        tenant: TenantId,
        query: &AuditQuery,
    ) -> StoreResult<Vec<AuditEvent>> {
        list(&self.pool, tenant, query, None, false).await
    }

    async fn list_audit_newest_first(
        &self,
        tenant: TenantId,
        query: &AuditQuery,
        before_seq: Option<i64>,
    ) -> StoreResult<Vec<AuditEvent>> {
        list(&self.pool, tenant, query, before_seq, true).await
    }

    async fn audit_head(&self, tenant: TenantId) -> StoreResult<Option<(i64, String)>> {
        head(&self.pool, tenant).await
    }
}

/// Appends one event. `BEGIN IMMEDIATE` takes the database's write lock
/// before the head is read, so concurrent appends (from any connection or
/// process) run one after the other: each sees the previous one's head,
/// and seq numbers have neither gaps nor forks. The primary key
/// (tenant_id, seq) would reject a fork even if that ever failed.
pub(super) async fn append(
    pool: &SqlitePool,
    tenant: TenantId,
    new: NewAuditEvent,
) -> StoreResult<insights_core::domain::AuditEvent> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let ev = append_on(&mut tx, tenant, new).await?;
    tx.commit().await.map_err(db)?;
    Ok(ev)
}

/// The append of [`append`] inside the caller's `BEGIN IMMEDIATE`
/// transaction (the fenced append of a scheduled job uses it).
pub(super) async fn append_on(
    tx: &mut sqlx::SqliteConnection,
    tenant: TenantId,
    new: NewAuditEvent,
) -> StoreResult<insights_core::domain::AuditEvent> {
    let head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_heads WHERE tenant_id = ?")
            .bind(tenant.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
    let ev = AuditEvent::chain(
        tenant,
        head.as_ref().map(|(s, h)| (*s, h.as_str())),
        now(),
        new,
    );
    sqlx::query(
        "INSERT INTO audit_events (tenant_id, seq, id, at, actor, action, recording_id, target, \
         reason, source, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(tenant.0)
    .bind(ev.seq)
    .bind(ev.id.0)
    .bind(micros(ev.at))
    .bind(&ev.actor)
    .bind(ev.action.as_str())
    .bind(ev.recording_id.map(|r| r.0))
    .bind(&ev.target)
    .bind(&ev.reason)
    .bind(&ev.source)
    .bind(to_json(&ev.details)?)
    .bind(&ev.prev_hash)
    .bind(&ev.hash)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    sqlx::query(
        "INSERT INTO audit_heads (tenant_id, seq, hash) VALUES (?, ?, ?) \
         ON CONFLICT (tenant_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )
    .bind(tenant.0)
    .bind(ev.seq)
    .bind(&ev.hash)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    Ok(ev)
}

fn from_row(row: &SqliteRow) -> StoreResult<AuditEvent> {
    Ok(AuditEvent {
        id: id(row, "id")?,
        tenant_id: id(row, "tenant_id")?,
        seq: col(row, "seq")?,
        at: ts(row, "at")?,
        actor: col(row, "actor")?,
        action: enum_col(row, "action")?,
        recording_id: opt_id(row, "recording_id")?,
        target: col(row, "target")?,
        reason: col(row, "reason")?,
        source: col(row, "source")?,
        details: json_col(row, "details")?,
        prev_hash: col(row, "prev_hash")?,
        hash: col(row, "hash")?,
    })
}

pub(super) async fn list(
    pool: &SqlitePool,
    tenant: TenantId,
    q: &AuditQuery,
    before: Option<i64>,
    newest_first: bool,
) -> StoreResult<Vec<AuditEvent>> {
    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT tenant_id, seq, id, at, actor, action, recording_id, target, reason, source, \
         details, prev_hash, hash FROM audit_events WHERE tenant_id = ",
    );
    qb.push_bind(tenant.0);
    if let Some(actor) = &q.actor {
        qb.push(" AND actor = ").push_bind(actor.clone());
    }
    if let Some(action) = q.action {
        qb.push(" AND action = ").push_bind(action.as_str());
    }
    if let Some(rec) = q.recording_id {
        qb.push(" AND recording_id = ").push_bind(rec.0);
    }
    if let Some(from) = q.from {
        qb.push(" AND at >= ").push_bind(micros(from));
    }
    if let Some(to) = q.to {
        qb.push(" AND at < ").push_bind(micros(to));
    }
    if let Some(after) = q.after_seq {
        qb.push(" AND seq > ").push_bind(after);
    }
    if let Some(before) = before {
        qb.push(" AND seq < ").push_bind(before);
    }
    qb.push(if newest_first {
        " ORDER BY seq DESC"
    } else {
        " ORDER BY seq"
    });
    if q.limit > 0 {
        qb.push(" LIMIT ").push_bind(i64::from(q.limit));
    }
    qb.build()
        .fetch_all(pool)
        .await
        .map_err(db)?
        .iter()
        .map(from_row)
        .collect()
}

pub(super) async fn head(
    pool: &SqlitePool,
    tenant: TenantId,
) -> StoreResult<Option<(i64, String)>> {
    sqlx::query_as("SELECT seq, hash FROM audit_heads WHERE tenant_id = ?")
        .bind(tenant.0)
        .fetch_optional(pool)
        .await
        .map_err(db)
}
