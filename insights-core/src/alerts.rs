//! Raising an alert: the one entry point for every rule and every crate
//! that notices something (the gateway's recording failures, the
//! scheduler's rules, completeness reconciliation).
//!
//! ```text
//! use insights_core::alerts;
//! use insights_core::domain::{AlertKind, NewAlert, Realm};
//!
//! // A tenant's reconciliation found 3 calls not recorded on a day:
//! alerts::raise(
//!     store.as_ref(),
//!     Realm::Tenant(tenant),
//!     NewAlert::new(AlertKind::ReconciliationGap)
//!         .keyed_by_id("run_id", run_id)
//!         .count("not_recorded", 3)
//!         .count("partial", 1),
//!     alerts::DEFAULT_WINDOW,
//! )
//! .await?;
//! ```
//!
//! [`raise`] stores the alert deduplicated (the same kind and key while
//! an earlier one is open and younger than `window` only counts an
//! occurrence), and audits a new one (`alert-raised`, actor `alerts`; an
//! installation-wide alert, having no tenant chain, as a log line).
//! Delivery to the channels is the scheduler's (`gdpr_tools::alerts`),
//! with the rate limit and retries; raising never waits for a channel.
//! The details are ids, counts and codes only ([`NewAlert`]).

use std::time::Duration;

use serde_json::json;

use crate::domain::{AuditAction, NewAlert, NewAuditEvent, Raised, Realm, now};
use crate::store::{MetadataStore, StoreResult};

/// The deduplication window of raisers that do not read `[alerts]
/// dedup_window_secs` (its default): one hour.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);

/// The audit actor of alerts.
pub const ACTOR: &str = "alerts";

/// Raises `alert` in `realm` (see the module docs).
pub async fn raise(
    store: &dyn MetadataStore,
    realm: Realm,
    alert: NewAlert,
    window: Duration,
) -> StoreResult<Raised> {
    let raised = store.raise_alert(realm, &alert, now(), window).await?;
    if let Raised::New(a) = &raised {
        let details = json!({
            "kind": a.kind.as_str(),
            "key": a.key,
            "details": a.details,
        });
        match realm {
            Realm::Tenant(t) => {
                store
                    .append_audit(
                        t,
                        NewAuditEvent {
                            actor: ACTOR.into(),
                            action: AuditAction::AlertRaised,
                            recording_id: None,
                            target: Some(a.id.to_string()),
                            reason: None,
                            source: None,
                            details,
                        },
                    )
                    .await?;
            }
            Realm::Platform => tracing::warn!(
                audit = AuditAction::AlertRaised.as_str(),
                alert_id = %a.id,
                kind = a.kind.as_str(),
                details = %details,
                "installation alert raised"
            ),
        }
        tracing::warn!(alert_id = %a.id, kind = a.kind.as_str(), key = %a.key, "alert raised");
    }
    Ok(raised)
}
