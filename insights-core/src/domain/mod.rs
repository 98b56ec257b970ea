//! The domain model: every entity on the roadmap, free of any storage,
//! HTTP or SDK concern. Stores persist these types; the API serves them.

mod access;
mod account;
mod alert;
mod approval;
mod audit;
mod chain_check;
mod change;
mod completeness;
mod directory;
mod gdpr;
mod ids;
mod job;
mod lease;
mod meeting_claim;
mod policy;
mod processing;
mod recording;
mod recording_gap;
mod recording_policy;
mod segment_upload;
mod signing_key;
mod tenant;
mod transcript;
mod transient;

pub use access::{Permission, Role, SecurityProfile, VisibilityScope};
pub use account::{
    CredentialReset, FirstSignIn, LocalAccount, LoginAttempt, LoginFailure, LoginSession,
    OidcSession, OidcSessionClaims, Realm, normalize_email, validate_email,
};
pub use alert::{
    Alert, AlertChannel, AlertKind, ChannelKind, NewAlert, NodeHeartbeat, Raised, delivery,
};
pub use approval::{AccessDecision, AccessRequest, AccessRequestStatus};
pub use audit::{
    AuditAction, AuditEvent, AuditQuery, ChainVerdict, GENESIS_HASH, NewAuditEvent, verify_chain,
};
pub use chain_check::{ChainChecker, ChainProblem, ChainReport, diagnose_chain};
pub use change::{ChangeKind, ChangeStatus, GovernanceChange};
pub use completeness::{
    CallCompleteness, CompletenessRun, CompletenessStatus, CompletenessThreshold,
    CompletenessTotals, CompletenessTrigger, CoverageGap, GapReason,
};
pub use directory::{DirectorySyncState, DirectoryUser};
pub use gdpr::{ErasureOutcome, ErasureRecord, ParticipantHit, SubjectKeys};
pub use ids::*;
pub use job::{
    Backoff, ClaimRequest, ClaimedJob, DEFAULT_MAX_ATTEMPTS, Enqueued, Job, JobFailure, JobId,
    JobKind, JobLease, JobState, NewJob,
};
pub use lease::{LEASE_LOST, Lease, RunClaim, ScheduledRun, interval_start};
pub use meeting_claim::{ClaimTakeover, FAILOVER_PRIMARY_NODE_LOST, MeetingClaim, MeetingFailover};
pub use policy::{HoldScope, LegalHold, RetentionAction, RetentionPolicy, RetentionScope};
pub use processing::{ProviderCall, ProviderCallOutcome, ProviderCallQuery};
pub use recording::{
    Direction, MediaObject, MediaStream, Participant, ParticipantRole, Recording, RecordingKind,
    RecordingQuery, RecordingStatus, RecordingSummary, SEARCH_TOTAL_CAP, SearchPage, SortKey,
    normalize_phone,
};
pub use recording_gap::{RecordingGap, RecordingGapReason};
pub use recording_policy::{
    DecidedBy, FailureMode, PolicyDecision, PolicyList, PolicyMode, PolicyParty, PolicyRule,
    RecordingPolicy, RuleKind, decide_recording,
};
pub use segment_upload::{
    PARTIAL_GATEWAY_NODE_LOST, RETIRED_LEASE_UNTIL, SegmentUpload, retired_lease_until,
};
pub use signing_key::{
    PUBLIC_KEY_SET_FORMAT, PublicKeySet, SignerTrustError, SigningKeyRecord, signing_key_id,
};
pub use tenant::{NewTenant, Tenant, TenantSettings, validate_tenant_name};
pub use transcript::{Citation, Insight, InsightKind, TranscriptSegment};
pub use transient::{
    AddressWindow, FileJob, FileJobEnd, FileJobKind, FileJobOutput, FileJobState, PendingSignIn,
};

/// Error returned when a stored string does not name a variant of an enum.
#[derive(Debug, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownVariant {
    /// The enum's name.
    pub kind: &'static str,
    /// The rejected value.
    pub value: String,
}

/// Defines a fieldless enum with a stable lower-case string form used in
/// storage, JSON and the CLI. The string forms are part of the stored data:
/// never rename one.
macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $s)] $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable string form.
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($name::$variant),)+
                    _ => Err($crate::domain::UnknownVariant { kind: stringify!($name), value: s.to_owned() }),
                }
            }
        }
    };
}
pub(crate) use string_enum;

/// The current time truncated to whole microseconds: the precision every
/// store keeps, so values round-trip exactly (audit hashes depend on it).
pub fn now() -> chrono::DateTime<chrono::Utc> {
    truncate_micros(chrono::Utc::now())
}

/// Truncates a timestamp to whole microseconds.
pub fn truncate_micros(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}
