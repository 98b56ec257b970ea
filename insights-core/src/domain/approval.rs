//! Four-eyes playback: when a tenant turns on `four_eyes_playback`, a
//! supervisor may play or download a recording's media only after a
//! second person approved their request for that recording, and only
//! until the approval expires.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{AccessRequestId, RecordingId, TenantId, string_enum};

string_enum!(
    /// Where an [`AccessRequest`] stands.
    AccessRequestStatus {
        Pending => "pending",
        Approved => "approved",
        Denied => "denied",
    }
);

/// A request to play one recording, and its decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccessRequest {
    pub id: AccessRequestId,
    pub tenant_id: TenantId,
    pub recording_id: RecordingId,
    /// Actor id of who asked (`account:…`, `oidc:…`). Never a name.
    pub requested_by: String,
    /// Why they need it (free text or case number).
    pub reason: String,
    pub requested_at: DateTime<Utc>,
    pub status: AccessRequestStatus,
    /// Actor id of who decided; never the requester.
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The decider's note (e.g. why it was denied).
    pub decision_note: Option<String>,
    /// An approval lets the requester play until then.
    pub expires_at: Option<DateTime<Utc>>,
}

impl AccessRequest {
    /// A new pending request.
    pub fn new(
        tenant_id: TenantId,
        recording_id: RecordingId,
        requested_by: String,
        reason: String,
        now: DateTime<Utc>,
    ) -> Self {
        AccessRequest {
            id: AccessRequestId::new(),
            tenant_id,
            recording_id,
            requested_by,
            reason,
            requested_at: now,
            status: AccessRequestStatus::Pending,
            decided_by: None,
            decided_at: None,
            decision_note: None,
            expires_at: None,
        }
    }

    /// Does this request let `actor` play `recording` at `now`?
    pub fn grants(&self, actor: &str, recording: RecordingId, now: DateTime<Utc>) -> bool {
        self.status == AccessRequestStatus::Approved
            && self.requested_by == actor
            && self.recording_id == recording
            && self.expires_at.is_some_and(|t| now < t)
    }
}

/// A decision on a pending [`AccessRequest`].
#[derive(Clone, Debug, PartialEq)]
pub struct AccessDecision {
    /// Approve (with an expiry) or deny.
    pub approve: bool,
    /// Actor id of the decider; must differ from the requester.
    pub by: String,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
    /// Until when an approval is valid (ignored for a denial).
    pub expires_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn only_a_live_approval_for_the_same_actor_and_recording_grants() {
        let now = super::super::now();
        let rec = RecordingId::new();
        let mut r = AccessRequest::new(
            TenantId::new(),
            rec,
            "account:a".into(),
            "case 7".into(),
            now,
        );
        assert!(!r.grants("account:a", rec, now), "pending grants nothing");
        r.status = AccessRequestStatus::Approved;
        r.expires_at = Some(now + Duration::minutes(30));
        assert!(r.grants("account:a", rec, now));
        assert!(!r.grants("account:b", rec, now), "another actor");
        assert!(
            !r.grants("account:a", RecordingId::new(), now),
            "another recording"
        );
        assert!(
            !r.grants("account:a", rec, now + Duration::minutes(30)),
            "expired"
        );
        r.status = AccessRequestStatus::Denied;
        assert!(!r.grants("account:a", rec, now));
    }
}
