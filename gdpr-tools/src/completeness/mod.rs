//! Completeness reconciliation (issue 17 §3): was every call that had to
//! be recorded recorded? Microsoft's call records are the other ledger.
//!
//! One run for one tenant and period `[from, to)`:
//!
//! 1. an app-only token for the tenant's directory (the `[directory]`
//!    app; [`graph`]);
//! 2. the call records that started in the period (List callRecords,
//!    paged), each read with its sessions and segments; the PSTN and
//!    direct-routing legs of the period (`getPstnCalls`,
//!    `getDirectRoutingCalls`), whose numbers join their call record's
//!    parties (or stand as calls of their own);
//! 3. for each call, [`matching::reconcile_call`]: in scope by the
//!    tenant's recording policy (`decide_recording`, as the gateway
//!    decides at the invite), matched to the recordings by call id, time
//!    and participants; recorded fully, partly (coverage and gaps with
//!    their reasons), not at all (reason), or out of scope (rule);
//! 4. the run and its calls stored in one transaction (a call reconciled
//!    again replaces its earlier outcome), the run audited
//!    (`completeness-run`, counts only), the coverage gauge set, and the
//!    alert raised ([`alert::raise`]) when coverage of in-scope call time
//!    falls below the tenant's threshold.
//!
//! One run per tenant at a time on every node: the run holds the
//! tenant's lease `completeness:<tenant id>` (see [`HeldLease`]); a run
//! that finds it held ends with [`CompletenessError::Busy`]. The daily
//! run ([`Scheduler`]) runs on the scheduler node leading the
//! `completeness` lease; `insights admin completeness run` and `POST
//! /api/completeness/runs` run a period on demand.
//!
//! Only ids, times and counts are logged, stored or audited: never a
//! name, number or address (the deciding policy rule by id and kind).

pub mod alert;
pub mod graph;
pub mod matching;
mod schedule;
pub mod xlsx;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use insights_core::config::{CompletenessConfig, DirectorySettings};
use insights_core::domain::{
    AuditAction, CallCompleteness, CompletenessRun, CompletenessStatus, CompletenessTotals,
    CompletenessTrigger, LEASE_LOST, NewAuditEvent, RecordingPolicy, Tenant, TenantId, now,
};
use insights_core::store::{GovernanceQuery, MetadataStore, StoreError};
use serde::Serialize;

use crate::directory::{DirectoryError, GraphClient, GraphConfig};
use crate::leader::HeldLease;

pub use schedule::{JOB, SCHEDULE_ACTOR, Scheduler};

/// Metric: coverage of in-scope call time of a tenant's last run (0–1).
pub const COVERAGE_METRIC: &str = "insights_completeness_coverage_ratio";
/// Metric: reconciled calls by status (counter, per run).
pub const CALLS_METRIC: &str = "insights_completeness_calls_total";

/// The longest period one run reconciles (Graph keeps call records 30
/// days; `getPstnCalls` takes at most 90).
pub const MAX_PERIOD_DAYS: i64 = 31;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum CompletenessError {
    #[error("completeness reconciliation needs Microsoft Graph: configure [directory] client_id")]
    NotConfigured,
    #[error("tenant {0} has no directory tenant id")]
    NoDirectoryTenant(TenantId),
    #[error("the period is empty or longer than {MAX_PERIOD_DAYS} days")]
    BadPeriod,
    #[error(transparent)]
    Graph(DirectoryError),
    #[error("Graph refused the request ({0}): check the app's CallRecords.Read.All consent")]
    Refused(u16),
    #[error("Graph kept throttling ({status}) after {retries} retries")]
    Throttled { retries: u32, status: u16 },
    #[error("network error: {0}")]
    Network(&'static str),
    #[error("unexpected Graph answer: {0}")]
    Protocol(String),
    /// Another run of the same tenant holds its lease.
    #[error("a completeness reconciliation of this tenant is already running")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long a tenant's run lease lasts without renewal.
pub const TENANT_LEASE: std::time::Duration = std::time::Duration::from_secs(30);

/// The lease a run of `tenant` holds.
pub fn tenant_lease_job(tenant: TenantId) -> String {
    format!("completeness:{}", tenant.as_uuid())
}

/// Runs reconciliations.
pub struct Reconciler {
    graph: GraphClient,
    store: Arc<dyn MetadataStore>,
    cfg: CompletenessConfig,
    holder: String,
}

impl Reconciler {
    /// From `[directory]` (Graph access, the secret from the environment)
    /// and `[completeness]`.
    pub fn from_settings(
        directory: &DirectorySettings,
        cfg: &CompletenessConfig,
        store: Arc<dyn MetadataStore>,
    ) -> Result<Self, CompletenessError> {
        let graph_cfg = match GraphConfig::from_settings(directory) {
            Ok(c) => c,
            Err(DirectoryError::NotConfigured) => return Err(CompletenessError::NotConfigured),
            Err(e) => return Err(CompletenessError::Graph(e)),
        };
        Ok(Self {
            graph: GraphClient::new(graph_cfg).map_err(CompletenessError::Graph)?,
            store,
            cfg: cfg.clone(),
            holder: format!(
                "completeness#{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ),
        })
    }

    /// The settings it runs with.
    pub fn config(&self) -> &CompletenessConfig {
        &self.cfg
    }

    /// The tenant's alert threshold (thousandths): its own, else the
    /// installation's.
    pub async fn threshold(&self, tenant: TenantId) -> Result<u32, StoreError> {
        Ok(self
            .store
            .completeness_threshold(tenant)
            .await?
            .map(|s| s.threshold_permille)
            .unwrap_or_else(|| self.cfg.threshold_permille()))
    }

    /// Runs every tenant with a directory tenant id over `[from, to)`;
    /// one result per tenant (a failing tenant does not stop the others).
    pub async fn run_all(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        trigger: CompletenessTrigger,
        actor: &str,
    ) -> Vec<(TenantId, Result<CompletenessRun, CompletenessError>)> {
        let tenants = match self.store.list_tenants().await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "completeness: cannot list tenants");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for t in tenants.iter().filter(|t| t.directory_tenant_id.is_some()) {
            let r = self.run_tenant(t, from, to, trigger, actor).await;
            if let Err(e) = &r {
                tracing::warn!(tenant = %t.id, error = %e, "completeness reconciliation failed");
            }
            out.push((t.id, r));
        }
        out
    }

    /// One run of `tenant` over `[from, to)`, audited as `actor`.
    pub async fn run_tenant(
        &self,
        tenant: &Tenant,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        trigger: CompletenessTrigger,
        actor: &str,
    ) -> Result<CompletenessRun, CompletenessError> {
        if to <= from || to - from > Duration::days(MAX_PERIOD_DAYS) {
            return Err(CompletenessError::BadPeriod);
        }
        let tid = tenant
            .directory_tenant_id
            .ok_or(CompletenessError::NoDirectoryTenant(tenant.id))?;
        let held = HeldLease::acquire(
            self.store.clone(),
            &tenant_lease_job(tenant.id),
            &self.holder,
            TENANT_LEASE,
        )
        .await?
        .ok_or(CompletenessError::Busy)?;
        let r = self
            .run_held(tenant, tid, (from, to), trigger, actor, &held)
            .await;
        held.release().await;
        r
    }

    async fn run_held(
        &self,
        tenant: &Tenant,
        tid: uuid::Uuid,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        trigger: CompletenessTrigger,
        actor: &str,
        held: &HeldLease,
    ) -> Result<CompletenessRun, CompletenessError> {
        let started_at = now();
        let mut records = graph::CallRecords::open(&self.graph, tid).await?;
        let ids = records.list(from, to).await?;
        let mut calls = Vec::with_capacity(ids.len());
        for id in &ids {
            let r = records.get(id).await?;
            calls.push(matching::CallFacts {
                call_id: r.id,
                call_type: r.call_type,
                started_at: r.started_at,
                ended_at: r.ended_at,
                parties: r.parties,
            });
        }
        let pstn = records.pstn(from, to).await?;
        let pstn_rows = u32::try_from(pstn.len()).unwrap_or(u32::MAX);
        let slack = Duration::seconds(60);
        matching::merge_pstn(&mut calls, pstn, slack);

        let policy = self
            .store
            .recording_policy(tenant.id)
            .await?
            .unwrap_or_else(|| RecordingPolicy::default_for(tenant.id));
        let directory = matching::Directory::new(
            self.store.list_directory_users(tenant.id).await?,
            tenant.directory_tenant_id,
        );
        let recordings = self.recordings(tenant.id, from, to).await?;
        let mut failovers = Vec::new();
        for r in recordings
            .iter()
            .filter(|r| r.kind == insights_core::domain::RecordingKind::Meeting)
        {
            failovers.extend(self.store.meeting_failovers(tenant.id, r.id).await?);
        }
        // Paused intervals (pause/resume): one read per recording, like
        // the failover marks above.
        let mut gaps = Vec::new();
        for r in &recordings {
            gaps.extend(self.store.recording_gaps(tenant.id, r.id).await?);
        }
        let tolerance = Duration::seconds(i64::from(self.cfg.tolerance_secs));
        let outcomes: Vec<CallCompleteness> = calls
            .iter()
            .map(|c| {
                matching::reconcile_call(
                    c,
                    &policy,
                    &directory,
                    &recordings,
                    &failovers,
                    &gaps,
                    tolerance,
                )
            })
            .collect();

        let totals = CompletenessTotals::of(&outcomes);
        let threshold = self.threshold(tenant.id).await?;
        let below = totals.in_scope > 0 && totals.coverage_permille < threshold;
        let run = CompletenessRun {
            id: uuid::Uuid::new_v4(),
            tenant_id: tenant.id,
            from,
            to,
            trigger,
            actor: actor.to_owned(),
            started_at,
            finished_at: now(),
            totals,
            call_records: u32::try_from(ids.len()).unwrap_or(u32::MAX),
            pstn_rows,
            throttled_retries: records.throttled,
            threshold_permille: threshold,
            below_threshold: below,
        };
        held.check()?;
        self.store
            .put_completeness(tenant.id, &run, &outcomes)
            .await?;
        let lease = held
            .lease()
            .ok_or_else(|| StoreError::Refused(LEASE_LOST.into()))?;
        self.store
            .append_audit_fenced(
                tenant.id,
                &lease,
                NewAuditEvent {
                    actor: actor.to_owned(),
                    action: AuditAction::CompletenessRun,
                    recording_id: None,
                    target: Some(run.id.to_string()),
                    reason: None,
                    source: None,
                    details: serde_json::json!({ "completeness_run": RunSummary::of(&run) }),
                },
            )
            .await?;
        record_metrics(tenant.id, &run, &outcomes);
        tracing::info!(
            tenant = %tenant.id, run_id = %run.id, calls = run.totals.calls,
            in_scope = run.totals.in_scope, recorded = run.totals.recorded,
            partial = run.totals.partial, not_recorded = run.totals.not_recorded,
            out_of_scope = run.totals.out_of_scope,
            coverage_permille = run.totals.coverage_permille,
            throttled_retries = run.throttled_retries,
            "completeness reconciliation done"
        );
        if below {
            alert::raise(self.store.as_ref(), &run).await;
        }
        Ok(run)
    }

    /// The tenant's recordings that may belong to calls of the period
    /// (started up to a day before it, to a day after).
    async fn recordings(
        &self,
        tenant: TenantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<insights_core::domain::Recording>, StoreError> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .list_recordings_for_governance(
                    tenant,
                    &GovernanceQuery {
                        started_from: Some(from - Duration::days(1)),
                        started_before: Some(to + Duration::days(1)),
                        after,
                        limit: 1000,
                        ..GovernanceQuery::default()
                    },
                )
                .await?;
            let n = page.len();
            after = page.last().map(|r| (r.started_at, r.id));
            out.extend(page);
            if n < 1000 {
                return Ok(out);
            }
        }
    }
}

/// What the audit event and the log say of a run: counts only.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub run_id: uuid::Uuid,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub trigger: CompletenessTrigger,
    /// When the run started and finished.
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub totals: CompletenessTotals,
    pub call_records: u32,
    pub pstn_rows: u32,
    pub throttled_retries: u32,
    pub threshold_permille: u32,
    pub below_threshold: bool,
}

impl RunSummary {
    pub fn of(run: &CompletenessRun) -> Self {
        Self {
            run_id: run.id,
            from: run.from,
            to: run.to,
            trigger: run.trigger,
            started_at: run.started_at,
            finished_at: run.finished_at,
            totals: run.totals.clone(),
            call_records: run.call_records,
            pstn_rows: run.pstn_rows,
            throttled_retries: run.throttled_retries,
            threshold_permille: run.threshold_permille,
            below_threshold: run.below_threshold,
        }
    }
}

/// The coverage gauge and the per-status call counter of a run.
fn record_metrics(tenant: TenantId, run: &CompletenessRun, calls: &[CallCompleteness]) {
    let t = tenant.to_string();
    metrics::gauge!(COVERAGE_METRIC, "tenant" => t.clone())
        .set(f64::from(run.totals.coverage_permille) / 1000.0);
    for s in CompletenessStatus::ALL {
        let n = calls.iter().filter(|c| c.status == *s).count();
        metrics::counter!(CALLS_METRIC, "tenant" => t.clone(), "status" => s.as_str())
            .increment(n as u64);
    }
}

/// Coverage of one day (UTC), for the page's chart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DayCoverage {
    pub day: NaiveDate,
    pub totals: CompletenessTotals,
}

/// The calls' totals per UTC day of their start, in day order.
pub fn per_day(calls: &[CallCompleteness]) -> Vec<DayCoverage> {
    let mut days: BTreeMap<NaiveDate, Vec<&CallCompleteness>> = BTreeMap::new();
    for c in calls {
        days.entry(c.started_at.date_naive()).or_default().push(c);
    }
    days.into_iter()
        .map(|(day, cs)| DayCoverage {
            day,
            totals: CompletenessTotals::of(cs),
        })
        .collect()
}

/// The period of a scheduled run ending now: `lookback_hours` back,
/// whole hours.
pub fn scheduled_period(
    cfg: &CompletenessConfig,
    at: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    use chrono::{DurationRound, TimeDelta};
    let to = at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at);
    (to - Duration::hours(i64::from(cfg.lookback_hours)), to)
}
