//! Strongly typed identifiers. Every id is a UUID; recordings, audit events
//! and segments use UUIDv7 so that ids sort by creation time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $new:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random id.
            pub fn new() -> Self {
                Self(Uuid::$new())
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

id_type!(
    /// A customer organisation. All data belongs to exactly one tenant.
    TenantId, new_v4
);
id_type!(
    /// A user synchronised from the customer's directory (Entra ID).
    UserId, new_v4
);
id_type!(
    /// A recorded call or meeting.
    RecordingId, now_v7
);
id_type!(
    /// One party of a recording (caller, callee, attendee, ...).
    ParticipantId, now_v7
);
id_type!(
    /// One media stream (track) of a recording.
    StreamId, now_v7
);
id_type!(
    /// One transcript segment.
    SegmentId, now_v7
);
id_type!(
    /// A summary, decision or action item produced for a recording.
    InsightId, now_v7
);
id_type!(
    /// An audit event.
    AuditEventId, now_v7
);
id_type!(
    /// A retention policy.
    RetentionPolicyId, new_v4
);
id_type!(
    /// A legal hold.
    LegalHoldId, new_v4
);
id_type!(
    /// A security profile.
    SecurityProfileId, new_v4
);
id_type!(
    /// A per-object data-encryption key (stored only wrapped).
    KeyId, new_v4
);
id_type!(
    /// A local account (tenant user or platform operator).
    AccountId, new_v4
);
id_type!(
    /// A supervisor's request for a second person's approval to play a
    /// recording (four-eyes playback).
    AccessRequestId, new_v4
);
id_type!(
    /// A destructive governance change waiting for a second user's
    /// approval (two-person governance).
    GovernanceChangeId, new_v4
);
id_type!(
    /// One recorded call to an external AI provider (processing records).
    ProviderCallId, now_v7
);
id_type!(
    /// An export or access-bundle job ([`FileJob`](super::FileJob)); also
    /// the envelope object id of its sealed file.
    FileJobId, now_v7
);
id_type!(
    /// One gap of a recording (e.g. a pause).
    GapId, now_v7
);
id_type!(
    /// A raised alert ([`Alert`](super::Alert)); sorts by time.
    AlertId, now_v7
);
id_type!(
    /// An alert channel ([`AlertChannel`](super::AlertChannel)).
    AlertChannelId, new_v4
);
