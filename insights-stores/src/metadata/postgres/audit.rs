//! The per-tenant audit hash chain.
//!
//! Appends serialise on the tenant's row in `audit_heads` (`FOR UPDATE`),
//! so concurrent appends get consecutive sequence numbers, each linked to
//! the hash of its predecessor: no gaps, no forks. `details` is stored as
//! `json` text exactly as serialised, so the hash recomputes after a
//! round trip.

use async_trait::async_trait;
use insights_core::domain::{
    AuditEvent, AuditEventId, AuditQuery, NewAuditEvent, RecordingId, TenantId,
};
use insights_core::store::{AuditStore, StoreError, StoreResult};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::PgStore;
use super::error::{DbResultExt, col, enum_col};

#[async_trait]
impl AuditStore for PgStore {
    async fn append_audit(
        &self,
        tenant: TenantId,
        event: NewAuditEvent,
    ) -> StoreResult<AuditEvent> {
        in_tenant!(self, tenant, |c| append(c, tenant, event))
    }

    async fn list_audit(
        &self,
        tenant: TenantId,
        query: &AuditQuery,
    ) -> StoreResult<Vec<AuditEvent>> {
        in_tenant!(self, tenant, |c| list(c, tenant, query, None, false))
    }

    async fn list_audit_newest_first(
        &self,
        tenant: TenantId,
        query: &AuditQuery,
        before_seq: Option<i64>,
    ) -> StoreResult<Vec<AuditEvent>> {
        in_tenant!(self, tenant, |c| list(c, tenant, query, before_seq, true))
    }

    async fn audit_head(&self, tenant: TenantId) -> StoreResult<Option<(i64, String)>> {
        in_tenant!(self, tenant, |c| head(c, tenant))
    }
}

/// `seq` of a head row before the first event (its hash is unused).
const EMPTY_HEAD_SEQ: i64 = 0;

pub(super) async fn append(
    c: &mut PgConnection,
    tenant: TenantId,
    new: NewAuditEvent,
) -> StoreResult<AuditEvent> {
    // Make sure the head row exists, then lock it: every appender of this
    // tenant queues here until the previous one commits.
    sqlx::query(
        "INSERT INTO audit_heads (tenant_id, seq, hash) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id) DO NOTHING",
    )
    .bind(tenant.0)
    .bind(EMPTY_HEAD_SEQ)
    .bind("")
    .execute(&mut *c)
    .await
    .db()?;
    let (seq, hash): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM audit_heads WHERE tenant_id = $1 FOR UPDATE")
            .bind(tenant.0)
            .fetch_one(&mut *c)
            .await
            .db()?;
    let prev = (seq != EMPTY_HEAD_SEQ).then_some((seq, hash.as_str()));
    let ev = AuditEvent::chain(tenant, prev, insights_core::domain::now(), new);
    let details = serde_json::to_string(&ev.details)
        .map_err(|e| StoreError::Invalid(format!("audit details: {e}")))?;
    sqlx::query(
        "INSERT INTO audit_events (tenant_id, seq, id, at, actor, action, recording_id, target, \
         reason, source, details, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::json, $12, $13)",
    )
    .bind(tenant.0)
    .bind(ev.seq)
    .bind(ev.id.0)
    .bind(ev.at)
    .bind(&ev.actor)
    .bind(ev.action.as_str())
    .bind(ev.recording_id.map(|r| r.0))
    .bind(&ev.target)
    .bind(&ev.reason)
    .bind(&ev.source)
    .bind(details)
    .bind(&ev.prev_hash)
    .bind(&ev.hash)
    .execute(&mut *c)
    .await
    .db()?;
    sqlx::query("UPDATE audit_heads SET seq = $2, hash = $3 WHERE tenant_id = $1")
        .bind(tenant.0)
        .bind(ev.seq)
        .bind(&ev.hash)
        .execute(c)
        .await
        .db()?;
    Ok(ev)
}

fn from_row(row: &PgRow) -> StoreResult<AuditEvent> {
    let details: String = col(row, "details")?;
    Ok(AuditEvent {
        id: AuditEventId(col(row, "id")?),
        tenant_id: TenantId(col(row, "tenant_id")?),
        seq: col(row, "seq")?,
        at: col(row, "at")?,
        actor: col(row, "actor")?,
        action: enum_col(row, "action")?,
        recording_id: col::<Option<Uuid>>(row, "recording_id")?.map(RecordingId),
        target: col(row, "target")?,
        reason: col(row, "reason")?,
        source: col(row, "source")?,
        details: serde_json::from_str(&details)
            .map_err(|_| StoreError::Corrupt("audit details are not JSON".into()))?,
        prev_hash: col(row, "prev_hash")?,
        hash: col(row, "hash")?,
    })
}

pub(super) async fn list(
    c: &mut PgConnection,
    tenant: TenantId,
    q: &AuditQuery,
    before: Option<i64>,
    newest_first: bool,
) -> StoreResult<Vec<AuditEvent>> {
    let mut b: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT tenant_id, seq, id, at, actor, action, recording_id, target, reason, source, \
         details::text AS details, prev_hash, hash FROM audit_events WHERE tenant_id = ",
    );
    b.push_bind(tenant.0);
    if let Some(actor) = &q.actor {
        b.push(" AND actor = ").push_bind(actor);
    }
    if let Some(action) = q.action {
        b.push(" AND action = ").push_bind(action.as_str());
    }
    if let Some(r) = q.recording_id {
        b.push(" AND recording_id = ").push_bind(r.0);
    }
    if let Some(from) = q.from {
        b.push(" AND at >= ").push_bind(from);
    }
    if let Some(to) = q.to {
        b.push(" AND at < ").push_bind(to);
    }
    if let Some(after) = q.after_seq {
        b.push(" AND seq > ").push_bind(after);
    }
    if let Some(before) = before {
        b.push(" AND seq < ").push_bind(before);
    }
    b.push(if newest_first {
        " ORDER BY seq DESC"
    } else {
        " ORDER BY seq"
    });
    if q.limit > 0 {
        b.push(" LIMIT ").push_bind(i64::from(q.limit));
    }
    b.build()
        .fetch_all(c)
        .await
        .db()?
        .iter()
        .map(from_row)
        .collect()
}

pub(super) async fn head(
    c: &mut PgConnection,
    tenant: TenantId,
) -> StoreResult<Option<(i64, String)>> {
    let head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_heads WHERE tenant_id = $1")
            .bind(tenant.0)
            .fetch_optional(c)
            .await
            .db()?;
    Ok(head.filter(|(seq, _)| *seq != EMPTY_HEAD_SEQ))
}
