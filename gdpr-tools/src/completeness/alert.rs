//! The completeness alert: coverage of a tenant's in-scope call time fell
//! below its threshold. A metric, an audit event and an ERROR log line
//! with ids and figures only (like `insights_recording_failures_total`),
//! and an alert of kind `reconciliation-gap` raised through
//! [`insights_core::alerts::raise`], which the alert channels deliver.

use insights_core::domain::{
    AlertKind, AuditAction, CompletenessRun, NewAlert, NewAuditEvent, Realm,
};
use insights_core::store::MetadataStore;

/// Metric: completeness alerts raised, per tenant.
pub const ALERTS_METRIC: &str = "insights_completeness_alerts_total";

/// The audit actor of the alert.
pub const ALERT_ACTOR: &str = "system:completeness-alert";

/// Raises the alert for `run` (which fell below its threshold): counted,
/// logged at ERROR (ids and figures only) and audited. Never fails: an
/// audit failure is logged.
pub async fn raise(store: &dyn MetadataStore, run: &CompletenessRun) {
    metrics::counter!(ALERTS_METRIC, "tenant" => run.tenant_id.to_string()).increment(1);
    tracing::error!(
        alert = "completeness-below-threshold",
        tenant_id = %run.tenant_id,
        run_id = %run.id,
        coverage_permille = run.totals.coverage_permille,
        threshold_permille = run.threshold_permille,
        partial = run.totals.partial,
        not_recorded = run.totals.not_recorded,
        "completeness: coverage of in-scope calls is below the tenant's threshold"
    );
    let event = NewAuditEvent {
        actor: ALERT_ACTOR.to_owned(),
        action: AuditAction::CompletenessAlert,
        recording_id: None,
        target: Some(run.id.to_string()),
        reason: None,
        source: None,
        details: serde_json::json!({
            "run_id": run.id,
            "from": run.from,
            "to": run.to,
            "coverage_permille": run.totals.coverage_permille,
            "threshold_permille": run.threshold_permille,
            "in_scope": run.totals.in_scope,
            "partial": run.totals.partial,
            "not_recorded": run.totals.not_recorded,
        }),
    };
    if let Err(e) = store.append_audit(run.tenant_id, event).await {
        tracing::error!(tenant_id = %run.tenant_id, run_id = %run.id, error = %e, "cannot audit the completeness alert");
    }
    // To the channels: one open alert per tenant while coverage stays
    // low (later runs within the window count occurrences).
    let alert = NewAlert::new(AlertKind::ReconciliationGap)
        .keyed_by_code("condition", "coverage-below-threshold")
        .id("run_id", run.id)
        .count("coverage_permille", i64::from(run.totals.coverage_permille))
        .count("threshold_permille", i64::from(run.threshold_permille))
        .count("in_scope", i64::from(run.totals.in_scope))
        .count("partial", i64::from(run.totals.partial))
        .count("not_recorded", i64::from(run.totals.not_recorded));
    if let Err(e) = insights_core::alerts::raise(
        store,
        Realm::Tenant(run.tenant_id),
        alert,
        insights_core::alerts::DEFAULT_WINDOW,
    )
    .await
    {
        tracing::error!(tenant_id = %run.tenant_id, run_id = %run.id, error = %e, "cannot raise the completeness alert");
    }
}
