//! The metadata store: one trait per area, implemented by the SQLite
//! (embedded default) and PostgreSQL backends in `insights-stores`, proven
//! by one contract suite in `tests`, and joined by the supertrait
//! [`MetadataStore`] that the services hold (`Arc<dyn MetadataStore>`).
//!
//! | area | trait |
//! | --- | --- |
//! | backend, health, tenants (platform scope) | [`TenantStore`] |
//! | directory users, sync state, OIDC sessions | [`DirectoryStore`] |
//! | recordings, participants, streams | [`RecordingStore`] |
//! | recording search | [`SearchStore`] |
//! | transcripts and insights | [`TranscriptStore`] |
//! | AI job queue | [`JobStore`] |
//! | audit chain | [`AuditStore`] |
//! | retention policies, legal holds, sweeps, recording policy | [`GovernanceStore`] |
//! | local accounts, sessions, security profiles | [`AccountStore`] |
//! | four-eyes access requests | [`ApprovalStore`] |
//! | wrapped data keys | [`DataKeyStore`] |
//! | provider-call records | [`ProcessingStore`] |
//! | data-subject requests (GDPR) | [`SubjectStore`] |
//! | registered signing keys (platform scope) | [`SigningKeyStore`] |
//! | periodic jobs' leases and runs (platform scope) | [`LeaseStore`] |
//! | meeting claims of gateway nodes | [`MeetingClaimStore`] |
//! | segment uploads of live calls | [`SegmentUploadStore`] |
//! | recording gaps (pauses) | [`RecordingGapStore`] |
//! | pending sign-ins, address throttles, export and bundle jobs | [`TransientStore`] |
//! | alerts, alert channels, node heartbeats | [`AlertStore`] |
//!
//! Every type that implements all the area traits is a [`MetadataStore`]
//! (blanket impl), and the area methods can be called on a
//! `dyn MetadataStore` or a generic `S: MetadataStore` without importing
//! the area traits. A test double implements by hand only the area it
//! fakes and forwards the others with [`delegate_store_areas!`](crate::delegate_store_areas).
//!
//! Every method that touches tenant data takes the [`TenantId`] first and
//! only ever sees that tenant's rows; on PostgreSQL row-level security is
//! a second wall below this one. Lookups of an object that exists in
//! another tenant behave exactly like lookups of a missing object.
//!
//! [`TenantId`]: crate::domain::TenantId

mod accounts;
mod alerts;
mod approvals;
mod audit;
mod delegate;
mod directory;
mod governance;
mod jobs;
mod keys;
mod leases;
mod meeting_claims;
mod processing;
mod recording_gaps;
mod recordings;
mod search;
mod segment_uploads;
mod signing_keys;
mod subjects;
mod tenants;
mod transcripts;
mod transient;

pub use accounts::{AccountChange, AccountStore};
pub use alerts::AlertStore;
pub use approvals::ApprovalStore;
pub use audit::{AuditStore, check_audit_chain};
pub use directory::DirectoryStore;
pub use governance::{GovernanceQuery, GovernanceStore};
pub use jobs::JobStore;
pub use keys::DataKeyStore;
pub use leases::LeaseStore;
pub use meeting_claims::MeetingClaimStore;
pub use processing::ProcessingStore;
pub use recording_gaps::RecordingGapStore;
pub use recordings::RecordingStore;
pub use search::SearchStore;
pub use segment_uploads::SegmentUploadStore;
pub use signing_keys::SigningKeyStore;
pub use subjects::SubjectStore;
pub use tenants::TenantStore;
pub use transcripts::TranscriptStore;
pub use transient::TransientStore;

/// The store traits in one import, for code that calls store methods on a
/// concrete backend type (`SqliteStore`, `PgStore`, a test double):
/// `use insights_core::store::prelude::*;`. On a `dyn MetadataStore` and a
/// generic `S: MetadataStore` the methods resolve without it.
pub mod prelude {
    pub use super::{
        AccountStore, AlertStore, ApprovalStore, AuditStore, DataKeyStore, DirectoryStore,
        GovernanceStore, JobStore, LeaseStore, MeetingClaimStore, MetadataStore, ProcessingStore,
        RecordingGapStore, RecordingStore, SearchStore, SegmentUploadStore, SigningKeyStore,
        SubjectStore, TenantStore, TranscriptStore, TransientStore,
    };
}

/// Used by the delegation macros, so that crates using them need no
/// dependency on `async-trait` of their own.
#[doc(hidden)]
pub use async_trait::async_trait as __async_trait;

/// Errors of a metadata store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist (in this tenant).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated (e.g. duplicate tenant name).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request itself is invalid (bad cursor, bad scope...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The operation is refused by a rule of the domain (legal hold...).
    #[error("refused: {0}")]
    Refused(String),
    /// Stored data could not be read back as a domain value.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// Persistent metadata: every area of the store. Services hold an
/// `Arc<dyn MetadataStore>`; code that needs one area only may take that
/// area's trait instead.
///
/// Implemented for every type that implements all the area traits (a
/// backend implements those, never this trait itself).
pub trait MetadataStore:
    TenantStore
    + DirectoryStore
    + RecordingStore
    + SearchStore
    + TranscriptStore
    + JobStore
    + AuditStore
    + GovernanceStore
    + AccountStore
    + ApprovalStore
    + DataKeyStore
    + ProcessingStore
    + SubjectStore
    + SigningKeyStore
    + LeaseStore
    + MeetingClaimStore
    + SegmentUploadStore
    + RecordingGapStore
    + TransientStore
    + AlertStore
{
}

impl<T> MetadataStore for T where
    T: TenantStore
        + DirectoryStore
        + RecordingStore
        + SearchStore
        + TranscriptStore
        + JobStore
        + AuditStore
        + GovernanceStore
        + AccountStore
        + ApprovalStore
        + DataKeyStore
        + ProcessingStore
        + SubjectStore
        + SigningKeyStore
        + LeaseStore
        + MeetingClaimStore
        + SegmentUploadStore
        + RecordingGapStore
        + TransientStore
        + AlertStore
        + ?Sized
{
}
