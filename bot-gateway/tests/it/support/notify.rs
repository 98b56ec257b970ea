//! Graph Communications notifications, in the shapes Microsoft documents
//! (`call-answer.md` example 3, `participant-invite.md` roster examples,
//! `commsNotification`, `resultInfo`).

use serde_json::{Value, json};

/// A person in the tests.
#[derive(Clone, Debug)]
pub struct Person {
    pub oid: String,
    pub name: String,
    pub upn: String,
    /// Their Graph participant id in the call.
    pub participant_id: String,
}

impl Person {
    pub fn new(name: &str, upn: &str) -> Person {
        Person {
            oid: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            upn: upn.to_owned(),
            participant_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    pub fn identity(&self, tenant: &str) -> Value {
        json!({
            "@odata.type": "#microsoft.graph.identitySet",
            "user": {
                "@odata.type": "#microsoft.graph.identity",
                "id": self.oid,
                "displayName": self.name,
                "tenantId": tenant,
                "identityProvider": "AAD",
            }
        })
    }
}

pub fn phone_identity(number: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.identitySet",
        "phone": {"@odata.type": "#microsoft.graph.identity", "id": number}
    })
}

pub fn batch(items: Vec<Value>) -> Value {
    json!({"@odata.type": "#microsoft.graph.commsNotifications", "value": items})
}

fn call_path(call_id: &str) -> String {
    format!("/communications/calls/{call_id}")
}

/// A policy-based recording invite.
pub struct Invite {
    pub call_id: String,
    pub tenant: String,
    pub chain_id: String,
    pub recorded: Person,
    /// `botData.user.participationMethod`.
    pub method: &'static str,
    /// `botData.otherSideUser`.
    pub other_side: Option<Value>,
    pub meeting_organizer: Option<Value>,
    pub thread_id: Option<String>,
    pub transferor: Option<Value>,
    pub invite_reasons: Vec<&'static str>,
}

impl Invite {
    pub fn new(call_id: &str, tenant: &str, recorded: &Person, method: &'static str) -> Invite {
        Invite {
            call_id: call_id.to_owned(),
            tenant: tenant.to_owned(),
            chain_id: uuid::Uuid::new_v4().to_string(),
            recorded: recorded.clone(),
            method,
            other_side: None,
            meeting_organizer: None,
            thread_id: None,
            transferor: None,
            invite_reasons: vec!["PolicyBasedRecording"],
        }
    }

    /// The resource data of the invite.
    pub fn call(&self) -> Value {
        let mut bot = json!({
            "mediaHostedRegion": "EUWE",
            "user": {"participationMethod": self.method, "clientLocation": "DE"},
            "inviteReasons": self.invite_reasons,
            "policyIdentifier": "Compliance policy",
            "pairedRecorders": [],
            "otherRecorders": [],
        });
        if let Some(o) = &self.other_side {
            bot["otherSideUser"] = o.clone();
        }
        let mut call = json!({
            "@odata.type": "#microsoft.graph.call",
            "state": "incoming",
            "direction": "incoming",
            "source": {
                "@odata.type": "#microsoft.graph.participantInfo",
                "id": self.recorded.participant_id,
                "identity": self.recorded.identity(&self.tenant),
                "endpointType": "default",
                "region": "emea",
            },
            "targets": [{
                "@odata.type": "#microsoft.graph.invitationParticipantInfo",
                "identity": {"applicationInstance": {"id": "832899f8-2ea1-4604-8413-27bd2892079f", "identityProvider": "AAD"}},
                "endpointType": "default",
                "id": uuid::Uuid::new_v4().to_string(),
            }],
            "tenantId": self.tenant,
            "myParticipantId": uuid::Uuid::new_v4().to_string(),
            "callChainId": self.chain_id,
            "incomingContext": {
                "@odata.type": "#microsoft.graph.incomingContext",
                "sourceParticipantId": self.recorded.participant_id,
                "observedParticipantId": self.recorded.participant_id,
            },
            "id": self.call_id,
            "applicationMetadata": {"botData": bot},
        });
        if let Some(org) = &self.meeting_organizer {
            call["meetingInfo"] = json!({
                "@odata.type": "#microsoft.graph.organizerMeetingInfo",
                "organizer": org,
            });
        }
        if let Some(t) = &self.thread_id {
            call["chatInfo"] = json!({
                "@odata.type": "#microsoft.graph.chatInfo",
                "threadId": t,
                "messageId": "0",
            });
        }
        if let Some(t) = &self.transferor {
            call["incomingContext"]["transferor"] = t.clone();
        }
        call
    }

    /// The `created` notification.
    pub fn notification(&self) -> Value {
        json!({
            "@odata.type": "#microsoft.graph.commsNotification",
            "changeType": "created",
            "resource": format!("/app/calls/{}", self.call_id),
            "resourceUrl": call_path(&self.call_id),
            "resourceData": self.call(),
        })
    }
}

/// `botData.otherSideUser` for a Teams user.
pub fn other_user(p: &Person, tenant: &str, method: &str) -> Value {
    json!({
        "id": p.oid,
        "participantId": p.participant_id,
        "tenantId": tenant,
        "participationMethod": method,
        "clientLocation": "DE",
    })
}

/// `botData.otherSideUser` known only by participant id (a PSTN caller).
pub fn other_participant(participant_id: &str, method: &str) -> Value {
    json!({"participantId": participant_id, "participationMethod": method})
}

pub fn state(call_id: &str, state: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "updated",
        "resourceUrl": call_path(call_id),
        "resourceData": {
            "@odata.type": "#microsoft.graph.call",
            "@odata.id": call_path(call_id),
            "@odata.etag": "W/\"5445\"",
            "state": state,
        }
    })
}

pub fn deleted(call_id: &str, code: i64, subcode: i64, message: &str) -> Value {
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
                "message": message,
            }
        }
    })
}

/// A roster participant.
pub fn participant(id: &str, identity: Value, audio_source: &str) -> Value {
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
            "sourceId": audio_source,
            "direction": "sendReceive",
            "serverMuted": false,
        }],
        "isMuted": false,
        "isInLobby": false,
        "id": id,
    })
}

/// The bot itself in the roster.
pub fn bot_participant() -> Value {
    participant(
        &uuid::Uuid::new_v4().to_string(),
        json!({"application": {"id": "6c1f4b5a-1d0e-4a55-9a1b-0f3a8d2c7e11"}}),
        "1",
    )
}

pub fn roster(call_id: &str, participants: Vec<Value>) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "updated",
        "resource": format!("/app/calls/{call_id}/participants"),
        "resourceUrl": format!("{}/participants", call_path(call_id)),
        "resourceData": participants,
    })
}

pub fn roster_removed(call_id: &str, participants: Vec<Value>) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "deleted",
        "resourceUrl": format!("{}/participants", call_path(call_id)),
        "resourceData": participants,
    })
}

/// A participant-joining notification (capacity > 1) for `call_id`.
pub fn joining(call_id: &str, joining: &Invite) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "created",
        "resourceUrl": format!("{}/participantJoining", call_path(call_id)),
        "resourceData": {
            "@odata.type": "#microsoft.graph.participantJoiningNotification",
            "call": joining.call(),
        }
    })
}
