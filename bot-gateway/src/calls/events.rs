//! Decoding a notification batch into events, all before anything is
//! applied: a batch with one malformed notification is refused whole
//! (400) and changes nothing.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::graph::model::{
    CallResource, ChangeType, CommsNotification, PARTICIPANT_JOINING_TYPE, ParticipantResource,
    ResourcePath, odata_type,
};

/// One thing that happened, as the registry applies it.
pub(crate) enum Event {
    /// A new call for the bot (an invite).
    Incoming { call_id: String, call: CallResource },
    /// The call's state (or other properties) changed.
    CallUpdated { call_id: String, call: CallResource },
    /// The call is over.
    CallDeleted { call_id: String, call: CallResource },
    /// Roster entries were added/updated (or removed, for `Deleted`).
    Roster {
        call_id: String,
        removed: bool,
        participants: Vec<ParticipantResource>,
    },
    /// One participant left (`…/participants/{id}` deleted).
    ParticipantLeft {
        call_id: String,
        participant_id: String,
    },
    /// Another policy-recorded user is joining a call this bot already
    /// handles (participant capacity > 1); the response body says whether
    /// we take them.
    ParticipantJoining { call_id: String, call: CallResource },
    /// Nothing the recorder needs (operations, content sharing, …).
    Ignored,
}

impl Event {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Incoming { .. } => "incoming",
            Event::CallUpdated { .. } => "call-updated",
            Event::CallDeleted { .. } => "call-deleted",
            Event::Roster { .. } => "roster",
            Event::ParticipantLeft { .. } => "participant-left",
            Event::ParticipantJoining { .. } => "participant-joining",
            Event::Ignored => "ignored",
        }
    }
}

fn decode<T: DeserializeOwned + Default>(v: Option<Value>, what: &str) -> Result<T, String> {
    match v {
        None | Some(Value::Null) => Ok(T::default()),
        // serde's message may quote the offending value (a name, a
        // number): only say which entity is wrong.
        Some(v) => serde_json::from_value(v)
            .map_err(|_| format!("{what} does not have the documented shape")),
    }
}

/// Decodes one notification.
pub(crate) fn decode_event(n: CommsNotification) -> Result<Event, String> {
    let Some(path) = n.path().map(ResourcePath::parse) else {
        return Err("notification without resourceUrl".into());
    };
    let data = n.resource_data;
    if let Some(d) = &data
        && odata_type(d) == Some(PARTICIPANT_JOINING_TYPE)
    {
        let call_id = path
            .call_id()
            .ok_or("participant-joining notification without a call")?
            .to_owned();
        let call = decode(
            d.get("call").cloned(),
            "participantJoiningNotification.call",
        )?;
        return Ok(Event::ParticipantJoining { call_id, call });
    }
    Ok(match (path, n.change_type) {
        (ResourcePath::Call(call_id), ChangeType::Created) => Event::Incoming {
            call_id,
            call: decode(data, "call")?,
        },
        (ResourcePath::Call(call_id), ChangeType::Updated) => Event::CallUpdated {
            call_id,
            call: decode(data, "call")?,
        },
        (ResourcePath::Call(call_id), ChangeType::Deleted) => Event::CallDeleted {
            call_id,
            call: decode(data, "call")?,
        },
        (ResourcePath::Participants(call_id), change) => {
            let participants = match data {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(list)) => list
                    .into_iter()
                    .map(|p| decode(Some(p), "participant"))
                    .collect::<Result<_, _>>()?,
                Some(one) => vec![decode(Some(one), "participant")?],
            };
            Event::Roster {
                call_id,
                removed: change == ChangeType::Deleted,
                participants,
            }
        }
        (ResourcePath::Participant(call_id, participant_id), ChangeType::Deleted) => {
            Event::ParticipantLeft {
                call_id,
                participant_id,
            }
        }
        (ResourcePath::Participant(call_id, participant_id), _) => {
            let mut p: ParticipantResource = decode(data, "participant")?;
            p.id.get_or_insert(participant_id);
            Event::Roster {
                call_id,
                removed: false,
                participants: vec![p],
            }
        }
        (ResourcePath::CallOther(_) | ResourcePath::Other, _) => Event::Ignored,
    })
}
