//! Alerts, their channels and the nodes' heartbeats (issue 17 §4).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::*;

/// Alerts and channels of a realm (a tenant's, seen only by it; or the
/// platform's: installation-wide, seen by operators), the nodes'
/// heartbeats (platform scope) and the two counts the rules read.
#[async_trait]
pub trait AlertStore: Send + Sync + 'static {
    /// Raises `alert` in `realm` at `at`, atomically deduplicated: when an
    /// alert of the same kind and key is open (not acknowledged) and was
    /// first raised less than `window` before `at`, that one counts one
    /// more occurrence (`last_at` = `at`) and is returned as
    /// [`Raised::Repeat`]; otherwise a new alert (delivery `pending`,
    /// one occurrence) is [`Raised::New`].
    async fn raise_alert(
        &self,
        realm: Realm,
        alert: &NewAlert,
        at: DateTime<Utc>,
        window: Duration,
    ) -> StoreResult<Raised>;

    /// The realm's alerts, newest first (only unacknowledged ones when
    /// `open_only`), at most `limit`.
    async fn alerts(&self, realm: Realm, open_only: bool, limit: u32) -> StoreResult<Vec<Alert>>;

    /// One alert; another realm's is [`NotFound`](super::StoreError::NotFound).
    async fn alert(&self, realm: Realm, id: AlertId) -> StoreResult<Alert>;

    /// Acknowledges an open alert; `None` when it was acknowledged
    /// already (kept as it was), `NotFound` when there is none.
    async fn acknowledge_alert(
        &self,
        realm: Realm,
        id: AlertId,
        by: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Alert>>;

    /// Alerts whose delivery is `pending`, oldest first, at most `limit`.
    async fn alerts_to_deliver(&self, realm: Realm, limit: u32) -> StoreResult<Vec<Alert>>;

    /// Records a delivery attempt: the state, the per-channel outcomes
    /// and the number of attempts.
    async fn set_alert_delivery(
        &self,
        realm: Realm,
        id: AlertId,
        delivery: &str,
        deliveries: &serde_json::Map<String, serde_json::Value>,
        attempts: i64,
    ) -> StoreResult<()>;

    /// How many of the realm's alerts first raised since `since` went
    /// out (delivered, or tried and failed): the hourly rate limit.
    async fn count_alerts_sent_since(&self, realm: Realm, since: DateTime<Utc>)
    -> StoreResult<i64>;

    /// Inserts or replaces a channel of `realm` (its `tenant_id` must
    /// match the realm).
    async fn put_alert_channel(&self, realm: Realm, channel: &AlertChannel) -> StoreResult<()>;

    /// The realm's channels, oldest first.
    async fn alert_channels(&self, realm: Realm) -> StoreResult<Vec<AlertChannel>>;

    /// Deletes a channel; `false` when the realm has none with that id.
    async fn delete_alert_channel(&self, realm: Realm, id: AlertChannelId) -> StoreResult<bool>;

    /// Platform scope: inserts or replaces a node's heartbeat.
    async fn put_node_heartbeat(&self, heartbeat: &NodeHeartbeat) -> StoreResult<()>;

    /// Platform scope: every node's last heartbeat.
    async fn node_heartbeats(&self) -> StoreResult<Vec<NodeHeartbeat>>;

    /// Platform scope: a node said goodbye (stopped cleanly).
    async fn delete_node_heartbeat(&self, node: &str) -> StoreResult<()>;

    /// When the tenant's newest recording started (`None`: never).
    async fn last_recording_started(&self, tenant: TenantId) -> StoreResult<Option<DateTime<Utc>>>;

    /// The tenant's jobs dead-lettered (state `dead`) since `since`.
    async fn count_dead_jobs(&self, tenant: TenantId, since: DateTime<Utc>) -> StoreResult<i64>;
}

/// Implementation detail of [`delegate_store_areas!`](crate::delegate_store_areas):
/// an impl of [`AlertStore`] that forwards every method to a field.
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_alert_store {
    ($ty:ty => $inner:ident, $hook:tt) => {
        $crate::__delegate_impl! {
            AlertStore for $ty => $inner, $hook;
            fn raise_alert(&self, realm: Realm, alert: &NewAlert, at: chrono::DateTime<chrono::Utc>, window: std::time::Duration) -> StoreResult<Raised>;
            fn alerts(&self, realm: Realm, open_only: bool, limit: u32) -> StoreResult<Vec<Alert>>;
            fn alert(&self, realm: Realm, id: AlertId) -> StoreResult<Alert>;
            fn acknowledge_alert(&self, realm: Realm, id: AlertId, by: &str, at: chrono::DateTime<chrono::Utc>) -> StoreResult<Option<Alert>>;
            fn alerts_to_deliver(&self, realm: Realm, limit: u32) -> StoreResult<Vec<Alert>>;
            fn set_alert_delivery(&self, realm: Realm, id: AlertId, delivery: &str, deliveries: &serde_json::Map<String, serde_json::Value>, attempts: i64) -> StoreResult<()>;
            fn count_alerts_sent_since(&self, realm: Realm, since: chrono::DateTime<chrono::Utc>) -> StoreResult<i64>;
            fn put_alert_channel(&self, realm: Realm, channel: &AlertChannel) -> StoreResult<()>;
            fn alert_channels(&self, realm: Realm) -> StoreResult<Vec<AlertChannel>>;
            fn delete_alert_channel(&self, realm: Realm, id: AlertChannelId) -> StoreResult<bool>;
            fn put_node_heartbeat(&self, heartbeat: &NodeHeartbeat) -> StoreResult<()>;
            fn node_heartbeats(&self) -> StoreResult<Vec<NodeHeartbeat>>;
            fn delete_node_heartbeat(&self, node: &str) -> StoreResult<()>;
            fn last_recording_started(&self, tenant: TenantId) -> StoreResult<Option<chrono::DateTime<chrono::Utc>>>;
            fn count_dead_jobs(&self, tenant: TenantId, since: chrono::DateTime<chrono::Utc>) -> StoreResult<i64>;
        }
    };
}
