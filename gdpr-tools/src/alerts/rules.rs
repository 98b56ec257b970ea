//! The alert rules, evaluated once per `[alerts] interval_secs` by the
//! node leading the `alerts` lease. Each rule reads the store (or the
//! key service) and returns the alerts it finds; [`super::raise`]
//! deduplicates them. Every alert names ids, counts and codes only.
//!
//! | rule | realm | key | reads |
//! | --- | --- | --- | --- |
//! | `node-down` | installation | node | a heartbeat older than `node_down_secs` |
//! | `spool-high` / `spool-full` | installation | node | a live gateway heartbeat's spool use ≥ `spool_warn_percent` / 100 % |
//! | `upload-backlog` | installation | node | the oldest finished recording in a live gateway's spool older than `upload_backlog_secs` |
//! | `no-recordings` | tenant | — | no recording started in the last `no_recordings_minutes`, all of them within business hours |
//! | `transcription-dead` | tenant | — | jobs dead-lettered in the last hour |
//! | `audit-chain` | tenant | — | `check_audit_chain` finds problems (every `audit_check_secs`) |
//! | `unusual-access` | tenant | actor | one actor's `play`, `download` and `export` events in the last hour name more than `unusual_access_per_hour` recordings |
//! | `key-service` | tenant | — | wrapping and unwrapping a fresh data key under the tenant's KEK fails (every `key_check_secs`) |
//!
//! `recording-failure` is raised by the gateway, `reconciliation-gap`
//! by completeness reconciliation, both through [`super::raise`].

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use insights_core::config::{AlertSettings, BusinessHours};
use insights_core::crypto::{DataKey, KeyProvider};
use insights_core::domain::{
    AlertKind, AuditAction, AuditQuery, KeyId, NewAlert, NodeHeartbeat, Realm, TenantId,
};
use insights_core::store::{MetadataStore, StoreResult, check_audit_chain};

/// The installation's rules over the nodes' heartbeats.
pub fn node_rules(
    settings: &AlertSettings,
    heartbeats: &[NodeHeartbeat],
    now: DateTime<Utc>,
) -> Vec<NewAlert> {
    let mut out = Vec::new();
    let down_after = Duration::seconds(i64::try_from(settings.node_down_secs).unwrap_or(60));
    let backlog = Duration::seconds(i64::try_from(settings.upload_backlog_secs).unwrap_or(3600));
    for hb in heartbeats {
        let age = now - hb.at;
        if age > down_after {
            out.push(
                NewAlert::new(AlertKind::NodeDown)
                    .keyed_by_node(&hb.node)
                    .count("silent_secs", age.num_seconds()),
            );
            continue;
        }
        if let (Some(used), Some(quota)) = (hb.spool_used, hb.spool_quota)
            && quota > 0
        {
            let percent = used.saturating_mul(100) / quota;
            let kind = match percent {
                p if p >= 100 => Some(AlertKind::SpoolFull),
                p if p >= i64::from(settings.spool_warn_percent) => Some(AlertKind::SpoolHigh),
                _ => None,
            };
            if let Some(kind) = kind {
                out.push(
                    NewAlert::new(kind)
                        .keyed_by_node(&hb.node)
                        .count("percent", percent)
                        .count("used_bytes", used)
                        .count("quota_bytes", quota),
                );
            }
        }
        if let Some(oldest) = hb.oldest_pending_at
            && now - oldest > backlog
        {
            out.push(
                NewAlert::new(AlertKind::UploadBacklog)
                    .keyed_by_node(&hb.node)
                    .count("oldest_secs", (now - oldest).num_seconds()),
            );
        }
    }
    out
}

/// No recording for `minutes` while the whole span was business hours.
pub fn no_recordings(
    minutes: u32,
    hours: &BusinessHours,
    last_started: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<NewAlert> {
    if minutes == 0 {
        return None;
    }
    let span = Duration::minutes(i64::from(minutes));
    let from = now - span;
    if !hours.covers(from, now) {
        return None;
    }
    if last_started.is_some_and(|t| t > from) {
        return None;
    }
    Some(NewAlert::new(AlertKind::NoRecordings).count("minutes", i64::from(minutes)))
}

/// Actors over the threshold in the hour before `now`: (actor, distinct
/// recordings, events).
pub async fn unusual_access(
    store: &dyn MetadataStore,
    tenant: TenantId,
    threshold: u32,
    now: DateTime<Utc>,
) -> StoreResult<Vec<NewAlert>> {
    if threshold == 0 {
        return Ok(Vec::new());
    }
    let mut per_actor: BTreeMap<String, (BTreeSet<String>, i64)> = BTreeMap::new();
    for action in [
        AuditAction::Play,
        AuditAction::Download,
        AuditAction::Export,
    ] {
        let events = store
            .list_audit(
                tenant,
                &AuditQuery {
                    action: Some(action),
                    from: Some(now - Duration::hours(1)),
                    to: Some(now),
                    ..AuditQuery::default()
                },
            )
            .await?;
        for e in events {
            let entry = per_actor.entry(e.actor.clone()).or_default();
            entry.1 += 1;
            match e.recording_id {
                Some(r) => {
                    entry.0.insert(r.to_string());
                }
                // An export names no one recording: it counts its rows.
                None => {
                    let rows = e
                        .details
                        .get("rows")
                        .or_else(|| e.details.get("count"))
                        .and_then(|v| v.as_u64())
                        .unwrap_or(1);
                    for i in 0..rows {
                        entry.0.insert(format!("{}#{i}", e.id));
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for (actor, (recordings, events)) in per_actor {
        let n = i64::try_from(recordings.len()).unwrap_or(i64::MAX);
        if n <= i64::from(threshold) {
            continue;
        }
        let alert = NewAlert::new(AlertKind::UnusualAccess);
        let alert = match actor.parse::<uuid::Uuid>() {
            Ok(id) => alert.keyed_by_id("actor_id", id),
            Err(_) => alert.keyed_by_hash("actor_hash", &actor),
        };
        out.push(
            alert
                .count("recordings", n)
                .count("events", events)
                .count("threshold", i64::from(threshold))
                .count("window_minutes", 60),
        );
    }
    Ok(out)
}

/// The key service for `tenant`: wrap and unwrap a fresh data key.
pub async fn key_service(keys: &dyn KeyProvider, tenant: TenantId) -> Option<NewAlert> {
    let dk = DataKey::generate(KeyId::new());
    let fail = |code: &'static str| {
        Some(
            NewAlert::new(AlertKind::KeyService)
                .keyed_by_code("step", code)
                .code("provider", keys.backend()),
        )
    };
    match keys.wrap(tenant, &dk).await {
        Ok(w) => match keys.unwrap(&w).await {
            Ok(_) => None,
            Err(_) => fail("unwrap"),
        },
        Err(_) => fail("wrap"),
    }
}

/// The tenant's audit chain.
pub async fn audit_chain(
    store: &dyn MetadataStore,
    tenant: TenantId,
) -> StoreResult<Option<NewAlert>> {
    let report = check_audit_chain(store, tenant).await?;
    Ok(match report.is_intact() {
        true => None,
        false => Some(
            NewAlert::new(AlertKind::AuditChain)
                .count(
                    "problems",
                    i64::try_from(report.problems.len()).unwrap_or(i64::MAX),
                )
                .count("first_seq", report.problems.first().map_or(0, |p| p.seq())),
        ),
    })
}

/// Jobs dead-lettered in the hour before `now`.
pub async fn transcription_dead(
    store: &dyn MetadataStore,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> StoreResult<Option<NewAlert>> {
    let n = store
        .count_dead_jobs(tenant, now - Duration::hours(1))
        .await?;
    Ok((n > 0).then(|| {
        NewAlert::new(AlertKind::TranscriptionDead)
            .count("dead_jobs", n)
            .count("window_minutes", 60)
    }))
}

/// Which of the costly checks are due in this run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Due {
    /// Wrap and unwrap a data key per tenant.
    pub keys: bool,
    /// Verify each tenant's whole audit chain.
    pub audit: bool,
}

/// Every rule for one tenant.
pub async fn tenant_rules(
    store: &dyn MetadataStore,
    keys: &dyn KeyProvider,
    settings: &AlertSettings,
    hours: &BusinessHours,
    tenant: TenantId,
    now: DateTime<Utc>,
    due: Due,
) -> Vec<(Realm, NewAlert)> {
    let mut out = Vec::new();
    let realm = Realm::Tenant(tenant);
    if settings.no_recordings_minutes > 0 {
        match store.last_recording_started(tenant).await {
            Ok(last) => out.extend(
                no_recordings(settings.no_recordings_minutes, hours, last, now).map(|a| (realm, a)),
            ),
            Err(e) => tracing::warn!(tenant_id = %tenant, error = %e, "alerts: no-recordings rule"),
        }
    }
    match transcription_dead(store, tenant, now).await {
        Ok(a) => out.extend(a.map(|a| (realm, a))),
        Err(e) => tracing::warn!(tenant_id = %tenant, error = %e, "alerts: transcription rule"),
    }
    if due.audit {
        match audit_chain(store, tenant).await {
            Ok(a) => out.extend(a.map(|a| (realm, a))),
            Err(e) => tracing::warn!(tenant_id = %tenant, error = %e, "alerts: audit-chain rule"),
        }
    }
    match unusual_access(store, tenant, settings.unusual_access_per_hour, now).await {
        Ok(v) => out.extend(v.into_iter().map(|a| (realm, a))),
        Err(e) => tracing::warn!(tenant_id = %tenant, error = %e, "alerts: unusual-access rule"),
    }
    if due.keys {
        out.extend(key_service(keys, tenant).await.map(|a| (realm, a)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn hb(
        node: &str,
        at: DateTime<Utc>,
        used: i64,
        oldest: Option<DateTime<Utc>>,
    ) -> NodeHeartbeat {
        NodeHeartbeat {
            node: node.into(),
            roles: "gateway".into(),
            at,
            spool_used: Some(used),
            spool_quota: Some(100),
            oldest_pending_at: oldest,
        }
    }

    #[test]
    fn node_rules_find_silent_nodes_full_spools_and_old_uploads() {
        let s = AlertSettings::default();
        let now = at("2026-12-07T12:00:00Z");
        let alerts = node_rules(
            &s,
            &[
                hb("a", now - Duration::seconds(61), 0, None),
                hb("b", now, 85, None),
                hb("c", now, 100, Some(now - Duration::hours(2))),
                hb("d", now, 10, Some(now - Duration::minutes(5))),
            ],
            now,
        );
        let got: Vec<(AlertKind, &str)> = alerts.iter().map(|a| (a.kind, a.key.as_str())).collect();
        assert_eq!(
            got,
            [
                (AlertKind::NodeDown, "a"),
                (AlertKind::SpoolHigh, "b"),
                (AlertKind::SpoolFull, "c"),
                (AlertKind::UploadBacklog, "c"),
            ]
        );
    }

    #[test]
    fn no_recordings_only_counts_within_business_hours() {
        let s = AlertSettings::default();
        let h = s.business_hours().unwrap_or_else(|e| panic!("{e}"));
        let monday_noon = at("2026-12-07T12:00:00Z");
        assert!(no_recordings(30, &h, None, monday_noon).is_some());
        assert!(
            no_recordings(
                30,
                &h,
                Some(monday_noon - Duration::minutes(10)),
                monday_noon
            )
            .is_none()
        );
        assert!(
            no_recordings(
                30,
                &h,
                Some(monday_noon - Duration::minutes(40)),
                monday_noon
            )
            .is_some()
        );
        assert!(
            no_recordings(30, &h, None, at("2026-12-07T08:10:00Z")).is_none(),
            "span starts before 08:00"
        );
        assert!(
            no_recordings(30, &h, None, at("2026-12-06T12:00:00Z")).is_none(),
            "Sunday"
        );
        assert!(no_recordings(0, &h, None, monday_noon).is_none(), "off");
    }
}
