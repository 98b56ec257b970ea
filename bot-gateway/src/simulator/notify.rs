//! The `commsNotifications` the simulator posts, in the shapes Microsoft
//! documents and the webhook parses (`call-answer.md` example 3 for the
//! policy-recording invite, `commsNotification`, `participant`,
//! `resultInfo`).

use serde_json::{Value, json};

use super::{Identity, Party};

/// The bot's own application id in the invite's `targets` and the roster.
/// Any id works: application identities are never stored as parties.
const BOT_APP_ID: &str = "6c1f4b5a-1d0e-4a55-9a1b-0f3a8d2c7e11";
/// The bot's own audio source id in the roster.
const BOT_SOURCE_ID: &str = "1";

fn call_path(call_id: &str) -> String {
    format!("/communications/calls/{call_id}")
}

/// A whole batch.
pub(crate) fn batch(items: Vec<Value>) -> Value {
    json!({"@odata.type": "#microsoft.graph.commsNotifications", "value": items})
}

/// The identity set of a party: an Entra user (for a UPN) or a phone.
pub(crate) fn identity_set(p: &Party, tenant: &str) -> Value {
    match &p.identity {
        Identity::User { object_id, .. } => json!({
            "@odata.type": "#microsoft.graph.identitySet",
            "user": {
                "@odata.type": "#microsoft.graph.identity",
                "id": object_id,
                "displayName": p.name,
                "tenantId": tenant,
                "identityProvider": "AAD",
            }
        }),
        Identity::Phone(number) => json!({
            "@odata.type": "#microsoft.graph.identitySet",
            "phone": {
                "@odata.type": "#microsoft.graph.identity",
                "id": number,
                "displayName": p.name,
            }
        }),
    }
}

/// `botData.otherSideUser` for a party.
fn other_side_user(p: &Party, tenant: &str, method: &str) -> Value {
    match &p.identity {
        Identity::User { object_id, .. } => json!({
            "id": object_id,
            "participantId": p.participant_id,
            "tenantId": tenant,
            "participationMethod": method,
            "clientLocation": "DE",
        }),
        Identity::Phone(number) => json!({
            "participantId": p.participant_id,
            "participationMethod": method,
            "phone": number,
        }),
    }
}

/// The incoming-call `created` notification of a policy-based recording
/// invite. The recorded user is `parties[recorded]` (usually 0), the
/// invite's `source` and observed participant. A call: they are the
/// `caller`, `parties[1]` the `callee` (`botData.otherSideUser`). A
/// meeting: `parties[0]` organises it (`meetingInfo.organizer`,
/// `chatInfo.threadId`); everyone else joins through the roster as an
/// attendee.
pub(crate) fn invite(
    call_id: &str,
    chain_id: &str,
    tenant: &str,
    meeting: bool,
    parties: &[Party],
    recorded: usize,
) -> Value {
    let organizer = &parties[0];
    let recorded = &parties[recorded.min(parties.len() - 1)];
    let mut bot = json!({
        "mediaHostedRegion": "EUWE",
        "user": {
            "participationMethod": if meeting { "attendee" } else { "caller" },
            "clientLocation": "DE",
        },
        "inviteReasons": ["PolicyBasedRecording"],
        "policyIdentifier": "Insights simulator",
        "pairedRecorders": [],
        "otherRecorders": [],
    });
    if !meeting && let Some(other) = parties.get(1) {
        bot["otherSideUser"] = other_side_user(other, tenant, "callee");
    }
    let mut call = json!({
        "@odata.type": "#microsoft.graph.call",
        "state": "incoming",
        "direction": "incoming",
        "source": {
            "@odata.type": "#microsoft.graph.participantInfo",
            "id": recorded.participant_id,
            "identity": identity_set(recorded, tenant),
            "endpointType": "default",
            "region": "emea",
        },
        "targets": [{
            "@odata.type": "#microsoft.graph.invitationParticipantInfo",
            "identity": {"applicationInstance": {"id": BOT_APP_ID, "identityProvider": "AAD"}},
            "endpointType": "default",
            "id": uuid::Uuid::new_v4().to_string(),
        }],
        "tenantId": tenant,
        "myParticipantId": uuid::Uuid::new_v4().to_string(),
        "callChainId": chain_id,
        "incomingContext": {
            "@odata.type": "#microsoft.graph.incomingContext",
            "sourceParticipantId": recorded.participant_id,
            "observedParticipantId": recorded.participant_id,
        },
        "id": call_id,
        "applicationMetadata": {"botData": bot},
    });
    if meeting {
        call["meetingInfo"] = json!({
            "@odata.type": "#microsoft.graph.organizerMeetingInfo",
            "organizer": identity_set(organizer, tenant),
        });
        call["chatInfo"] = json!({
            "@odata.type": "#microsoft.graph.chatInfo",
            "threadId": format!("19:meeting_{}@thread.v2", chain_id.replace('-', "")),
            "messageId": "0",
        });
    }
    json!({
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "created",
        "resource": format!("/app/calls/{call_id}"),
        "resourceUrl": call_path(call_id),
        "resourceData": call,
    })
}

/// A call state update (`establishing`, `established`, …).
pub(crate) fn state(call_id: &str, state: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "updated",
        "resourceUrl": call_path(call_id),
        "resourceData": {
            "@odata.type": "#microsoft.graph.call",
            "@odata.id": call_path(call_id),
            "state": state,
        }
    })
}

fn participant_with(id: &str, identity: Value, source_id: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.participant",
        "info": {
            "@odata.type": "#microsoft.graph.participantInfo",
            "identity": identity,
            "endpointType": "default",
        },
        "mediaStreams": [{
            "@odata.type": "#microsoft.graph.mediaStream",
            "mediaType": "audio",
            "sourceId": source_id,
            "direction": "sendReceive",
            "serverMuted": false,
        }],
        "isMuted": false,
        "isInLobby": false,
        "id": id,
    })
}

/// A roster participant with its audio stream's `sourceId` (none for a
/// mix-only participant).
pub(crate) fn participant(p: &Party, tenant: &str) -> Value {
    let mut v = participant_with(
        &p.participant_id,
        identity_set(p, tenant),
        &p.source_id.to_string(),
    );
    if p.mix_only {
        v["mediaStreams"] = json!([]);
    }
    v
}

/// The bot itself, as Teams lists it in the roster.
pub(crate) fn bot_participant(bot_participant_id: &str) -> Value {
    participant_with(
        bot_participant_id,
        json!({"application": {"id": BOT_APP_ID}}),
        BOT_SOURCE_ID,
    )
}

/// A roster update (`updated` on `…/participants`).
pub(crate) fn roster(call_id: &str, participants: Vec<Value>) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "updated",
        "resource": format!("/app/calls/{call_id}/participants"),
        "resourceUrl": format!("{}/participants", call_path(call_id)),
        "resourceData": participants,
    })
}

/// Participants left (`deleted` on `…/participants`).
pub(crate) fn roster_removed(call_id: &str, participants: Vec<Value>) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "deleted",
        "resource": format!("/app/calls/{call_id}/participants"),
        "resourceUrl": format!("{}/participants", call_path(call_id)),
        "resourceData": participants,
    })
}

/// The call ended (`deleted` with a `resultInfo`).
pub(crate) fn deleted(call_id: &str, code: i64, subcode: i64) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "deleted",
        "resourceUrl": call_path(call_id),
        "resourceData": {
            "@odata.type": "#microsoft.graph.call",
            "state": "terminated",
            "resultInfo": {
                "@odata.type": "#microsoft.graph.resultInfo",
                "code": code,
                "subcode": subcode,
                "message": "The call was ended by the Insights simulator.",
            }
        }
    })
}
