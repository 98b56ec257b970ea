//! The `alerts` job (scheduler role, one leader across the nodes) and
//! every node's heartbeat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use insights_core::alerts::raise;
use insights_core::config::{AlertSettings, BusinessHours, ConfigError};
use insights_core::crypto::KeyProvider;
use insights_core::domain::{Alert, AlertChannel, NodeHeartbeat, Realm, delivery, now};
use insights_core::store::MetadataStore;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::deliver::{Deliverer, DeliveryError};
use super::rules;
use crate::leader::{Fence, Leadership, LeasedJob, Schedule};

/// The name of the alerts job's lease and runs.
pub const JOB: &str = "alerts";

/// Alerts delivered per realm and run at most.
const BATCH: u32 = 100;

/// The running alerts job; [`Scheduler::stop`] ends it.
pub struct Scheduler {
    job: LeasedJob,
}

struct Context {
    settings: AlertSettings,
    hours: BusinessHours,
    keys: Arc<dyn KeyProvider>,
    deliverer: Deliverer,
    /// When this leader last ran the key and audit checks (they read a
    /// whole chain or call the key service: not every interval).
    last_checks: std::sync::Mutex<(Option<Instant>, Option<Instant>)>,
}

impl Context {
    /// Which costly checks are due now (and marks them run).
    fn due(&self) -> rules::Due {
        let now = Instant::now();
        let mut last = self
            .last_checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let take = |slot: &mut Option<Instant>, every: u64| {
            let due = every > 0
                && slot.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(every));
            if due {
                *slot = Some(now);
            }
            due
        };
        let keys = take(&mut last.0, self.settings.key_check_secs);
        let audit = take(&mut last.1, self.settings.audit_check_secs);
        rules::Due { keys, audit }
    }
}

impl Scheduler {
    /// Starts competing for the `alerts` lease (`None` when `[alerts]
    /// enabled = false`). A bad `[alerts.smtp]` fails here, at start-up.
    pub fn start(
        settings: &AlertSettings,
        allow_insecure_http: bool,
        leadership: &Leadership,
        store: Arc<dyn MetadataStore>,
        keys: Arc<dyn KeyProvider>,
    ) -> Result<Option<Scheduler>, DeliveryError> {
        if !settings.enabled {
            return Ok(None);
        }
        let hours = settings
            .business_hours()
            .map_err(|e: ConfigError| DeliveryError::Config(e.to_string()))?;
        let deliverer = Deliverer::new(&settings.smtp, keys.clone(), allow_insecure_http)?;
        let ctx = Arc::new(Context {
            settings: settings.clone(),
            hours,
            keys,
            deliverer,
            last_checks: std::sync::Mutex::new((None, None)),
        });
        let schedule = Schedule {
            every: settings.interval(),
            first_after: settings.initial_delay(),
        };
        let job = LeasedJob::start(JOB, schedule, leadership, store, move |store, fence| {
            let ctx = ctx.clone();
            async move { run(&ctx, store.as_ref(), &fence).await }
        });
        Ok(Some(Scheduler { job }))
    }

    /// Stops the job and gives the lease up.
    pub async fn stop(self) {
        self.job.stop().await;
    }
}

/// One run: every rule, then delivery of what is pending.
async fn run(ctx: &Context, store: &dyn MetadataStore, fence: &Fence) -> Result<(), String> {
    let at = now();
    let window = ctx.settings.dedup_window();
    let tenants = store
        .list_tenants()
        .await
        .map_err(|e| format!("cannot list tenants: {e}"))?;
    let mut found = Vec::new();
    match store.node_heartbeats().await {
        Ok(hbs) => found.extend(
            rules::node_rules(&ctx.settings, &hbs, at)
                .into_iter()
                .map(|a| (Realm::Platform, a)),
        ),
        Err(e) => tracing::warn!(error = %e, "alerts: cannot read the nodes' heartbeats"),
    }
    let due = ctx.due();
    for t in &tenants {
        if !fence.valid() {
            return Err(insights_core::domain::LEASE_LOST.into());
        }
        found.extend(
            rules::tenant_rules(
                store,
                ctx.keys.as_ref(),
                &ctx.settings,
                &ctx.hours,
                t.id,
                at,
                due,
            )
            .await,
        );
    }
    for (realm, alert) in found {
        if let Err(e) = raise(store, realm, alert, window).await {
            tracing::warn!(error = %e, "alerts: cannot raise an alert");
        }
    }
    let installation = store
        .alert_channels(Realm::Platform)
        .await
        .map_err(|e| format!("cannot read the installation's channels: {e}"))?;
    let mut realms = vec![Realm::Platform];
    realms.extend(tenants.iter().map(|t| Realm::Tenant(t.id)));
    for realm in realms {
        if !fence.valid() {
            return Err(insights_core::domain::LEASE_LOST.into());
        }
        if let Err(e) = deliver_realm(ctx, store, realm, &installation).await {
            tracing::warn!(error = %e, "alerts: delivery incomplete; retried next run");
        }
    }
    Ok(())
}

/// Delivers the realm's pending alerts to its channels and the
/// installation's, within the hourly rate limit.
async fn deliver_realm(
    ctx: &Context,
    store: &dyn MetadataStore,
    realm: Realm,
    installation: &[AlertChannel],
) -> Result<(), String> {
    let pending = store
        .alerts_to_deliver(realm, BATCH)
        .await
        .map_err(|e| e.to_string())?;
    if pending.is_empty() {
        return Ok(());
    }
    let mut channels: Vec<AlertChannel> = match realm {
        Realm::Platform => Vec::new(),
        Realm::Tenant(_) => store
            .alert_channels(realm)
            .await
            .map_err(|e| e.to_string())?,
    };
    channels.extend(installation.iter().cloned());
    channels.retain(|c| c.enabled);
    let hour_ago = Utc::now() - chrono::Duration::hours(1);
    for alert in pending {
        let state = deliver_one(ctx, store, realm, &alert, &channels, hour_ago).await?;
        metrics::counter!(DELIVERIES_METRIC, "kind" => alert.kind.as_str(), "state" => state)
            .increment(1);
    }
    Ok(())
}

/// Alerts by kind and delivery outcome
/// (`insights_alerts_total{kind,state}`).
pub const DELIVERIES_METRIC: &str = "insights_alerts_total";

async fn deliver_one(
    ctx: &Context,
    store: &dyn MetadataStore,
    realm: Realm,
    alert: &Alert,
    channels: &[AlertChannel],
    hour_ago: chrono::DateTime<Utc>,
) -> Result<&'static str, String> {
    let set = |state: &'static str, deliveries: serde_json::Map<String, Value>, attempts: i64| async move {
        store
            .set_alert_delivery(realm, alert.id, state, &deliveries, attempts)
            .await
            .map(|()| state)
            .map_err(|e| e.to_string())
    };
    if channels.is_empty() {
        return set(
            delivery::NO_CHANNEL,
            alert.deliveries.clone(),
            alert.attempts,
        )
        .await;
    }
    if alert.attempts == 0 {
        let sent = store
            .count_alerts_sent_since(realm, hour_ago)
            .await
            .map_err(|e| e.to_string())?;
        if sent >= i64::from(ctx.settings.max_per_hour) {
            tracing::warn!(alert_id = %alert.id, kind = alert.kind.as_str(), "alert over the hourly limit: not sent");
            return set(delivery::RATE_LIMITED, alert.deliveries.clone(), 0).await;
        }
    }
    let mut deliveries = alert.deliveries.clone();
    let mut all = true;
    for ch in channels {
        let id = ch.id.to_string();
        if deliveries.get(&id).and_then(Value::as_str) == Some("sent") {
            continue;
        }
        let outcome = ctx.deliverer.send(alert, ch).await;
        let v = match &outcome {
            Ok(()) => "sent".to_owned(),
            Err(code) => {
                all = false;
                tracing::warn!(alert_id = %alert.id, channel_id = %ch.id, channel = ch.kind.as_str(), error = %code, "alert not delivered");
                code.clone()
            }
        };
        deliveries.insert(id, Value::String(v));
    }
    let attempts = alert.attempts + 1;
    let state = match (all, attempts >= i64::from(ctx.settings.max_attempts)) {
        (true, _) => delivery::DELIVERED,
        (false, true) => delivery::FAILED,
        (false, false) => delivery::PENDING,
    };
    set(state, deliveries, attempts).await
}

/// What a gateway node reports about its spool in each heartbeat.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpoolStatus {
    pub used_bytes: u64,
    pub quota_bytes: u64,
    /// When the oldest finished recording still waiting for upload
    /// finished.
    pub oldest_pending_at: Option<chrono::DateTime<Utc>>,
}

/// Reads the spool's state (gateway nodes).
pub type SpoolProbe = Arc<dyn Fn() -> SpoolStatus + Send + Sync>;

/// This node's heartbeat task; [`Heartbeat::stop`] removes the row (a
/// clean stop is not a node down).
pub struct Heartbeat {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Heartbeat {
    /// Writes `node`'s heartbeat every `every` until stopped.
    pub fn start(
        store: Arc<dyn MetadataStore>,
        node: String,
        roles: String,
        every: Duration,
        spool: Option<SpoolProbe>,
    ) -> Heartbeat {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            loop {
                let s = spool.as_ref().map(|p| p());
                let hb = NodeHeartbeat {
                    node: node.clone(),
                    roles: roles.clone(),
                    at: now(),
                    spool_used: s.map(|s| i64::try_from(s.used_bytes).unwrap_or(i64::MAX)),
                    spool_quota: s.map(|s| i64::try_from(s.quota_bytes).unwrap_or(i64::MAX)),
                    oldest_pending_at: s.and_then(|s| s.oldest_pending_at),
                };
                if let Err(e) = store.put_node_heartbeat(&hb).await {
                    tracing::warn!(error = %e, "heartbeat not written");
                }
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(every) => {}
                }
            }
            if let Err(e) = store.delete_node_heartbeat(&node).await {
                tracing::warn!(error = %e, "heartbeat not removed at stop");
            }
        });
        Heartbeat { stop, task }
    }

    /// Stops and removes the heartbeat.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
