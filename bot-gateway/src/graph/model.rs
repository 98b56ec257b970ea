//! The shapes Microsoft Graph Communications sends to the callback
//! (`commsNotifications`) and the request bodies we send back.
//!
//! Only the fields the gateway uses are modelled; everything is optional
//! because Graph omits what it does not know, and unknown fields are
//! ignored. These types carry personal data (names, numbers, ids of
//! people): they deliberately do not implement `Debug`, so they cannot be
//! logged by accident.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The body of every callback: a batch of notifications.
#[derive(Deserialize)]
pub struct CommsNotifications {
    pub value: Vec<CommsNotification>,
}

/// One change of one resource.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommsNotification {
    pub change_type: ChangeType,
    /// Current name of the resource path (`/communications/calls/{id}…`).
    #[serde(default)]
    pub resource_url: Option<String>,
    /// Older name of the same (`/app/calls/{id}…`).
    #[serde(default)]
    pub resource: Option<String>,
    /// An entity or a collection of entities, depending on the resource.
    #[serde(default)]
    pub resource_data: Option<Value>,
}

impl CommsNotification {
    /// The resource path, whichever of the two names Graph used.
    pub fn path(&self) -> Option<&str> {
        self.resource_url.as_deref().or(self.resource.as_deref())
    }
}

/// What happened to the resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeType {
    Created,
    Updated,
    Deleted,
}

/// Which resource a notification is about, from its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResourcePath {
    /// `/communications/calls/{id}`
    Call(String),
    /// `/communications/calls/{id}/participants`
    Participants(String),
    /// `/communications/calls/{id}/participants/{participantId}`
    Participant(String, String),
    /// Any other sub-resource of a call (operations, content sharing,
    /// audio routing groups…): not used by the recorder.
    CallOther(String),
    /// Not a call resource.
    Other,
}

impl ResourcePath {
    /// Parses `/communications/calls/…` and `/app/calls/…` paths.
    pub fn parse(path: &str) -> Self {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let mut parts = path.trim_matches('/').split('/');
        let first = parts.next().unwrap_or_default();
        if !(first.eq_ignore_ascii_case("communications") || first.eq_ignore_ascii_case("app")) {
            return ResourcePath::Other;
        }
        if !parts
            .next()
            .is_some_and(|p| p.eq_ignore_ascii_case("calls"))
        {
            return ResourcePath::Other;
        }
        let Some(call) = parts.next().filter(|c| !c.is_empty()) else {
            return ResourcePath::Other;
        };
        let call = call.to_owned();
        match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => ResourcePath::Call(call),
            (Some(p), None, _) if p.eq_ignore_ascii_case("participants") => {
                ResourcePath::Participants(call)
            }
            (Some(p), Some(id), None) if p.eq_ignore_ascii_case("participants") => {
                ResourcePath::Participant(call, id.to_owned())
            }
            _ => ResourcePath::CallOther(call),
        }
    }

    /// The call the resource belongs to.
    pub fn call_id(&self) -> Option<&str> {
        match self {
            ResourcePath::Call(c)
            | ResourcePath::Participants(c)
            | ResourcePath::Participant(c, _)
            | ResourcePath::CallOther(c) => Some(c),
            ResourcePath::Other => None,
        }
    }
}

/// The `@odata.type` of an entity, if it has one.
pub fn odata_type(v: &Value) -> Option<&str> {
    v.get("@odata.type").and_then(Value::as_str)
}

/// A `call` resource (incoming call, state updates, termination).
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CallResource {
    pub id: Option<String>,
    pub state: Option<String>,
    pub direction: Option<String>,
    pub source: Option<ParticipantInfo>,
    pub targets: Vec<ParticipantInfo>,
    /// The Entra tenant of the call.
    pub tenant_id: Option<String>,
    pub my_participant_id: Option<String>,
    /// Shared by every leg of one call or conference.
    pub call_chain_id: Option<String>,
    pub incoming_context: Option<IncomingContext>,
    pub meeting_info: Option<MeetingInfo>,
    pub chat_info: Option<ChatInfo>,
    pub call_routes: Vec<CallRoute>,
    pub result_info: Option<ResultInfo>,
    /// An object, or (seen in the wild) the same object serialised as a
    /// JSON string; see [`CallResource::bot_data`].
    pub application_metadata: Option<Value>,
}

impl CallResource {
    /// `applicationMetadata.botData` of a policy-based recording invite.
    ///
    /// Read leniently, field by field, because a missed invite is a missed
    /// recording: the metadata and `botData` may be objects or JSON strings;
    /// an identifier may be a string or a Graph `identity` object
    /// (`{"id": "+1…"}`); unknown fields are ignored; a field in a shape we
    /// cannot read is left out and the rest is kept. What could not be read
    /// is counted (`insights_gateway_invite_fields_unreadable_total{field}`)
    /// and logged by field name only, never by value, each time this is
    /// called: call it once per notification.
    pub fn bot_data(&self) -> Option<BotData> {
        let (bot, unreadable) = read_bot_data(self.application_metadata.as_ref());
        for field in &unreadable {
            metrics::counter!("insights_gateway_invite_fields_unreadable_total", "field" => field.clone())
                .increment(1);
        }
        if !unreadable.is_empty() {
            tracing::warn!(
                call_id = self.id.as_deref().unwrap_or("-"),
                fields = ?unreadable,
                "invite botData: fields in an unexpected shape were skipped"
            );
        }
        bot
    }

    /// Whether Teams invited the bot because of a recording policy (reads
    /// `botData` quietly: [`CallResource::bot_data`] reports what it could
    /// not read).
    pub fn is_policy_recording(&self) -> bool {
        read_bot_data(self.application_metadata.as_ref())
            .0
            .is_some_and(|b| {
                b.invite_reasons
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(POLICY_BASED_RECORDING))
            })
    }
}

/// The invite reason of a compliance-recording policy.
const POLICY_BASED_RECORDING: &str = "PolicyBasedRecording";

/// An object, or the same object serialised as a JSON string.
fn as_object(v: &Value) -> Option<Value> {
    match v {
        Value::Object(_) => Some(v.clone()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(o @ Value::Object(_)) => Some(o),
            _ => None,
        },
        _ => None,
    }
}

/// A member of an object by name, ignoring ASCII case.
fn member<'a>(o: &'a Value, name: &str) -> Option<&'a Value> {
    let map = o.as_object()?;
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// Text in the usual shapes: a string, a number, or a Graph `identity`
/// object (its `id`, else `fallback`). `Err` when present but unreadable.
fn text(v: Option<&Value>, fallback: &str) -> Result<Option<String>, ()> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(o @ Value::Object(_)) => match member(o, "id").or_else(|| member(o, fallback)) {
            Some(inner @ (Value::String(_) | Value::Number(_) | Value::Null)) => {
                text(Some(inner), fallback)
            }
            _ => Err(()),
        },
        Some(_) => Err(()),
    }
}

/// Reads `applicationMetadata.botData`, field by field; returns what was
/// read and the names of the fields that were present but unreadable.
fn read_bot_data(meta: Option<&Value>) -> (Option<BotData>, Vec<String>) {
    let mut unreadable = Vec::new();
    let Some(meta) = meta.filter(|m| !m.is_null()) else {
        return (None, unreadable);
    };
    // A policy invite must never go unanswered because its metadata is
    // malformed: the reason alone is enough to answer and record.
    let salvage = |v: &Value, field: &str, unreadable: &mut Vec<String>| {
        unreadable.push(field.to_owned());
        let raw = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        raw.to_ascii_lowercase()
            .contains(&POLICY_BASED_RECORDING.to_ascii_lowercase())
            .then(|| BotData {
                invite_reasons: vec![POLICY_BASED_RECORDING.to_owned()],
                ..BotData::default()
            })
    };
    let Some(meta_obj) = as_object(meta) else {
        let bot = salvage(meta, "applicationMetadata", &mut unreadable);
        return (bot, unreadable);
    };
    let Some(raw_bot) = member(&meta_obj, "botData").filter(|b| !b.is_null()) else {
        return (None, unreadable);
    };
    let Some(bot) = as_object(raw_bot) else {
        let bot = salvage(raw_bot, "botData", &mut unreadable);
        return (bot, unreadable);
    };
    let mut out = BotData::default();
    match member(&bot, "inviteReasons") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => out.invite_reasons = split_reasons(s),
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(s) => out.invite_reasons.extend(split_reasons(s)),
                    Value::Null => {}
                    _ => unreadable.push("inviteReasons".to_owned()),
                }
            }
        }
        Some(_) => unreadable.push("inviteReasons".to_owned()),
    }
    out.user = read_user(member(&bot, "user"), "user", &mut unreadable);
    out.other_side_user = read_user(
        member(&bot, "otherSideUser"),
        "otherSideUser",
        &mut unreadable,
    );
    unreadable.dedup();
    (Some(out), unreadable)
}

/// `"A, B"` or `"A"`: invite reasons from a string.
fn split_reasons(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One party of `botData`, field by field.
fn read_user(v: Option<&Value>, party: &str, unreadable: &mut Vec<String>) -> Option<BotDataUser> {
    let v = v.filter(|v| !v.is_null())?;
    let Some(o) = as_object(v) else {
        unreadable.push(party.to_owned());
        return None;
    };
    let mut field = |key: &str, fallback: &str| {
        text(member(&o, key), fallback).unwrap_or_else(|()| {
            unreadable.push(format!("{party}.{key}"));
            None
        })
    };
    let id = field("id", "id");
    let participant_id = field("participantId", "id");
    let tenant_id = field("tenantId", "id");
    let participation_method = field("participationMethod", "value");
    let display_name = field("displayName", "displayName");
    let phone = field("phone", "phoneNumber");
    let on_behalf_of = match member(&o, "onBehalfOf") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(Identity {
            id: Some(s.clone()),
            ..Identity::default()
        }),
        Some(b) => match serde_json::from_value::<Identity>(b.clone()) {
            Ok(i) => Some(i),
            Err(_) => {
                unreadable.push(format!("{party}.onBehalfOf"));
                None
            }
        },
    };
    Some(BotDataUser {
        id,
        participant_id,
        tenant_id,
        participation_method,
        on_behalf_of,
        display_name,
        phone,
    })
}

/// `participantInfo` / `invitationParticipantInfo`.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ParticipantInfo {
    /// Participant id (on `invitationParticipantInfo` and newer payloads).
    pub id: Option<String>,
    pub participant_id: Option<String>,
    pub identity: Option<IdentitySet>,
    pub endpoint_type: Option<String>,
}

impl ParticipantInfo {
    /// The participant id, under either name.
    pub fn participant_id(&self) -> Option<&str> {
        self.participant_id.as_deref().or(self.id.as_deref())
    }
}

/// `identitySet` / `communicationsIdentitySet`.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IdentitySet {
    pub user: Option<Identity>,
    pub phone: Option<Identity>,
    pub guest: Option<Identity>,
    pub on_premises: Option<Identity>,
    pub asserted_identity: Option<Identity>,
    pub application: Option<Identity>,
    pub application_instance: Option<Identity>,
    pub encrypted: Option<Identity>,
}

impl IdentitySet {
    /// True when the identity is only an application (a bot, including
    /// other recorders): such parties are not call participants.
    pub fn is_application_only(&self) -> bool {
        (self.application.is_some() || self.application_instance.is_some())
            && self.user.is_none()
            && self.phone.is_none()
            && self.guest.is_none()
            && self.on_premises.is_none()
    }
}

/// One `identity`.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Identity {
    pub id: Option<String>,
    pub display_name: Option<String>,
    pub tenant_id: Option<String>,
}

/// `incomingContext`.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IncomingContext {
    /// The participant under observation: the policy-recorded user.
    pub observed_participant_id: Option<String>,
    /// The participant that triggered the incoming call.
    pub source_participant_id: Option<String>,
    /// The identity the call is happening on behalf of (delegation).
    pub on_behalf_of: Option<IdentitySet>,
    /// The identity that transferred the call.
    pub transferor: Option<IdentitySet>,
}

/// `meetingInfo` (organizer, token or join-meeting-id flavour).
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MeetingInfo {
    pub organizer: Option<IdentitySet>,
}

/// `chatInfo`.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ChatInfo {
    pub thread_id: Option<String>,
}

/// `callRoute`: how the call was retargeted.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CallRoute {
    #[serde(rename = "final")]
    pub final_identity: Option<IdentitySet>,
    pub original: Option<IdentitySet>,
    /// `forwarded`, `lookup` or `selfFork`.
    pub routing_type: Option<String>,
}

/// `resultInfo`. The message can carry personal data: it is never logged
/// nor stored.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResultInfo {
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    pub message: Option<String>,
}

impl ResultInfo {
    /// `code/subcode`, the form kept as the recording's result code.
    pub fn result_code(&self) -> Option<String> {
        match (self.code, self.subcode) {
            (None, None) => None,
            (c, s) => Some(format!("{}/{}", c.unwrap_or(0), s.unwrap_or(0))),
        }
    }
}

/// `applicationMetadata.botData` of a policy-based recording invite (read
/// by [`CallResource::bot_data`]).
#[derive(Clone, Default)]
pub struct BotData {
    pub invite_reasons: Vec<String>,
    /// The policy-recorded user.
    pub user: Option<BotDataUser>,
    /// The other side of a 1:1 call.
    pub other_side_user: Option<BotDataUser>,
}

/// A party described in `botData`.
#[derive(Clone, Default)]
pub struct BotDataUser {
    /// Entra object id, when the party is a Teams user.
    pub id: Option<String>,
    pub participant_id: Option<String>,
    pub tenant_id: Option<String>,
    /// `caller`, `callee` (or another value for meetings).
    pub participation_method: Option<String>,
    pub on_behalf_of: Option<Identity>,
    pub display_name: Option<String>,
    /// A phone number, when the party is on the PSTN (not in Microsoft's
    /// published example; read when present, as a string or an identity
    /// object's `id`).
    pub phone: Option<String>,
}

/// A `participant` resource from a roster notification.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ParticipantResource {
    pub id: Option<String>,
    pub info: Option<ParticipantInfo>,
    pub is_in_lobby: Option<bool>,
    /// Present once the participant was removed from the roster.
    pub removed_state: Option<Value>,
    pub media_streams: Vec<MediaStreamInfo>,
}

/// `mediaStream` of a participant: `sourceId` is the media source id that
/// active-speaker information refers to.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MediaStreamInfo {
    pub media_type: Option<String>,
    pub source_id: Option<String>,
}

/// `call: answer` request body.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnswerRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_uri: Option<String>,
    pub accepted_modalities: Vec<String>,
    pub media_config: AppHostedMediaConfig,
    pub participant_capacity: u32,
}

/// `appHostedMediaConfig`: the media session of the bot's media platform.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AppHostedMediaConfig {
    #[serde(rename = "@odata.type")]
    pub odata_type: &'static str,
    pub blob: String,
}

impl AppHostedMediaConfig {
    pub fn new(blob: String) -> Self {
        Self {
            odata_type: "#microsoft.graph.appHostedMediaConfig",
            blob,
        }
    }
}

/// The status reported through `call: updateRecordingStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RecordingStatusReport {
    /// Recording has begun: sent, and acknowledged, before any media is
    /// persisted.
    Recording,
    /// Recording ended while the call goes on.
    NotRecording,
    /// Recording cannot proceed.
    Failed,
}

impl RecordingStatusReport {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingStatusReport::Recording => "recording",
            RecordingStatusReport::NotRecording => "notRecording",
            RecordingStatusReport::Failed => "failed",
        }
    }
}

/// `call: updateRecordingStatus` request body.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRecordingStatusRequest {
    /// Unique per request, at most 256 characters.
    pub client_context: String,
    pub status: RecordingStatusReport,
}

/// The response body to a `participantJoiningNotification`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParticipantJoiningResponse {
    #[serde(rename = "@odata.type")]
    pub odata_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

impl ParticipantJoiningResponse {
    /// Accept the joining policy-recorded user into this call instance.
    pub fn accept() -> Self {
        Self {
            odata_type: "#microsoft.graph.acceptJoinResponse",
            reason: None,
        }
    }
    /// Refuse because this call instance is at its participant capacity.
    pub fn reject_busy() -> Self {
        Self {
            odata_type: "#microsoft.graph.rejectJoinResponse",
            reason: Some("busy"),
        }
    }
}

/// The `@odata.type` of a participant-joining notification's resource data.
pub const PARTICIPANT_JOINING_TYPE: &str = "#microsoft.graph.participantJoiningNotification";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_paths_parse() {
        assert_eq!(
            ResourcePath::parse("/communications/calls/abc"),
            ResourcePath::Call("abc".into())
        );
        assert_eq!(
            ResourcePath::parse("/app/calls/abc/"),
            ResourcePath::Call("abc".into())
        );
        assert_eq!(
            ResourcePath::parse("/communications/calls/abc/participants"),
            ResourcePath::Participants("abc".into())
        );
        assert_eq!(
            ResourcePath::parse("/communications/calls/abc/participants/p1"),
            ResourcePath::Participant("abc".into(), "p1".into())
        );
        assert_eq!(
            ResourcePath::parse("/communications/calls/abc/operations/participants"),
            ResourcePath::CallOther("abc".into())
        );
        assert_eq!(ResourcePath::parse("/users/x"), ResourcePath::Other);
        assert_eq!(
            ResourcePath::parse("/communications/calls/"),
            ResourcePath::Other
        );
    }

    #[test]
    fn bot_data_reads_object_and_string_forms() {
        let obj: CallResource = serde_json::from_value(serde_json::json!({
            "applicationMetadata": {"botData": {"inviteReasons": ["PolicyBasedRecording"]}}
        }))
        .unwrap_or_default();
        assert!(obj.is_policy_recording());
        let s: CallResource = serde_json::from_value(serde_json::json!({
            "applicationMetadata": "{\"botData\":{\"inviteReasons\":[\"PolicyBasedRecording\"]}}"
        }))
        .unwrap_or_default();
        assert!(s.is_policy_recording());
        assert!(!CallResource::default().is_policy_recording());
    }

    /// An invite's call resource with the given `applicationMetadata`.
    fn invite(meta: Value) -> CallResource {
        serde_json::from_value(serde_json::json!({
            "id": "call-x",
            "applicationMetadata": meta,
        }))
        .unwrap_or_default()
    }

    #[test]
    fn bot_data_variants_are_read_field_by_field() {
        use serde_json::json;
        let pbr = json!(["PolicyBasedRecording"]);
        let user = json!({"id": "u-1", "tenantId": "t-1", "participationMethod": "callee"});
        // (case, applicationMetadata, policy?, other side's phone, user id)
        type Case<'a> = (&'a str, Value, bool, Option<&'a str>, Option<&'a str>);
        let cases: Vec<Case> = vec![
            (
                "phone as a string",
                json!({"botData": {"inviteReasons": pbr, "user": user,
                    "otherSideUser": {"phone": "+14255550100"}}}),
                true,
                Some("+14255550100"),
                Some("u-1"),
            ),
            (
                "phone as a Graph identity object",
                json!({"botData": {"inviteReasons": pbr, "user": user,
                    "otherSideUser": {"phone": {"id": "+14255550100", "displayName": "x"}}}}),
                true,
                Some("+14255550100"),
                Some("u-1"),
            ),
            (
                "phone as a number",
                json!({"botData": {"inviteReasons": pbr, "user": user,
                    "otherSideUser": {"phone": 14255550100_u64}}}),
                true,
                Some("14255550100"),
                Some("u-1"),
            ),
            (
                "phone in an unreadable shape: the rest is kept",
                json!({"botData": {"inviteReasons": pbr, "user": user,
                    "otherSideUser": {"phone": [1, 2], "id": "o-1"}}}),
                true,
                None,
                Some("u-1"),
            ),
            (
                "botData as a JSON string",
                json!({"botData": json!({"inviteReasons": pbr, "user": user}).to_string()}),
                true,
                None,
                Some("u-1"),
            ),
            (
                "metadata as a JSON string",
                Value::String(json!({"botData": {"inviteReasons": pbr, "user": user}}).to_string()),
                true,
                None,
                Some("u-1"),
            ),
            (
                "user as a JSON string, unknown fields ignored",
                json!({"botData": {"inviteReasons": pbr, "user": user.to_string(),
                    "somethingNew": {"deep": [1]}}, "other": 1}),
                true,
                None,
                Some("u-1"),
            ),
            (
                "user id as an identity object",
                json!({"botData": {"inviteReasons": pbr, "user": {"id": {"id": "u-1"}}}}),
                true,
                None,
                Some("u-1"),
            ),
            (
                "user in an unreadable shape",
                json!({"botData": {"inviteReasons": pbr, "user": 42}}),
                true,
                None,
                None,
            ),
            (
                "inviteReasons as one string",
                json!({"botData": {"inviteReasons": "PolicyBasedRecording", "user": user}}),
                true,
                None,
                Some("u-1"),
            ),
            (
                "inviteReasons with other entries and odd case",
                json!({"botData": {"inviteReasons": [7, "Other", "policybasedrecording"]}}),
                true,
                None,
                None,
            ),
            (
                "malformed botData string naming the policy",
                json!({"botData": "{\"inviteReasons\": [\"PolicyBasedRecording\"], broken"}),
                true,
                None,
                None,
            ),
            (
                "malformed metadata string naming the policy",
                Value::String("{not json PolicyBasedRecording".into()),
                true,
                None,
                None,
            ),
            (
                "another invite reason",
                json!({"botData": {"inviteReasons": ["Other"], "user": user}}),
                false,
                None,
                Some("u-1"),
            ),
            ("no botData", json!({"other": 1}), false, None, None),
            ("null metadata", Value::Null, false, None, None),
        ];
        for (case, meta, policy, phone, user_id) in cases {
            let call = invite(meta);
            assert_eq!(call.is_policy_recording(), policy, "{case}: policy");
            let bot = call.bot_data().unwrap_or_default();
            assert_eq!(
                bot.other_side_user
                    .as_ref()
                    .and_then(|o| o.phone.as_deref()),
                phone,
                "{case}: phone"
            );
            assert_eq!(
                bot.user.as_ref().and_then(|u| u.id.as_deref()),
                user_id,
                "{case}: user id"
            );
        }
    }

    #[test]
    fn unreadable_fields_are_named_never_their_values() {
        let meta = serde_json::json!({"botData": {
            "inviteReasons": ["PolicyBasedRecording", {"x": 1}],
            "user": {"id": "u-1", "displayName": ["Alice"]},
            "otherSideUser": {"phone": [14255550100_u64], "onBehalfOf": 3}
        }});
        let (bot, unreadable) = read_bot_data(Some(&meta));
        assert!(bot.is_some());
        assert_eq!(
            unreadable,
            [
                "inviteReasons",
                "user.displayName",
                "otherSideUser.phone",
                "otherSideUser.onBehalfOf"
            ]
        );
        let (_, clean) = read_bot_data(Some(&serde_json::json!({"botData": {
            "inviteReasons": ["PolicyBasedRecording"],
            "user": {"id": "u-1", "onBehalfOf": {"id": "d-1", "displayName": "D"}}
        }})));
        assert!(clean.is_empty(), "{clean:?}");
    }

    #[test]
    fn result_code_keeps_code_and_subcode() {
        let r = ResultInfo {
            code: Some(200),
            subcode: Some(5001),
            message: Some("secret".into()),
        };
        assert_eq!(r.result_code().as_deref(), Some("200/5001"));
        assert_eq!(ResultInfo::default().result_code(), None);
    }

    #[test]
    fn answer_body_has_the_documented_shape() {
        let a = AnswerRequest {
            callback_uri: Some("https://bot.example/api/calls".into()),
            accepted_modalities: vec!["audio".into()],
            media_config: AppHostedMediaConfig::new("blob".into()),
            participant_capacity: 3,
        };
        let v = serde_json::to_value(&a).unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({
                "callbackUri": "https://bot.example/api/calls",
                "acceptedModalities": ["audio"],
                "mediaConfig": {"@odata.type": "#microsoft.graph.appHostedMediaConfig", "blob": "blob"},
                "participantCapacity": 3
            })
        );
        let u = UpdateRecordingStatusRequest {
            client_context: "c".into(),
            status: RecordingStatusReport::NotRecording,
        };
        assert_eq!(
            serde_json::to_value(&u).unwrap_or_default(),
            serde_json::json!({"clientContext": "c", "status": "notRecording"})
        );
    }
}
