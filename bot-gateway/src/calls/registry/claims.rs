//! Meetings across gateway nodes: the claim on a tenant's call chain in
//! the database decides which recording the bot legs of one meeting make,
//! and which leg records it.
//!
//! A meeting with several policy-recorded users gets one bot leg per
//! recorded user, and each leg may land on another node (or the same).
//! Every leg's invite claims the meeting's chain key
//! ([`MeetingClaimStore::claim_meeting`], atomic in the store):
//!
//! * the first leg wins: it is the **primary**, its recording is the
//!   meeting's, and its node renews the claim's lease every
//!   [`HEARTBEAT`] (lease [`LEASE`]);
//! * every later leg is a **standby**: answered and reported `recording`
//!   like the primary (Teams sends the meeting's media to every bot), its
//!   recorded users stored on the primary's recording (so each of them is
//!   entitled to it), its media held in memory only (the last
//!   [`STANDBY_BUFFER`]) and its own recording kept unstored;
//! * when the primary's lease runs out (its node died), a standby takes
//!   the claim over at its next heartbeat: its recording is stored as the
//!   **continuation** of the lost one, starting [`REPLAY_LEAD`] before the
//!   lost lease's last renewal (its media replayed from memory), with a
//!   [`MeetingFailover`] mark (the interval no node held the meeting and
//!   the reason `primary-node-lost`); the lost recording gets that
//!   interval's start as its end and the reason as its result code;
//! * when the primary leg ends while the meeting goes on (its recorded
//!   user left), it releases the claim, and a standby still in the
//!   meeting [`RELEASE_GRACE`] later continues the same way (reason
//!   `primary-leg-ended`); when the meeting ends all legs end within that
//!   grace and nothing more is stored.
//!
//! The decisions are the plain functions [`invite_role`] and
//! [`standby_next`], unit tested below.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use insights_core::domain::{
    ClaimTakeover, Direction, FAILOVER_PRIMARY_NODE_LOST, MeetingClaim, MeetingFailover,
    Participant, ParticipantId, Recording, RecordingId, RecordingKind, TenantId, now,
};
use insights_core::store::{StoreError, StoreResult};

use super::roster::repoint;
use super::{CallRegistry, Inner, LiveRecording};
use crate::calls::parties::Party;

/// How long a claim holds without renewal.
pub(super) const LEASE: Duration = Duration::from_secs(3);
/// How often the primary renews its lease and a standby looks at it.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a standby waits after the primary leg released the claim
/// before it continues the recording: when a meeting ends, its legs end
/// within this.
pub(super) const RELEASE_GRACE: Duration = Duration::from_secs(5);
/// A continuation starts this long before the lost lease's last renewal:
/// the lost node's last moments may not have reached its disk (its spool
/// seals at least every second).
pub const REPLAY_LEAD: Duration = Duration::from_secs(1);
/// How much of a meeting's audio a standby leg keeps in memory: enough to
/// replay from [`REPLAY_LEAD`] before the lost lease's last renewal once
/// the lease has run out and the standby's heartbeat noticed, or from the
/// release after the grace.
pub const STANDBY_BUFFER: Duration = Duration::from_secs(
    LEASE.as_secs() + HEARTBEAT.as_secs() + RELEASE_GRACE.as_secs() + REPLAY_LEAD.as_secs() + 2,
);
/// A primary leg's claim as a heartbeat renews it: its recording, chain
/// key and epoch.
type PrimaryClaim = (RecordingId, String, i64);

/// Why a continuation follows a primary leg that ended normally.
pub const PRIMARY_LEG_ENDED: &str = "primary-leg-ended";

/// Takeovers by reason (`insights_gateway_meeting_takeovers_total{reason}`).
const TAKEOVERS_METRIC: &str = "insights_gateway_meeting_takeovers_total";
/// Primary legs whose claim another node took over while they still ran
/// (`insights_gateway_meeting_claims_lost_total`).
const CLAIMS_LOST_METRIC: &str = "insights_gateway_meeting_claims_lost_total";

/// A live recording's place in its meeting.
pub(super) struct MeetingLink {
    /// The claim's key: the call chain id, else the chat thread id.
    pub chain_key: String,
    /// The invite's `callChainId`, stored with a continuation.
    pub call_chain_id: Option<String>,
    /// This leg as a claim holder (`<node id>/<call id>`).
    pub holder: String,
    pub role: LegRole,
}

pub(super) enum LegRole {
    /// Holds the claim at this epoch; the recording is stored.
    Primary {
        epoch: i64,
    },
    Standby(Standby),
}

/// A standby leg: its recording is not stored unless it takes over.
pub(super) struct Standby {
    /// The meeting's recording (another leg's), on which this leg's
    /// recorded users are stored.
    pub joins: RecordingId,
    /// The participants this leg knows, under the ids its media uses;
    /// stored with the recording if it takes over.
    pub shadow: Vec<(Participant, Party)>,
    /// Recorded users already stored on `joins` (shadow participant id,
    /// recording).
    pub entitled: Vec<(ParticipantId, RecordingId)>,
    /// When this leg first found the claim released.
    pub free_since: Option<DateTime<Utc>>,
}

impl LiveRecording {
    /// A standby's recording: nothing of it is stored.
    pub(super) fn is_unstored(&self) -> bool {
        matches!(
            self.meeting,
            Some(MeetingLink {
                role: LegRole::Standby(_),
                ..
            })
        )
    }

    pub(super) fn standby_mut(&mut self) -> Option<&mut Standby> {
        match &mut self.meeting {
            Some(MeetingLink {
                role: LegRole::Standby(s),
                ..
            }) => Some(s),
            _ => None,
        }
    }
}

/// What an invite's leg is, from the claim the store returned for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Joined {
    /// The first leg: its recording is the meeting's.
    Primary { epoch: i64 },
    /// Took over a lost claim: its recording continues `previous`.
    Continues { epoch: i64, previous: ClaimTakeover },
    /// Another leg records the meeting: this one waits.
    Standby { joins: RecordingId },
}

/// What a leg that claimed with `holder` for `mine` is.
pub(super) fn invite_role(claim: &MeetingClaim, holder: &str, mine: RecordingId) -> Joined {
    if claim.holder != holder || claim.recording_id != mine {
        return Joined::Standby {
            joins: claim.recording_id,
        };
    }
    match &claim.previous {
        Some(p) if claim.epoch > 1 => Joined::Continues {
            epoch: claim.epoch,
            previous: p.clone(),
        },
        _ => Joined::Primary { epoch: claim.epoch },
    }
}

/// What a standby does at a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum StandbyNext {
    /// The primary holds the meeting (its recording is `joins`).
    Wait { joins: RecordingId },
    /// Released: wait out the grace.
    Free,
    /// Lost or released long enough: claim it.
    Claim,
}

/// A standby's next step from the claim as it stands at `at`.
pub(super) fn standby_next(
    claim: Option<&MeetingClaim>,
    free_since: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> StandbyNext {
    match claim {
        Some(c) if !c.expired(at) => StandbyNext::Wait {
            joins: c.recording_id,
        },
        Some(_) => StandbyNext::Claim,
        None => match free_since {
            Some(t) if at - t >= chrono_of(RELEASE_GRACE) => StandbyNext::Claim,
            _ => StandbyNext::Free,
        },
    }
}

/// The interval no node held the meeting before a takeover at `at`: from
/// the lost lease's last renewal.
pub(super) fn lost_interval(
    previous: &ClaimTakeover,
    at: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let from = (previous.lease_until - chrono_of(LEASE)).min(at);
    (from, at)
}

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl CallRegistry {
    /// This leg as a claim holder.
    pub(super) fn holder(&self, call_id: &str) -> String {
        format!("{}/{call_id}", self.node_id)
    }

    /// Claims `chain_key` for a new leg whose recording would be `mine`.
    pub(super) async fn claim_for_invite(
        &self,
        tenant: TenantId,
        chain_key: &str,
        holder: &str,
        mine: RecordingId,
    ) -> StoreResult<Joined> {
        let at = now();
        let claim = self
            .store
            .claim_meeting(tenant, chain_key, mine, holder, at, at + chrono_of(LEASE))
            .await?;
        Ok(invite_role(&claim, holder, mine))
    }

    /// Starts the lease heartbeat once (it ends with the registry).
    pub(super) fn start_heartbeat(self: &Arc<Self>) {
        if self.heartbeat.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(me) = weak.upgrade() else { return };
                me.beat().await;
            }
        });
    }

    /// One heartbeat: primaries renew (all of a tenant's in one
    /// transaction: one commit per tenant and heartbeat, not one per
    /// call), standbys look at the claim.
    async fn beat(&self) {
        let mut inner = self.inner.lock().await;
        let mut primaries: std::collections::BTreeMap<(TenantId, String), Vec<PrimaryClaim>> =
            std::collections::BTreeMap::new();
        let mut standbys = Vec::new();
        for (id, r) in &inner.recordings {
            let Some(link) = r.meeting.as_ref() else {
                continue;
            };
            match &link.role {
                LegRole::Primary { epoch } => primaries
                    .entry((r.tenant, link.holder.clone()))
                    .or_default()
                    .push((*id, link.chain_key.clone(), *epoch)),
                LegRole::Standby(_) => standbys.push(*id),
            }
        }
        let lease_until = now() + chrono_of(LEASE);
        for ((tenant, holder), claims) in primaries {
            let keys: Vec<(String, i64)> = claims
                .iter()
                .map(|(_, chain_key, epoch)| (chain_key.clone(), *epoch))
                .collect();
            let held = match self
                .store
                .renew_meeting_claims(tenant, &holder, &keys, lease_until)
                .await
            {
                Ok(held) => held,
                Err(e) => {
                    tracing::warn!(tenant_id = %tenant, claims = keys.len(), error = %e, "meeting claim heartbeat failed; retried at the next");
                    continue;
                }
            };
            for ((id, _, _), held) in claims.iter().zip(held) {
                if held {
                    continue;
                }
                metrics::counter!(CLAIMS_LOST_METRIC).increment(1);
                tracing::error!(recording_id = %id, "this leg lost its meeting claim (its lease ran out and another leg took over): its recording goes on, and the other's continues it");
                if let Some(rec) = inner.recordings.get_mut(id) {
                    rec.meeting = None;
                }
            }
        }
        for id in standbys {
            if let Err(e) = self.beat_one(&mut inner, id).await {
                tracing::warn!(recording_id = %id, error = %e, "meeting claim heartbeat failed; retried at the next");
            }
        }
    }

    async fn beat_one(&self, inner: &mut Inner, id: RecordingId) -> StoreResult<()> {
        // A standby takes over only while its leg is live and its media
        // session holds the meeting's audio.
        let leg_ready = inner.recordings.get(&id).is_some_and(|r| {
            r.legs.iter().any(|l| {
                inner.legs.get(l).is_some_and(|leg| {
                    !leg.state.is_over()
                        && leg.reported
                            == Some(crate::graph::model::RecordingStatusReport::Recording)
                })
            })
        });
        let Some(rec) = inner.recordings.get_mut(&id) else {
            return Ok(());
        };
        let tenant = rec.tenant;
        let Some(link) = rec.meeting.as_mut() else {
            return Ok(());
        };
        let at = now();
        let lease_until = at + chrono_of(LEASE);
        match &mut link.role {
            // Renewed by `beat`, with the node's other primaries.
            LegRole::Primary { .. } => Ok(()),
            LegRole::Standby(sb) => {
                let claim = self.store.meeting_claim(tenant, &link.chain_key).await?;
                match standby_next(claim.as_ref(), sb.free_since, at) {
                    StandbyNext::Wait { joins } => {
                        sb.free_since = None;
                        if joins != sb.joins {
                            tracing::info!(recording_id = %id, joins = %joins, "the meeting continues in another recording: this standby's recorded users are stored there too");
                            sb.joins = joins;
                            self.entitle_standby(rec).await?;
                        }
                        Ok(())
                    }
                    StandbyNext::Free => {
                        sb.free_since.get_or_insert(at);
                        Ok(())
                    }
                    StandbyNext::Claim if !leg_ready => Ok(()),
                    StandbyNext::Claim => {
                        let free_since = sb.free_since;
                        let holder = link.holder.clone();
                        let chain_key = link.chain_key.clone();
                        let claim = self
                            .store
                            .claim_meeting(tenant, &chain_key, id, &holder, at, lease_until)
                            .await?;
                        match invite_role(&claim, &holder, id) {
                            Joined::Standby { .. } => Ok(()), // another standby was faster
                            Joined::Continues { epoch, previous } => {
                                let (from, to) = lost_interval(&previous, at);
                                let lost = previous.recording_id;
                                self.promote(
                                    rec,
                                    epoch,
                                    lost,
                                    (from, to),
                                    FAILOVER_PRIMARY_NODE_LOST,
                                )
                                .await
                            }
                            Joined::Primary { epoch } => {
                                // Released by a primary leg that ended.
                                let lost = match rec.standby_mut() {
                                    Some(sb) => sb.joins,
                                    None => return Ok(()),
                                };
                                let ended = match self.store.get_recording(tenant, lost).await {
                                    Ok(r) => r.ended_at,
                                    Err(StoreError::NotFound) => None,
                                    Err(e) => return Err(e),
                                };
                                let from = ended.or(free_since).unwrap_or(at).min(at);
                                self.promote(rec, epoch, lost, (from, at), PRIMARY_LEG_ENDED)
                                    .await
                            }
                        }
                    }
                }
            }
        }
    }

    /// A standby that took the claim: its recording is stored now as the
    /// continuation of `lost`, starting [`REPLAY_LEAD`] before the
    /// interval; every recorded user of `lost` is entitled to it.
    async fn promote(
        &self,
        rec: &mut LiveRecording,
        epoch: i64,
        lost: RecordingId,
        (gap_from, gap_to): (DateTime<Utc>, DateTime<Utc>),
        reason: &str,
    ) -> StoreResult<()> {
        let tenant = rec.tenant;
        let started_at = gap_from - chrono_of(REPLAY_LEAD);
        let shift = (started_at - rec.started_at).num_milliseconds();
        rec.started_at = started_at;
        for e in &mut rec.roster {
            e.joined_ms = (e.joined_ms - shift).max(0);
            e.left_ms = e.left_ms.map(|l| (l - shift).max(0));
        }
        let Some(link) = rec.meeting.as_mut() else {
            return Ok(());
        };
        let call_chain_id = link.call_chain_id.clone();
        let LegRole::Standby(sb) = std::mem::replace(&mut link.role, LegRole::Primary { epoch })
        else {
            return Ok(());
        };
        let mut recording = Recording::new(
            tenant,
            RecordingKind::Meeting,
            Direction::Unknown,
            started_at,
        );
        recording.id = rec.id;
        recording.external_call_id = rec.legs.first().cloned();
        recording.call_chain_id = call_chain_id;
        // The recording first, then who this leg knows, each with its
        // object id in one step (other standbys may store their recorded
        // users on it meanwhile: each person is stored once), then the
        // lost recording's recorded users, who are entitled to its
        // continuation too.
        match self.store.insert_recording(tenant, &recording).await {
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        for (p, party) in &sb.shadow {
            let mut p = p.clone();
            if let Some(e) = rec.roster.iter().find(|e| e.participant_id == p.id) {
                p.recorded_user = e.recorded;
                p.joined_ms = Some(e.joined_ms);
                p.left_ms = e.left_ms;
            }
            let oid = party.directory_object_id(&rec.directory_tenant);
            let kept = self
                .store
                .add_participant_once(tenant, rec.id, &p, oid)
                .await?;
            if kept.id != p.id {
                repoint(rec, p.id, &kept);
            }
        }
        let lost_rec = match self.store.get_recording(tenant, lost).await {
            Ok(r) => Some(r),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        };
        if lost_rec.is_some() {
            self.store.copy_recorded_users(tenant, lost, rec.id).await?;
            // Marked recorded in the store when the lost recording says so.
            let mine = self.store.get_recording(tenant, rec.id).await?;
            for e in &mut rec.roster {
                if mine
                    .participants
                    .iter()
                    .any(|p| p.id == e.participant_id && p.recorded_user)
                {
                    e.recorded = true;
                }
            }
        }
        self.store
            .record_meeting_failover(
                tenant,
                &MeetingFailover {
                    tenant_id: tenant,
                    recording_id: rec.id,
                    continues: lost,
                    gap_from,
                    gap_to,
                    reason: reason.to_owned(),
                    node: self.node_id.clone(),
                },
            )
            .await?;
        if let Some(l) = lost_rec.filter(|l| l.ended_at.is_none()) {
            // The lost recording ends where no node held it any more.
            self.store
                .update_recording_status(tenant, lost, l.status, Some(gap_from), Some(reason))
                .await?;
        }
        metrics::counter!(TAKEOVERS_METRIC, "reason" => reason.to_owned()).increment(1);
        tracing::warn!(
            recording_id = %rec.id,
            continues = %lost,
            %reason,
            gap_ms = (gap_to - gap_from).num_milliseconds(),
            "a standby leg took over the meeting: its recording continues the lost one"
        );
        Ok(())
    }

    /// A new leg that took over a lost claim (Teams invited a bot again
    /// after the node recording the meeting was lost, before any standby
    /// took over): its recording continues the lost one, marked like a
    /// standby's, and the lost one's recorded users are entitled to it.
    pub(super) async fn continue_lost(
        &self,
        rec: &LiveRecording,
        previous: &ClaimTakeover,
    ) -> StoreResult<()> {
        let tenant = rec.tenant;
        let lost = match self
            .store
            .get_recording(tenant, previous.recording_id)
            .await
        {
            Ok(r) => r,
            Err(StoreError::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        if lost.ended_at.is_some() {
            // A claim left behind by a recording that ended: nothing lost.
            return Ok(());
        }
        let (gap_from, gap_to) = lost_interval(previous, now());
        // The lost recording's recorded users are entitled to this one.
        self.store
            .copy_recorded_users(tenant, lost.id, rec.id)
            .await?;
        self.store
            .record_meeting_failover(
                tenant,
                &MeetingFailover {
                    tenant_id: tenant,
                    recording_id: rec.id,
                    continues: lost.id,
                    gap_from,
                    gap_to,
                    reason: FAILOVER_PRIMARY_NODE_LOST.to_owned(),
                    node: self.node_id.clone(),
                },
            )
            .await?;
        self.store
            .update_recording_status(
                tenant,
                lost.id,
                lost.status,
                Some(gap_from),
                Some(FAILOVER_PRIMARY_NODE_LOST),
            )
            .await?;
        metrics::counter!(TAKEOVERS_METRIC, "reason" => FAILOVER_PRIMARY_NODE_LOST).increment(1);
        Ok(())
    }

    /// Stores a standby's recorded users (those not stored yet) on the
    /// meeting's recording, so each of them is entitled to it: a stored
    /// participant recognised by Entra object id, directory user or phone
    /// number is marked recorded, anyone else added (decided atomically in
    /// the store: `add_participant_once`).
    pub(super) async fn entitle_standby(&self, rec: &mut LiveRecording) -> StoreResult<()> {
        let tenant = rec.tenant;
        let directory_tenant = rec.directory_tenant.clone();
        let recorded: Vec<ParticipantId> = rec
            .roster
            .iter()
            .filter(|e| e.recorded)
            .map(|e| e.participant_id)
            .collect();
        let Some(sb) = rec.standby_mut() else {
            return Ok(());
        };
        let target = sb.joins;
        let todo: Vec<(Participant, Party)> = sb
            .shadow
            .iter()
            .filter(|(p, _)| recorded.contains(&p.id) && !sb.entitled.contains(&(p.id, target)))
            .cloned()
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let stored = self.joined_recording(tenant, target).await?;
        for (p, party) in todo {
            // Atomic in the store: the primary's roster may be storing
            // the same person on it right now; a participant stored
            // already is marked recorded instead.
            let joined = (now() - stored.started_at).num_milliseconds().max(0);
            let row = Participant {
                id: ParticipantId::new(),
                recorded_user: true,
                joined_ms: Some(joined),
                left_ms: None,
                ..p.clone()
            };
            self.store
                .add_participant_once(
                    tenant,
                    target,
                    &row,
                    party.directory_object_id(&directory_tenant),
                )
                .await?;
            tracing::info!(recording_id = %target, standby = %rec.id, "a standby leg's recorded user is entitled to the meeting's recording");
            if let Some(sb) = rec.standby_mut() {
                sb.entitled.push((p.id, target));
            }
        }
        Ok(())
    }

    /// The meeting's recording a standby joins. The primary inserts it
    /// right after it claimed the meeting, possibly on another node: a
    /// recording not there yet is waited for a moment.
    async fn joined_recording(&self, tenant: TenantId, id: RecordingId) -> StoreResult<Recording> {
        let mut waited = Duration::ZERO;
        loop {
            match self.store.get_recording(tenant, id).await {
                Err(StoreError::NotFound) if waited < Duration::from_secs(3) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    waited += Duration::from_millis(100);
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(holder: &str, recording: RecordingId, epoch: i64, lease_s: i64) -> MeetingClaim {
        let at = now();
        MeetingClaim {
            tenant_id: TenantId::new(),
            chain_key: "chain".into(),
            recording_id: recording,
            holder: holder.into(),
            lease_until: at + chrono::Duration::seconds(lease_s),
            epoch,
            claimed_at: at,
            previous: None,
        }
    }

    #[test]
    fn an_invite_is_primary_standby_or_continuation() {
        let (mine, theirs) = (RecordingId::new(), RecordingId::new());
        assert_eq!(
            invite_role(&claim("n1/a", mine, 1, 3), "n1/a", mine),
            Joined::Primary { epoch: 1 }
        );
        assert_eq!(
            invite_role(&claim("n2/b", theirs, 1, 3), "n1/a", mine),
            Joined::Standby { joins: theirs },
            "another leg (on any node) holds it"
        );
        assert_eq!(
            invite_role(&claim("n1/b", theirs, 1, 3), "n1/a", mine),
            Joined::Standby { joins: theirs },
            "a second leg on the same node is a standby too"
        );
        let mut taken = claim("n1/a", mine, 3, 3);
        let previous = ClaimTakeover {
            recording_id: theirs,
            holder: "n2/b".into(),
            lease_until: now(),
        };
        taken.previous = Some(previous.clone());
        assert_eq!(
            invite_role(&taken, "n1/a", mine),
            Joined::Continues { epoch: 3, previous }
        );
    }

    #[test]
    fn a_standby_waits_for_a_live_claim_and_the_grace_of_a_released_one() {
        let at = now();
        let joins = RecordingId::new();
        let live = claim("n2/b", joins, 1, 2);
        assert_eq!(
            standby_next(Some(&live), None, at),
            StandbyNext::Wait { joins }
        );
        let lost = claim("n2/b", joins, 1, -1);
        assert_eq!(
            standby_next(Some(&lost), None, at),
            StandbyNext::Claim,
            "the lease ran out: its node is gone"
        );
        assert_eq!(standby_next(None, None, at), StandbyNext::Free);
        assert_eq!(
            standby_next(None, Some(at - chrono::Duration::seconds(1)), at),
            StandbyNext::Free,
            "within the grace the meeting may be ending"
        );
        assert_eq!(
            standby_next(None, Some(at - chrono_of(RELEASE_GRACE)), at),
            StandbyNext::Claim
        );
    }

    #[test]
    fn the_lost_interval_starts_at_the_last_renewal() {
        let at = now();
        let previous = ClaimTakeover {
            recording_id: RecordingId::new(),
            holder: "n2/b".into(),
            lease_until: at - chrono::Duration::milliseconds(500),
        };
        let (from, to) = lost_interval(&previous, at);
        assert_eq!(to, at);
        assert_eq!(
            (to - from).num_milliseconds(),
            chrono_of(LEASE).num_milliseconds() + 500
        );
        // The replay covers the interval with the lead before it, within
        // what a standby holds.
        assert!(
            chrono_of(LEASE + HEARTBEAT + REPLAY_LEAD) < chrono_of(STANDBY_BUFFER),
            "the buffer outlasts a takeover"
        );
    }
}
