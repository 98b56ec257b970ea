//! The tenant's recording policy at the gateway (issue 17 §1, §2): which
//! invites are recorded ([`decide_recording`], the one function), a call
//! that must not be recorded (answered, reported `notRecording`, nothing
//! stored but the audited decision), and what happens when recording
//! cannot proceed (the tenant's failure mode: `required` reports
//! `failed`, `best-effort` reports `notRecording` and raises the
//! `recording-failure` alert).
//!
//! # What is kept of a call that is not recorded
//!
//! No recording row, no participant, no spool entry, no media: only the
//! audit event `recording-not-recorded` (actor `gateway`, target the Graph
//! call id, details: the deciding rule's id, list and kind, the call
//! chain id) and the counter
//! `insights_gateway_policy_decisions_total{decision,by}`. Logs carry
//! call, tenant and rule ids only.
//!
//! # The recording-failure alert
//!
//! One per leg, whatever the mode: the counter
//! `insights_recording_failures_total{mode,reason}`, the audit event
//! `recording-failure` (details: mode, reason, the status reported, what
//! it means for the call) and an ERROR log line with
//! `alert = "recording-failure"` (ids, mode and reason only), and the
//! alert `recording-failure` raised through `insights_core::alerts::raise`
//! (keyed by reason and mode; delivered to the alert channels by the
//! scheduler, issue 17 §4).

use insights_core::alerts;
use insights_core::domain::{
    AlertKind, AuditAction, FailureMode, NewAlert, NewAuditEvent, PolicyDecision, PolicyParty,
    Realm, RecordingId, RecordingPolicy, TenantId, decide_recording,
};
use insights_core::store::{StoreError, StoreResult};
use serde_json::json;
use tokio::time::Instant;

use super::{AnswerJob, AnswerState, CallRegistry, Inner, InviteParty, Leg, RecordingError};
use crate::auth::VerifiedToken;
use crate::calls::state::CallState;
use crate::graph::CallContext;
use crate::graph::model::RecordingStatusReport;

/// Policy decisions on invites, by outcome and what decided
/// (`insights_gateway_policy_decisions_total{decision,by}`).
const DECISIONS_METRIC: &str = "insights_gateway_policy_decisions_total";
/// Recordings that could not proceed, by the tenant's failure mode and
/// the reason (`insights_recording_failures_total{mode,reason}`).
pub const FAILURES_METRIC: &str = "insights_recording_failures_total";
/// The audit actor of the gateway's own decisions.
const ACTOR: &str = "gateway";

/// Why recording cannot proceed (a metric label and audit detail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureReason {
    /// The spool has no room (the blob store unreachable for longer than
    /// the spool can buffer ends here too).
    SpoolFull,
    /// The tenant's key-encryption key cannot be had (key service down,
    /// key revoked).
    KeyService,
    /// The spool failed otherwise (disk).
    SpoolError,
    /// The recorder could not start.
    Recorder,
    /// The media connection was lost while the call goes on.
    MediaLost,
    /// This gateway node is shutting down.
    Shutdown,
    /// Graph did not acknowledge `recording`.
    StatusNotAcknowledged,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::SpoolFull => "spool-full",
            FailureReason::KeyService => "key-service",
            FailureReason::SpoolError => "spool-error",
            FailureReason::Recorder => "recorder",
            FailureReason::MediaLost => "media-lost",
            FailureReason::Shutdown => "shutdown",
            FailureReason::StatusNotAcknowledged => "status-not-acknowledged",
        }
    }

    /// The reason behind an admission refusal code.
    pub(super) fn from_refusal(code: &str) -> Self {
        match code {
            "spool-full" => FailureReason::SpoolFull,
            "shutdown" => FailureReason::Shutdown,
            _ => FailureReason::SpoolError,
        }
    }
}

/// Why a leg records nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unrecorded {
    /// The tenant's recording policy excludes the call.
    Policy,
    /// Recording could not begin (refused at the invite).
    CannotProceed(FailureReason),
}

/// What a leg does once answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterAnswer {
    /// Nothing: the media side reports `recording` when media flows.
    Record,
    /// The policy excludes the call: report `notRecording`.
    NotRecorded,
    /// Recording could not even begin (refused at the invite).
    CannotProceed(FailureReason),
}

/// The status a failure mode reports.
fn status_for(mode: FailureMode) -> RecordingStatusReport {
    match mode {
        FailureMode::Required => RecordingStatusReport::Failed,
        FailureMode::BestEffort => RecordingStatusReport::NotRecording,
    }
}

impl CallRegistry {
    /// The tenant's policy (the default when none is stored).
    async fn policy_of(&self, tenant: TenantId) -> StoreResult<RecordingPolicy> {
        Ok(self
            .store
            .recording_policy(tenant)
            .await?
            .unwrap_or_else(|| RecordingPolicy::default_for(tenant)))
    }

    /// Decides an invite: the parties it names, completed from the synced
    /// directory (groups, numbers, addresses), against the tenant's
    /// policy.
    pub(super) async fn decide_invite(
        &self,
        tenant: TenantId,
        directory_tenant: &str,
        parties: &[InviteParty],
    ) -> StoreResult<PolicyDecision> {
        let policy = self.policy_of(tenant).await?;
        let mut facts = Vec::with_capacity(parties.len());
        for ip in parties {
            let Some(p) = &ip.party else { continue };
            let mut f = PolicyParty {
                recorded_user: ip.recorded,
                ..PolicyParty::default()
            };
            f.numbers.extend(p.phone.clone());
            f.addresses.extend(p.email.clone());
            f.addresses.extend(p.uri.clone());
            f.user_ids.extend(p.email.clone());
            if let Some(oid) = p.directory_object_id(directory_tenant) {
                f.user_ids.push(oid.to_owned());
                match self.store.directory_user_by_object_id(tenant, oid).await {
                    Ok(u) => {
                        f.user_ids.push(u.id.to_string());
                        f.user_ids.extend(u.email.clone());
                        f.user_ids.extend(u.upn.clone());
                        f.groups.extend(u.groups.iter().cloned());
                        f.numbers.extend(u.phone_numbers.iter().cloned());
                        f.addresses.extend(u.email.clone());
                        f.addresses.extend(u.upn.clone());
                        f.addresses.extend(u.sip_uri.clone());
                    }
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            } else if let Some(oid) = &p.object_id {
                // Another organisation's user: known by object id only.
                f.user_ids.push(oid.clone());
            }
            facts.push(f);
        }
        let decision = decide_recording(&policy, &facts);
        let outcome = if decision.record {
            "recorded"
        } else {
            "not-recorded"
        };
        let by = match decision.by {
            insights_core::domain::DecidedBy::Rule { list, .. } => list.as_str(),
            insights_core::domain::DecidedBy::NotIncluded => "include-only",
            insights_core::domain::DecidedBy::RecordAll => "record-all",
        };
        metrics::counter!(DECISIONS_METRIC, "decision" => outcome, "by" => by).increment(1);
        Ok(decision)
    }

    /// A call the policy excludes: audited, then answered (so Teams does
    /// not block it) and reported `notRecording`; nothing else is stored.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, all facts of the invite"
    )]
    pub(super) async fn not_recorded(
        &self,
        inner: &mut Inner,
        token: &VerifiedToken,
        tenant: TenantId,
        directory_tenant: String,
        call_id: String,
        call_chain_id: Option<String>,
        decision: PolicyDecision,
        received: Instant,
    ) -> StoreResult<AnswerJob> {
        let event = NewAuditEvent {
            actor: ACTOR.into(),
            action: AuditAction::RecordingNotRecorded,
            recording_id: None,
            target: Some(call_id.clone()),
            reason: None,
            source: None,
            details: json!({
                "decision": "not-recorded",
                "by": decision.by.name(),
                "rule_id": decision.by.rule_id(),
                "call_chain_id": call_chain_id,
            }),
        };
        // Audited before the answer: a failure here is a 503 and Graph
        // retries the invite.
        self.store.append_audit(tenant, event).await?;
        tracing::info!(%call_id, tenant_id = %tenant, by = %decision.by.name(), rule_id = ?decision.by.rule_id(), "recording policy: call not recorded; answering it as not recording");
        inner.legs.insert(
            call_id.clone(),
            Leg {
                tenant,
                directory_tenant: directory_tenant.clone(),
                // Never stored: the leg has no recording.
                recording_id: RecordingId::new(),
                route: token.issuer,
                creator_tid: token.directory_tenant_id,
                state: CallState::Incoming,
                answer: AnswerState::Pending,
                reported: None,
                recorded_users: 0,
                unrecorded: Some(Unrecorded::Policy),
                failure_raised: false,
            },
        );
        Ok(AnswerJob {
            ctx: CallContext {
                call_id: call_id.clone(),
                directory_tenant_id: directory_tenant,
            },
            call_id,
            route: token.issuer,
            tenant,
            deadline: received + self.cfg.answer_timeout,
            received,
            then: AfterAnswer::NotRecorded,
        })
    }

    /// Why a live leg records nothing, if it does not (its media is
    /// refused), and whether Teams was told its status yet.
    pub async fn unrecorded(&self, call_id: &str) -> Option<(Unrecorded, bool)> {
        self.inner
            .lock()
            .await
            .legs
            .get(call_id)
            .and_then(|l| l.unrecorded.map(|u| (u, l.reported.is_some())))
    }

    /// Recording of `call_id` cannot proceed: reports what the tenant's
    /// failure mode says (`required`: `failed`, Teams blocks or ends the
    /// call; `best-effort`: `notRecording`, the call goes on unrecorded)
    /// and raises the `recording-failure` alert (once per leg). Returns
    /// the mode applied.
    pub async fn recording_cannot_proceed(
        &self,
        call_id: &str,
        reason: FailureReason,
    ) -> Result<FailureMode, RecordingError> {
        let (tenant, recording_id, raised) = {
            let mut inner = self.inner.lock().await;
            let Some(leg) = inner.legs.get_mut(call_id) else {
                return Err(RecordingError::UnknownCall(call_id.to_owned()));
            };
            let raised = leg.failure_raised;
            leg.failure_raised = true;
            (leg.tenant, leg.recording_id, raised)
        };
        let reason = if reason == FailureReason::MediaLost && self.is_shutting_down() {
            FailureReason::Shutdown
        } else {
            reason
        };
        // Unreadable policy: fail closed.
        let mode = match self.policy_of(tenant).await {
            Ok(p) => p.failure_mode,
            Err(e) => {
                tracing::error!(%call_id, tenant_id = %tenant, error = %e, "cannot read the tenant's failure mode: failing closed");
                FailureMode::Required
            }
        };
        let status = status_for(mode);
        // The alert is raised (and audited) before Teams hears it.
        if !raised {
            self.raise_failure(tenant, recording_id, call_id, mode, reason, status)
                .await;
        }
        self.report(call_id, status).await.map(|()| mode)
    }

    /// The `recording-failure` alert: metric, audit event, log line.
    async fn raise_failure(
        &self,
        tenant: TenantId,
        recording_id: RecordingId,
        call_id: &str,
        mode: FailureMode,
        reason: FailureReason,
        status: RecordingStatusReport,
    ) {
        metrics::counter!(FAILURES_METRIC, "mode" => mode.as_str(), "reason" => reason.as_str())
            .increment(1);
        let outcome = match mode {
            FailureMode::Required => "call-blocked",
            FailureMode::BestEffort => "call-continues-unrecorded",
        };
        tracing::error!(
            alert = "recording-failure",
            %call_id,
            tenant_id = %tenant,
            %recording_id,
            mode = mode.as_str(),
            reason = reason.as_str(),
            reported = status.as_str(),
            outcome,
            "recording cannot proceed"
        );
        let event = NewAuditEvent {
            actor: ACTOR.into(),
            action: AuditAction::RecordingFailure,
            recording_id: Some(recording_id),
            target: Some(call_id.to_owned()),
            reason: None,
            source: None,
            details: json!({
                "mode": mode.as_str(),
                "reason": reason.as_str(),
                "reported": status.as_str(),
                "outcome": outcome,
            }),
        };
        if let Err(e) = self.store.append_audit(tenant, event).await {
            tracing::error!(%call_id, tenant_id = %tenant, error = %e, "cannot audit the recording failure");
        }
        // Through the alert channels: one alert per tenant, reason and
        // mode while it is open (more failures count occurrences).
        let alert = NewAlert::new(AlertKind::RecordingFailure)
            .keyed_by_code("reason", reason.as_str())
            .keyed_by_code("mode", mode.as_str())
            .id("recording_id", recording_id.as_uuid())
            .code("reported", status.as_str())
            .code("outcome", outcome);
        if let Err(e) = alerts::raise(
            self.store.as_ref(),
            Realm::Tenant(tenant),
            alert,
            alerts::DEFAULT_WINDOW,
        )
        .await
        {
            tracing::error!(%call_id, tenant_id = %tenant, error = %e, "cannot raise the recording-failure alert");
        }
    }

    /// This node is stopping: every live recorded leg whose recording
    /// cannot go on is handled by the tenant's failure mode (reason
    /// `shutdown`), and later failures are attributed to the shutdown.
    pub async fn shutdown(&self) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let legs: Vec<String> = {
            let inner = self.inner.lock().await;
            inner
                .legs
                .iter()
                .filter(|(_, l)| {
                    l.unrecorded.is_none()
                        && !l.state.is_over()
                        && l.answer == AnswerState::Answered
                        && l.reported == Some(RecordingStatusReport::Recording)
                })
                .map(|(id, _)| id.clone())
                .collect()
        };
        for call_id in legs {
            if let Err(e) = self
                .recording_cannot_proceed(&call_id, FailureReason::Shutdown)
                .await
            {
                tracing::warn!(%call_id, error = %e, "cannot report the recording status at shutdown");
            }
        }
    }

    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_modes_report_failed_or_not_recording() {
        assert_eq!(
            status_for(FailureMode::Required),
            RecordingStatusReport::Failed
        );
        assert_eq!(
            status_for(FailureMode::BestEffort),
            RecordingStatusReport::NotRecording
        );
        assert_eq!(
            FailureReason::from_refusal("spool-full"),
            FailureReason::SpoolFull
        );
    }
}
