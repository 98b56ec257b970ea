//! The media side: recording status reported to Graph before any media
//! is persisted, the handle the media side holds, and what it can ask
//! about a live call.

use std::sync::Arc;

use insights_core::domain::{FailureMode, RecordingId, TenantId};
use tokio::time::Instant;

use super::{
    AnswerState, CallInfo, CallRegistry, FailureReason, Inner, RecordingError, RosterMember,
};
use crate::auth::TokenIssuer;
use crate::graph::CallContext;
use crate::graph::model::RecordingStatusReport;

impl CallRegistry {
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
            let leg = media_leg(&inner, call_id, true)?;
            (leg.ctx, leg.route, leg.tenant, leg.recording_id)
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
        let mut standby = false;
        if let Some(rec) = inner.recordings.get_mut(&recording_id) {
            rec.media_began = true;
            standby = rec.is_unstored();
        }
        tracing::info!(%call_id, %recording_id, standby, "recording status reported; media may be persisted");
        Ok(RecordingHandle {
            registry: Arc::clone(self),
            call_id: call_id.to_owned(),
            tenant_id: tenant,
            recording_id,
            standby,
        })
    }

    pub(super) async fn report(
        &self,
        call_id: &str,
        status: RecordingStatusReport,
    ) -> Result<(), RecordingError> {
        let (ctx, route) = {
            let inner = self.inner.lock().await;
            let leg = media_leg(&inner, call_id, false)?;
            (leg.ctx, leg.route)
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
            standby: rec.is_unstored(),
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

    /// Whether a standby leg's media may be persisted now: once its leg
    /// took the meeting over, its recording is stored and starts at
    /// `started_at` (the media side replays what it holds from there).
    pub async fn standby_state(&self, call_id: &str) -> StandbyState {
        let inner = self.inner.lock().await;
        let Some(leg) = inner.legs.get(call_id).filter(|l| !l.state.is_over()) else {
            return StandbyState::Gone;
        };
        match inner.recordings.get(&leg.recording_id) {
            Some(rec) if rec.is_unstored() => StandbyState::Standby,
            Some(rec) => StandbyState::Promoted {
                started_at: rec.started_at,
            },
            None => StandbyState::Gone,
        }
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
    /// A standby leg of a meeting another leg records: its media is held
    /// in memory, not persisted, until [`CallRegistry::standby_state`]
    /// says it took over.
    pub standby: bool,
}

/// A standby leg as the media side sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StandbyState {
    /// Another leg records the meeting.
    Standby,
    /// This leg took the meeting over: its recording (stored now) starts
    /// at `started_at`.
    Promoted {
        started_at: chrono::DateTime<chrono::Utc>,
    },
    /// The leg is over.
    Gone,
}

impl RecordingHandle {
    /// Recording cannot go on: reports what the tenant's failure mode
    /// says (`failed` or `notRecording`) and raises the alert (see
    /// [`CallRegistry::recording_cannot_proceed`]).
    pub async fn fail(&self, reason: FailureReason) -> Result<FailureMode, RecordingError> {
        self.registry
            .recording_cannot_proceed(&self.call_id, reason)
            .await
    }

    /// Recording could not start (nothing was persisted: e.g. the spool
    /// refused the entry because the tenant's key is revoked): like
    /// [`fail`](Self::fail), and marks the recording as never begun, so
    /// that it ends `failed` in the store rather than staying `recording`.
    pub async fn fail_before_media(
        &self,
        reason: FailureReason,
    ) -> Result<FailureMode, RecordingError> {
        if let Some(rec) = self
            .registry
            .inner
            .lock()
            .await
            .recordings
            .get_mut(&self.recording_id)
        {
            rec.media_began = false;
        }
        self.fail(reason).await
    }

    /// Recording stopped while the call goes on: reports `notRecording`
    /// (call this only after the last media byte is persisted).
    pub async fn stop(&self) -> Result<(), RecordingError> {
        self.registry
            .report(&self.call_id, RecordingStatusReport::NotRecording)
            .await
    }

    /// A pause or resume of the live recording: reports `notRecording`
    /// (`recording: false`, after the media side stopped writing) or
    /// `recording` (media may be written again once this returns `Ok`)
    /// from a task of its own, so the media connection keeps being read
    /// while Graph answers.
    pub fn report_pause(
        &self,
        recording: bool,
    ) -> tokio::task::JoinHandle<Result<(), RecordingError>> {
        let registry = Arc::clone(&self.registry);
        let call_id = self.call_id.clone();
        let status = if recording {
            RecordingStatusReport::Recording
        } else {
            RecordingStatusReport::NotRecording
        };
        tokio::spawn(async move { registry.report(&call_id, status).await })
    }
}

/// What the media side needs of a leg to report a recording status.
struct MediaLeg {
    ctx: CallContext,
    route: TokenIssuer,
    tenant: TenantId,
    recording_id: RecordingId,
}

/// Whether the media side may report a status for `call_id` now: the leg
/// must be live, and answered to begin recording (`require_answer`).
fn media_leg(
    inner: &Inner,
    call_id: &str,
    require_answer: bool,
) -> Result<MediaLeg, RecordingError> {
    let leg = inner
        .legs
        .get(call_id)
        .ok_or_else(|| RecordingError::UnknownCall(call_id.to_owned()))?;
    if leg.state.is_over() {
        return Err(RecordingError::CallEnded(call_id.to_owned()));
    }
    if require_answer && leg.answer != AnswerState::Answered {
        return Err(RecordingError::NotAnswered(call_id.to_owned()));
    }
    Ok(MediaLeg {
        ctx: CallContext {
            call_id: call_id.to_owned(),
            directory_tenant_id: leg.directory_tenant.clone(),
        },
        route: leg.route,
        tenant: leg.tenant,
        recording_id: leg.recording_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::registry::Leg;
    use crate::calls::state::CallState;

    fn inner_with(state: CallState, answer: AnswerState) -> (Inner, RecordingId) {
        let rid = RecordingId::new();
        let mut inner = Inner::default();
        inner.legs.insert(
            "leg".into(),
            Leg {
                tenant: TenantId::new(),
                directory_tenant: "dir-tenant".into(),
                recording_id: rid,
                route: TokenIssuer::Microsoft,
                creator_tid: None,
                state,
                answer,
                reported: None,
                recorded_users: 1,
                unrecorded: None,
                failure_raised: false,
            },
        );
        (inner, rid)
    }

    #[test]
    fn media_may_begin_only_on_a_live_answered_leg() {
        let (inner, rid) = inner_with(CallState::Established, AnswerState::Answered);
        let leg =
            media_leg(&inner, "leg", true).map(|l| (l.recording_id, l.ctx.directory_tenant_id));
        assert_eq!(leg.ok(), Some((rid, "dir-tenant".to_owned())));
        assert!(matches!(
            media_leg(&inner, "nope", true),
            Err(RecordingError::UnknownCall(_))
        ));
        let (pending, _) = inner_with(CallState::Establishing, AnswerState::Pending);
        assert!(matches!(
            media_leg(&pending, "leg", true),
            Err(RecordingError::NotAnswered(_))
        ));
        assert!(
            media_leg(&pending, "leg", false).is_ok(),
            "a status (failed) may be reported before the answer"
        );
        let (over, _) = inner_with(CallState::Terminated, AnswerState::Answered);
        assert!(matches!(
            media_leg(&over, "leg", false),
            Err(RecordingError::CallEnded(_))
        ));
    }
}
