//! The live calls and their recordings; see the module docs of
//! [`crate::calls`] for the flow.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::domain::{
    Direction, ParticipantId, ParticipantRole, Recording, RecordingId, RecordingKind,
    RecordingStatus, TenantId, now,
};
use insights_core::store::{MetadataStore, StoreError, StoreResult};
use tokio::sync::Mutex;
use tokio::time::Instant;
use uuid::Uuid;

use super::events::Event;
use super::parties::{Party, call_role};
use super::state::CallState;
use crate::auth::{TokenIssuer, VerifiedToken};
use crate::graph::model::{
    AnswerRequest, AppHostedMediaConfig, BotData, CallResource, ParticipantJoiningResponse,
    ParticipantResource, RecordingStatusReport,
};
use crate::graph::{CallContext, CallControl, GraphError};

/// How many ended call ids are remembered to recognise replays.
const RECENT_ENDED: usize = 10_000;

/// Notifications applied, by kind (`insights_gateway_notifications_total{kind}`).
const NOTIFICATIONS_METRIC: &str = "insights_gateway_notifications_total";
/// Answers sent, by outcome (`insights_gateway_answers_total{outcome}`).
const ANSWERS_METRIC: &str = "insights_gateway_answers_total";
/// Call legs the registry holds (answered or being answered, not ended).
/// Not `insights_calls_active`, which is the spool's count of recordings
/// being captured.
const CALL_LEGS_METRIC: &str = "insights_gateway_call_legs_active";

/// The media configuration to answer a call with.
#[async_trait]
pub trait MediaConfigSource: Send + Sync + 'static {
    /// The `appHostedMediaConfig.blob` for answering `call_id` (created by
    /// the media platform that will receive the call's media). An error is
    /// a short reason without personal data; the call is then not answered.
    async fn media_config(&self, call_id: &str, tenant: TenantId) -> Result<String, String>;
}

/// One media configuration blob for every call (from configuration).
pub struct StaticMediaConfig(pub String);

#[async_trait]
impl MediaConfigSource for StaticMediaConfig {
    async fn media_config(&self, _call_id: &str, _tenant: TenantId) -> Result<String, String> {
        Ok(self.0.clone())
    }
}

/// Whether a new call may be recorded now (e.g. the spool has room).
pub trait CallAdmission: Send + Sync + 'static {
    /// `Err(code)` refuses the call: it is not answered and its recording
    /// is stored as failed with result code `refused:<code>`.
    fn admit(&self, tenant: TenantId) -> Result<(), String>;
}

/// Admits every call.
pub struct AdmitAll;

impl CallAdmission for AdmitAll {
    fn admit(&self, _tenant: TenantId) -> Result<(), String> {
        Ok(())
    }
}

/// Settings of the registry.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// `callbackUri` of answers.
    pub callback_url: Option<String>,
    /// `participantCapacity` of answers and the limit for accepting
    /// participant-joining notifications.
    pub participant_capacity: u32,
    /// Budget for answering, from the moment the invite arrived.
    pub answer_timeout: Duration,
    /// Budget for one `updateRecordingStatus`, retries included.
    pub status_timeout: Duration,
}

/// Why recording could not begin (or change status).
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("no live call {0}")]
    UnknownCall(String),
    #[error("call {0} has ended")]
    CallEnded(String),
    #[error("call {0} is not answered")]
    NotAnswered(String),
    #[error("Graph did not acknowledge the recording status: {0}")]
    Graph(#[from] GraphError),
}

/// A roster member as the media side needs it: who, with which media
/// source ids (active-speaker ids refer to them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterMember {
    pub participant_id: ParticipantId,
    pub role: ParticipantRole,
    pub recorded_user: bool,
    /// Graph participant ids this member was seen under.
    pub graph_participant_ids: Vec<String>,
    /// `sourceId`s of the member's audio streams.
    pub audio_source_ids: Vec<String>,
    /// Still in the call.
    pub present: bool,
    pub joined_ms: i64,
    pub left_ms: Option<i64>,
}

/// A live call leg and its recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallInfo {
    pub call_id: String,
    pub tenant_id: TenantId,
    pub recording_id: RecordingId,
    pub state: CallState,
    pub answered: bool,
    /// `updateRecordingStatus` last acknowledged for this leg.
    pub reported_status: Option<RecordingStatusReport>,
    pub participants: Vec<RosterMember>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AnswerState {
    Pending,
    Answered,
    Failed,
}

struct Leg {
    tenant: TenantId,
    directory_tenant: String,
    recording_id: RecordingId,
    route: TokenIssuer,
    state: CallState,
    answer: AnswerState,
    reported: Option<RecordingStatusReport>,
    /// Policy-recorded users this leg took (invite + accepted joins).
    recorded_users: u32,
}

struct RosterEntry {
    participant_id: ParticipantId,
    role: ParticipantRole,
    recorded: bool,
    keys: Vec<String>,
    graph_ids: Vec<String>,
    audio_source_ids: Vec<String>,
    present: bool,
    joined_ms: i64,
    left_ms: Option<i64>,
}

/// A party we know of but have not stored yet: stored once the roster
/// shows them (with their full identity, e.g. the display name the invite
/// lacks), after the first roster update if we can identify them anyway,
/// or when the call ends.
struct PendingParty {
    party: Party,
    graph_id: Option<String>,
    role: ParticipantRole,
    recorded: bool,
}

struct LiveRecording {
    tenant: TenantId,
    directory_tenant: String,
    id: RecordingId,
    kind: RecordingKind,
    started_at: DateTime<Utc>,
    chain_key: Option<String>,
    legs: Vec<String>,
    roster: Vec<RosterEntry>,
    pending: Vec<PendingParty>,
    organizer_keys: Vec<String>,
    /// `updateRecordingStatus(recording)` was acknowledged for some leg.
    media_began: bool,
}

impl LiveRecording {
    fn offset_ms(&self) -> i64 {
        (now() - self.started_at).num_milliseconds().max(0)
    }

    fn find_entry(&self, graph_id: Option<&str>, keys: &[String]) -> Option<usize> {
        self.roster.iter().position(|e| {
            graph_id.is_some_and(|g| e.graph_ids.iter().any(|x| x == g))
                || e.keys.iter().any(|k| keys.contains(k))
        })
    }

    /// Whether the invite party is already one of our recorded users.
    fn knows_recorded(&self, ip: &InviteParty) -> bool {
        let keys = ip.party.as_ref().map(|p| p.keys.as_slice()).unwrap_or(&[]);
        self.find_entry(ip.graph_id.as_deref(), keys)
            .is_some_and(|i| self.roster[i].recorded)
            || self
                .find_pending(ip.graph_id.as_deref(), keys)
                .is_some_and(|i| self.pending[i].recorded)
    }

    fn find_pending(&self, graph_id: Option<&str>, keys: &[String]) -> Option<usize> {
        self.pending.iter().position(|p| {
            graph_id.is_some_and(|g| p.graph_id.as_deref() == Some(g)) || p.party.same_as(keys)
        })
    }
}

#[derive(Default)]
struct RecentIds {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl RecentIds {
    fn insert(&mut self, id: &str) {
        if self.set.insert(id.to_owned()) {
            self.order.push_back(id.to_owned());
            while self.order.len() > RECENT_ENDED {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }
}

#[derive(Default)]
struct Inner {
    legs: HashMap<String, Leg>,
    recordings: HashMap<RecordingId, LiveRecording>,
    by_chain: HashMap<(TenantId, String), RecordingId>,
    ended: RecentIds,
}

/// An answer to send once the registry lock is released.
pub(crate) struct AnswerJob {
    call_id: String,
    ctx: CallContext,
    route: TokenIssuer,
    tenant: TenantId,
    deadline: Instant,
    received: Instant,
}

/// One party of an invite and what to do with them.
struct InviteParty {
    party: Option<Party>,
    graph_id: Option<String>,
    role: ParticipantRole,
    recorded: bool,
}

/// The live calls of this gateway and their recordings.
pub struct CallRegistry {
    cfg: RegistryConfig,
    store: Arc<dyn MetadataStore>,
    graph: Arc<dyn CallControl>,
    simulator: Arc<dyn CallControl>,
    media: Arc<dyn MediaConfigSource>,
    admission: Arc<dyn CallAdmission>,
    inner: Mutex<Inner>,
}

/// What the webhook does with a batch's outcome.
pub(crate) struct BatchOutcome {
    /// The body to return for a participant-joining notification.
    pub joining: Option<ParticipantJoiningResponse>,
    pub answers: Vec<AnswerJob>,
}

impl CallRegistry {
    pub(crate) fn new(
        cfg: RegistryConfig,
        store: Arc<dyn MetadataStore>,
        graph: Arc<dyn CallControl>,
        simulator: Arc<dyn CallControl>,
        media: Arc<dyn MediaConfigSource>,
        admission: Arc<dyn CallAdmission>,
    ) -> Self {
        Self {
            cfg,
            store,
            graph,
            simulator,
            media,
            admission,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn control(&self, route: TokenIssuer) -> &Arc<dyn CallControl> {
        match route {
            TokenIssuer::Microsoft => &self.graph,
            TokenIssuer::Simulator => &self.simulator,
        }
    }

    /// Applies a decoded batch in order. Holding the lock for the whole
    /// batch serialises notifications, so an invite and the roster update
    /// right behind it never race. On a store error the batch stops and
    /// the error goes back to Graph (503), which retries; every step is
    /// idempotent, so the replay completes it.
    pub(crate) async fn apply(
        &self,
        token: &VerifiedToken,
        events: Vec<Event>,
        received: Instant,
    ) -> StoreResult<BatchOutcome> {
        let mut inner = self.inner.lock().await;
        let mut out = BatchOutcome {
            joining: None,
            answers: Vec::new(),
        };
        for event in events {
            metrics::counter!(NOTIFICATIONS_METRIC, "kind" => event.kind()).increment(1);
            match event {
                Event::Incoming { call_id, call } => {
                    if let Some(job) = self
                        .incoming(&mut inner, token, call_id, call, received)
                        .await?
                    {
                        out.answers.push(job);
                    }
                }
                Event::CallUpdated { call_id, call } => {
                    self.call_updated(&mut inner, token, &call_id, call).await?;
                }
                Event::CallDeleted { call_id, call } => {
                    if self.known(&mut inner, token, &call_id).await? {
                        let code = call.result_info.as_ref().and_then(|r| r.result_code());
                        self.end_leg(&mut inner, &call_id, code).await?;
                    }
                }
                Event::Roster {
                    call_id,
                    removed,
                    participants,
                } => {
                    self.roster(&mut inner, token, &call_id, removed, participants)
                        .await?;
                }
                Event::ParticipantLeft {
                    call_id,
                    participant_id,
                } => {
                    if self.known(&mut inner, token, &call_id).await?
                        && let Some(p) = mark_left(&mut inner, &call_id, Some(&participant_id), &[])
                    {
                        self.persist_presence(p).await;
                    }
                }
                Event::ParticipantJoining { call_id, call } => {
                    out.joining = Some(
                        self.participant_joining(&mut inner, token, &call_id, call)
                            .await?,
                    );
                }
                Event::Ignored => {}
            }
        }
        gauge_active(&inner);
        Ok(out)
    }

    /// Sends the answers of a batch, each in its own task so the callback
    /// returns at once.
    pub(crate) fn spawn_answers(self: &Arc<Self>, jobs: Vec<AnswerJob>) {
        for job in jobs {
            let me = Arc::clone(self);
            tokio::spawn(async move { me.run_answer(job).await });
        }
    }

    async fn run_answer(&self, job: AnswerJob) {
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
    }

    // ---- invites ----

    async fn incoming(
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
        let kind = if call.meeting_info.is_some() || call.chat_info.is_some() {
            RecordingKind::Meeting
        } else {
            RecordingKind::Call
        };
        let directory_tenant = directory_tenant.to_string();
        let (parties, direction) = plan_invite(&call, &bot, kind, &directory_tenant);
        let chain_key = call
            .call_chain_id
            .clone()
            .or_else(|| call.chat_info.as_ref().and_then(|c| c.thread_id.clone()));
        let existing = chain_key
            .as_ref()
            .and_then(|c| inner.by_chain.get(&(tenant, c.clone())))
            .copied()
            .filter(|id| inner.recordings.contains_key(id));

        let recording_id = match existing {
            Some(id) => {
                // Another recorded user of a call or meeting we record
                // already: one recording, one more recorded user.
                let Some(rec) = inner.recordings.get_mut(&id) else {
                    return Ok(None);
                };
                self.add_invite_parties(rec, parties).await?;
                tracing::info!(%call_id, recording_id = %id, tenant_id = %tenant, "invite joins an existing recording");
                id
            }
            None => {
                if let Err(code) = self.admission.admit(tenant) {
                    self.store_refused(
                        tenant,
                        &directory_tenant,
                        &call_id,
                        &call,
                        (kind, direction),
                        parties,
                        &code,
                    )
                    .await?;
                    inner.ended.insert(&call_id);
                    return Ok(None);
                }
                let rec = self
                    .new_recording(
                        tenant,
                        &directory_tenant,
                        &call_id,
                        &call,
                        kind,
                        direction,
                        chain_key.clone(),
                        parties,
                    )
                    .await?;
                let id = rec.id;
                if let Some(c) = chain_key {
                    inner.by_chain.insert((tenant, c), id);
                }
                inner.recordings.insert(id, rec);
                tracing::info!(%call_id, recording_id = %id, tenant_id = %tenant, kind = kind.as_str(), "policy invite accepted");
                id
            }
        };
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
                state: CallState::Incoming,
                answer: AnswerState::Pending,
                reported: None,
                recorded_users: 1,
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
        }))
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, all facts of the invite"
    )]
    async fn new_recording(
        &self,
        tenant: TenantId,
        directory_tenant: &str,
        call_id: &str,
        call: &CallResource,
        kind: RecordingKind,
        direction: Direction,
        chain_key: Option<String>,
        parties: Vec<InviteParty>,
    ) -> StoreResult<LiveRecording> {
        let started_at = now();
        let mut recording = Recording::new(tenant, kind, direction, started_at);
        recording.external_call_id = Some(call_id.to_owned());
        recording.call_chain_id = call.call_chain_id.clone();
        let mut rec = LiveRecording {
            tenant,
            directory_tenant: directory_tenant.to_owned(),
            id: recording.id,
            kind,
            started_at,
            chain_key,
            legs: Vec::new(),
            roster: Vec::new(),
            pending: Vec::new(),
            organizer_keys: organizer_keys(call),
            media_began: false,
        };
        // Recorded users are stored with the recording; everyone else
        // waits (see `PendingParty`).
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
        self.store.insert_recording(tenant, &recording).await?;
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
    ) -> StoreResult<()> {
        let at = now();
        let mut recording = Recording::new(tenant, kind, direction, at);
        recording.external_call_id = Some(call_id.to_owned());
        recording.call_chain_id = call.call_chain_id.clone();
        recording.status = RecordingStatus::Failed;
        recording.ended_at = Some(at);
        recording.duration_ms = Some(0);
        recording.result_code = Some(format!("refused:{code}"));
        for ip in parties {
            if let Some(mut party) = ip.party {
                party
                    .resolve(self.store.as_ref(), tenant, directory_tenant)
                    .await?;
                recording
                    .participants
                    .push(party.participant(ip.role, ip.recorded, 0));
            }
        }
        self.store.insert_recording(tenant, &recording).await?;
        tracing::warn!(%call_id, recording_id = %recording.id, %code, "call refused by admission control: not answered");
        Ok(())
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

    /// Resolves and stores one party (unless it turns out to be stored).
    async fn store_party(
        &self,
        rec: &mut LiveRecording,
        mut party: Party,
        graph_id: Option<String>,
        role: ParticipantRole,
        recorded: bool,
    ) -> StoreResult<usize> {
        party
            .resolve(self.store.as_ref(), rec.tenant, &rec.directory_tenant)
            .await?;
        if let Some(i) = rec.find_entry(graph_id.as_deref(), &party.keys) {
            if let Some(g) = graph_id {
                push_unique(&mut rec.roster[i].graph_ids, g);
            }
            return Ok(i);
        }
        let joined = rec.offset_ms();
        let p = party.participant(role, recorded, joined);
        self.store.add_participant(rec.tenant, rec.id, &p).await?;
        tracing::debug!(recording_id = %rec.id, participant_id = %p.id, role = role.as_str(), recorded, "participant stored");
        rec.roster.push(entry(&p, party.keys, graph_id, joined));
        Ok(rec.roster.len() - 1)
    }

    /// Stores waiting parties: all of them, or only those we can identify.
    async fn flush_pending(&self, rec: &mut LiveRecording, all: bool) -> StoreResult<()> {
        let mut i = 0;
        while i < rec.pending.len() {
            let p = &rec.pending[i];
            let flush = all || (p.party.is_identified() && !p.recorded);
            if !flush {
                i += 1;
                continue;
            }
            let p = rec.pending.remove(i);
            // A pending party with nothing known (e.g. an encrypted caller)
            // is still a party of the call: stored without identity.
            self.store_party(rec, p.party, p.graph_id, p.role, p.recorded)
                .await?;
        }
        Ok(())
    }

    /// Stores a presence change. A failure is logged and not retried:
    /// the participant row keeps its earlier presence, the call goes on.
    async fn persist_presence(&self, p: Presence) {
        if let Err(e) = self
            .store
            .update_participant_presence(
                p.tenant,
                p.recording,
                p.participant,
                p.recorded,
                p.left_ms,
            )
            .await
        {
            tracing::warn!(recording_id = %p.recording, participant_id = %p.participant, error = %e, "cannot store the participant's presence");
        }
    }

    // ---- participant joining (capacity > 1) ----

    async fn participant_joining(
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
        // Only the joining recorded user: the rest of the meeting comes
        // with the roster.
        let parties: Vec<InviteParty> = parties.into_iter().filter(|p| p.recorded).collect();
        // A replayed joining notification is accepted again, and not
        // counted twice against the capacity.
        let replay = parties.iter().all(|ip| rec.knows_recorded(ip));
        if over || (!replay && taken >= self.cfg.participant_capacity) {
            tracing::info!(%call_id, "participant joining refused: call over or at capacity");
            return Ok(ParticipantJoiningResponse::reject_busy());
        }
        let added = self.add_invite_parties(rec, parties).await?;
        if let Some(leg) = inner.legs.get_mut(call_id) {
            leg.recorded_users += added;
        }
        tracing::info!(%call_id, %recording_id, "accepted a joining policy-recorded user");
        Ok(ParticipantJoiningResponse::accept())
    }

    // ---- state updates ----

    async fn call_updated(
        &self,
        inner: &mut Inner,
        token: &VerifiedToken,
        call_id: &str,
        call: CallResource,
    ) -> StoreResult<()> {
        if !self.known(inner, token, call_id).await? {
            return Ok(());
        }
        let Some(next) = call.state.as_deref().and_then(CallState::parse) else {
            return Ok(());
        };
        let Some(leg) = inner.legs.get_mut(call_id) else {
            return Ok(());
        };
        let before = leg.state;
        let after = before.advance(next);
        if after != next {
            tracing::debug!(%call_id, from = before.as_str(), reported = next.as_str(), "out-of-order state ignored");
            return Ok(());
        }
        leg.state = after;
        let recording_id = leg.recording_id;
        if before != after {
            tracing::info!(%call_id, from = before.as_str(), to = after.as_str(), "call state");
        }
        if after == CallState::Terminated {
            let code = call.result_info.as_ref().and_then(|r| r.result_code());
            return self.end_leg(inner, call_id, code).await;
        }
        tracing::trace!(%call_id, %recording_id, "state applied");
        Ok(())
    }

    /// Ends a leg; the recording ends with its last leg.
    async fn end_leg(
        &self,
        inner: &mut Inner,
        call_id: &str,
        result_code: Option<String>,
    ) -> StoreResult<()> {
        let Some(leg) = inner.legs.get_mut(call_id) else {
            return Ok(());
        };
        leg.state = CallState::Terminated;
        let recording_id = leg.recording_id;
        let all_over = inner.recordings.get(&recording_id).is_none_or(|rec| {
            rec.legs
                .iter()
                .all(|l| inner.legs.get(l).is_none_or(|leg| leg.state.is_over()))
        });
        if !all_over {
            tracing::info!(%call_id, %recording_id, "call leg ended; the recording goes on with its other legs");
            return Ok(());
        }
        let Some(rec) = inner.recordings.get_mut(&recording_id) else {
            return Ok(());
        };
        self.flush_pending(rec, true).await?;
        let ended_at = now();
        let left = rec.offset_ms();
        let mut gone = Vec::new();
        for e in rec.roster.iter_mut().filter(|e| e.present) {
            e.present = false;
            e.left_ms = Some(left);
            gone.push(Presence {
                tenant: rec.tenant,
                recording: rec.id,
                participant: e.participant_id,
                recorded: e.recorded,
                left_ms: Some(left),
            });
        }
        for p in gone {
            self.persist_presence(p).await;
        }
        let current = self.store.get_recording(rec.tenant, rec.id).await?.status;
        // Never regress what the media side has already moved on
        // (spooled/stored). A call that never got as far as recording is
        // a failed recording; the result code says why.
        let status = match current {
            RecordingStatus::Recording if !rec.media_began => RecordingStatus::Failed,
            s => s,
        };
        self.store
            .update_recording_status(
                rec.tenant,
                rec.id,
                status,
                Some(ended_at),
                result_code.as_deref(),
            )
            .await?;
        tracing::info!(%call_id, %recording_id, status = status.as_str(), result_code = result_code.as_deref().unwrap_or("-"), "recording ended");
        if let Some(rec) = inner.recordings.remove(&recording_id) {
            if let Some(c) = rec.chain_key {
                inner.by_chain.remove(&(rec.tenant, c));
            }
            for l in rec.legs {
                inner.legs.remove(&l);
                inner.ended.insert(&l);
            }
        }
        inner.legs.remove(call_id);
        inner.ended.insert(call_id);
        Ok(())
    }

    // ---- roster ----

    async fn roster(
        &self,
        inner: &mut Inner,
        token: &VerifiedToken,
        call_id: &str,
        removed: bool,
        participants: Vec<ParticipantResource>,
    ) -> StoreResult<()> {
        if !self.known(inner, token, call_id).await? {
            return Ok(());
        }
        let Some(leg) = inner.legs.get(call_id) else {
            return Ok(());
        };
        if leg.state == CallState::Terminated {
            return Ok(());
        }
        let redirecting = leg.state.is_redirecting();
        let recording_id = leg.recording_id;
        for p in participants {
            let identity = p.info.as_ref().and_then(|i| i.identity.clone());
            if identity.as_ref().is_some_and(|i| i.is_application_only()) {
                continue; // bots, ourselves and other recorders
            }
            let party = identity.as_ref().and_then(Party::from_identity);
            let keys = party.as_ref().map(|p| p.keys.clone()).unwrap_or_default();
            let graph_id = p.id.clone().or_else(|| {
                p.info
                    .as_ref()
                    .and_then(|i| i.participant_id().map(str::to_owned))
            });
            if removed || p.removed_state.is_some() {
                if let Some(p) = mark_left(inner, call_id, graph_id.as_deref(), &keys) {
                    self.persist_presence(p).await;
                }
                continue;
            }
            if p.is_in_lobby == Some(true) {
                continue; // not in the call (yet)
            }
            let audio: Vec<String> = p
                .media_streams
                .iter()
                .filter(|s| {
                    s.media_type
                        .as_deref()
                        .is_some_and(|t| t.eq_ignore_ascii_case("audio"))
                })
                .filter_map(|s| s.source_id.clone())
                .collect();
            let Some(rec) = inner.recordings.get_mut(&recording_id) else {
                return Ok(());
            };
            let index = match rec.find_entry(graph_id.as_deref(), &keys) {
                Some(i) => Some(i),
                None => match rec.find_pending(graph_id.as_deref(), &keys) {
                    Some(i) => {
                        let mut pending = rec.pending.remove(i);
                        if let Some(p) = &party {
                            pending.party.merge(p);
                        }
                        let g = graph_id.clone().or(pending.graph_id.take());
                        Some(
                            self.store_party(rec, pending.party, g, pending.role, pending.recorded)
                                .await?,
                        )
                    }
                    None => match party {
                        None => None, // no identity at all: nothing to store
                        Some(party) => {
                            let role = if party.same_as(&rec.organizer_keys) {
                                ParticipantRole::Organizer
                            } else if rec.kind == RecordingKind::Call && redirecting {
                                ParticipantRole::RedirectedTo
                            } else {
                                ParticipantRole::Attendee
                            };
                            Some(
                                self.store_party(rec, party, graph_id.clone(), role, false)
                                    .await?,
                            )
                        }
                    },
                },
            };
            if let Some(i) = index {
                let offset = rec.offset_ms();
                let e = &mut rec.roster[i];
                if let Some(g) = &graph_id {
                    push_unique(&mut e.graph_ids, g.clone());
                }
                for a in audio {
                    push_unique(&mut e.audio_source_ids, a);
                }
                if !e.present {
                    e.present = true;
                    e.left_ms = None;
                    tracing::debug!(%call_id, participant_id = %e.participant_id, at_ms = offset, "participant rejoined");
                    let p = Presence {
                        tenant: rec.tenant,
                        recording: rec.id,
                        participant: e.participant_id,
                        recorded: e.recorded,
                        left_ms: None,
                    };
                    self.persist_presence(p).await;
                }
            }
        }
        // Parties of the invite the roster did not name (a transferor, the
        // organizer of a meeting they do not attend): stored now that the
        // roster had its chance to tell us more about them.
        if let Some(rec) = inner.recordings.get_mut(&recording_id) {
            self.flush_pending(rec, false).await?;
        }
        Ok(())
    }

    /// Whether `call_id` is a live leg, rehydrating it from the store if
    /// this process does not know it (a restart mid-call).
    async fn known(
        &self,
        inner: &mut Inner,
        token: &VerifiedToken,
        call_id: &str,
    ) -> StoreResult<bool> {
        if inner.legs.contains_key(call_id) {
            return Ok(true);
        }
        if inner.ended.contains(call_id) {
            return Ok(false);
        }
        let Some(directory_tenant) = token.directory_tenant_id else {
            tracing::debug!(%call_id, "notification for an unknown call ignored");
            return Ok(false);
        };
        let tenant = match self.store.tenant_by_directory_id(directory_tenant).await {
            Ok(t) => t.id,
            Err(StoreError::NotFound) => return Ok(false),
            Err(e) => return Err(e),
        };
        let stored = match self
            .store
            .recording_by_external_call_id(tenant, call_id)
            .await
        {
            Ok(r) => r,
            Err(StoreError::NotFound) => {
                tracing::debug!(%call_id, "notification for an unknown call ignored");
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        if stored.ended_at.is_some() {
            inner.ended.insert(call_id);
            return Ok(false);
        }
        let started = stored.started_at;
        let rec = LiveRecording {
            tenant,
            directory_tenant: directory_tenant.to_string(),
            id: stored.id,
            kind: stored.kind,
            started_at: started,
            chain_key: stored.call_chain_id.clone(),
            legs: vec![call_id.to_owned()],
            roster: stored
                .participants
                .iter()
                .map(|p| entry(p, Party::keys_of_stored(p), None, p.joined_ms.unwrap_or(0)))
                .collect(),
            pending: Vec::new(),
            organizer_keys: Vec::new(),
            // Unknown after a restart: never mark such a recording failed.
            media_began: true,
        };
        if let Some(c) = &rec.chain_key {
            inner.by_chain.insert((tenant, c.clone()), rec.id);
        }
        inner.legs.insert(
            call_id.to_owned(),
            Leg {
                tenant,
                directory_tenant: directory_tenant.to_string(),
                recording_id: rec.id,
                route: token.issuer,
                state: CallState::Established,
                answer: AnswerState::Answered,
                reported: None,
                recorded_users: 1,
            },
        );
        tracing::info!(%call_id, recording_id = %rec.id, "resumed a call known from the store");
        inner.recordings.insert(rec.id, rec);
        Ok(true)
    }

    // ---- the media side ----

    /// Reports `recording` to Graph for `call_id` and, once Graph has
    /// acknowledged it, returns the handle under which media may be
    /// persisted. Microsoft forbids persisting any media before this
    /// acknowledgement: the media side must not write a byte of a call
    /// before this returns `Ok`.
    pub async fn begin_recording(
        self: &Arc<Self>,
        call_id: &str,
    ) -> Result<RecordingHandle, RecordingError> {
        let (ctx, route, tenant, recording_id) = {
            let inner = self.inner.lock().await;
            let leg = inner
                .legs
                .get(call_id)
                .ok_or_else(|| RecordingError::UnknownCall(call_id.to_owned()))?;
            if leg.state.is_over() {
                return Err(RecordingError::CallEnded(call_id.to_owned()));
            }
            if leg.answer != AnswerState::Answered {
                return Err(RecordingError::NotAnswered(call_id.to_owned()));
            }
            (
                CallContext {
                    call_id: call_id.to_owned(),
                    directory_tenant_id: leg.directory_tenant.clone(),
                },
                leg.route,
                leg.tenant,
                leg.recording_id,
            )
        };
        // Not under the lock: Graph may take seconds.
        self.control(route)
            .update_recording_status(
                &ctx,
                RecordingStatusReport::Recording,
                Instant::now() + self.cfg.status_timeout,
            )
            .await?;
        let mut inner = self.inner.lock().await;
        let Some(leg) = inner.legs.get_mut(call_id) else {
            return Err(RecordingError::CallEnded(call_id.to_owned()));
        };
        leg.reported = Some(RecordingStatusReport::Recording);
        if let Some(rec) = inner.recordings.get_mut(&recording_id) {
            rec.media_began = true;
        }
        tracing::info!(%call_id, %recording_id, "recording status reported; media may be persisted");
        Ok(RecordingHandle {
            registry: Arc::clone(self),
            call_id: call_id.to_owned(),
            tenant_id: tenant,
            recording_id,
        })
    }

    /// Reports `failed` for a call whose recording cannot proceed (e.g.
    /// the spool is full), whether or not recording had begun.
    pub async fn report_recording_failed(&self, call_id: &str) -> Result<(), RecordingError> {
        self.report(call_id, RecordingStatusReport::Failed).await
    }

    async fn report(
        &self,
        call_id: &str,
        status: RecordingStatusReport,
    ) -> Result<(), RecordingError> {
        let (ctx, route) = {
            let inner = self.inner.lock().await;
            let leg = inner
                .legs
                .get(call_id)
                .ok_or_else(|| RecordingError::UnknownCall(call_id.to_owned()))?;
            if leg.state.is_over() {
                return Err(RecordingError::CallEnded(call_id.to_owned()));
            }
            (
                CallContext {
                    call_id: call_id.to_owned(),
                    directory_tenant_id: leg.directory_tenant.clone(),
                },
                leg.route,
            )
        };
        self.control(route)
            .update_recording_status(&ctx, status, Instant::now() + self.cfg.status_timeout)
            .await?;
        if let Some(leg) = self.inner.lock().await.legs.get_mut(call_id) {
            leg.reported = Some(status);
        }
        tracing::info!(%call_id, status = status.as_str(), "recording status reported");
        Ok(())
    }

    /// A live call leg with its roster, for the media side (active-speaker
    /// ids → participants).
    pub async fn call_info(&self, call_id: &str) -> Option<CallInfo> {
        let inner = self.inner.lock().await;
        let leg = inner.legs.get(call_id)?;
        let rec = inner.recordings.get(&leg.recording_id)?;
        Some(CallInfo {
            call_id: call_id.to_owned(),
            tenant_id: leg.tenant,
            recording_id: leg.recording_id,
            state: leg.state,
            answered: leg.answer == AnswerState::Answered,
            reported_status: leg.reported,
            participants: rec
                .roster
                .iter()
                .map(|e| RosterMember {
                    participant_id: e.participant_id,
                    role: e.role,
                    recorded_user: e.recorded,
                    graph_participant_ids: e.graph_ids.clone(),
                    audio_source_ids: e.audio_source_ids.clone(),
                    present: e.present,
                    joined_ms: e.joined_ms,
                    left_ms: e.left_ms,
                })
                .collect(),
        })
    }

    /// Number of live call legs.
    pub async fn active_calls(&self) -> usize {
        self.inner.lock().await.legs.len()
    }
}

/// What the media side holds while it may persist a call's media.
pub struct RecordingHandle {
    registry: Arc<CallRegistry>,
    pub call_id: String,
    pub tenant_id: TenantId,
    pub recording_id: RecordingId,
}

impl RecordingHandle {
    /// Recording cannot go on: reports `failed`.
    pub async fn fail(&self) -> Result<(), RecordingError> {
        self.registry
            .report(&self.call_id, RecordingStatusReport::Failed)
            .await
    }

    /// Recording stopped while the call goes on: reports `notRecording`
    /// (call this only after the last media byte is persisted).
    pub async fn stop(&self) -> Result<(), RecordingError> {
        self.registry
            .report(&self.call_id, RecordingStatusReport::NotRecording)
            .await
    }
}

fn entry(
    p: &insights_core::domain::Participant,
    keys: Vec<String>,
    graph_id: Option<String>,
    joined_ms: i64,
) -> RosterEntry {
    RosterEntry {
        participant_id: p.id,
        role: p.role,
        recorded: p.recorded_user,
        keys,
        graph_ids: graph_id.into_iter().collect(),
        audio_source_ids: Vec::new(),
        present: true,
        joined_ms,
        left_ms: None,
    }
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

fn gauge_active(inner: &Inner) {
    metrics::gauge!(CALL_LEGS_METRIC).set(inner.legs.len() as f64);
}

/// What the store learns about a participant during the call.
struct Presence {
    tenant: TenantId,
    recording: RecordingId,
    participant: ParticipantId,
    recorded: bool,
    left_ms: Option<i64>,
}

/// Marks a roster member as gone in memory (for the media side,
/// [`CallRegistry::call_info`]); returns the change for the store.
fn mark_left(
    inner: &mut Inner,
    call_id: &str,
    graph_id: Option<&str>,
    keys: &[String],
) -> Option<Presence> {
    let leg = inner.legs.get(call_id)?;
    let rec = inner.recordings.get_mut(&leg.recording_id)?;
    let offset = rec.offset_ms();
    let i = rec.find_entry(graph_id, keys)?;
    let e = &mut rec.roster[i];
    if !e.present {
        return None;
    }
    e.present = false;
    e.left_ms = Some(offset);
    tracing::debug!(%call_id, participant_id = %e.participant_id, at_ms = offset, "participant left");
    Some(Presence {
        tenant: rec.tenant,
        recording: rec.id,
        participant: e.participant_id,
        recorded: e.recorded,
        left_ms: Some(offset),
    })
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
