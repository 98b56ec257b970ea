//! The live calls and their recordings; see the module docs of
//! [`crate::calls`] for the flow.
//!
//! This module holds the registry's state (legs, live recordings, their
//! rosters) and applies a batch of notifications; what each kind does is
//! in `invites` (invites, answers, joining users), `roster` (who is in
//! the call), `lifecycle` (state updates, the end of a leg, a call
//! resumed after a restart) and `media` (what the media side asks and
//! reports). Decisions that need no I/O are plain functions there, unit
//! tested next to them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::domain::{ParticipantId, ParticipantRole, RecordingId, RecordingKind, TenantId};
use insights_core::store::{MetadataStore, StoreResult};
use tokio::sync::Mutex;
use tokio::time::Instant;
use uuid::Uuid;

use super::events::Event;
use super::parties::Party;
use super::state::CallState;
use crate::auth::{TokenIssuer, VerifiedToken};
use crate::graph::model::{ParticipantJoiningResponse, RecordingStatusReport};
use crate::graph::{CallContext, CallControl, GraphError};

mod claims;
mod invites;
mod lifecycle;
mod media;
mod policy;
mod roster;

use self::roster::mark_left;

pub use self::claims::{PRIMARY_LEG_ENDED, REPLAY_LEAD, STANDBY_BUFFER};
pub use self::media::{RecordingHandle, StandbyState};
use self::policy::AfterAnswer;
pub use self::policy::{FAILURES_METRIC, FailureReason, Unrecorded};

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
/// Notifications naming a live call that another route or tenant created
/// (ignored).
const FOREIGN_NOTIFICATIONS_METRIC: &str = "insights_gateway_foreign_notifications_total";

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
    /// A standby leg of a meeting another leg records (see
    /// [`CallRegistry::standby_state`]).
    pub standby: bool,
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
    /// Who created the leg: its notifications are accepted only from the
    /// same route (Microsoft or the simulator) and the same `tid`.
    route: TokenIssuer,
    creator_tid: Option<Uuid>,
    state: CallState,
    answer: AnswerState,
    reported: Option<RecordingStatusReport>,
    /// Policy-recorded users this leg took (invite + accepted joins).
    recorded_users: u32,
    /// The leg records nothing (the policy excludes the call, or it was
    /// refused at the invite): it has no live recording and its media is
    /// refused.
    unrecorded: Option<Unrecorded>,
    /// The `recording-failure` alert was raised for this leg.
    failure_raised: bool,
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
    /// The meeting claim (see [`claims`]): this recording's leg holds it
    /// (the primary) or waits on it (a standby). None: no call chain.
    meeting: Option<claims::MeetingLink>,
    legs: Vec<String>,
    roster: Vec<RosterEntry>,
    pending: Vec<PendingParty>,
    organizer_keys: Vec<String>,
    /// `updateRecordingStatus(recording)` was acknowledged for some leg.
    media_began: bool,
}

#[derive(Default)]
struct RecentIds {
    set: HashSet<String>,
    order: VecDeque<String>,
}

#[derive(Default)]
struct Inner {
    legs: HashMap<String, Leg>,
    recordings: HashMap<RecordingId, LiveRecording>,
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
    /// What follows a successful answer.
    then: AfterAnswer,
}

/// One party of an invite and what to do with them.
struct InviteParty {
    party: Option<Party>,
    graph_id: Option<String>,
    role: ParticipantRole,
    recorded: bool,
}

/// What the store learns about a participant during the call.
struct Presence {
    tenant: TenantId,
    recording: RecordingId,
    participant: ParticipantId,
    recorded: bool,
    left_ms: Option<i64>,
    /// The recording is a standby's, not stored (yet): nothing to write.
    unstored: bool,
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
    /// This process as a holder of meeting claims (a node id, new at
    /// every start: a restarted node holds nothing it held before).
    node_id: String,
    /// The lease heartbeat runs (started with the first batch).
    heartbeat: std::sync::atomic::AtomicBool,
    /// The node is stopping ([`CallRegistry::shutdown`]).
    shutting_down: std::sync::atomic::AtomicBool,
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
            node_id: Uuid::new_v4().to_string(),
            heartbeat: std::sync::atomic::AtomicBool::new(false),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
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
        self.start_heartbeat();
        for job in jobs {
            let me = Arc::clone(self);
            tokio::spawn(async move { me.run_answer(job).await });
        }
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
