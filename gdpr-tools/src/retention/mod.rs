//! Retention: per-tenant policies and their enforcement.
//!
//! A [`RetentionPolicy`] keeps the recordings its scope matches (kind,
//! direction, a recorded user's directory group, retention class; unset
//! fields match all) for `retain_days` after they started, then applies
//! its action: `delete-media` deletes the recording's blobs, crypto-shreds
//! its data key (so every copy of the media, backups included, becomes
//! unreadable) and clears the media reference, keeping the call metadata;
//! `delete-recording` does that and deletes the recording itself.
//!
//! Rules:
//!
//! * **No policy, no deletion.** A recording no enabled policy matches is
//!   kept forever.
//! * **Several matching policies: the longest retention wins** (the safe
//!   reading for evidence; on equal days `delete-media`, the lesser
//!   action, wins, then the smaller policy id so the choice is stable).
//! * **Legal holds always win.** Just before acting on a recording its
//!   flag is re-evaluated from the active holds
//!   (`MetadataStore::apply_legal_holds`); a held recording is reported
//!   as blocked with the holds that cover it, and nothing of it is
//!   touched. A hold placed after that check still wins: the store's
//!   `shred_data_key` and `delete_recording` re-check the active holds
//!   in the transaction that deletes, and [`delete_media`] shreds the
//!   key before it deletes any blob, so a refused shred leaves every
//!   blob in place (the recording is then reported as blocked).
//! * **Every deletion is audited** (`retention-delete`, with the policy,
//!   the action, the blobs deleted and whether a key was shredded).
//! * **Resumable.** Blobs go first, then the key, then the metadata; a run
//!   interrupted half-way finds the recording again and finishes it
//!   (deleting a missing blob or shredding a shredded key is a no-op).
//!
//! [`run`] with `dry_run` reports what a run would do and changes
//! nothing. [`due`] counts what is due now per policy and records it in
//! the `insights_retention_due_recordings` gauge.
//!
//! [`Scheduler`] runs the enforcement periodically for every tenant, on
//! the node that leads the `retention` lease (`schedule.rs`, over
//! [`crate::leader`]).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use insights_core::blob::{BlobError, BlobStore, layout};
use insights_core::domain::{
    AuditAction, DirectoryUser, LegalHold, NewAuditEvent, Recording, RecordingId, RecordingStatus,
    RetentionAction, RetentionPolicy, RetentionPolicyId, TenantId, UserId,
};
use insights_core::store::{GovernanceQuery, MetadataStore, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::holds::{HoldRef, covering_in};

mod schedule;

pub use schedule::{JOB, Scheduler, run_all};

/// Recordings read per page.
const PAGE: u32 = 500;
/// Longest policy name (characters).
pub const MAX_NAME: usize = 100;
/// Longest retention (100 years).
pub const MAX_RETAIN_DAYS: i32 = 36_500;
/// The gauge of recordings due for retention, per tenant.
pub const DUE_METRIC: &str = "insights_retention_due_recordings";

/// Why a retention operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("blob store: {0}")]
    Blob(#[from] BlobError),
}

/// Checks a policy an admin submitted against the installation's minimum
/// retention (`[retention] minimum_days`) as well as [`validate_policy`].
pub fn validate_policy_with_minimum(
    p: &RetentionPolicy,
    minimum_days: u32,
) -> Result<(), RetentionError> {
    validate_policy(p)?;
    if i64::from(p.retain_days) < i64::from(minimum_days) {
        return Err(RetentionError::Invalid(format!(
            "retain_days must be at least {minimum_days}: this installation keeps every recording at least that long"
        )));
    }
    Ok(())
}

/// Checks a policy an admin submitted (name, days).
pub fn validate_policy(p: &RetentionPolicy) -> Result<(), RetentionError> {
    let n = p.name.trim().chars().count();
    if n == 0 || n > MAX_NAME {
        return Err(RetentionError::Invalid(format!(
            "name must be 1-{MAX_NAME} characters"
        )));
    }
    if !(1..=MAX_RETAIN_DAYS).contains(&p.retain_days) {
        return Err(RetentionError::Invalid(format!(
            "retain_days must be 1-{MAX_RETAIN_DAYS}"
        )));
    }
    Ok(())
}

/// What happened (or would happen) to one due recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    DeletedMedia,
    DeletedRecording,
    WouldDeleteMedia,
    WouldDeleteRecording,
    BlockedByLegalHold,
    /// The deletion failed (see `error`); the next run tries again.
    Failed,
}

/// One due recording in a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub recording_id: RecordingId,
    pub policy_id: RetentionPolicyId,
    pub action: RetentionAction,
    pub due_at: DateTime<Utc>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A recording retention left alone because holds cover it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Blocked {
    pub recording_id: RecordingId,
    pub holds: Vec<HoldRef>,
}

/// The result of [`run`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetentionReport {
    pub dry_run: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Recordings old enough for the shortest policy that were looked at.
    pub examined: u64,
    /// Of those, due under the policy that applies to them.
    pub due: u64,
    pub deleted_media: u64,
    pub deleted_recordings: u64,
    pub failed: u64,
    pub blocked: Vec<Blocked>,
    pub items: Vec<Item>,
}

/// Counts of [`due`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DueReport {
    pub due: u64,
    pub by_policy: Vec<PolicyDue>,
}

/// Due recordings of one policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyDue {
    pub policy_id: RetentionPolicyId,
    pub name: String,
    pub due: u64,
}

/// Progress of a run, for progress bars.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    pub examined: u64,
    pub due: u64,
    pub done: u64,
}

/// Who runs retention, for the audit chain.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub dry_run: bool,
    /// Account id, `cli` or `scheduler`.
    pub actor: String,
    pub source: Option<String>,
    /// The clock (tests pass their own).
    pub now: DateTime<Utc>,
    /// The installation's minimum retention in days (`[retention]
    /// minimum_days`; 0: none): a policy keeping recordings for less is
    /// enforced as if it kept them this long.
    pub minimum_days: u32,
}

/// The tenant's enabled policies and directory groups, read once a run.
struct Context {
    policies: Vec<RetentionPolicy>,
    groups: HashMap<UserId, Vec<String>>,
}

impl Context {
    async fn load(
        store: &dyn MetadataStore,
        tenant: TenantId,
        minimum_days: u32,
    ) -> Result<Context, StoreError> {
        let floor = i32::try_from(minimum_days).unwrap_or(MAX_RETAIN_DAYS);
        let policies: Vec<RetentionPolicy> = store
            .list_retention_policies(tenant)
            .await?
            .into_iter()
            .filter(|p| p.enabled && p.retain_days > 0)
            // No tenant undercuts the installation's minimum, not even
            // with a policy stored before the minimum was raised.
            .map(|mut p| {
                p.retain_days = p.retain_days.max(floor);
                p
            })
            .collect();
        let needs_groups = policies.iter().any(|p| p.scope.group.is_some());
        let groups = if needs_groups {
            store
                .list_directory_users(tenant)
                .await?
                .into_iter()
                .map(|u: DirectoryUser| (u.id, u.groups))
                .collect()
        } else {
            HashMap::new()
        };
        Ok(Context { policies, groups })
    }

    /// Recordings that started before this may be due under some policy.
    fn earliest_cutoff(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.policies
            .iter()
            .map(|p| now - Duration::days(i64::from(p.retain_days)))
            .max()
    }

    fn matches(&self, p: &RetentionPolicy, rec: &Recording) -> bool {
        let s = &p.scope;
        s.kind.is_none_or(|k| k == rec.kind)
            && s.direction.is_none_or(|d| d == rec.direction)
            && s.retention_class
                .as_deref()
                .is_none_or(|c| c == rec.retention_class)
            && s.group.as_deref().is_none_or(|g| {
                rec.participants.iter().any(|part| {
                    part.recorded_user
                        && part
                            .directory_user_id
                            .and_then(|u| self.groups.get(&u))
                            .is_some_and(|gs| gs.iter().any(|x| x == g))
                })
            })
    }

    /// The policy that governs `rec`: the longest retention among the
    /// matching ones.
    fn governing(&self, rec: &Recording) -> Option<&RetentionPolicy> {
        self.policies
            .iter()
            .filter(|p| self.matches(p, rec))
            .max_by(|a, b| {
                a.retain_days
                    .cmp(&b.retain_days)
                    .then_with(|| action_rank(a.action).cmp(&action_rank(b.action)))
                    .then_with(|| b.id.cmp(&a.id))
            })
    }
}

/// Lesser actions rank higher (they win ties).
fn action_rank(a: RetentionAction) -> u8 {
    match a {
        RetentionAction::DeleteMedia => 1,
        RetentionAction::DeleteRecording => 0,
    }
}

/// When `rec` is due under `p`, if there is anything left to do.
fn due_at(p: &RetentionPolicy, rec: &Recording, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let at = rec.started_at + Duration::days(i64::from(p.retain_days));
    let work_left = match p.action {
        RetentionAction::DeleteRecording => true,
        RetentionAction::DeleteMedia => rec.media.is_some(),
    };
    (at <= now && work_left).then_some(at)
}

/// Calls `f` for every recording old enough for some policy, with the
/// governing policy and due time when it is due.
async fn sweep<F, Fut>(
    store: &dyn MetadataStore,
    tenant: TenantId,
    ctx: &Context,
    now: DateTime<Utc>,
    mut f: F,
) -> Result<(), RetentionError>
where
    F: FnMut(Recording, Option<(RetentionPolicy, DateTime<Utc>)>) -> Fut,
    Fut: std::future::Future<Output = Result<(), RetentionError>>,
{
    let Some(cutoff) = ctx.earliest_cutoff(now) else {
        return Ok(());
    };
    let mut q = GovernanceQuery {
        started_before: Some(cutoff),
        limit: PAGE,
        ..GovernanceQuery::default()
    };
    loop {
        let page = store.list_recordings_for_governance(tenant, &q).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        q.after = Some((last.started_at, last.id));
        let full = page.len() as u32 >= PAGE;
        for rec in page {
            let due = ctx
                .governing(&rec)
                .and_then(|p| due_at(p, &rec, now).map(|at| (p.clone(), at)));
            f(rec, due).await?;
        }
        if !full {
            return Ok(());
        }
    }
}

/// Counts what is due now, per governing policy, and records the total in
/// the `insights_retention_due_recordings` gauge (label `tenant`).
pub async fn due(
    store: &dyn MetadataStore,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> Result<DueReport, RetentionError> {
    due_with_minimum(store, tenant, now, 0).await
}

/// [`due`] under the installation's minimum retention (`minimum_days`).
pub async fn due_with_minimum(
    store: &dyn MetadataStore,
    tenant: TenantId,
    now: DateTime<Utc>,
    minimum_days: u32,
) -> Result<DueReport, RetentionError> {
    let ctx = Context::load(store, tenant, minimum_days).await?;
    let mut counts: HashMap<RetentionPolicyId, u64> = HashMap::new();
    sweep(store, tenant, &ctx, now, |_, due| {
        if let Some((p, _)) = due {
            *counts.entry(p.id).or_default() += 1;
        }
        async { Ok(()) }
    })
    .await?;
    let by_policy: Vec<PolicyDue> = ctx
        .policies
        .iter()
        .map(|p| PolicyDue {
            policy_id: p.id,
            name: p.name.clone(),
            due: counts.get(&p.id).copied().unwrap_or(0),
        })
        .collect();
    let total = by_policy.iter().map(|p| p.due).sum();
    metrics::gauge!(DUE_METRIC, "tenant" => tenant.to_string()).set(total as f64);
    Ok(DueReport {
        due: total,
        by_policy,
    })
}

/// Enforces the tenant's policies (or, with `dry_run`, reports what it
/// would do). `progress` is called after every recording examined.
pub async fn run(
    store: &dyn MetadataStore,
    blobs: &dyn BlobStore,
    tenant: TenantId,
    opts: &RunOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<RetentionReport, RetentionError> {
    let started_at = insights_core::domain::now();
    let ctx = Context::load(store, tenant, opts.minimum_days).await?;
    // Read once for naming holds in the report; the decision itself is
    // re-made per recording against the store just before acting.
    let active = store.list_legal_holds(tenant, true).await?;
    let mut report = RetentionReport {
        dry_run: opts.dry_run,
        started_at,
        finished_at: started_at,
        examined: 0,
        due: 0,
        deleted_media: 0,
        deleted_recordings: 0,
        failed: 0,
        blocked: Vec::new(),
        items: Vec::new(),
    };
    let mut p = Progress::default();
    // Page by page, acting on each due recording as it comes (memory stays
    // one page however many are due; the keyset cursor is unaffected by
    // the deletions behind it).
    if let Some(cutoff) = ctx.earliest_cutoff(opts.now) {
        let mut q = GovernanceQuery {
            started_before: Some(cutoff),
            limit: PAGE,
            ..GovernanceQuery::default()
        };
        loop {
            let page = store.list_recordings_for_governance(tenant, &q).await?;
            let Some(last) = page.last() else { break };
            q.after = Some((last.started_at, last.id));
            let full = page.len() as u32 >= PAGE;
            for rec in page {
                p.examined += 1;
                let due = ctx
                    .governing(&rec)
                    .and_then(|pol| due_at(pol, &rec, opts.now).map(|at| (pol, at)));
                let Some((policy, at)) = due else {
                    progress(p);
                    continue;
                };
                p.due += 1;
                let outcome = enforce_one(store, blobs, tenant, opts, &active, &rec, policy).await;
                let (outcome, error) = match outcome {
                    Ok(Enforced::Done(o)) => (o, None),
                    Ok(Enforced::Blocked(holds)) => {
                        report.blocked.push(Blocked {
                            recording_id: rec.id,
                            holds,
                        });
                        (Outcome::BlockedByLegalHold, None)
                    }
                    Err(e) => {
                        tracing::warn!(tenant = %tenant, recording = %rec.id, error = %e, "retention could not delete a recording");
                        (Outcome::Failed, Some(e.to_string()))
                    }
                };
                match outcome {
                    Outcome::DeletedMedia => report.deleted_media += 1,
                    Outcome::DeletedRecording => report.deleted_recordings += 1,
                    Outcome::Failed => report.failed += 1,
                    _ => {}
                }
                report.items.push(Item {
                    recording_id: rec.id,
                    policy_id: policy.id,
                    action: policy.action,
                    due_at: at,
                    outcome,
                    error,
                });
                p.done += 1;
                progress(p);
            }
            if !full {
                break;
            }
        }
    }
    report.examined = p.examined;
    report.due = p.due;
    report.finished_at = insights_core::domain::now();
    tracing::info!(
        tenant = %tenant,
        dry_run = opts.dry_run,
        examined = report.examined,
        due = report.due,
        deleted_media = report.deleted_media,
        deleted_recordings = report.deleted_recordings,
        blocked = report.blocked.len(),
        failed = report.failed,
        "retention run finished"
    );
    Ok(report)
}

/// A recording the store refused to delete because a hold placed during
/// the run covers it: reported as blocked, naming the holds.
async fn blocked(
    store: &dyn MetadataStore,
    tenant: TenantId,
    rec: &Recording,
) -> Result<Enforced, RetentionError> {
    let holds = crate::holds::covering(store, tenant, rec).await?;
    Ok(Enforced::Blocked(holds.iter().map(HoldRef::from).collect()))
}

enum Enforced {
    Done(Outcome),
    Blocked(Vec<HoldRef>),
}

async fn enforce_one(
    store: &dyn MetadataStore,
    blobs: &dyn BlobStore,
    tenant: TenantId,
    opts: &RunOptions,
    active: &[LegalHold],
    rec: &Recording,
    policy: &RetentionPolicy,
) -> Result<Enforced, RetentionError> {
    // The hold decision, made now against the store's current holds.
    let held = if opts.dry_run {
        rec.legal_hold || !covering_in(active, rec).is_empty()
    } else {
        store.apply_legal_holds(tenant, rec.id).await?
    };
    if held {
        let mut holds = covering_in(active, rec);
        if holds.is_empty() {
            // Placed after this run started: name it from the store.
            holds = crate::holds::covering(store, tenant, rec).await?;
        }
        return Ok(Enforced::Blocked(holds.iter().map(HoldRef::from).collect()));
    }
    if opts.dry_run {
        return Ok(Enforced::Done(match policy.action {
            RetentionAction::DeleteMedia => Outcome::WouldDeleteMedia,
            RetentionAction::DeleteRecording => Outcome::WouldDeleteRecording,
        }));
    }
    // A hold placed since the check above still wins: the store refuses
    // the shred (and the deletion) in the transaction that checks it.
    let (blobs_deleted, key_shredded) = match delete_media(store, blobs, tenant, rec).await {
        Ok(done) => done,
        Err(RetentionError::Store(StoreError::Refused(_))) => {
            return blocked(store, tenant, rec).await;
        }
        Err(e) => return Err(e),
    };
    let outcome = match policy.action {
        RetentionAction::DeleteMedia => {
            if rec.media.is_some() {
                store.set_recording_media(tenant, rec.id, None).await?;
            }
            store
                .update_recording_status(tenant, rec.id, RecordingStatus::MediaDeleted, None, None)
                .await?;
            Outcome::DeletedMedia
        }
        RetentionAction::DeleteRecording => {
            match store.delete_recording(tenant, rec.id).await {
                Ok(()) | Err(StoreError::NotFound) => {}
                Err(StoreError::Refused(_)) => return blocked(store, tenant, rec).await,
                Err(e) => return Err(e.into()),
            }
            Outcome::DeletedRecording
        }
    };
    store
        .append_audit(
            tenant,
            NewAuditEvent {
                actor: opts.actor.clone(),
                action: AuditAction::RetentionDelete,
                recording_id: Some(rec.id),
                target: Some(policy.id.to_string()),
                reason: None,
                source: opts.source.clone(),
                details: json!({
                    "policy": policy.id,
                    "action": policy.action,
                    "retain_days": policy.retain_days,
                    "started_at": rec.started_at,
                    "blobs_deleted": blobs_deleted,
                    "data_key_shredded": key_shredded,
                }),
            },
        )
        .await?;
    Ok(Enforced::Done(outcome))
}

/// Deletes a recording's media: first crypto-shreds its data key, which
/// the store refuses (`StoreError::Refused`) while a legal hold covers
/// the recording, deciding in the same transaction that checks the hold;
/// only then deletes every blob under the recording's prefix (streams,
/// manifest) and the media object itself. So no blob of a held recording
/// is ever deleted, even when the hold is placed after the caller's own
/// check: once the key is gone the blobs are unreadable ciphertext, and
/// a later hold has nothing left to keep. Idempotent (an already
/// shredded key or a missing blob is no error). Returns the number of
/// blobs deleted and whether a key was shredded.
pub async fn delete_media(
    store: &dyn MetadataStore,
    blobs: &dyn BlobStore,
    tenant: TenantId,
    rec: &Recording,
) -> Result<(usize, bool), RetentionError> {
    let Some(media) = &rec.media else {
        return Ok((0, false));
    };
    let shredded = store.shred_data_key(tenant, media.data_key_id).await?;
    let keys = match blobs
        .list(&media.container, &layout::recording_prefix(rec.id))
        .await
    {
        Ok(k) => k,
        Err(BlobError::ContainerNotFound) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    for key in &keys {
        match blobs.delete(&media.container, key).await {
            Ok(()) | Err(BlobError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The media reference may name a blob outside the prefix (imports).
    if !keys.contains(&media.key) {
        match blobs.delete(&media.container, &media.key).await {
            Ok(()) | Err(BlobError::NotFound) | Err(BlobError::ContainerNotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok((keys.len(), shredded))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use insights_core::domain::{
        Direction, Participant, ParticipantId, ParticipantRole, RecordingKind, RetentionScope, now,
    };

    use super::*;

    fn policy(days: i32, action: RetentionAction, scope: RetentionScope) -> RetentionPolicy {
        RetentionPolicy {
            id: RetentionPolicyId::new(),
            tenant_id: TenantId::new(),
            name: format!("{days}"),
            scope,
            retain_days: days,
            action,
            enabled: true,
            updated_at: now(),
        }
    }

    fn rec(user: Option<UserId>, recorded: bool) -> Recording {
        let mut r = Recording::new(
            TenantId::new(),
            RecordingKind::Call,
            Direction::Inbound,
            now() - Duration::days(400),
        );
        r.participants.push(Participant {
            id: ParticipantId::new(),
            role: ParticipantRole::Callee,
            display_name: None,
            phone_number: None,
            uri: None,
            email: None,
            directory_user_id: user,
            recorded_user: recorded,
            joined_ms: None,
            left_ms: None,
        });
        r
    }

    #[test]
    fn the_longest_matching_retention_governs_and_ties_pick_the_lesser_action() {
        let short = policy(
            30,
            RetentionAction::DeleteRecording,
            RetentionScope::default(),
        );
        let long = policy(
            365,
            RetentionAction::DeleteRecording,
            RetentionScope {
                kind: Some(RecordingKind::Call),
                ..RetentionScope::default()
            },
        );
        let meetings = policy(
            3650,
            RetentionAction::DeleteMedia,
            RetentionScope {
                kind: Some(RecordingKind::Meeting),
                ..RetentionScope::default()
            },
        );
        let ctx = Context {
            policies: vec![short.clone(), long.clone(), meetings],
            groups: HashMap::new(),
        };
        let r = rec(None, false);
        assert_eq!(ctx.governing(&r).unwrap().id, long.id);
        let media_tie = policy(365, RetentionAction::DeleteMedia, RetentionScope::default());
        let ctx = Context {
            policies: vec![short, long, media_tie.clone()],
            groups: HashMap::new(),
        };
        assert_eq!(ctx.governing(&r).unwrap().id, media_tie.id);
        assert_eq!(
            ctx.earliest_cutoff(now()).unwrap().date_naive(),
            (now() - Duration::days(30)).date_naive()
        );
    }

    #[test]
    fn groups_match_recorded_users_only_and_class_must_equal() {
        let trader = UserId::new();
        let by_group = policy(
            10,
            RetentionAction::DeleteMedia,
            RetentionScope {
                group: Some("trading".into()),
                ..RetentionScope::default()
            },
        );
        let ctx = Context {
            policies: vec![by_group.clone()],
            groups: HashMap::from([(trader, vec!["sales".into(), "trading".into()])]),
        };
        assert!(ctx.matches(&by_group, &rec(Some(trader), true)));
        assert!(
            !ctx.matches(&by_group, &rec(Some(trader), false)),
            "not a recorded user"
        );
        assert!(!ctx.matches(&by_group, &rec(Some(UserId::new()), true)));
        let by_class = policy(
            10,
            RetentionAction::DeleteMedia,
            RetentionScope {
                retention_class: Some("finance".into()),
                ..RetentionScope::default()
            },
        );
        let mut r = rec(None, false);
        assert!(!ctx.matches(&by_class, &r));
        r.retention_class = "finance".into();
        assert!(ctx.matches(&by_class, &r));
        // delete-media has nothing left to do once the media is gone.
        assert!(due_at(&by_class, &r, now()).is_none());
        let del = policy(
            10,
            RetentionAction::DeleteRecording,
            RetentionScope::default(),
        );
        assert!(due_at(&del, &r, now()).is_some());
        let young = policy(
            1000,
            RetentionAction::DeleteRecording,
            RetentionScope::default(),
        );
        assert!(due_at(&young, &r, now()).is_none());
    }

    #[test]
    fn policies_are_validated() {
        let mut p = policy(0, RetentionAction::DeleteMedia, RetentionScope::default());
        assert!(validate_policy(&p).is_err());
        p.retain_days = MAX_RETAIN_DAYS + 1;
        assert!(validate_policy(&p).is_err());
        p.retain_days = 7;
        assert!(validate_policy(&p).is_ok());
        p.name = "  ".into();
        assert!(validate_policy(&p).is_err());
    }
}
