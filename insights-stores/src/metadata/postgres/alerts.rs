//! Alerts, alert channels and node heartbeats. A tenant's rows are read
//! and written in its tenant session (row-level security); the
//! installation's (tenant_id the nil UUID) outside any tenant session,
//! as the connecting user. Raising takes a transaction-scoped advisory
//! lock on the condition (tenant, kind, key), so two nodes raising the
//! same condition at once make one alert. Heartbeats are platform scope.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::crypto::SealedSecret;
use insights_core::domain::{
    Alert, AlertChannel, AlertChannelId, AlertId, NewAlert, NodeHeartbeat, Raised, Realm, TenantId,
    delivery,
};
use insights_core::store::{AlertStore, StoreError, StoreResult};
use serde_json::{Map, Value};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use uuid::Uuid;

use super::PgStore;
use super::error::{DbResultExt, col, enum_col};

const ALERT_COLUMNS: &str = "tenant_id, id, kind, key, details, occurrences, first_at, last_at, \
     delivery, deliveries, attempts, acknowledged_at, acknowledged_by";
const CHANNEL_COLUMNS: &str =
    "tenant_id, id, kind, name, target, secret, enabled, created_at, created_by";

fn owner(realm: Realm) -> Uuid {
    match realm {
        Realm::Tenant(t) => t.0,
        Realm::Platform => Uuid::nil(),
    }
}

fn tenant_of(u: Uuid) -> Option<TenantId> {
    (!u.is_nil()).then_some(TenantId(u))
}

fn alert_from_row(row: &PgRow) -> StoreResult<Alert> {
    let Json(details): Json<Map<String, Value>> = col(row, "details")?;
    let Json(deliveries): Json<Map<String, Value>> = col(row, "deliveries")?;
    Ok(Alert {
        id: AlertId(col(row, "id")?),
        tenant_id: tenant_of(col(row, "tenant_id")?),
        kind: enum_col(row, "kind")?,
        key: col(row, "key")?,
        details,
        occurrences: col(row, "occurrences")?,
        first_at: col(row, "first_at")?,
        last_at: col(row, "last_at")?,
        delivery: col(row, "delivery")?,
        deliveries,
        attempts: col(row, "attempts")?,
        acknowledged_at: col(row, "acknowledged_at")?,
        acknowledged_by: col(row, "acknowledged_by")?,
    })
}

fn channel_from_row(row: &PgRow) -> StoreResult<AlertChannel> {
    let secret: Option<Json<SealedSecret>> = col(row, "secret")?;
    Ok(AlertChannel {
        id: AlertChannelId(col(row, "id")?),
        tenant_id: tenant_of(col(row, "tenant_id")?),
        kind: enum_col(row, "kind")?,
        name: col(row, "name")?,
        target: col(row, "target")?,
        secret: secret.map(|Json(s)| s),
        enabled: col(row, "enabled")?,
        created_at: col(row, "created_at")?,
        created_by: col(row, "created_by")?,
    })
}

fn heartbeat_from_row(row: &PgRow) -> StoreResult<NodeHeartbeat> {
    Ok(NodeHeartbeat {
        node: col(row, "node")?,
        roles: col(row, "roles")?,
        at: col(row, "at")?,
        spool_used: col(row, "spool_used")?,
        spool_quota: col(row, "spool_quota")?,
        oldest_pending_at: col(row, "oldest_pending_at")?,
    })
}

async fn fetch_alert(c: &mut PgConnection, tenant: Uuid, id: Uuid) -> StoreResult<Option<Alert>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(tenant)
    .bind(id)
    .fetch_optional(c)
    .await
    .db()?;
    row.as_ref().map(alert_from_row).transpose()
}

async fn raise(
    c: &mut PgConnection,
    tenant: Uuid,
    alert: &NewAlert,
    at: DateTime<Utc>,
    window: Duration,
) -> StoreResult<Raised> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!(
            "alert:{tenant}:{}:{}",
            alert.kind.as_str(),
            alert.key
        ))
        .execute(&mut *c)
        .await
        .db()?;
    let since = at - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let open: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM alerts WHERE tenant_id = $1 AND kind = $2 AND key = $3 \
         AND acknowledged_at IS NULL AND first_at > $4 ORDER BY first_at DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(alert.kind.as_str())
    .bind(&alert.key)
    .bind(since)
    .fetch_optional(&mut *c)
    .await
    .db()?;
    let (id, new) = match open {
        Some(id) => {
            sqlx::query(
                "UPDATE alerts SET occurrences = occurrences + 1, \
                 last_at = greatest(last_at, $3) WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(id)
            .bind(at)
            .execute(&mut *c)
            .await
            .db()?;
            (id, false)
        }
        None => {
            let id = AlertId::new().0;
            sqlx::query(
                "INSERT INTO alerts (tenant_id, id, kind, key, details, occurrences, first_at, \
                 last_at, delivery, deliveries, attempts) \
                 VALUES ($1, $2, $3, $4, $5, 1, $6, $6, $7, '{}'::jsonb, 0)",
            )
            .bind(tenant)
            .bind(id)
            .bind(alert.kind.as_str())
            .bind(&alert.key)
            .bind(Json(&alert.details))
            .bind(at)
            .bind(delivery::PENDING)
            .execute(&mut *c)
            .await
            .db()?;
            (id, true)
        }
    };
    let stored = fetch_alert(c, tenant, id)
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(match new {
        true => Raised::New(stored),
        false => Raised::Repeat(stored),
    })
}

async fn list(
    c: &mut PgConnection,
    tenant: Uuid,
    open_only: bool,
    limit: u32,
) -> StoreResult<Vec<Alert>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE tenant_id = $1 \
         AND (NOT $2 OR acknowledged_at IS NULL) ORDER BY first_at DESC, id DESC LIMIT $3"
    )))
    .bind(tenant)
    .bind(open_only)
    .bind(i64::from(limit))
    .fetch_all(c)
    .await
    .db()?;
    rows.iter().map(alert_from_row).collect()
}

async fn acknowledge(
    c: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    by: &str,
    at: DateTime<Utc>,
) -> StoreResult<Option<Alert>> {
    let n = sqlx::query(
        "UPDATE alerts SET acknowledged_at = $3, acknowledged_by = $4 \
         WHERE tenant_id = $1 AND id = $2 AND acknowledged_at IS NULL",
    )
    .bind(tenant)
    .bind(id)
    .bind(at)
    .bind(by)
    .execute(&mut *c)
    .await
    .db()?
    .rows_affected();
    let alert = fetch_alert(c, tenant, id)
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok((n == 1).then_some(alert))
}

async fn pending(c: &mut PgConnection, tenant: Uuid, limit: u32) -> StoreResult<Vec<Alert>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE tenant_id = $1 AND delivery = $2 \
         ORDER BY first_at, id LIMIT $3"
    )))
    .bind(tenant)
    .bind(delivery::PENDING)
    .bind(i64::from(limit))
    .fetch_all(c)
    .await
    .db()?;
    rows.iter().map(alert_from_row).collect()
}

async fn set_delivery(
    c: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    state: &str,
    deliveries: &Map<String, Value>,
    attempts: i64,
) -> StoreResult<()> {
    let n = sqlx::query(
        "UPDATE alerts SET delivery = $3, deliveries = $4, attempts = $5 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(state)
    .bind(Json(deliveries))
    .bind(attempts)
    .execute(c)
    .await
    .db()?
    .rows_affected();
    match n {
        1 => Ok(()),
        _ => Err(StoreError::NotFound),
    }
}

async fn count_sent(c: &mut PgConnection, tenant: Uuid, since: DateTime<Utc>) -> StoreResult<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM alerts WHERE tenant_id = $1 AND first_at >= $2 \
         AND delivery IN ($3, $4)",
    )
    .bind(tenant)
    .bind(since)
    .bind(delivery::DELIVERED)
    .bind(delivery::FAILED)
    .fetch_one(c)
    .await
    .db()
}

async fn put_channel(c: &mut PgConnection, tenant: Uuid, ch: &AlertChannel) -> StoreResult<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO alert_channels ({CHANNEL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name, \
         target = EXCLUDED.target, secret = EXCLUDED.secret, enabled = EXCLUDED.enabled"
    )))
    .bind(tenant)
    .bind(ch.id.0)
    .bind(ch.kind.as_str())
    .bind(&ch.name)
    .bind(&ch.target)
    .bind(ch.secret.as_ref().map(Json))
    .bind(ch.enabled)
    .bind(ch.created_at)
    .bind(&ch.created_by)
    .execute(c)
    .await
    .db()?;
    Ok(())
}

async fn channels(c: &mut PgConnection, tenant: Uuid) -> StoreResult<Vec<AlertChannel>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANNEL_COLUMNS} FROM alert_channels WHERE tenant_id = $1 ORDER BY created_at, id"
    )))
    .bind(tenant)
    .fetch_all(c)
    .await
    .db()?;
    rows.iter().map(channel_from_row).collect()
}

async fn delete_channel(c: &mut PgConnection, tenant: Uuid, id: Uuid) -> StoreResult<bool> {
    let n = sqlx::query("DELETE FROM alert_channels WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(c)
        .await
        .db()?
        .rows_affected();
    Ok(n == 1)
}

#[async_trait]
impl AlertStore for PgStore {
    async fn raise_alert(
        &self,
        realm: Realm,
        alert: &NewAlert,
        at: DateTime<Utc>,
        window: Duration,
    ) -> StoreResult<Raised> {
        let t = owner(realm);
        in_realm!(self, realm, |c| raise(c, t, alert, at, window))
    }

    async fn alerts(&self, realm: Realm, open_only: bool, limit: u32) -> StoreResult<Vec<Alert>> {
        let t = owner(realm);
        in_realm!(self, realm, |c| list(c, t, open_only, limit))
    }

    async fn alert(&self, realm: Realm, id: AlertId) -> StoreResult<Alert> {
        let t = owner(realm);
        let found: StoreResult<Option<Alert>> = in_realm!(self, realm, |c| fetch_alert(c, t, id.0));
        found?.ok_or(StoreError::NotFound)
    }

    async fn acknowledge_alert(
        &self,
        realm: Realm,
        id: AlertId,
        by: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Alert>> {
        let t = owner(realm);
        in_realm!(self, realm, |c| acknowledge(c, t, id.0, by, at))
    }

    async fn alerts_to_deliver(&self, realm: Realm, limit: u32) -> StoreResult<Vec<Alert>> {
        let t = owner(realm);
        in_realm!(self, realm, |c| pending(c, t, limit))
    }

    async fn set_alert_delivery(
        &self,
        realm: Realm,
        id: AlertId,
        state: &str,
        deliveries: &Map<String, Value>,
        attempts: i64,
    ) -> StoreResult<()> {
        let t = owner(realm);
        in_realm!(self, realm, |c| set_delivery(
            c, t, id.0, state, deliveries, attempts
        ))
    }

    async fn count_alerts_sent_since(
        &self,
        realm: Realm,
        since: DateTime<Utc>,
    ) -> StoreResult<i64> {
        let t = owner(realm);
        in_realm!(self, realm, |c| count_sent(c, t, since))
    }

    async fn put_alert_channel(&self, realm: Realm, channel: &AlertChannel) -> StoreResult<()> {
        if channel.tenant_id != realm.tenant() {
            return Err(StoreError::Invalid(
                "the alert channel belongs to another realm".into(),
            ));
        }
        let t = owner(realm);
        in_realm!(self, realm, |c| put_channel(c, t, channel))
    }

    async fn alert_channels(&self, realm: Realm) -> StoreResult<Vec<AlertChannel>> {
        let t = owner(realm);
        in_realm!(self, realm, |c| channels(c, t))
    }

    async fn delete_alert_channel(&self, realm: Realm, id: AlertChannelId) -> StoreResult<bool> {
        let t = owner(realm);
        in_realm!(self, realm, |c| delete_channel(c, t, id.0))
    }

    async fn put_node_heartbeat(&self, hb: &NodeHeartbeat) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO node_heartbeats (node, roles, at, spool_used, spool_quota, \
             oldest_pending_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (node) DO UPDATE SET roles = EXCLUDED.roles, at = EXCLUDED.at, \
             spool_used = EXCLUDED.spool_used, spool_quota = EXCLUDED.spool_quota, \
             oldest_pending_at = EXCLUDED.oldest_pending_at",
        )
        .bind(&hb.node)
        .bind(&hb.roles)
        .bind(hb.at)
        .bind(hb.spool_used)
        .bind(hb.spool_quota)
        .bind(hb.oldest_pending_at)
        .execute(&self.pool)
        .await
        .db()?;
        Ok(())
    }

    async fn node_heartbeats(&self) -> StoreResult<Vec<NodeHeartbeat>> {
        let rows = sqlx::query(
            "SELECT node, roles, at, spool_used, spool_quota, oldest_pending_at \
             FROM node_heartbeats ORDER BY node",
        )
        .fetch_all(&self.pool)
        .await
        .db()?;
        rows.iter().map(heartbeat_from_row).collect()
    }

    async fn delete_node_heartbeat(&self, node: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM node_heartbeats WHERE node = $1")
            .bind(node)
            .execute(&self.pool)
            .await
            .db()?;
        Ok(())
    }

    async fn last_recording_started(&self, tenant: TenantId) -> StoreResult<Option<DateTime<Utc>>> {
        in_tenant!(self, tenant, |c| async move {
            sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
                "SELECT max(started_at) FROM recordings WHERE tenant_id = $1",
            )
            .bind(tenant.0)
            .fetch_one(c)
            .await
            .db()
        })
    }

    async fn count_dead_jobs(&self, tenant: TenantId, since: DateTime<Utc>) -> StoreResult<i64> {
        in_tenant!(self, tenant, |c| async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM jobs WHERE tenant_id = $1 AND state = 'dead' \
                 AND coalesce(finished_at, updated_at) >= $2",
            )
            .bind(tenant.0)
            .bind(since)
            .fetch_one(c)
            .await
            .db()
        })
    }
}
