//! Completeness reconciliation (issue 17 §3): every call Microsoft's call
//! records say a recorded user had, set against the recordings we hold.
//!
//! A reconciliation run (`gdpr_tools::completeness`) reads the call
//! records of a period, decides for each call whether it had to be
//! recorded ([`decide_recording`](super::decide_recording) over its
//! parties) and matches it to recordings by call chain id, call id, time
//! and participants. The outcome per call is a [`CallCompleteness`]:
//!
//! * [`CompletenessStatus::Recorded`]: the recordings cover the call (up
//!   to the run's tolerance at its edges and between legs);
//! * [`CompletenessStatus::Partial`]: they cover part of it; the
//!   uncovered intervals are [`CoverageGap`]s with the reason we know
//!   ([`GapReason`]);
//! * [`CompletenessStatus::NotRecorded`]: nothing of it was recorded;
//!   `reason` says why as far as we know;
//! * [`CompletenessStatus::OutOfScope`]: no recorded user took part, or
//!   the recording policy excludes it; `rule` names the deciding rule
//!   (`never-record:number`, `include-only:no-match`, …; never its value).
//!
//! Everything here is ids, times and counts: no names, numbers or
//! addresses are kept (the deciding rule is named by id and kind).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{RecordingId, TenantId, UserId, string_enum};

string_enum!(
    /// How completely a call was recorded.
    CompletenessStatus {
        /// The recordings cover the whole call.
        Recorded => "recorded",
        /// Part of the call was recorded.
        Partial => "partial",
        /// Nothing of the call was recorded although it had to be.
        NotRecorded => "not-recorded",
        /// The call did not have to be recorded.
        OutOfScope => "out-of-scope",
    }
);

string_enum!(
    /// Why (part of) a call is missing, as far as we know.
    GapReason {
        /// The gateway never got an invite for the call (no recording, no
        /// refusal): Teams did not ask, or the invite never reached us.
        NotInvited => "not-invited",
        /// The gateway answered the invite but refused to record
        /// (admission control: spool full, node shutting down, …).
        BotRefused => "bot-refused",
        /// The node recording the call was lost (crash, kill, lost disk);
        /// the recording ends early or continues after a failover gap.
        NodeCrash => "node-crash",
        /// The recording was paused (a user or supervisor asked).
        Paused => "paused",
        /// Media was captured but is not in the blob store yet.
        UploadPending => "upload-pending",
        /// Recording failed for another reason (the recording's result
        /// code says which).
        RecordingFailed => "recording-failed",
        /// A part of the call no recording covers and nothing explains.
        Unknown => "unknown",
    }
);

string_enum!(
    /// What started a reconciliation run.
    CompletenessTrigger {
        /// The daily run of the scheduler role.
        Scheduled => "scheduled",
        /// Asked for (API or CLI) for a period.
        OnDemand => "on-demand",
    }
);

/// One uncovered interval of a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageGap {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub reason: GapReason,
}

impl CoverageGap {
    /// The gap's length in milliseconds.
    pub fn duration_ms(&self) -> i64 {
        (self.to - self.from).num_milliseconds().max(0)
    }
}

/// The reconciliation outcome of one call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallCompleteness {
    /// The call record's id (Graph `callRecord.id`, which Teams sets to
    /// the call's chain id) or, for a PSTN leg with no call record,
    /// `pstn:<callId>`.
    pub call_id: String,
    /// `groupCall`, `peerToPeer`, `pstn` or `directRouting` (Graph's
    /// call type, or the PSTN report's).
    pub call_type: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub status: CompletenessStatus,
    /// Covered share of the call, in thousandths (0–1000); 0 for calls
    /// out of scope.
    pub coverage_permille: u32,
    /// Why nothing was recorded (`not-recorded`).
    #[serde(default)]
    pub reason: Option<GapReason>,
    /// The recording result code behind `reason`, when there is one
    /// (e.g. `refused:spool-full`).
    #[serde(default)]
    pub result_code: Option<String>,
    /// For `out-of-scope`: the deciding rule's name (`never-record:user`,
    /// `include-only:no-match`) or `no-recorded-user`.
    #[serde(default)]
    pub rule: Option<String>,
    /// The deciding rule's id, when a rule decided.
    #[serde(default)]
    pub rule_id: Option<Uuid>,
    /// The uncovered intervals (`partial`, and `not-recorded` as one gap).
    #[serde(default)]
    pub gaps: Vec<CoverageGap>,
    /// The recordings matched to the call.
    #[serde(default)]
    pub recording_ids: Vec<RecordingId>,
    /// The tenant's directory users who took part (ids only).
    #[serde(default)]
    pub user_ids: Vec<UserId>,
    /// How many parties the call record names.
    #[serde(default)]
    pub participants: u32,
}

impl CallCompleteness {
    /// Whether the call had to be recorded.
    pub fn in_scope(&self) -> bool {
        self.status != CompletenessStatus::OutOfScope
    }

    /// The call's length in milliseconds.
    pub fn duration_ms(&self) -> i64 {
        (self.ended_at - self.started_at).num_milliseconds().max(0)
    }
}

/// Totals over a set of calls.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletenessTotals {
    pub calls: u32,
    pub in_scope: u32,
    pub recorded: u32,
    pub partial: u32,
    pub not_recorded: u32,
    pub out_of_scope: u32,
    /// In-scope call time covered, in thousandths of in-scope call time
    /// (1000 when no call was in scope).
    pub coverage_permille: u32,
}

impl CompletenessTotals {
    /// Counts `calls`; coverage is weighted by call duration (a missed
    /// hour weighs more than a missed minute), calls of zero length
    /// count as one millisecond.
    pub fn of<'a>(calls: impl IntoIterator<Item = &'a CallCompleteness>) -> Self {
        let mut t = CompletenessTotals::default();
        let (mut covered, mut total) = (0i128, 0i128);
        for c in calls {
            t.calls += 1;
            match c.status {
                CompletenessStatus::Recorded => t.recorded += 1,
                CompletenessStatus::Partial => t.partial += 1,
                CompletenessStatus::NotRecorded => t.not_recorded += 1,
                CompletenessStatus::OutOfScope => t.out_of_scope += 1,
            }
            if c.in_scope() {
                t.in_scope += 1;
                let d = i128::from(c.duration_ms().max(1));
                total += d;
                covered += d * i128::from(c.coverage_permille.min(1000));
            }
        }
        t.coverage_permille = if total == 0 {
            1000
        } else {
            u32::try_from(covered / total).unwrap_or(1000).min(1000)
        };
        t
    }
}

/// One reconciliation run of a tenant over a period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompletenessRun {
    pub id: Uuid,
    pub tenant_id: TenantId,
    /// The period reconciled: calls that started in `[from, to)`.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub trigger: CompletenessTrigger,
    /// Who asked (an account id, `cli`, or `system:completeness`).
    pub actor: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub totals: CompletenessTotals,
    /// Call records read from Graph, and PSTN / direct-routing rows.
    pub call_records: u32,
    pub pstn_rows: u32,
    /// Graph requests retried after throttling.
    pub throttled_retries: u32,
    /// The tenant's alert threshold at the time, in thousandths.
    pub threshold_permille: u32,
    /// Whether coverage fell below the threshold (an alert was raised).
    pub below_threshold: bool,
}

/// A tenant's completeness settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletenessThreshold {
    pub tenant_id: TenantId,
    /// Coverage below this (thousandths of in-scope call time) raises the
    /// completeness alert.
    pub threshold_permille: u32,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(status: CompletenessStatus, minutes: i64, permille: u32) -> CallCompleteness {
        let start = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        CallCompleteness {
            call_id: "c".into(),
            call_type: "peerToPeer".into(),
            started_at: start,
            ended_at: start + chrono::Duration::minutes(minutes),
            status,
            coverage_permille: permille,
            reason: None,
            result_code: None,
            rule: None,
            rule_id: None,
            gaps: vec![],
            recording_ids: vec![],
            user_ids: vec![],
            participants: 2,
        }
    }

    #[test]
    fn totals_weigh_coverage_by_duration_and_skip_out_of_scope() {
        use CompletenessStatus::*;
        let calls = [
            call(Recorded, 30, 1000),
            call(Partial, 10, 500),
            call(NotRecorded, 10, 0),
            call(OutOfScope, 100, 0),
        ];
        let t = CompletenessTotals::of(&calls);
        assert_eq!(
            (
                t.calls,
                t.in_scope,
                t.recorded,
                t.partial,
                t.not_recorded,
                t.out_of_scope
            ),
            (4, 3, 1, 1, 1, 1)
        );
        // (30*1000 + 10*500 + 10*0) / 50 = 700.
        assert_eq!(t.coverage_permille, 700);
        assert_eq!(CompletenessTotals::of(&[]).coverage_permille, 1000);
    }
}
