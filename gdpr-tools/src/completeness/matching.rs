//! Matching one call to the recordings (no I/O): scope by the recording
//! policy, candidates by call id, then coverage, gaps and their reasons.
//!
//! # Scope
//!
//! A party is a *recorded user* when the tenant's synchronised directory
//! knows its Entra object id, or its identity names the tenant's
//! directory tenant. A call without one is out of scope
//! (`no-recorded-user`); otherwise
//! [`decide_recording`] over its parties decides, as the gateway does at
//! the invite (a call it excludes is out of scope, naming the rule).
//!
//! # Candidates
//!
//! Recordings whose call chain id or call id is the call record's id
//! (Teams gives the call record its chain id); failing that, recordings
//! that overlap the call in time and share a recorded user with it.
//!
//! # Coverage and gaps
//!
//! Stored recordings cover their `[started_at, ended_at]`, clipped to the
//! call, minus paused intervals. Every uncovered stretch longer than the
//! tolerance is a gap, with a reason:
//!
//! 1. `paused` inside a pause of a matched recording;
//! 2. `upload-pending` inside a matched recording that is captured but
//!    not stored yet;
//! 3. `node-crash` inside a failover gap, or starting where a recording
//!    ended that a lost node closed (`gateway-node-lost`,
//!    `primary-node-lost`, `recovered-after-restart`);
//! 4. with nothing stored at all: `bot-refused` (a refused invite was
//!    stored), `recording-failed` (a failed recording), else
//!    `not-invited`;
//! 5. otherwise `unknown`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use insights_core::domain::{
    CallCompleteness, CompletenessStatus, CoverageGap, DirectoryUser, GapReason, MeetingFailover,
    PolicyParty, Recording, RecordingGap, RecordingPolicy, RecordingStatus, UserId,
    decide_recording, normalize_phone,
};

use super::graph::RecordParty;

/// Result codes of recordings a lost node closed.
const NODE_LOST_CODES: &[&str] = &[
    insights_core::domain::PARTIAL_GATEWAY_NODE_LOST,
    insights_core::domain::FAILOVER_PRIMARY_NODE_LOST,
    "recovered-after-restart",
];

/// A call as reconciled: the call record, enriched with PSTN numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct CallFacts {
    pub call_id: String,
    pub call_type: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub parties: Vec<RecordParty>,
}

/// The tenant's directory, indexed by Entra object id.
pub struct Directory {
    by_object_id: HashMap<String, DirectoryUser>,
    /// The tenant's directory (Entra) tenant id, lower-case.
    tenant: Option<String>,
}

impl Directory {
    pub fn new(users: Vec<DirectoryUser>, directory_tenant: Option<uuid::Uuid>) -> Self {
        Self {
            by_object_id: users
                .into_iter()
                .filter(|u| u.active)
                .filter_map(|u| {
                    u.directory_object_id
                        .clone()
                        .map(|o| (o.to_ascii_lowercase(), u))
                })
                .collect(),
            tenant: directory_tenant.map(|t| t.to_string()),
        }
    }

    fn user(&self, party: &RecordParty) -> Option<&DirectoryUser> {
        party
            .object_id
            .as_ref()
            .and_then(|o| self.by_object_id.get(&o.to_ascii_lowercase()))
    }

    fn is_internal(&self, party: &RecordParty) -> bool {
        self.user(party).is_some()
            || (party.object_id.is_some()
                && party
                    .tenant_id
                    .as_ref()
                    .zip(self.tenant.as_ref())
                    .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b)))
    }

    /// The policy's view of a party.
    fn policy_party(&self, party: &RecordParty) -> PolicyParty {
        let mut p = PolicyParty {
            recorded_user: self.is_internal(party),
            ..PolicyParty::default()
        };
        if let Some(o) = &party.object_id {
            p.user_ids.push(o.clone());
        }
        if let Some(n) = &party.phone {
            p.numbers.push(n.clone());
        }
        if let Some(u) = self.user(party) {
            p.user_ids.push(u.id.0.to_string());
            for a in [&u.email, &u.upn].into_iter().flatten() {
                p.user_ids.push(a.clone());
                p.addresses.push(a.clone());
            }
            if let Some(s) = &u.sip_uri {
                p.addresses.push(s.clone());
            }
            p.groups.extend(u.groups.iter().cloned());
            p.numbers.extend(u.phone_numbers.iter().cloned());
        }
        p
    }
}

/// Paused intervals of a recording: its gaps (`recording_gaps`, written
/// by pause/resume) from when the gateway stopped writing media (or the
/// pause was asked for, if the gateway had not applied it yet) to when
/// it wrote again (or the recording's end, for a gap still open). The
/// one place that reads them.
pub fn pause_intervals(
    r: &Recording,
    gaps: &[RecordingGap],
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    gaps.iter()
        .filter(|g| g.recording_id == r.id)
        .filter_map(|g| {
            let from = g.started_at.unwrap_or(g.requested_at);
            Some((from, g.ended_at.or(r.ended_at)?))
        })
        .filter(|(a, b)| a < b)
        .collect()
}

/// Intervals, sorted and merged.
fn merge(mut v: Vec<(DateTime<Utc>, DateTime<Utc>)>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    v.retain(|(a, b)| a < b);
    v.sort();
    let mut out: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// `[from, to]` minus `covered` (merged).
fn subtract(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    covered: &[(DateTime<Utc>, DateTime<Utc>)],
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut at = from;
    for &(a, b) in covered {
        if b <= at {
            continue;
        }
        if a >= to {
            break;
        }
        if a > at {
            out.push((at, a.min(to)));
        }
        at = at.max(b);
        if at >= to {
            break;
        }
    }
    if at < to {
        out.push((at, to));
    }
    out
}

fn overlaps(a: (DateTime<Utc>, DateTime<Utc>), b: (DateTime<Utc>, DateTime<Utc>)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

fn inside(gap: (DateTime<Utc>, DateTime<Utc>), outer: &[(DateTime<Utc>, DateTime<Utc>)]) -> bool {
    let len = (gap.1 - gap.0).num_milliseconds();
    let covered: i64 = outer
        .iter()
        .map(|&(a, b)| (b.min(gap.1) - a.max(gap.0)).num_milliseconds().max(0))
        .sum();
    len > 0 && covered * 2 >= len
}

fn span(r: &Recording) -> (DateTime<Utc>, DateTime<Utc>) {
    let end = r
        .ended_at
        .or_else(|| {
            r.duration_ms
                .map(|ms| r.started_at + Duration::milliseconds(ms))
        })
        .unwrap_or(r.started_at);
    (r.started_at, end.max(r.started_at))
}

/// The recordings of `call` among `recordings` (see the module docs).
pub fn candidates<'r>(
    call: &CallFacts,
    user_ids: &HashSet<UserId>,
    recordings: &'r [Recording],
    slack: Duration,
) -> Vec<&'r Recording> {
    let by_id: Vec<&Recording> = recordings
        .iter()
        .filter(|r| {
            r.call_chain_id
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case(&call.call_id))
                || r.external_call_id
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(&call.call_id))
        })
        .collect();
    if !by_id.is_empty() {
        return by_id;
    }
    let window = (call.started_at - slack, call.ended_at + slack);
    recordings
        .iter()
        // A recording that names another call is that call's.
        .filter(|r| r.call_chain_id.is_none() && r.external_call_id.is_none())
        .filter(|r| {
            let (a, b) = span(r);
            overlaps((a, b.max(a + Duration::milliseconds(1))), window)
        })
        .filter(|r| {
            r.participants
                .iter()
                .any(|p| p.directory_user_id.is_some_and(|u| user_ids.contains(&u)))
        })
        .collect()
}

/// Reconciles one call.
pub fn reconcile_call(
    call: &CallFacts,
    policy: &RecordingPolicy,
    directory: &Directory,
    recordings: &[Recording],
    failovers: &[MeetingFailover],
    gaps: &[RecordingGap],
    tolerance: Duration,
) -> CallCompleteness {
    let user_ids: Vec<UserId> = {
        let mut seen = HashSet::new();
        call.parties
            .iter()
            .filter_map(|p| directory.user(p).map(|u| u.id))
            .filter(|u| seen.insert(*u))
            .collect()
    };
    let mut out = CallCompleteness {
        call_id: call.call_id.clone(),
        call_type: call.call_type.clone(),
        started_at: call.started_at,
        ended_at: call.ended_at,
        status: CompletenessStatus::OutOfScope,
        coverage_permille: 0,
        reason: None,
        result_code: None,
        rule: None,
        rule_id: None,
        gaps: Vec::new(),
        recording_ids: Vec::new(),
        user_ids: user_ids.clone(),
        participants: u32::try_from(call.parties.len()).unwrap_or(u32::MAX),
    };
    let parties: Vec<PolicyParty> = call
        .parties
        .iter()
        .map(|p| directory.policy_party(p))
        .collect();
    if !parties.iter().any(|p| p.recorded_user) {
        out.rule = Some("no-recorded-user".into());
        return out;
    }
    let decision = decide_recording(policy, &parties);
    if !decision.record {
        out.rule = Some(decision.by.name());
        out.rule_id = decision.by.rule_id();
        return out;
    }

    let users: HashSet<UserId> = user_ids.into_iter().collect();
    let matched = candidates(call, &users, recordings, tolerance);
    out.recording_ids = matched.iter().map(|r| r.id).collect();
    let call_span = (call.started_at, call.ended_at);
    let clip = |(a, b): (DateTime<Utc>, DateTime<Utc>)| (a.max(call_span.0), b.min(call_span.1));

    let stored: Vec<&Recording> = matched
        .iter()
        .copied()
        .filter(|r| {
            matches!(
                r.status,
                RecordingStatus::Stored | RecordingStatus::MediaDeleted
            )
        })
        .collect();
    let pending: Vec<(DateTime<Utc>, DateTime<Utc>)> = merge(
        matched
            .iter()
            .filter(|r| {
                matches!(
                    r.status,
                    RecordingStatus::Recording | RecordingStatus::Spooled
                )
            })
            .map(|r| clip(span(r)))
            .collect(),
    );
    let pauses: Vec<(DateTime<Utc>, DateTime<Utc>)> = merge(
        matched
            .iter()
            .flat_map(|r| pause_intervals(r, gaps))
            .map(clip)
            .collect(),
    );
    let covered = merge(stored.iter().map(|r| clip(span(r))).collect());
    // Paused stretches are not covered (no media exists for them).
    let mut uncovered: Vec<(DateTime<Utc>, DateTime<Utc>)> =
        subtract(call_span.0, call_span.1, &covered);
    for p in &pauses {
        uncovered.push(*p);
    }
    let uncovered = merge(uncovered);

    let failover_gaps: Vec<(DateTime<Utc>, DateTime<Utc>)> = failovers
        .iter()
        .filter(|f| {
            out.recording_ids.contains(&f.recording_id) || out.recording_ids.contains(&f.continues)
        })
        .map(|f| (f.gap_from, f.gap_to))
        .collect();
    let lost_ends: Vec<DateTime<Utc>> = matched
        .iter()
        .filter(|r| {
            r.result_code
                .as_deref()
                .is_some_and(|c| NODE_LOST_CODES.contains(&c))
        })
        .map(|r| span(r).1)
        .collect();
    let refused = matched.iter().find(|r| {
        r.status == RecordingStatus::Failed
            && r.result_code
                .as_deref()
                .is_some_and(|c| c.starts_with("refused:"))
    });
    let failed = matched
        .iter()
        .find(|r| r.status == RecordingStatus::Failed && refused.is_none_or(|f| f.id != r.id));

    let reason_of = |g: (DateTime<Utc>, DateTime<Utc>)| -> GapReason {
        if inside(g, &pauses) {
            GapReason::Paused
        } else if inside(g, &pending) {
            GapReason::UploadPending
        } else if failover_gaps.iter().any(|f| overlaps(*f, g))
            || lost_ends
                .iter()
                .any(|e| (g.0 - *e).num_milliseconds().abs() <= tolerance.num_milliseconds())
        {
            GapReason::NodeCrash
        } else if stored.is_empty() && refused.is_some() {
            GapReason::BotRefused
        } else if stored.is_empty() && failed.is_some() {
            GapReason::RecordingFailed
        } else if matched.is_empty() {
            GapReason::NotInvited
        } else {
            GapReason::Unknown
        }
    };
    out.gaps = uncovered
        .into_iter()
        .filter(|(a, b)| *b - *a > tolerance)
        .map(|g| CoverageGap {
            from: g.0,
            to: g.1,
            reason: reason_of(g),
        })
        .collect();
    let total = (call_span.1 - call_span.0).num_milliseconds().max(1);
    let missing: i64 = out.gaps.iter().map(CoverageGap::duration_ms).sum();
    let covered_ms = (total - missing).max(0);
    out.coverage_permille = u32::try_from(covered_ms * 1000 / total).unwrap_or(0);
    let something_stored = !stored.is_empty() && covered_ms > 0;
    out.status = if out.gaps.is_empty() {
        out.coverage_permille = 1000;
        CompletenessStatus::Recorded
    } else if !something_stored {
        out.coverage_permille = 0;
        let reason = out.gaps.first().map(|g| g.reason);
        out.reason = reason;
        out.result_code = match reason {
            Some(GapReason::BotRefused) => refused.and_then(|r| r.result_code.clone()),
            Some(GapReason::RecordingFailed) => failed.and_then(|r| r.result_code.clone()),
            _ => None,
        };
        CompletenessStatus::NotRecorded
    } else {
        CompletenessStatus::Partial
    };
    out
}

/// Adds PSTN legs' numbers to the call records they belong to (same
/// Teams user, start within `slack`); the rows no call record claims
/// become calls of their own (`pstn:<id>`).
pub fn merge_pstn(calls: &mut Vec<CallFacts>, rows: Vec<super::graph::PstnRow>, slack: Duration) {
    for row in rows {
        let numbers: Vec<String> = [&row.caller_number, &row.callee_number]
            .into_iter()
            .flatten()
            .map(|n| normalize_phone(n).unwrap_or_else(|| n.clone()))
            .collect();
        let owner = calls.iter_mut().find(|c| {
            (c.started_at - row.started_at).num_milliseconds().abs() <= slack.num_milliseconds()
                && row.user_id.as_ref().is_some_and(|u| {
                    c.parties.iter().any(|p| {
                        p.object_id
                            .as_ref()
                            .is_some_and(|o| o.eq_ignore_ascii_case(u))
                    })
                })
        });
        match owner {
            Some(c) => {
                for n in numbers {
                    if !c.parties.iter().any(|p| p.phone.as_deref() == Some(&n)) {
                        c.parties.push(RecordParty {
                            phone: Some(n),
                            ..RecordParty::default()
                        });
                    }
                }
            }
            None => {
                let mut parties = vec![RecordParty {
                    object_id: row.user_id.clone(),
                    ..RecordParty::default()
                }];
                parties.extend(numbers.into_iter().map(|n| RecordParty {
                    phone: Some(n),
                    ..RecordParty::default()
                }));
                calls.push(CallFacts {
                    call_id: format!("pstn:{}", row.id),
                    call_type: row.source.to_owned(),
                    started_at: row.started_at,
                    ended_at: row.ended_at,
                    parties,
                });
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use insights_core::domain::{
        Direction, Participant, ParticipantId, ParticipantRole, PolicyList, PolicyMode, PolicyRule,
        RecordingKind, RuleKind, TenantId,
    };

    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn user(tenant: TenantId, oid: &str) -> DirectoryUser {
        DirectoryUser {
            id: UserId(uuid::Uuid::new_v4()),
            tenant_id: tenant,
            directory_object_id: Some(oid.into()),
            first_name: None,
            last_name: None,
            display_name: None,
            alias: None,
            email: Some(format!("{oid}@contoso.com")),
            upn: None,
            phone_numbers: vec![],
            sip_uri: None,
            tel_uri: None,
            groups: vec![],
            active: true,
            updated_at: t(0),
        }
    }

    fn call(id: &str, oid: &str, phone: &str) -> CallFacts {
        CallFacts {
            call_id: id.into(),
            call_type: "peerToPeer".into(),
            started_at: t(0),
            ended_at: t(600),
            parties: vec![
                RecordParty {
                    object_id: Some(oid.into()),
                    tenant_id: None,
                    phone: None,
                },
                RecordParty {
                    object_id: None,
                    tenant_id: None,
                    phone: Some(phone.into()),
                },
            ],
        }
    }

    fn rec(
        tenant: TenantId,
        chain: &str,
        from: i64,
        to: i64,
        status: RecordingStatus,
        code: Option<&str>,
    ) -> Recording {
        let mut r = Recording::new(tenant, RecordingKind::Call, Direction::Outbound, t(from));
        r.call_chain_id = Some(chain.into());
        r.ended_at = Some(t(to));
        r.status = status;
        r.result_code = code.map(str::to_owned);
        r
    }

    #[test]
    fn each_kind_of_call_is_named_with_its_reason() {
        let tenant = TenantId(uuid::Uuid::new_v4());
        let alice = user(tenant, "oid-alice");
        let dir = Directory::new(vec![alice.clone()], None);
        let mut policy = RecordingPolicy::default_for(tenant);
        policy.mode = PolicyMode::RecordAll;
        let doctor = PolicyRule::new(
            PolicyList::NeverRecord,
            RuleKind::NumberPrefix,
            "+4930999",
            None,
        )
        .unwrap();
        policy.rules.push(doctor.clone());
        let tol = Duration::seconds(10);
        let recs = vec![
            rec(tenant, "full", 2, 600, RecordingStatus::Stored, None),
            rec(
                tenant,
                "crash",
                1,
                240,
                RecordingStatus::Stored,
                Some("gateway-node-lost"),
            ),
            rec(
                tenant,
                "refused",
                0,
                0,
                RecordingStatus::Failed,
                Some("refused:spool-full"),
            ),
            rec(tenant, "pending", 0, 600, RecordingStatus::Spooled, None),
        ];
        let r = |id: &str, phone: &str| {
            reconcile_call(
                &call(id, "oid-alice", phone),
                &policy,
                &dir,
                &recs,
                &[],
                &[],
                tol,
            )
        };

        let full = r("full", "+15550100");
        assert_eq!(full.status, CompletenessStatus::Recorded);
        assert_eq!(full.coverage_permille, 1000);
        assert_eq!(full.user_ids, vec![alice.id]);

        let crash = r("crash", "+15550100");
        assert_eq!(crash.status, CompletenessStatus::Partial);
        assert_eq!(crash.coverage_permille, 400);
        assert_eq!(crash.gaps.len(), 1);
        assert_eq!(crash.gaps[0].reason, GapReason::NodeCrash);
        assert_eq!(crash.gaps[0].from, t(240));

        let missed = r("never-invited", "+15550100");
        assert_eq!(missed.status, CompletenessStatus::NotRecorded);
        assert_eq!(missed.reason, Some(GapReason::NotInvited));

        let refused = r("refused", "+15550100");
        assert_eq!(refused.reason, Some(GapReason::BotRefused));
        assert_eq!(refused.result_code.as_deref(), Some("refused:spool-full"));

        let pending = r("pending", "+15550100");
        assert_eq!(pending.reason, Some(GapReason::UploadPending));

        let excluded = r("doctor", "+49 30 999 123");
        assert_eq!(excluded.status, CompletenessStatus::OutOfScope);
        assert_eq!(excluded.rule.as_deref(), Some("never-record:number-prefix"));
        assert_eq!(excluded.rule_id, Some(doctor.id));

        let outsiders = reconcile_call(
            &call("ext", "oid-stranger", "+15550100"),
            &policy,
            &dir,
            &recs,
            &[],
            &[],
            tol,
        );
        assert_eq!(outsiders.rule.as_deref(), Some("no-recorded-user"));
    }

    #[test]
    fn pauses_and_time_matching_without_ids() {
        let tenant = TenantId(uuid::Uuid::new_v4());
        let alice = user(tenant, "oid-alice");
        let dir = Directory::new(vec![alice.clone()], None);
        let policy = RecordingPolicy::default_for(tenant);
        let mut r = Recording::new(tenant, RecordingKind::Call, Direction::Inbound, t(0));
        r.ended_at = Some(t(600));
        r.status = RecordingStatus::Stored;
        r.participants.push(Participant {
            id: ParticipantId::new(),
            role: ParticipantRole::Callee,
            display_name: None,
            phone_number: None,
            uri: None,
            email: None,
            directory_user_id: Some(alice.id),
            recorded_user: true,
            joined_ms: None,
            left_ms: None,
        });
        // Asked for at 95 s, applied by the gateway at 100 s, resumed
        // at 160 s.
        let mut paused = RecordingGap::pause(tenant, r.id, "acct-1", t(95));
        paused.started_at = Some(t(100));
        paused.ended_at = Some(t(160));
        // Another recording's gap does not count.
        let mut elsewhere = RecordingGap::pause(
            tenant,
            insights_core::domain::RecordingId::new(),
            "acct-1",
            t(300),
        );
        elsewhere.ended_at = Some(t(400));
        let c = reconcile_call(
            &call("no-id", "oid-alice", "+15550100"),
            &policy,
            &dir,
            &[r],
            &[],
            &[paused, elsewhere],
            Duration::seconds(5),
        );
        assert_eq!(c.status, CompletenessStatus::Partial);
        assert_eq!(c.gaps.len(), 1);
        assert_eq!(c.gaps[0].reason, GapReason::Paused);
        assert_eq!(c.coverage_permille, 900);
    }

    #[test]
    fn pstn_rows_enrich_their_call_or_stand_alone() {
        let mut calls = vec![call("c1", "oid-alice", "+15550100")];
        let row = |id: &str, user: &str, at: i64| super::super::graph::PstnRow {
            id: id.into(),
            source: "pstn",
            user_id: Some(user.into()),
            started_at: t(at),
            ended_at: t(at + 60),
            caller_number: Some("+4930999123".into()),
            callee_number: None,
        };
        merge_pstn(
            &mut calls,
            vec![row("p1", "oid-alice", 3), row("p2", "oid-bob", 3)],
            Duration::seconds(60),
        );
        assert_eq!(calls.len(), 2);
        assert!(
            calls[0]
                .parties
                .iter()
                .any(|p| p.phone.as_deref() == Some("+4930999123"))
        );
        assert_eq!(calls[1].call_id, "pstn:p2");
    }

    #[test]
    fn subtract_and_merge() {
        let m = merge(vec![(t(5), t(10)), (t(0), t(6)), (t(20), t(30))]);
        assert_eq!(m, vec![(t(0), t(10)), (t(20), t(30))]);
        assert_eq!(
            subtract(t(0), t(40), &m),
            vec![(t(10), t(20)), (t(30), t(40))]
        );
        assert_eq!(subtract(t(0), t(5), &[]), vec![(t(0), t(5))]);
    }
}
