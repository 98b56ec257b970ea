//! Live calls and their recordings: what each Graph notification does.
//!
//! # Notification flow
//!
//! Graph Communications posts batches of `commsNotification`s to the
//! webhook. After the token is validated, the whole batch is decoded
//! (the `events` module) and then applied in order under one lock by the
//! [`CallRegistry`]:
//!
//! * **invite** (`created` on `/communications/calls/{id}`): only
//!   policy-based recording invites (`applicationMetadata.botData.
//!   inviteReasons` contains `PolicyBasedRecording`) are taken. The Entra
//!   tenant (`tenantId`, else the token's `tid`) is mapped to our tenant
//!   with `tenant_by_directory_id`; an unknown tenant's call is **not
//!   answered** (ids logged, 202 returned so Graph does not retry; with a
//!   strict recording policy Teams then does not connect the call, which is
//!   the compliant outcome). The recorded user is the invite's `source`
//!   (the observed participant, `incomingContext.observedParticipantId`),
//!   the other side comes from `botData.otherSideUser`, the organizer from
//!   `meetingInfo`, a transferor (`incomingContext.transferor`) or the
//!   forwarding party of a `forwarded` call route is *redirected-by*, and
//!   `incomingContext.onBehalfOf` makes the recorded user *answered-by* and
//!   that identity the *callee*. One recording is inserted with the
//!   recorded user(s); the answer is then sent from a spawned task within
//!   `gateway.answer_timeout_ms` of the invite's arrival (Microsoft: 5 s).
//! * **the same call or meeting again**: every invite with a
//!   `callChainId` (else `chatInfo.threadId`) claims that chain key for its
//!   tenant in the metadata store (`MeetingClaimStore`, atomic, shared by
//!   every gateway node). The first leg's recording is the meeting's; any
//!   later leg, on this node or another, is a *standby*: answered and
//!   reported `recording` too, its recorded user stored on the meeting's
//!   recording (entitled to it), nothing duplicated, its own media held in
//!   memory until it takes over from a lost primary (see the registry's
//!   `claims` module). With participant
//!   capacity > 1, later recorded users arrive instead as a
//!   *participant-joining* notification on the existing call; they are
//!   added the same way and accepted (`acceptJoinResponse` in the response
//!   body) until the capacity is reached (`rejectJoinResponse`, reason
//!   `busy`: Graph then invites a bot anew, which joins by chain id). The
//!   recording policy in force decides for them as at an invite: one it
//!   excludes is refused `busy` too, and the new bot's invite is then
//!   answered `notRecording`.
//! * **state updates** (`updated` on the call): see [`state`]; never
//!   regress, ignore replays.
//! * **roster** (`…/participants`, `…/participants/{id}`): new people are
//!   stored once (recognised by Graph participant id, Entra object id,
//!   phone number or directory user), as *attendee* — *organizer* if they
//!   are the meeting's organizer, *redirected-to* if a 1:1 call is being
//!   transferred or redirected. Leaves (`deleted`, `removedState`) and
//!   rejoins are tracked for the media side ([`CallRegistry::call_info`])
//!   and stored (`left_ms`, cleared by a rejoin; everyone still present
//!   leaves when the call ends); a stored party who turns out to be a
//!   policy-recorded user is marked as one; bots
//!   (application identities, other recorders) are skipped. Audio
//!   `sourceId`s are kept per member so the media side can map
//!   active-speaker ids to participants.
//! * **end** (`deleted` on the call, or state `terminated`): the leg ends;
//!   with its last leg the recording ends: `ended_at` and the result code
//!   (`resultInfo` as `code/subcode`; the message may hold personal data
//!   and is neither logged nor stored) are stored. A recording that never
//!   began recording media ends `failed`; otherwise its status stays where
//!   the media side has taken it.
//!
//! Parties other than recorded users are stored when the roster shows
//! them (with their full identity: invites name people by id only), after
//! the first roster update if the roster did not name them but we can
//! identify them, or at the latest when the call ends. Participants cannot
//! be updated once stored, so waiting for the roster keeps their names,
//! and keeps a person who turns out to be a second recorded user (both
//! sides of an internal call under policy, whose invites arrive before the
//! roster) from being stored first as not recorded.
//!
//! A notification naming a live call is applied only when its token comes
//! from the route (Microsoft or the simulator) and the `tid` that created
//! the call; anything else is ignored and counted
//! (`insights_gateway_foreign_notifications_total`), so one customer's
//! tenant (or the local simulator) can never end, re-state or add people
//! to another's call.
//!
//! Every step is idempotent: replayed notifications change nothing, a
//! batch that failed on the store (503) can be replayed, and after a
//! restart a call known from the store is resumed from its recording.
//!
//! # The media side
//!
//! [`CallRegistry::begin_recording`] reports `recording` through
//! `updateRecordingStatus` and returns a [`RecordingHandle`] only once
//! Graph acknowledged it: no media may be persisted before.
//! [`RecordingHandle::fail`] / [`CallRegistry::recording_cannot_proceed`]
//! report what the tenant's failure mode says (`required`: `failed`;
//! `best-effort`: `notRecording`, and the `recording-failure` alert),
//! [`RecordingHandle::stop`] `notRecording`.
//!
//! # Recording policy
//!
//! Before anything of an invite is stored, the tenant's recording policy
//! decides ([`insights_core::domain::decide_recording`], from the parties
//! the invite names and their synced directory users). A call it
//! excludes is answered and reported `notRecording`; it gets no
//! recording, no claim and no spool entry, its media is refused
//! (`not-recorded`), and the decision is audited with the rule that made
//! it (see the registry's `policy` module).
//!
//! # Metrics
//!
//! `insights_gateway_notifications_total{kind}` (notifications applied),
//! `insights_gateway_answers_total{outcome}` (`answered`, `failed`) and the
//! gauge `insights_gateway_call_legs_active`: call legs the registry
//! handles (invited or answered, not ended; a call joined by two bot legs
//! counts twice). Calls whose media is being captured are the spool's
//! `insights_calls_active`. The webhook counts refused callbacks as
//! `insights_gateway_auth_failures_total{code}`.

pub(crate) mod events;
mod parties;
mod registry;
pub mod state;

pub use registry::{
    AdmitAll, CallAdmission, CallInfo, CallRegistry, FAILURES_METRIC, FailureReason,
    MediaConfigSource, PRIMARY_LEG_ENDED, REPLAY_LEAD, RecordingError, RecordingHandle,
    RegistryConfig, RosterMember, STANDBY_BUFFER, StandbyState, StaticMediaConfig, Unrecorded,
};
pub use state::CallState;
