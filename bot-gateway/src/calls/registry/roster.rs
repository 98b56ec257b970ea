//! The roster: who is in the call, stored once, recognised again by
//! Graph participant id or identity keys; leaves, rejoins and audio
//! source ids for the media side.

use insights_core::domain::{Participant, ParticipantId, ParticipantRole, RecordingKind, now};
use insights_core::store::StoreResult;

use super::{CallRegistry, Inner, InviteParty, LiveRecording, Presence, RosterEntry, push_unique};
use crate::auth::VerifiedToken;
use crate::calls::parties::Party;
use crate::calls::state::CallState;
use crate::graph::model::ParticipantResource;

impl LiveRecording {
    pub(super) fn offset_ms(&self) -> i64 {
        (now() - self.started_at).num_milliseconds().max(0)
    }

    pub(super) fn find_entry(&self, graph_id: Option<&str>, keys: &[String]) -> Option<usize> {
        self.roster.iter().position(|e| {
            graph_id.is_some_and(|g| e.graph_ids.iter().any(|x| x == g))
                || e.keys.iter().any(|k| keys.contains(k))
        })
    }

    /// Whether the invite party is already one of our recorded users.
    pub(super) fn knows_recorded(&self, ip: &InviteParty) -> bool {
        let keys = ip.party.as_ref().map(|p| p.keys.as_slice()).unwrap_or(&[]);
        self.find_entry(ip.graph_id.as_deref(), keys)
            .is_some_and(|i| self.roster[i].recorded)
            || self
                .find_pending(ip.graph_id.as_deref(), keys)
                .is_some_and(|i| self.pending[i].recorded)
    }

    pub(super) fn find_pending(&self, graph_id: Option<&str>, keys: &[String]) -> Option<usize> {
        self.pending.iter().position(|p| {
            graph_id.is_some_and(|g| p.graph_id.as_deref() == Some(g)) || p.party.same_as(keys)
        })
    }
}

impl CallRegistry {
    /// Resolves and stores one party (unless it turns out to be stored).
    pub(super) async fn store_party(
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
        if rec.is_unstored() {
            // A standby's recording is stored only if it takes over: the
            // participant waits with it (under the id its media uses).
            let p = party.participant(role, recorded, joined);
            rec.roster
                .push(entry(&p, party.keys.clone(), graph_id, joined));
            if let Some(standby) = rec.standby_mut() {
                standby.shadow.push((p, party));
            }
            return Ok(rec.roster.len() - 1);
        }
        let p = party.participant(role, recorded, joined);
        let oid = party.directory_object_id(&rec.directory_tenant);
        // Atomic in the store: another leg of a meeting (on this node or
        // another) may be storing the same person right now.
        let kept = self
            .store
            .add_participant_once(rec.tenant, rec.id, &p, oid)
            .await?;
        if kept.id != p.id {
            // Stored already (by another leg, or before a restart under
            // keys we no longer recognise): that row is theirs.
            let i = match rec.roster.iter().position(|e| e.participant_id == kept.id) {
                Some(i) => i,
                None => {
                    rec.roster
                        .push(entry(&kept, Vec::new(), None, kept.joined_ms.unwrap_or(0)));
                    rec.roster.len() - 1
                }
            };
            let e = &mut rec.roster[i];
            e.recorded |= kept.recorded_user;
            for k in party.keys {
                push_unique(&mut e.keys, k);
            }
            if let Some(g) = graph_id {
                push_unique(&mut e.graph_ids, g);
            }
            tracing::debug!(recording_id = %rec.id, participant_id = %kept.id, "participant stored already: adopted");
            return Ok(i);
        }
        tracing::debug!(recording_id = %rec.id, participant_id = %p.id, role = role.as_str(), recorded, "participant stored");
        rec.roster.push(entry(&p, party.keys, graph_id, joined));
        Ok(rec.roster.len() - 1)
    }

    /// Stores waiting parties: all of them, or only those we can identify.
    pub(super) async fn flush_pending(
        &self,
        rec: &mut LiveRecording,
        all: bool,
    ) -> StoreResult<()> {
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
    pub(super) async fn persist_presence(&self, p: Presence) {
        if p.unstored {
            return;
        }
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

    pub(super) async fn roster(
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
            let audio = audio_source_ids(&p);
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
                            let role = new_member_role(&party, rec, redirecting);
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
                let unstored = rec.is_unstored();
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
                        unstored,
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
}

pub(super) fn entry(
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

/// Points the roster entry stored as `old` at the row the store kept for
/// that person instead (see `add_participant_once`).
pub(super) fn repoint(rec: &mut LiveRecording, old: ParticipantId, kept: &Participant) {
    for e in rec.roster.iter_mut().filter(|e| e.participant_id == old) {
        e.participant_id = kept.id;
        e.role = kept.role;
        e.recorded |= kept.recorded_user;
    }
}

/// Marks a roster member as gone in memory (for the media side,
/// [`CallRegistry::call_info`]); returns the change for the store.
pub(super) fn mark_left(
    inner: &mut Inner,
    call_id: &str,
    graph_id: Option<&str>,
    keys: &[String],
) -> Option<Presence> {
    let leg = inner.legs.get(call_id)?;
    let rec = inner.recordings.get_mut(&leg.recording_id)?;
    let offset = rec.offset_ms();
    let unstored = rec.is_unstored();
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
        unstored,
    })
}

/// The role of someone the roster shows for the first time: the
/// meeting's organizer, the party a 1:1 call is being transferred or
/// redirected to, or an attendee.
fn new_member_role(party: &Party, rec: &LiveRecording, redirecting: bool) -> ParticipantRole {
    if party.same_as(&rec.organizer_keys) {
        ParticipantRole::Organizer
    } else if rec.kind == RecordingKind::Call && redirecting {
        ParticipantRole::RedirectedTo
    } else {
        ParticipantRole::Attendee
    }
}

/// The `sourceId`s of a roster member's audio streams.
fn audio_source_ids(p: &ParticipantResource) -> Vec<String> {
    p.media_streams
        .iter()
        .filter(|s| {
            s.media_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("audio"))
        })
        .filter_map(|s| s.source_id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use insights_core::domain::{ParticipantId, RecordingId, TenantId};

    use super::*;
    use crate::auth::TokenIssuer;
    use crate::calls::registry::{AnswerState, Leg, PendingParty};

    fn party(keys: &[&str]) -> Party {
        Party {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            ..Party::default()
        }
    }

    fn member(keys: &[&str], graph_id: &str, recorded: bool) -> RosterEntry {
        RosterEntry {
            participant_id: ParticipantId::new(),
            role: ParticipantRole::Attendee,
            recorded,
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            graph_ids: vec![graph_id.to_owned()],
            audio_source_ids: Vec::new(),
            present: true,
            joined_ms: 0,
            left_ms: None,
        }
    }

    fn recording(kind: RecordingKind) -> LiveRecording {
        LiveRecording {
            tenant: TenantId::new(),
            directory_tenant: "t".into(),
            id: RecordingId::new(),
            kind,
            started_at: now(),
            meeting: None,
            legs: vec!["leg-1".into()],
            roster: vec![
                member(&["aad:rita"], "g-rita", true),
                member(&["tel:+442079460958"], "g-pstn", false),
            ],
            pending: vec![PendingParty {
                party: party(&["aad:olga"]),
                graph_id: None,
                role: ParticipantRole::Organizer,
                recorded: false,
            }],
            organizer_keys: vec!["aad:olga".into()],
            media_began: false,
        }
    }

    #[test]
    fn members_are_recognised_by_graph_id_or_identity_key() {
        let rec = recording(RecordingKind::Meeting);
        assert_eq!(rec.find_entry(Some("g-pstn"), &[]), Some(1));
        assert_eq!(rec.find_entry(None, &["aad:rita".into()]), Some(0));
        assert_eq!(rec.find_entry(Some("g-new"), &["aad:new".into()]), None);
        assert_eq!(rec.find_pending(None, &["aad:olga".into()]), Some(0));
        let invited = |keys: &[&str], recorded| InviteParty {
            party: Some(party(keys)),
            graph_id: None,
            role: ParticipantRole::Attendee,
            recorded,
        };
        assert!(rec.knows_recorded(&invited(&["aad:rita"], true)));
        assert!(!rec.knows_recorded(&invited(&["tel:+442079460958"], true)));
        assert!(!rec.knows_recorded(&invited(&["aad:olga"], true)));
    }

    #[test]
    fn first_seen_members_get_their_role() {
        let meeting = recording(RecordingKind::Meeting);
        assert_eq!(
            new_member_role(&party(&["aad:olga"]), &meeting, false),
            ParticipantRole::Organizer
        );
        assert_eq!(
            new_member_role(&party(&["aad:x"]), &meeting, true),
            ParticipantRole::Attendee,
            "no redirect in a meeting"
        );
        let call = recording(RecordingKind::Call);
        assert_eq!(
            new_member_role(&party(&["aad:x"]), &call, true),
            ParticipantRole::RedirectedTo
        );
        assert_eq!(
            new_member_role(&party(&["aad:x"]), &call, false),
            ParticipantRole::Attendee
        );
    }

    #[test]
    fn only_audio_source_ids_are_kept() {
        let p: ParticipantResource = serde_json::from_value(serde_json::json!({
            "mediaStreams": [
                {"mediaType": "Audio", "sourceId": "1"},
                {"mediaType": "video", "sourceId": "2"},
                {"mediaType": "audio"},
            ]
        }))
        .unwrap_or_default();
        assert_eq!(audio_source_ids(&p), vec!["1".to_owned()]);
    }

    #[test]
    fn a_leave_is_reported_once() {
        let rec = recording(RecordingKind::Meeting);
        let (rid, tenant) = (rec.id, rec.tenant);
        let mut inner = Inner::default();
        inner.recordings.insert(rid, rec);
        inner.legs.insert(
            "leg-1".into(),
            Leg {
                tenant,
                directory_tenant: "t".into(),
                recording_id: rid,
                route: TokenIssuer::Simulator,
                creator_tid: None,
                state: CallState::Established,
                answer: AnswerState::Answered,
                reported: None,
                recorded_users: 1,
                unrecorded: None,
                failure_raised: false,
            },
        );
        let left = mark_left(&mut inner, "leg-1", Some("g-pstn"), &[]);
        let left = left.map(|p| (p.recording, p.recorded, p.left_ms.is_some()));
        assert_eq!(left, Some((rid, false, true)));
        assert!(
            mark_left(&mut inner, "leg-1", Some("g-pstn"), &[]).is_none(),
            "already gone"
        );
        assert!(mark_left(&mut inner, "leg-1", Some("g-unknown"), &[]).is_none());
        assert!(mark_left(&mut inner, "other-leg", Some("g-rita"), &[]).is_none());
        let present: Vec<bool> = inner.recordings[&rid]
            .roster
            .iter()
            .map(|e| e.present)
            .collect();
        assert_eq!(present, vec![true, false]);
    }
}
