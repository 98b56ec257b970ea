//! Alerts, alert channels and node heartbeats. An installation-wide row
//! carries the nil UUID as its tenant. Raising runs in a `BEGIN
//! IMMEDIATE` transaction, so the look for an open alert and the insert
//! see no other writer in between (one alert per condition).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::crypto::SealedSecret;
use insights_core::domain::{
    Alert, AlertChannel, AlertChannelId, AlertId, NewAlert, NodeHeartbeat, Raised, Realm, TenantId,
    delivery,
};
use insights_core::store::{AlertStore, StoreError, StoreResult};
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::SqliteStore;
use super::util::{col, db, enum_col, id, json_col, micros, opt_ts, to_json, ts};

const ALERT_COLUMNS: &str = "tenant_id, id, kind, key, details, occurrences, first_at, last_at, \
     delivery, deliveries, attempts, acknowledged_at, acknowledged_by";
const CHANNEL_COLUMNS: &str =
    "tenant_id, id, kind, name, target, secret, enabled, created_at, created_by";

/// The tenant column of a realm: the tenant, or the nil UUID.
fn owner(realm: Realm) -> Uuid {
    match realm {
        Realm::Tenant(t) => t.0,
        Realm::Platform => Uuid::nil(),
    }
}

fn tenant_of(u: Uuid) -> Option<TenantId> {
    (!u.is_nil()).then_some(TenantId(u))
}

fn alert_from_row(row: &SqliteRow) -> StoreResult<Alert> {
    Ok(Alert {
        id: id(row, "id")?,
        tenant_id: tenant_of(col(row, "tenant_id")?),
        kind: enum_col(row, "kind")?,
        key: col(row, "key")?,
        details: json_col(row, "details")?,
        occurrences: col(row, "occurrences")?,
        first_at: ts(row, "first_at")?,
        last_at: ts(row, "last_at")?,
        delivery: col(row, "delivery")?,
        deliveries: json_col(row, "deliveries")?,
        attempts: col(row, "attempts")?,
        acknowledged_at: opt_ts(row, "acknowledged_at")?,
        acknowledged_by: col(row, "acknowledged_by")?,
    })
}

fn channel_from_row(row: &SqliteRow) -> StoreResult<AlertChannel> {
    let secret: Option<String> = col(row, "secret")?;
    let secret = secret
        .map(|s| {
            serde_json::from_str::<SealedSecret>(&s)
                .map_err(|_| StoreError::Corrupt("column `secret`: invalid JSON".into()))
        })
        .transpose()?;
    Ok(AlertChannel {
        id: id(row, "id")?,
        tenant_id: tenant_of(col(row, "tenant_id")?),
        kind: enum_col(row, "kind")?,
        name: col(row, "name")?,
        target: col(row, "target")?,
        secret,
        enabled: col::<i64>(row, "enabled")? != 0,
        created_at: ts(row, "created_at")?,
        created_by: col(row, "created_by")?,
    })
}

fn heartbeat_from_row(row: &SqliteRow) -> StoreResult<NodeHeartbeat> {
    Ok(NodeHeartbeat {
        node: col(row, "node")?,
        roles: col(row, "roles")?,
        at: ts(row, "at")?,
        spool_used: col(row, "spool_used")?,
        spool_quota: col(row, "spool_quota")?,
        oldest_pending_at: opt_ts(row, "oldest_pending_at")?,
    })
}

fn window_start(at: DateTime<Utc>, window: Duration) -> i64 {
    micros(at).saturating_sub(i64::try_from(window.as_micros()).unwrap_or(i64::MAX))
}

#[async_trait]
impl AlertStore for SqliteStore {
    async fn raise_alert(
        &self,
        realm: Realm,
        alert: &NewAlert,
        at: DateTime<Utc>,
        window: Duration,
    ) -> StoreResult<Raised> {
        let tenant = owner(realm);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        let open = sqlx::query(
            "SELECT id FROM alerts WHERE tenant_id = ? AND kind = ? AND key = ? \
             AND acknowledged_at IS NULL AND first_at > ? ORDER BY first_at DESC LIMIT 1",
        )
        .bind(tenant)
        .bind(alert.kind.as_str())
        .bind(&alert.key)
        .bind(window_start(at, window))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let (alert_id, new) = match open {
            Some(row) => {
                let existing: Uuid = col(&row, "id")?;
                sqlx::query(
                    "UPDATE alerts SET occurrences = occurrences + 1, \
                     last_at = max(last_at, ?) WHERE tenant_id = ? AND id = ?",
                )
                .bind(micros(at))
                .bind(tenant)
                .bind(existing)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                (existing, false)
            }
            None => {
                let new_id = AlertId::new();
                sqlx::query(
                    "INSERT INTO alerts (tenant_id, id, kind, key, details, occurrences, \
                     first_at, last_at, delivery, deliveries, attempts) \
                     VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, '{}', 0)",
                )
                .bind(tenant)
                .bind(new_id.0)
                .bind(alert.kind.as_str())
                .bind(&alert.key)
                .bind(to_json(&alert.details)?)
                .bind(micros(at))
                .bind(micros(at))
                .bind(delivery::PENDING)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                (new_id.0, true)
            }
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE tenant_id = ? AND id = ?"
        )))
        .bind(tenant)
        .bind(alert_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let stored = alert_from_row(&row)?;
        tx.commit().await.map_err(db)?;
        Ok(match new {
            true => Raised::New(stored),
            false => Raised::Repeat(stored),
        })
    }

    async fn alerts(&self, realm: Realm, open_only: bool, limit: u32) -> StoreResult<Vec<Alert>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE tenant_id = ? \
             AND (? = 0 OR acknowledged_at IS NULL) ORDER BY first_at DESC, id DESC LIMIT ?"
        )))
        .bind(owner(realm))
        .bind(i64::from(open_only))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(alert_from_row).collect()
    }

    async fn alert(&self, realm: Realm, id: AlertId) -> StoreResult<Alert> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE tenant_id = ? AND id = ?"
        )))
        .bind(owner(realm))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref()
            .map(alert_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    async fn acknowledge_alert(
        &self,
        realm: Realm,
        id: AlertId,
        by: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Alert>> {
        let done = sqlx::query(
            "UPDATE alerts SET acknowledged_at = ?, acknowledged_by = ? \
             WHERE tenant_id = ? AND id = ? AND acknowledged_at IS NULL",
        )
        .bind(micros(at))
        .bind(by)
        .bind(owner(realm))
        .bind(id.0)
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        let alert = self.alert(realm, id).await?;
        Ok((done == 1).then_some(alert))
    }

    async fn alerts_to_deliver(&self, realm: Realm, limit: u32) -> StoreResult<Vec<Alert>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE tenant_id = ? AND delivery = ? \
             ORDER BY first_at, id LIMIT ?"
        )))
        .bind(owner(realm))
        .bind(delivery::PENDING)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(alert_from_row).collect()
    }

    async fn set_alert_delivery(
        &self,
        realm: Realm,
        id: AlertId,
        state: &str,
        deliveries: &serde_json::Map<String, serde_json::Value>,
        attempts: i64,
    ) -> StoreResult<()> {
        let n = sqlx::query(
            "UPDATE alerts SET delivery = ?, deliveries = ?, attempts = ? \
             WHERE tenant_id = ? AND id = ?",
        )
        .bind(state)
        .bind(to_json(deliveries)?)
        .bind(attempts)
        .bind(owner(realm))
        .bind(id.0)
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        match n {
            1 => Ok(()),
            _ => Err(StoreError::NotFound),
        }
    }

    async fn count_alerts_sent_since(
        &self,
        realm: Realm,
        since: DateTime<Utc>,
    ) -> StoreResult<i64> {
        let row = sqlx::query(
            "SELECT count(*) AS n FROM alerts WHERE tenant_id = ? AND first_at >= ? \
             AND delivery IN (?, ?)",
        )
        .bind(owner(realm))
        .bind(micros(since))
        .bind(delivery::DELIVERED)
        .bind(delivery::FAILED)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        col(&row, "n")
    }

    async fn put_alert_channel(&self, realm: Realm, channel: &AlertChannel) -> StoreResult<()> {
        if channel.tenant_id != realm.tenant() {
            return Err(StoreError::Invalid(
                "the alert channel belongs to another realm".into(),
            ));
        }
        let secret = channel.secret.as_ref().map(to_json).transpose()?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO alert_channels ({CHANNEL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (tenant_id, id) DO UPDATE SET kind = excluded.kind, \
             name = excluded.name, target = excluded.target, secret = excluded.secret, \
             enabled = excluded.enabled"
        )))
        .bind(owner(realm))
        .bind(channel.id.0)
        .bind(channel.kind.as_str())
        .bind(&channel.name)
        .bind(&channel.target)
        .bind(secret)
        .bind(i64::from(channel.enabled))
        .bind(micros(channel.created_at))
        .bind(&channel.created_by)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn alert_channels(&self, realm: Realm) -> StoreResult<Vec<AlertChannel>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHANNEL_COLUMNS} FROM alert_channels WHERE tenant_id = ? \
             ORDER BY created_at, id"
        )))
        .bind(owner(realm))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(channel_from_row).collect()
    }

    async fn delete_alert_channel(&self, realm: Realm, id: AlertChannelId) -> StoreResult<bool> {
        let n = sqlx::query("DELETE FROM alert_channels WHERE tenant_id = ? AND id = ?")
            .bind(owner(realm))
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(db)?
            .rows_affected();
        Ok(n == 1)
    }

    async fn put_node_heartbeat(&self, hb: &NodeHeartbeat) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO node_heartbeats (node, roles, at, spool_used, spool_quota, \
             oldest_pending_at) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (node) DO UPDATE SET roles = excluded.roles, at = excluded.at, \
             spool_used = excluded.spool_used, spool_quota = excluded.spool_quota, \
             oldest_pending_at = excluded.oldest_pending_at",
        )
        .bind(&hb.node)
        .bind(&hb.roles)
        .bind(micros(hb.at))
        .bind(hb.spool_used)
        .bind(hb.spool_quota)
        .bind(hb.oldest_pending_at.map(micros))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn node_heartbeats(&self) -> StoreResult<Vec<NodeHeartbeat>> {
        let rows = sqlx::query(
            "SELECT node, roles, at, spool_used, spool_quota, oldest_pending_at \
             FROM node_heartbeats ORDER BY node",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(heartbeat_from_row).collect()
    }

    async fn delete_node_heartbeat(&self, node: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM node_heartbeats WHERE node = ?")
            .bind(node)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn last_recording_started(&self, tenant: TenantId) -> StoreResult<Option<DateTime<Utc>>> {
        let row = sqlx::query("SELECT max(started_at) AS at FROM recordings WHERE tenant_id = ?")
            .bind(tenant.0)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        opt_ts(&row, "at")
    }

    async fn count_dead_jobs(&self, tenant: TenantId, since: DateTime<Utc>) -> StoreResult<i64> {
        let row = sqlx::query(
            "SELECT count(*) AS n FROM jobs WHERE tenant_id = ? AND state = 'dead' \
             AND coalesce(finished_at, updated_at) >= ?",
        )
        .bind(tenant.0)
        .bind(micros(since))
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        col(&row, "n")
    }
}
