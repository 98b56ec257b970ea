use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    Direction, LegalHoldId, RecordingId, RecordingKind, RetentionPolicyId, TenantId, UserId,
    string_enum,
};

string_enum!(
    /// What retention does when a recording is due.
    RetentionAction {
        /// Delete the media (and crypto-shred its key); keep call metadata.
        DeleteMedia => "delete-media",
        /// Delete media, metadata, transcript and insights.
        DeleteRecording => "delete-recording",
    }
);

/// Which recordings a retention policy applies to. Empty fields match all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionScope {
    pub kind: Option<RecordingKind>,
    pub direction: Option<Direction>,
    /// Directory group of a recorded user.
    pub group: Option<String>,
    /// Retention class of the recording.
    pub retention_class: Option<String>,
}

/// Keep matching recordings for `retain_days`, then apply `action`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    pub id: RetentionPolicyId,
    pub tenant_id: TenantId,
    pub name: String,
    pub scope: RetentionScope,
    pub retain_days: i32,
    pub action: RetentionAction,
    pub enabled: bool,
    pub updated_at: DateTime<Utc>,
}

/// Which recordings a legal hold covers. A recording is held when it
/// matches every field that is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HoldScope {
    pub user_id: Option<UserId>,
    /// A phone number, email or URI of any participant.
    pub participant_identifier: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Explicit recordings.
    pub recording_ids: Vec<RecordingId>,
}

/// A legal hold: held recordings cannot be deleted by anyone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LegalHold {
    pub id: LegalHoldId,
    pub tenant_id: TenantId,
    pub case_name: String,
    pub reason: Option<String>,
    pub scope: HoldScope,
    /// Actor id of who placed it.
    pub placed_by: String,
    pub placed_at: DateTime<Utc>,
    pub lifted_by: Option<String>,
    pub lifted_at: Option<DateTime<Utc>>,
}

impl LegalHold {
    /// A hold is active until it is lifted.
    pub fn is_active(&self) -> bool {
        self.lifted_at.is_none()
    }
}
