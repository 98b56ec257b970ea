//! A leg's life: state updates (never regress, ignore replays), the
//! end of a leg and of its recording, replays of ended calls, and a
//! call resumed from the store after a restart.

use insights_core::domain::{RecordingStatus, now};
use insights_core::store::{StoreError, StoreResult};

use super::claims::LegRole;
use super::roster::entry;
use super::{
    AnswerState, CallRegistry, FOREIGN_NOTIFICATIONS_METRIC, Inner, Leg, LiveRecording, Presence,
    RECENT_ENDED, RecentIds,
};
use crate::auth::VerifiedToken;
use crate::calls::parties::Party;
use crate::calls::state::CallState;
use crate::graph::model::CallResource;

impl RecentIds {
    pub(super) fn insert(&mut self, id: &str) {
        if self.set.insert(id.to_owned()) {
            self.order.push_back(id.to_owned());
            while self.order.len() > RECENT_ENDED {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
    pub(super) fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }
}

impl CallRegistry {
    pub(super) async fn call_updated(
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
    pub(super) async fn end_leg(
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
            // A leg without a live recording (the policy excluded the
            // call, or admission refused it): nothing more to store.
            inner.legs.remove(call_id);
            inner.ended.insert(call_id);
            return Ok(());
        };
        if rec.is_unstored() {
            // A standby that never took over: nothing of it is stored.
            tracing::info!(%call_id, %recording_id, "standby leg ended; the meeting's recording is another leg's");
            if let Some(rec) = inner.recordings.remove(&recording_id) {
                for l in rec.legs {
                    inner.legs.remove(&l);
                    inner.ended.insert(&l);
                }
            }
            inner.legs.remove(call_id);
            inner.ended.insert(call_id);
            return Ok(());
        }
        self.flush_pending(rec, true).await?;
        let ended_at = now();
        let left = rec.offset_ms();
        let unstored = rec.is_unstored();
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
                unstored,
            });
        }
        for p in gone {
            self.persist_presence(p).await;
        }
        let current = self.store.get_recording(rec.tenant, rec.id).await?.status;
        // Never regress what the media side has already moved on
        // (spooled/stored). A call that never got as far as recording is
        // a failed recording; the result code says why. The uploader may
        // store the recording between the read above and the write below:
        // the store keeps the later status then (the status only moves
        // forward), so the status logged is the one read back.
        let asked = status_at_end(current, rec.media_began);
        self.store
            .update_recording_status(
                rec.tenant,
                rec.id,
                asked,
                Some(ended_at),
                result_code.as_deref(),
            )
            .await?;
        let status = self.store.get_recording(rec.tenant, rec.id).await?.status;
        if status != asked {
            tracing::info!(%call_id, %recording_id, asked = asked.as_str(), kept = status.as_str(), "late call end: the recording keeps its later status");
        }
        tracing::info!(%call_id, %recording_id, status = status.as_str(), result_code = result_code.as_deref().unwrap_or("-"), "recording ended");
        if let Some(rec) = inner.recordings.remove(&recording_id) {
            if let Some(link) = &rec.meeting
                && matches!(link.role, LegRole::Primary { .. })
            {
                // Released: a standby still in the meeting continues it.
                if let Err(e) = self
                    .store
                    .release_meeting_claim(rec.tenant, &link.chain_key, &link.holder)
                    .await
                {
                    tracing::warn!(%recording_id, error = %e, "cannot release the meeting claim; it lapses with its lease");
                }
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

    /// Whether `call_id` is a live leg, rehydrating it from the store if
    /// this process does not know it (a restart mid-call).
    pub(super) async fn known(
        &self,
        inner: &mut Inner,
        token: &VerifiedToken,
        call_id: &str,
    ) -> StoreResult<bool> {
        if let Some(leg) = inner.legs.get(call_id) {
            if leg.route != token.issuer || leg.creator_tid != token.directory_tenant_id {
                // Another tenant (or the simulator) naming a live call:
                // never applied, and counted so it shows in monitoring.
                metrics::counter!(FOREIGN_NOTIFICATIONS_METRIC).increment(1);
                tracing::warn!(
                    %call_id,
                    route = ?token.issuer,
                    "notification for a call created by another route or tenant: ignored"
                );
                return Ok(false);
            }
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
            // A leg resumed after a restart holds no claim (the old node's
            // lapses; a standby may continue the meeting meanwhile).
            meeting: None,
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
        inner.legs.insert(
            call_id.to_owned(),
            Leg {
                tenant,
                directory_tenant: directory_tenant.to_string(),
                recording_id: rec.id,
                route: token.issuer,
                creator_tid: token.directory_tenant_id,
                state: CallState::Established,
                answer: AnswerState::Answered,
                reported: None,
                recorded_users: 1,
                unrecorded: None,
                failure_raised: false,
            },
        );
        tracing::info!(%call_id, recording_id = %rec.id, "resumed a call known from the store");
        inner.recordings.insert(rec.id, rec);
        Ok(true)
    }
}

/// The status a recording ends with: what the media side has moved it to
/// (spooled, stored) is never regressed; one that never got as far as
/// recording media is a failed recording (the result code says why).
fn status_at_end(current: RecordingStatus, media_began: bool) -> RecordingStatus {
    match current {
        RecordingStatus::Recording if !media_began => RecordingStatus::Failed,
        s => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_ends_failed_only_if_media_never_began() {
        use RecordingStatus::*;
        assert_eq!(status_at_end(Recording, false), Failed);
        assert_eq!(status_at_end(Recording, true), Recording);
        for s in [Spooled, Stored, Failed] {
            assert_eq!(status_at_end(s, false), s, "never regressed");
        }
    }

    #[test]
    fn ended_calls_are_remembered_up_to_a_bound() {
        let mut ended = RecentIds::default();
        ended.insert("first");
        ended.insert("first");
        assert_eq!(ended.order.len(), 1, "inserted once");
        for i in 0..RECENT_ENDED {
            ended.insert(&format!("call-{i}"));
        }
        assert!(!ended.contains("first"), "the oldest is forgotten");
        assert!(ended.contains("call-0") && ended.contains(&format!("call-{}", RECENT_ENDED - 1)));
        assert_eq!(ended.set.len(), RECENT_ENDED);
    }
}
