//! Invites: who is who in a policy-recording invite, the recording it
//! starts or joins, admission, the answer sent within the deadline, and
//! participant-joining notifications (capacity > 1).

use insights_core::domain::{
    Direction, ParticipantRole, Recording, RecordingId, RecordingKind, RecordingStatus, TenantId,
    now,
};
use insights_core::store::{StoreError, StoreResult};
use tokio::time::Instant;
use uuid::Uuid;

use super::claims::{Joined, LegRole, MeetingLink, Standby};
use super::roster::{entry, repoint};
use super::{
    ANSWERS_METRIC, AfterAnswer, AnswerJob, AnswerState, CallRegistry, FailureReason, Inner,
    InviteParty, Leg, LiveRecording, PendingParty, Presence, Unrecorded, gauge_active, push_unique,
};
use crate::auth::VerifiedToken;
use crate::calls::parties::{Party, call_role};
use crate::calls::state::CallState;
use crate::graph::CallContext;
use crate::graph::model::{
    AnswerRequest, AppHostedMediaConfig, BotData, CallResource, ParticipantJoiningResponse,
    RecordingStatusReport,
};

impl CallRegistry {
    pub(super) async fn run_answer(&self, job: AnswerJob) {
        let sent: Result<(), String> = async {
            let blob = self
                .media
                .media_config(&job.call_id, job.tenant)
                .await
                .map_err(|e| format!("no media configuration: {e}"))?;
            let body = AnswerRequest {
                callback_uri: self.cfg.callback_url.clone(),
                accepted_modalities: vec!["audio".to_owned()],
                media_config: AppHostedMediaConfig::new(blob),
                participant_capacity: self.cfg.participant_capacity,
            };
            self.control(job.route)
                .answer(&job.ctx, &body, job.deadline)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        let elapsed_ms = u64::try_from(job.received.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut inner = self.inner.lock().await;
        let answered = sent.is_ok();
        match sent {
            Ok(()) => {
                metrics::counter!(ANSWERS_METRIC, "outcome" => "answered").increment(1);
                tracing::info!(call_id = %job.call_id, elapsed_ms, "answered the call");
                if let Some(leg) = inner.legs.get_mut(&job.call_id) {
                    leg.answer = AnswerState::Answered;
                }
            }
            Err(error) => {
                metrics::counter!(ANSWERS_METRIC, "outcome" => "failed").increment(1);
                tracing::error!(call_id = %job.call_id, elapsed_ms, %error, "could not answer the call; it is not recorded");
                if let Some(leg) = inner.legs.get_mut(&job.call_id) {
                    leg.answer = AnswerState::Failed;
                }
                if let Err(e) = self
                    .end_leg(&mut inner, &job.call_id, Some("answer-failed".into()))
                    .await
                {
                    tracing::error!(call_id = %job.call_id, error = %e, "cannot store the end of an unanswered call");
                }
            }
        }
        gauge_active(&inner);
        drop(inner);
        if !answered {
            return;
        }
        match job.then {
            AfterAnswer::Record => {}
            AfterAnswer::NotRecorded => {
                if let Err(e) = self
                    .report(&job.call_id, RecordingStatusReport::NotRecording)
                    .await
                {
                    tracing::warn!(call_id = %job.call_id, error = %e, "cannot report notRecording for a call the policy excludes");
                }
            }
            AfterAnswer::CannotProceed(reason) => {
                if let Err(e) = self.recording_cannot_proceed(&job.call_id, reason).await {
                    tracing::warn!(call_id = %job.call_id, error = %e, "cannot report the recording status of a refused call");
                }
            }
        }
    }

    pub(super) async fn incoming(
        &self,
        inner: &mut Inner,
        token: &VerifiedToken,
        call_id: String,
        call: CallResource,
        received: Instant,
    ) -> StoreResult<Option<AnswerJob>> {
        if inner.legs.contains_key(&call_id) || inner.ended.contains(&call_id) {
            tracing::debug!(%call_id, "replayed invite ignored");
            return Ok(None);
        }
        let Some(bot) = call.bot_data().filter(|_| call.is_policy_recording()) else {
            tracing::warn!(%call_id, "invite without a recording policy (inviteReasons): not answered");
            return Ok(None);
        };
        let invite_tenant = call
            .tenant_id
            .as_deref()
            .and_then(|t| Uuid::parse_str(t).ok());
        let Some(directory_tenant) = invite_tenant.or(token.directory_tenant_id) else {
            tracing::warn!(%call_id, "invite without a tenant id: not answered");
            return Ok(None);
        };
        if let (Some(a), Some(b)) = (invite_tenant, token.directory_tenant_id)
            && a != b
        {
            // Both come from Microsoft; the invite's own tenantId wins.
            tracing::debug!(%call_id, invite_tenant = %a, token_tenant = %b, "invite tenant differs from the token's tid");
        }
        let tenant = match self.store.tenant_by_directory_id(directory_tenant).await {
            Ok(t) => t.id,
            Err(StoreError::NotFound) => {
                tracing::warn!(%call_id, directory_tenant_id = %directory_tenant, "invite for an unknown tenant: not answered");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        // A replay after a restart: the recording exists already.
        match self
            .store
            .recording_by_external_call_id(tenant, &call_id)
            .await
        {
            Ok(_) => {
                tracing::debug!(%call_id, "invite of a stored call ignored");
                inner.ended.insert(&call_id);
                return Ok(None);
            }
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
        let kind = recording_kind(&call);
        let directory_tenant = directory_tenant.to_string();
        let (parties, direction) = plan_invite(&call, &bot, kind, &directory_tenant);
        // The tenant's recording policy decides before anything is stored
        // or claimed.
        let decision = self
            .decide_invite(tenant, &directory_tenant, &parties)
            .await?;
        if !decision.record {
            let job = self
                .not_recorded(
                    inner,
                    token,
                    tenant,
                    directory_tenant,
                    call_id,
                    call.call_chain_id.clone(),
                    decision,
                    received,
                )
                .await?;
            return Ok(Some(job));
        }
        let chain_key = chain_key(&call);
        let mine = RecordingId::new();
        // One recording per meeting across nodes: the claim in the store
        // says whether this leg records it (see `claims`).
        let (joined, link) = match &chain_key {
            Some(key) => {
                let holder = self.holder(&call_id);
                let joined = self.claim_for_invite(tenant, key, &holder, mine).await?;
                let role = match &joined {
                    Joined::Standby { joins } => LegRole::Standby(Standby {
                        joins: *joins,
                        shadow: Vec::new(),
                        entitled: Vec::new(),
                        free_since: None,
                    }),
                    Joined::Primary { epoch } | Joined::Continues { epoch, .. } => {
                        LegRole::Primary { epoch: *epoch }
                    }
                };
                let link = MeetingLink {
                    chain_key: key.clone(),
                    call_chain_id: call.call_chain_id.clone(),
                    holder,
                    role,
                };
                (Some(joined), Some(link))
            }
            None => (None, None),
        };
        let standby = matches!(joined, Some(Joined::Standby { .. }));
        if !standby && let Err(code) = self.admission.admit(tenant) {
            if let Some(l) = &link
                && let Err(e) = self
                    .store
                    .release_meeting_claim(tenant, &l.chain_key, &l.holder)
                    .await
            {
                tracing::warn!(%call_id, error = %e, "cannot release the meeting claim of a refused call");
            }
            let refused = self
                .store_refused(
                    tenant,
                    &directory_tenant,
                    &call_id,
                    &call,
                    (kind, direction),
                    parties,
                    &code,
                )
                .await?;
            let reason = FailureReason::from_refusal(&code);
            // Answered all the same, so that Teams hears the tenant's
            // failure mode: `failed` (required) or `notRecording`
            // (best effort, the call goes on unrecorded).
            inner.legs.insert(
                call_id.clone(),
                Leg {
                    tenant,
                    directory_tenant: directory_tenant.clone(),
                    recording_id: refused,
                    route: token.issuer,
                    creator_tid: token.directory_tenant_id,
                    state: CallState::Incoming,
                    answer: AnswerState::Pending,
                    reported: None,
                    recorded_users: 0,
                    unrecorded: Some(Unrecorded::CannotProceed(reason)),
                    failure_raised: false,
                },
            );
            return Ok(Some(AnswerJob {
                ctx: CallContext {
                    call_id: call_id.clone(),
                    directory_tenant_id: directory_tenant,
                },
                call_id,
                route: token.issuer,
                tenant,
                deadline: received + self.cfg.answer_timeout,
                received,
                then: AfterAnswer::CannotProceed(reason),
            }));
        }
        let created = self
            .new_recording(
                (tenant, &directory_tenant),
                mine,
                &call_id,
                &call,
                (kind, direction),
                link,
                parties,
            )
            .await;
        let mut rec = match created {
            Ok(r) => r,
            Err(e) => {
                // Nothing of this leg stays: the claim goes, Graph retries.
                if let Some(key) = &chain_key
                    && !standby
                {
                    let _ = self
                        .store
                        .release_meeting_claim(tenant, key, &self.holder(&call_id))
                        .await;
                }
                return Err(e);
            }
        };
        match &joined {
            Some(Joined::Standby { joins }) => {
                self.entitle_standby(&mut rec).await?;
                tracing::info!(%call_id, recording_id = %mine, joins = %joins, tenant_id = %tenant, "invite joins a meeting another leg records: standby");
            }
            Some(Joined::Continues { previous, .. }) => {
                self.continue_lost(&rec, previous).await?;
                tracing::info!(%call_id, recording_id = %mine, continues = %previous.recording_id, tenant_id = %tenant, "invite continues a meeting whose node was lost");
            }
            _ => {
                tracing::info!(%call_id, recording_id = %mine, tenant_id = %tenant, kind = kind.as_str(), "policy invite accepted");
            }
        }
        inner.recordings.insert(mine, rec);
        let recording_id = mine;
        if let Some(rec) = inner.recordings.get_mut(&recording_id) {
            rec.legs.push(call_id.clone());
        }
        inner.legs.insert(
            call_id.clone(),
            Leg {
                tenant,
                directory_tenant: directory_tenant.clone(),
                recording_id,
                route: token.issuer,
                creator_tid: token.directory_tenant_id,
                state: CallState::Incoming,
                answer: AnswerState::Pending,
                reported: None,
                recorded_users: 1,
                unrecorded: None,
                failure_raised: false,
            },
        );
        Ok(Some(AnswerJob {
            ctx: CallContext {
                call_id: call_id.clone(),
                directory_tenant_id: directory_tenant,
            },
            call_id,
            route: token.issuer,
            tenant,
            deadline: received + self.cfg.answer_timeout,
            received,
            then: AfterAnswer::Record,
        }))
    }

    /// The live recording of a new leg: stored (with its recorded users),
    /// or kept unstored for a standby leg.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, all facts of the invite"
    )]
    async fn new_recording(
        &self,
        (tenant, directory_tenant): (TenantId, &str),
        id: RecordingId,
        call_id: &str,
        call: &CallResource,
        (kind, direction): (RecordingKind, Direction),
        meeting: Option<MeetingLink>,
        parties: Vec<InviteParty>,
    ) -> StoreResult<LiveRecording> {
        let started_at = now();
        let mut recording = Recording::new(tenant, kind, direction, started_at);
        recording.id = id;
        recording.external_call_id = Some(call_id.to_owned());
        recording.call_chain_id = call.call_chain_id.clone();
        let mut rec = LiveRecording {
            tenant,
            directory_tenant: directory_tenant.to_owned(),
            id,
            kind,
            started_at,
            meeting,
            legs: Vec::new(),
            roster: Vec::new(),
            pending: Vec::new(),
            organizer_keys: organizer_keys(call),
            media_began: false,
        };
        // Recorded users are stored with the recording; everyone else
        // waits (see `PendingParty`).
        let mut stored = Vec::new();
        for ip in parties {
            match ip.party {
                Some(mut party) if ip.recorded => {
                    party
                        .resolve(self.store.as_ref(), tenant, directory_tenant)
                        .await?;
                    if rec
                        .find_entry(ip.graph_id.as_deref(), &party.keys)
                        .is_some()
                    {
                        continue;
                    }
                    let p = party.participant(ip.role, true, 0);
                    stored.push((p.clone(), party.clone()));
                    rec.roster.push(entry(&p, party.keys, ip.graph_id, 0));
                    recording.participants.push(p);
                }
                party => rec.pending.push(PendingParty {
                    party: party.unwrap_or_default(),
                    graph_id: ip.graph_id,
                    role: ip.role,
                    recorded: ip.recorded,
                }),
            }
        }
        if let Some(standby) = rec.standby_mut() {
            standby.shadow = stored;
            return Ok(rec);
        }
        // The recording first, then its recorded users, each with its
        // object id in one step: a standby leg on another node may store
        // the same user on it meanwhile (each person is stored once:
        // `add_participant_once`).
        recording.participants.clear();
        self.store.insert_recording(tenant, &recording).await?;
        for (p, party) in stored {
            let oid = party.directory_object_id(directory_tenant);
            let kept = self
                .store
                .add_participant_once(tenant, recording.id, &p, oid)
                .await?;
            if kept.id != p.id {
                repoint(&mut rec, p.id, &kept);
            }
        }
        Ok(rec)
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, all facts of the invite"
    )]
    async fn store_refused(
        &self,
        tenant: TenantId,
        directory_tenant: &str,
        call_id: &str,
        call: &CallResource,
        (kind, direction): (RecordingKind, Direction),
        parties: Vec<InviteParty>,
        code: &str,
    ) -> StoreResult<RecordingId> {
        let at = now();
        let mut recording = Recording::new(tenant, kind, direction, at);
        recording.external_call_id = Some(call_id.to_owned());
        recording.call_chain_id = call.call_chain_id.clone();
        recording.status = RecordingStatus::Failed;
        recording.ended_at = Some(at);
        recording.duration_ms = Some(0);
        recording.result_code = Some(format!("refused:{code}"));
        let mut stored = Vec::new();
        for ip in parties {
            if let Some(mut party) = ip.party {
                party
                    .resolve(self.store.as_ref(), tenant, directory_tenant)
                    .await?;
                let p = party.participant(ip.role, ip.recorded, 0);
                stored.push((p.id, party));
                recording.participants.push(p);
            }
        }
        self.store.insert_recording(tenant, &recording).await?;
        for (id, party) in stored {
            party
                .store_object_id(
                    self.store.as_ref(),
                    tenant,
                    directory_tenant,
                    recording.id,
                    id,
                )
                .await?;
        }
        tracing::warn!(%call_id, recording_id = %recording.id, %code, "call refused by admission control: answered, not recorded");
        Ok(recording.id)
    }

    /// Adds an invite's parties to an existing recording without
    /// duplicating anyone. Returns how many of them are recorded users the
    /// recording did not count as such before.
    async fn add_invite_parties(
        &self,
        rec: &mut LiveRecording,
        parties: Vec<InviteParty>,
    ) -> StoreResult<u32> {
        let mut new_recorded = 0;
        for ip in parties {
            let keys = ip
                .party
                .as_ref()
                .map(|p| p.keys.clone())
                .unwrap_or_default();
            if let Some(i) = rec.find_entry(ip.graph_id.as_deref(), &keys) {
                let unstored = rec.is_unstored();
                let e = &mut rec.roster[i];
                if let Some(g) = ip.graph_id {
                    push_unique(&mut e.graph_ids, g);
                }
                if ip.recorded && !e.recorded {
                    // Stored before we knew: the row is marked now, so
                    // the user is entitled to the recording.
                    e.recorded = true;
                    new_recorded += 1;
                    let p = Presence {
                        tenant: rec.tenant,
                        recording: rec.id,
                        participant: e.participant_id,
                        recorded: true,
                        left_ms: e.left_ms,
                        unstored,
                    };
                    tracing::info!(recording_id = %rec.id, participant_id = %e.participant_id, "a stored participant turned out to be policy-recorded: marked");
                    self.persist_presence(p).await;
                }
                continue;
            }
            if let Some(i) = rec.find_pending(ip.graph_id.as_deref(), &keys) {
                let mut pending = rec.pending.remove(i);
                if let Some(p) = &ip.party {
                    pending.party.merge(p);
                }
                if ip.recorded && !pending.recorded {
                    pending.recorded = true;
                    pending.role = ip.role;
                    new_recorded += 1;
                }
                pending.graph_id = pending.graph_id.or(ip.graph_id);
                if pending.recorded {
                    self.store_party(rec, pending.party, pending.graph_id, pending.role, true)
                        .await?;
                } else {
                    rec.pending.push(pending);
                }
                continue;
            }
            if ip.recorded {
                new_recorded += 1;
            }
            match ip.party {
                Some(party) if ip.recorded => {
                    self.store_party(rec, party, ip.graph_id, ip.role, true)
                        .await?;
                }
                party => rec.pending.push(PendingParty {
                    party: party.unwrap_or_default(),
                    graph_id: ip.graph_id,
                    role: ip.role,
                    recorded: ip.recorded,
                }),
            }
        }
        Ok(new_recorded)
    }

    pub(super) async fn participant_joining(
        &self,
        inner: &mut Inner,
        token: &VerifiedToken,
        call_id: &str,
        call: CallResource,
    ) -> StoreResult<ParticipantJoiningResponse> {
        if !self.known(inner, token, call_id).await? {
            // Refused: Graph then invites a bot anew, which merges by chain.
            tracing::warn!(%call_id, "participant joining an unknown call: refused");
            return Ok(ParticipantJoiningResponse::reject_busy());
        }
        let Some(leg) = inner.legs.get(call_id) else {
            return Ok(ParticipantJoiningResponse::reject_busy());
        };
        let (over, taken, recording_id) =
            (leg.state.is_over(), leg.recorded_users, leg.recording_id);
        let Some(rec) = inner.recordings.get_mut(&recording_id) else {
            return Ok(ParticipantJoiningResponse::reject_busy());
        };
        let bot = call.bot_data().unwrap_or_default();
        let (parties, _) = plan_invite(&call, &bot, rec.kind, &rec.directory_tenant);
        // A replayed joining notification is accepted again, and not
        // counted twice against the capacity.
        let replay = parties
            .iter()
            .filter(|p| p.recorded)
            .all(|ip| rec.knows_recorded(ip));
        // The tenant's policy decides for a user who joins later as it
        // does at an invite (the policy as it is now): one it excludes is
        // refused, so Graph invites a bot anew for them, whose invite is
        // answered, reported `notRecording` and audited like any call
        // the policy excludes.
        if !replay {
            let (tenant, directory_tenant) = (rec.tenant, rec.directory_tenant.clone());
            let decision = self
                .decide_invite(tenant, &directory_tenant, &parties)
                .await?;
            if !decision.record {
                tracing::info!(%call_id, %recording_id, rule_id = ?decision.by.rule_id(), "participant joining refused: the recording policy excludes them");
                return Ok(ParticipantJoiningResponse::reject_busy());
            }
        }
        // Only the joining recorded user: the rest of the meeting comes
        // with the roster.
        let parties: Vec<InviteParty> = parties.into_iter().filter(|p| p.recorded).collect();
        if !joining_allowed(over, replay, taken, self.cfg.participant_capacity) {
            tracing::info!(%call_id, "participant joining refused: call over or at capacity");
            return Ok(ParticipantJoiningResponse::reject_busy());
        }
        let added = self.add_invite_parties(rec, parties).await?;
        // A standby's joining user is entitled to the meeting's recording.
        self.entitle_standby(rec).await?;
        if let Some(leg) = inner.legs.get_mut(call_id) {
            leg.recorded_users += added;
        }
        tracing::info!(%call_id, %recording_id, "accepted a joining policy-recorded user");
        Ok(ParticipantJoiningResponse::accept())
    }
}

/// A meeting (it has meeting or chat info) or a call.
fn recording_kind(call: &CallResource) -> RecordingKind {
    if call.meeting_info.is_some() || call.chat_info.is_some() {
        RecordingKind::Meeting
    } else {
        RecordingKind::Call
    }
}

/// What makes legs one recording: the call chain id, else the meeting
/// chat's thread id.
fn chain_key(call: &CallResource) -> Option<String> {
    call.call_chain_id
        .clone()
        .or_else(|| call.chat_info.as_ref().and_then(|c| c.thread_id.clone()))
}

/// Whether a joining policy-recorded user is accepted: not once the leg
/// is over, and not beyond the capacity unless it is a replay (already
/// counted).
fn joining_allowed(over: bool, replay: bool, taken: u32, capacity: u32) -> bool {
    !(over || (!replay && taken >= capacity))
}

fn organizer_keys(call: &CallResource) -> Vec<String> {
    call.meeting_info
        .as_ref()
        .and_then(|m| m.organizer.as_ref())
        .and_then(Party::from_identity)
        .map(|p| p.keys)
        .unwrap_or_default()
}

/// Who is who in an invite, and the call's direction from the recorded
/// user's point of view.
fn plan_invite(
    call: &CallResource,
    bot: &BotData,
    kind: RecordingKind,
    directory_tenant: &str,
) -> (Vec<InviteParty>, Direction) {
    let ctx = call.incoming_context.clone().unwrap_or_default();
    let source_pid = call.source.as_ref().and_then(|s| s.participant_id());
    let observed = ctx.observed_participant_id.as_deref();
    // Microsoft: for compliance invites the source is the observed
    // (policy-recorded) participant.
    let source_is_recorded = observed.is_none() || source_pid.is_none() || observed == source_pid;
    let mut recorded_party = if source_is_recorded {
        call.source
            .as_ref()
            .and_then(|s| s.identity.as_ref())
            .and_then(Party::from_identity)
    } else {
        None
    };
    if let Some(u) = &bot.user {
        let from_bot = Party::from_bot_data(u);
        match &mut recorded_party {
            Some(p) => p.merge(&from_bot),
            None if from_bot.is_identified() => recorded_party = Some(from_bot),
            None => {}
        }
    }
    let recorded_graph_id = observed
        .or(if source_is_recorded { source_pid } else { None })
        .map(str::to_owned);

    let organizer = organizer_keys(call);
    let on_behalf_of = ctx.on_behalf_of.as_ref().and_then(Party::from_identity);
    let user_method = bot
        .user
        .as_ref()
        .and_then(|u| u.participation_method.as_deref());
    let other = bot.other_side_user.as_ref();
    let other_method = other.and_then(|o| o.participation_method.as_deref());

    let recorded_is_organizer = recorded_party
        .as_ref()
        .is_some_and(|p| p.same_as(&organizer));
    let recorded_role = match kind {
        RecordingKind::Meeting if recorded_is_organizer => ParticipantRole::Organizer,
        RecordingKind::Meeting => ParticipantRole::Attendee,
        RecordingKind::Call => call_role(user_method, on_behalf_of.is_some()).unwrap_or(
            match other_method.map(str::to_ascii_lowercase).as_deref() {
                Some("callee") => ParticipantRole::Caller,
                _ => ParticipantRole::Callee,
            },
        ),
    };

    let mut parties = vec![InviteParty {
        party: recorded_party,
        graph_id: recorded_graph_id,
        role: recorded_role,
        recorded: true,
    }];

    let mut direction = match (kind, recorded_role) {
        (RecordingKind::Meeting, _) => Direction::Unknown,
        (_, ParticipantRole::Caller) => Direction::Outbound,
        (_, ParticipantRole::Callee | ParticipantRole::AnsweredBy) => Direction::Inbound,
        _ => Direction::Unknown,
    };

    if let Some(o) = other {
        let party = Party::from_bot_data(o);
        let internal = party.phone.is_none()
            && party.object_id.is_some()
            && o.tenant_id
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(directory_tenant));
        if kind == RecordingKind::Call && internal && direction != Direction::Unknown {
            direction = Direction::Internal;
        }
        let role = match kind {
            RecordingKind::Meeting if party.same_as(&organizer) => ParticipantRole::Organizer,
            RecordingKind::Meeting => ParticipantRole::Attendee,
            RecordingKind::Call => match recorded_role {
                ParticipantRole::Caller => ParticipantRole::Callee,
                _ => ParticipantRole::Caller,
            },
        };
        let has_data = party.is_identified() || party.display_name.is_some();
        if has_data || o.participant_id.is_some() {
            parties.push(InviteParty {
                party: has_data.then_some(party),
                graph_id: o.participant_id.clone(),
                role,
                recorded: false,
            });
        }
    }
    if kind == RecordingKind::Meeting
        && !recorded_is_organizer
        && let Some(org) = call
            .meeting_info
            .as_ref()
            .and_then(|m| m.organizer.as_ref())
            .and_then(Party::from_identity)
    {
        parties.push(InviteParty {
            party: Some(org),
            graph_id: None,
            role: ParticipantRole::Organizer,
            recorded: false,
        });
    }
    if kind == RecordingKind::Call
        && let Some(obo) = on_behalf_of
    {
        // Answered on behalf of someone (delegate, call queue): that
        // someone was the callee.
        parties.push(InviteParty {
            party: Some(obo),
            graph_id: None,
            role: ParticipantRole::Callee,
            recorded: false,
        });
    }
    if let Some(t) = ctx.transferor.as_ref().and_then(Party::from_identity) {
        parties.push(InviteParty {
            party: Some(t),
            graph_id: None,
            role: ParticipantRole::RedirectedBy,
            recorded: false,
        });
    }
    for route in &call.call_routes {
        let forwarded = route
            .routing_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("forwarded"));
        if let (true, Some(original)) = (
            forwarded,
            route.original.as_ref().and_then(Party::from_identity),
        ) {
            parties.push(InviteParty {
                party: Some(original),
                graph_id: None,
                role: ParticipantRole::RedirectedBy,
                recorded: false,
            });
        }
    }
    // The same person may be named twice (e.g. forwarded by the callee
    // the call was on behalf of): keep the first mention.
    let mut seen: Vec<String> = Vec::new();
    parties.retain(|ip| match &ip.party {
        Some(p) if p.is_identified() => {
            if p.same_as(&seen) {
                false
            } else {
                seen.extend(p.keys.iter().cloned());
                true
            }
        }
        _ => true,
    });
    (parties, direction)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const TENANT: &str = "7f3e0b5c-0000-4000-8000-000000000001";

    fn user(id: &str, name: &str) -> Value {
        json!({"user": {"id": id, "displayName": name, "tenantId": TENANT}})
    }

    /// A policy invite whose source (the recorded user) is `recorded`.
    fn invite(bot_user: Value, extra: Value) -> (CallResource, BotData) {
        let mut call = json!({
            "source": {"id": "p-rec", "identity": user("AAA", "Rita Recorded")},
            "tenantId": TENANT,
            "callChainId": "chain-1",
            "incomingContext": {"observedParticipantId": "p-rec", "sourceParticipantId": "p-rec"},
            "applicationMetadata": {"botData": {"user": bot_user, "inviteReasons": ["PolicyBasedRecording"]}},
        });
        if let (Some(c), Some(e)) = (call.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                c.insert(k.clone(), v.clone());
            }
        }
        let call: CallResource = serde_json::from_value(call).unwrap_or_default();
        let bot = call.bot_data().unwrap_or_default();
        (call, bot)
    }

    fn roles(parties: &[InviteParty]) -> Vec<(ParticipantRole, bool)> {
        parties.iter().map(|p| (p.role, p.recorded)).collect()
    }

    #[test]
    fn internal_call_placed_by_the_recorded_user() {
        let (mut call, _) = invite(json!({"participationMethod": "caller"}), json!({}));
        call.application_metadata = Some(json!({"botData": {
            "user": {"participationMethod": "caller"},
            "otherSideUser": {"id": "BBB", "participantId": "p-other", "tenantId": TENANT,
                              "participationMethod": "callee"},
            "inviteReasons": ["PolicyBasedRecording"],
        }}));
        let bot = call.bot_data().unwrap_or_default();
        let kind = recording_kind(&call);
        assert_eq!(kind, RecordingKind::Call);
        let (parties, direction) = plan_invite(&call, &bot, kind, TENANT);
        assert_eq!(direction, Direction::Internal, "both sides in our tenant");
        assert_eq!(
            roles(&parties),
            vec![
                (ParticipantRole::Caller, true),
                (ParticipantRole::Callee, false)
            ]
        );
        assert_eq!(parties[0].graph_id.as_deref(), Some("p-rec"));
        assert_eq!(parties[1].graph_id.as_deref(), Some("p-other"));
        let keys = parties[0].party.as_ref().map(|p| p.keys.clone());
        assert_eq!(keys, Some(vec!["aad:aaa".to_owned()]));
    }

    #[test]
    fn external_other_side_is_inbound_not_internal() {
        let (mut call, _) = invite(json!({"participationMethod": "callee"}), json!({}));
        call.application_metadata = Some(json!({"botData": {
            "user": {"participationMethod": "callee"},
            "otherSideUser": {"phone": "+44 20 7946 0958", "participantId": "p-pstn",
                              "participationMethod": "caller"},
            "inviteReasons": ["PolicyBasedRecording"],
        }}));
        let bot = call.bot_data().unwrap_or_default();
        let (parties, direction) = plan_invite(&call, &bot, RecordingKind::Call, TENANT);
        assert_eq!(direction, Direction::Inbound);
        assert_eq!(
            roles(&parties),
            vec![
                (ParticipantRole::Callee, true),
                (ParticipantRole::Caller, false)
            ]
        );
    }

    #[test]
    fn meeting_names_its_organizer_once() {
        let (call, bot) = invite(
            json!({}),
            json!({
                "meetingInfo": {"organizer": user("CCC", "Olga Organizer")},
                "chatInfo": {"threadId": "thread-9"},
                "callChainId": null,
            }),
        );
        let kind = recording_kind(&call);
        assert_eq!(kind, RecordingKind::Meeting);
        assert_eq!(chain_key(&call).as_deref(), Some("thread-9"));
        let (parties, direction) = plan_invite(&call, &bot, kind, TENANT);
        assert_eq!(direction, Direction::Unknown);
        assert_eq!(
            roles(&parties),
            vec![
                (ParticipantRole::Attendee, true),
                (ParticipantRole::Organizer, false)
            ]
        );
        // The recorded user organises: no second organizer party.
        let (call, bot) = invite(
            json!({}),
            json!({"meetingInfo": {"organizer": user("aaa", "Rita Recorded")}}),
        );
        let (parties, _) = plan_invite(&call, &bot, RecordingKind::Meeting, TENANT);
        assert_eq!(roles(&parties), vec![(ParticipantRole::Organizer, true)]);
    }

    #[test]
    fn transferor_and_forwarder_named_once_as_redirected_by() {
        let (call, bot) = invite(
            json!({"participationMethod": "callee"}),
            json!({
                "incomingContext": {
                    "observedParticipantId": "p-rec",
                    "transferor": user("DDD", "Tom Transferor"),
                },
                "callRoutes": [
                    {"routingType": "forwarded", "original": user("ddd", "Tom Transferor")},
                    {"routingType": "lookup", "original": user("EEE", "Not Forwarded")},
                ],
            }),
        );
        let (parties, _) = plan_invite(&call, &bot, RecordingKind::Call, TENANT);
        assert_eq!(
            roles(&parties),
            vec![
                (ParticipantRole::Callee, true),
                (ParticipantRole::RedirectedBy, false)
            ],
            "the same person transferred and forwarded: kept once; a lookup route is no redirect"
        );
    }

    #[test]
    fn source_other_than_the_observed_participant_is_not_the_recorded_user() {
        let (call, bot) = invite(
            json!({"participationMethod": "callee"}),
            json!({"incomingContext": {"observedParticipantId": "p-someone-else"}}),
        );
        let (parties, _) = plan_invite(&call, &bot, RecordingKind::Call, TENANT);
        assert!(parties[0].recorded);
        assert!(
            parties[0].party.is_none(),
            "the source is not who is recorded"
        );
        assert_eq!(parties[0].graph_id.as_deref(), Some("p-someone-else"));
    }

    #[test]
    fn joining_users_respect_capacity_except_replays() {
        assert!(joining_allowed(false, false, 1, 2));
        assert!(!joining_allowed(false, false, 2, 2), "at capacity");
        assert!(
            joining_allowed(false, true, 2, 2),
            "a replay is not counted twice"
        );
        assert!(!joining_allowed(true, true, 0, 2), "the leg is over");
    }
}
