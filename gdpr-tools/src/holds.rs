//! Legal holds: placing, lifting, and which holds cover a recording.
//!
//! A hold is a [`LegalHold`] with a [`HoldScope`]; whether it covers a
//! recording is decided by [`HoldScope::covers`] and nothing else. The
//! store keeps each recording's `legal_hold` flag (what
//! `MetadataStore::delete_recording` refuses on) equal to "some active hold
//! covers it" through `MetadataStore::apply_legal_holds`:
//!
//! * [`place`] stores the hold, then sweeps the recordings its scope can
//!   reach (pre-filtered by dates, ids and user in the store) and
//!   re-evaluates each one the rule covers;
//! * [`lift`] marks the hold lifted, then re-evaluates every flagged
//!   recording it covered (another active hold may still hold it);
//! * recordings inserted, or gaining a participant, after a hold was
//!   placed are flagged by the store itself in the same transaction.
//!
//! Placing and lifting are audited in the tenant's chain (the event names
//! the hold and counts recordings; the participant identifier of a scope
//! is personal data and stays in the hold, not in the event).

use insights_core::domain::{
    AuditAction, HoldScope, LegalHold, LegalHoldId, NewAuditEvent, Recording, TenantId, now,
};
use insights_core::store::{GovernanceQuery, MetadataStore, StoreError};
use serde::Serialize;
use serde_json::json;

/// Longest case name (characters).
pub const MAX_CASE_NAME: usize = 200;
/// Longest reason (characters).
pub const MAX_REASON: usize = 1_000;
/// Most recordings one hold may name explicitly.
pub const MAX_RECORDING_IDS: usize = 10_000;
/// Recordings read per page while sweeping.
const PAGE: u32 = 500;

/// Why a hold operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// The request is not acceptable (blank case name, empty scope...).
    #[error("{0}")]
    Invalid(String),
    /// No such hold in this tenant.
    #[error("no such legal hold")]
    NotFound,
    /// The hold was lifted before.
    #[error("the legal hold was already lifted")]
    AlreadyLifted,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What is needed to place a hold.
#[derive(Clone, Debug)]
pub struct NewHold {
    pub case_name: String,
    pub reason: Option<String>,
    pub scope: HoldScope,
}

/// Who acts, for the audit chain.
#[derive(Clone, Debug)]
pub struct Actor {
    /// Account id, `oidc:<subject>` or `cli` (never a name).
    pub id: String,
    /// Client address, when there is one.
    pub source: Option<String>,
}

/// A hold with the number of recordings it holds now.
#[derive(Clone, Debug, Serialize)]
pub struct HoldView {
    #[serde(flatten)]
    pub hold: LegalHold,
    pub active: bool,
    /// Recordings this hold covers (0 once lifted).
    pub held_recordings: u64,
}

fn clean(s: Option<String>, max: usize, what: &str) -> Result<Option<String>, HoldError> {
    let s = s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if s.as_ref().is_some_and(|s| s.chars().count() > max) {
        return Err(HoldError::Invalid(format!(
            "{what} must be at most {max} characters"
        )));
    }
    Ok(s)
}

/// Checks a request and normalises it (trimmed texts, sorted unique ids).
fn validate(new: NewHold) -> Result<NewHold, HoldError> {
    let case_name = clean(Some(new.case_name), MAX_CASE_NAME, "case_name")?
        .ok_or_else(|| HoldError::Invalid("case_name must not be blank".into()))?;
    let reason = clean(new.reason, MAX_REASON, "reason")?;
    let mut scope = new.scope;
    scope.participant_identifier = clean(
        scope.participant_identifier,
        320,
        "scope.participant_identifier",
    )?;
    scope.recording_ids.sort();
    scope.recording_ids.dedup();
    if scope.recording_ids.len() > MAX_RECORDING_IDS {
        return Err(HoldError::Invalid(format!(
            "scope.recording_ids may name at most {MAX_RECORDING_IDS} recordings"
        )));
    }
    if scope.is_empty() {
        return Err(HoldError::Invalid(
            "the scope must set at least one of user_id, participant_identifier, from, to, recording_ids".into(),
        ));
    }
    if let (Some(from), Some(to)) = (scope.from, scope.to)
        && from >= to
    {
        return Err(HoldError::Invalid(
            "scope.from must be before scope.to".into(),
        ));
    }
    Ok(NewHold {
        case_name,
        reason,
        scope,
    })
}

/// The store query that finds every recording `scope` may cover (a
/// superset: the participant identifier is checked by the rule only).
fn candidates(scope: &HoldScope, flagged_only: bool) -> GovernanceQuery {
    GovernanceQuery {
        started_before: scope.to,
        started_from: scope.from,
        ids: (!scope.recording_ids.is_empty()).then(|| scope.recording_ids.clone()),
        user_id: scope.user_id,
        legal_hold: flagged_only.then_some(true),
        after: None,
        limit: PAGE,
    }
}

/// Calls `f` for every recording `scope` covers (paged through the store).
async fn for_each_covered<F, Fut>(
    store: &dyn MetadataStore,
    tenant: TenantId,
    scope: &HoldScope,
    flagged_only: bool,
    mut f: F,
) -> Result<(), HoldError>
where
    F: FnMut(Recording) -> Fut,
    Fut: std::future::Future<Output = Result<(), HoldError>>,
{
    let mut q = candidates(scope, flagged_only);
    loop {
        let page = store.list_recordings_for_governance(tenant, &q).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        q.after = Some((last.started_at, last.id));
        let full = page.len() as u32 >= PAGE;
        for rec in page {
            if scope.covers(&rec) {
                f(rec).await?;
            }
        }
        if !full {
            return Ok(());
        }
    }
}

/// Places a hold: stores it, flags every recording it covers, audits it.
/// Returns the hold and how many recordings it covers.
pub async fn place(
    store: &dyn MetadataStore,
    tenant: TenantId,
    new: NewHold,
    actor: &Actor,
) -> Result<HoldView, HoldError> {
    let new = validate(new)?;
    let hold = LegalHold {
        id: LegalHoldId::new(),
        tenant_id: tenant,
        case_name: new.case_name,
        reason: new.reason,
        scope: new.scope,
        placed_by: actor.id.clone(),
        placed_at: now(),
        lifted_by: None,
        lifted_at: None,
    };
    store.create_legal_hold(tenant, &hold).await?;
    let mut held = 0u64;
    for_each_covered(store, tenant, &hold.scope, false, |rec| {
        held += 1;
        async move {
            store.apply_legal_holds(tenant, rec.id).await?;
            Ok(())
        }
    })
    .await?;
    tracing::info!(tenant = %tenant, hold = %hold.id, held, "legal hold placed");
    store
        .append_audit(
            tenant,
            NewAuditEvent {
                actor: actor.id.clone(),
                action: AuditAction::LegalHoldPlace,
                recording_id: None,
                target: Some(hold.id.to_string()),
                reason: hold.reason.clone(),
                source: actor.source.clone(),
                details: json!({
                    "legal_hold": hold.id,
                    "held_recordings": held,
                    "scope": scope_summary(&hold.scope),
                }),
            },
        )
        .await?;
    Ok(HoldView {
        hold,
        active: true,
        held_recordings: held,
    })
}

/// What an audit event says about a scope: which fields are set, the
/// dates and ids, never the participant identifier itself.
fn scope_summary(s: &HoldScope) -> serde_json::Value {
    json!({
        "user_id": s.user_id,
        "participant_identifier": s.participant_identifier.is_some(),
        "from": s.from,
        "to": s.to,
        "recording_ids": s.recording_ids.len(),
    })
}

/// One hold of the tenant.
pub async fn get(
    store: &dyn MetadataStore,
    tenant: TenantId,
    id: LegalHoldId,
) -> Result<LegalHold, HoldError> {
    store
        .list_legal_holds(tenant, false)
        .await?
        .into_iter()
        .find(|h| h.id == id)
        .ok_or(HoldError::NotFound)
}

/// Lifts a hold, re-evaluates the recordings it held (they stay held when
/// another active hold covers them) and audits it. `409`-style
/// [`HoldError::AlreadyLifted`] when it was lifted before.
pub async fn lift(
    store: &dyn MetadataStore,
    tenant: TenantId,
    id: LegalHoldId,
    reason: Option<String>,
    actor: &Actor,
) -> Result<HoldView, HoldError> {
    let reason = clean(reason, MAX_REASON, "reason")?;
    let hold = get(store, tenant, id).await?;
    if !hold.is_active() {
        return Err(HoldError::AlreadyLifted);
    }
    store.lift_legal_hold(tenant, id, &actor.id).await?;
    let mut released = 0u64;
    let mut still_held = 0u64;
    let mut results = Vec::new();
    for_each_covered(store, tenant, &hold.scope, true, |rec| {
        results.push(rec.id);
        async { Ok(()) }
    })
    .await?;
    for rec in results {
        if store.apply_legal_holds(tenant, rec).await? {
            still_held += 1;
        } else {
            released += 1;
        }
    }
    tracing::info!(tenant = %tenant, hold = %id, released, still_held, "legal hold lifted");
    store
        .append_audit(
            tenant,
            NewAuditEvent {
                actor: actor.id.clone(),
                action: AuditAction::LegalHoldLift,
                recording_id: None,
                target: Some(id.to_string()),
                reason,
                source: actor.source.clone(),
                details: json!({
                    "legal_hold": id,
                    "released_recordings": released,
                    "still_held_by_other_holds": still_held,
                }),
            },
        )
        .await?;
    let hold = get(store, tenant, id).await?;
    Ok(HoldView {
        hold,
        active: false,
        held_recordings: 0,
    })
}

/// How many recordings an active hold covers now (0 for a lifted one).
pub async fn count_covered(
    store: &dyn MetadataStore,
    tenant: TenantId,
    hold: &LegalHold,
) -> Result<u64, HoldError> {
    if !hold.is_active() {
        return Ok(0);
    }
    let mut n = 0u64;
    for_each_covered(store, tenant, &hold.scope, false, |_| {
        n += 1;
        async { Ok(()) }
    })
    .await?;
    Ok(n)
}

/// The tenant's holds, newest first, each with its count.
pub async fn list(store: &dyn MetadataStore, tenant: TenantId) -> Result<Vec<HoldView>, HoldError> {
    let mut holds = store.list_legal_holds(tenant, false).await?;
    holds.sort_by(|a, b| b.placed_at.cmp(&a.placed_at).then(b.id.cmp(&a.id)));
    let mut out = Vec::with_capacity(holds.len());
    for hold in holds {
        let held_recordings = count_covered(store, tenant, &hold).await?;
        out.push(HoldView {
            active: hold.is_active(),
            hold,
            held_recordings,
        });
    }
    Ok(out)
}

/// The active holds that cover `rec` (the reason erasure and retention
/// give when they refuse to delete it).
pub async fn covering(
    store: &dyn MetadataStore,
    tenant: TenantId,
    rec: &Recording,
) -> Result<Vec<LegalHold>, StoreError> {
    Ok(covering_in(
        &store.list_legal_holds(tenant, true).await?,
        rec,
    ))
}

/// [`covering`] over holds already read (for sweeps over many recordings).
pub fn covering_in(active: &[LegalHold], rec: &Recording) -> Vec<LegalHold> {
    active
        .iter()
        .filter(|h| h.is_active() && h.scope.covers(rec))
        .cloned()
        .collect()
}

/// A hold as reports name it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HoldRef {
    pub id: LegalHoldId,
    pub case_name: String,
}

impl From<&LegalHold> for HoldRef {
    fn from(h: &LegalHold) -> Self {
        HoldRef {
            id: h.id,
            case_name: h.case_name.clone(),
        }
    }
}
