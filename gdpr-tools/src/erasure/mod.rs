//! Erasure (GDPR Art. 17): request → dry-run report → execute → signed
//! certificate.
//!
//! # What is erased, per recording the subject took part in
//!
//! | tenant waiver | subject owns the recording¹ | action | what happens |
//! | --- | --- | --- | --- |
//! | set | yes | `erase` (`delete-recording`) | every blob under the recording's prefix deleted, its data key crypto-shredded, spool copies deleted (through the spool itself, [`SpoolCopies`]), then the recording with participants, streams, transcript, insights and search-index entries |
//! | set | no | `erase` (`pseudonymize`) | media deleted and key shredded (it holds the subject's voice), the subject's participant rows pseudonymised, their transcript segments (and any segment naming them) and all insights deleted; the other parties' call data stays |
//! | not set | either | `erase-metadata-defer-media` | the subject's participant rows pseudonymised, their segments and the insights deleted; the media stays until retention deletes it at its due date (the seed: immediate media deletion needs the waiver) |
//! | — | held | `blocked` | nothing; the report names each hold (case name) or the legal-hold flag |
//!
//! ¹ the subject is the policy-recorded user, or every identified party
//! of the recording is the subject.
//!
//! Directory users that are the subject are deleted when inactive; an
//! active one is `blocked` (the seed: remove the user at the source
//! directory first). Audit events are kept: the audit chain is
//! append-only evidence and carries ids only, never identifiers.
//!
//! # Resumable and idempotent
//!
//! The request, its plan and the outcome of every finished recording are
//! persisted (`erasure_requests`) every 20 recordings or second. Every step
//! tolerates having been done already (a missing blob, an already
//! shredded key, a recording already deleted), so a run killed anywhere
//! resumes on the next `execute`, and executing a completed request
//! returns it unchanged. Recordings blocked by a hold are retried by the
//! next `execute` (after the hold is lifted).
//!
//! The certificate is built only from persisted facts (the plan's ids and
//! blob hashes, the outcomes, the first execution's start time), so an
//! interrupted and resumed erasure certifies exactly what an
//! uninterrupted one would; only `completed_at` is the time of the run
//! that finished. A recording's `spool_copy` (what was deleted from the
//! local spool, present only when something was) is persisted as soon as
//! it is deleted, before the media, so a run that fails afterwards (the
//! blob store down) certifies it on resume.
//!
//! With the waiver, a recording's spool copy is deleted before its
//! blobs: the uploader stores nothing of a recording whose spool copy is
//! gone (it re-checks after its writes and deletes what it put), so
//! every blob it stored before is there to be deleted. Identifiers are kept in clear only while work is
//! pending (to scrub transcript text); afterwards only salted SHA-256
//! hashes remain.
//!
//! # Code map
//!
//! This file holds the request's types and persisted state; `plan` makes
//! the dry-run report ([`request`]), `execute` erases ([`execute`]) and
//! `certificate` builds the certificate document from the persisted
//! state (signing and verification are `crate::certificate`'s).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use insights_core::blob::{BlobError, BlobStore};
use insights_core::domain::{ErasureRecord, KeyId, ParticipantId, RecordingId, TenantId, UserId};
use insights_core::spool::{RemovedFromSpool, SpoolCopies, SpoolCopiesError};
use insights_core::store::{MetadataStore, StoreError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::certificate::{CertificateError, CertificateSigner};
use crate::subject::{FindOptions, SubjectError};

mod certificate;
mod execute;
mod plan;

pub use self::execute::{Progress, execute};
pub(crate) use self::plan::hash_identifiers;
pub use self::plan::{blocking_holds, request};

/// The label a pseudonymised participant gets.
pub const ERASED_LABEL: &str = "[erased data subject]";

/// Errors of erasure.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error(transparent)]
    Subject(#[from] SubjectError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("blob store: {0}")]
    Blob(#[from] BlobError),
    #[error("access bundles: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Spool(#[from] SpoolCopiesError),
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    #[error("the erasure request's stored state is unreadable: {0}")]
    State(String),
    #[error("a reason is required")]
    NoReason,
}

/// What erasure needs.
pub struct ErasureEnv<'a> {
    pub store: &'a dyn MetadataStore,
    pub blobs: &'a dyn BlobStore,
    pub signer: &'a CertificateSigner,
    /// The bot-gateway spool: copies of recordings not yet uploaded are
    /// deleted from it, with the spool's own protocol (`None`: no spool on
    /// this installation).
    pub spool: Option<Arc<dyn SpoolCopies>>,
    pub find: FindOptions,
}

/// A hold that blocks a recording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRef {
    /// The hold's id, or `legal-hold-flag` for the recording's own flag.
    pub id: String,
    pub case_name: String,
}

/// The media of a recording as planned (ids and hashes, no content).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRef {
    pub container: String,
    pub key: String,
    /// SHA-256 of the stored (encrypted) object.
    pub sha256: String,
    pub data_key_id: KeyId,
}

/// One recording in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanItem {
    pub id: RecordingId,
    pub started_at: DateTime<Utc>,
    /// `erase`, `erase-metadata-defer-media` or `blocked`.
    pub action: String,
    /// `delete-recording` or `pseudonymize`.
    pub mode: String,
    pub participants: Vec<ParticipantId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<HoldRef>,
}

/// One directory user in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryItem {
    pub id: UserId,
    /// `delete` or `blocked`.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The dry-run report: what would be erased and what is blocked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub waiver: bool,
    pub recordings: Vec<PlanItem>,
    pub directory_users: Vec<DirectoryItem>,
    /// Audit events that name the subject's accounts: kept (append-only
    /// evidence, ids only).
    pub audit_events_kept: usize,
}

/// What happened to one recording or directory user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// `deleted`, `pseudonymized`, `pseudonymized-media-deferred`,
    /// `blocked`.
    pub result: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<HoldRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What was deleted from the local spool (only when something was: a
    /// copy not uploaded yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool: Option<RemovedFromSpool>,
}

/// A salted hash of one identifier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashedIdentifier {
    pub field: String,
    pub sha256: String,
}

/// The persisted state of a request (the `state` of its [`ErasureRecord`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErasureState {
    pub reason: String,
    pub salt: String,
    pub identifiers: Vec<HashedIdentifier>,
    /// Lower-case identifiers to scrub from transcript text; emptied once
    /// nothing is pending.
    #[serde(default)]
    pub needles: Vec<String>,
    pub report: Report,
    #[serde(default)]
    pub recordings_done: BTreeMap<RecordingId, Outcome>,
    #[serde(default)]
    pub directory_done: BTreeMap<UserId, Outcome>,
    /// Spool copies deleted, saved as soon as they are (before the
    /// recording's other steps, which may fail and be resumed).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub spool_removed: BTreeMap<RecordingId, RemovedFromSpool>,
    #[serde(default)]
    pub executed_by: Option<String>,
    #[serde(default)]
    pub execution_started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    /// The signed certificate (file contents).
    #[serde(default)]
    pub certificate: Option<String>,
}

/// An erasure request as the API and CLI show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Erasure {
    pub id: Uuid,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub reason: String,
    pub report: Report,
    pub outcomes: BTreeMap<RecordingId, Outcome>,
    pub directory_outcomes: BTreeMap<UserId, Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_id: Option<Uuid>,
}

impl Erasure {
    fn from_record(r: &ErasureRecord) -> Result<(Self, ErasureState), ErasureError> {
        let state: ErasureState = serde_json::from_value(r.state.clone())
            .map_err(|e| ErasureError::State(e.to_string()))?;
        Ok((
            Self {
                id: r.id,
                status: r.status.clone(),
                created_at: r.created_at,
                created_by: r.created_by.clone(),
                reason: state.reason.clone(),
                report: state.report.clone(),
                outcomes: state.recordings_done.clone(),
                directory_outcomes: state.directory_done.clone(),
                certificate_id: state.certificate.as_ref().map(|_| r.id),
            },
            state,
        ))
    }
}

fn to_value(s: &ErasureState) -> Result<serde_json::Value, ErasureError> {
    serde_json::to_value(s).map_err(|e| ErasureError::State(e.to_string()))
}

/// One erasure request.
pub async fn get(
    store: &dyn MetadataStore,
    tenant: TenantId,
    id: Uuid,
) -> Result<Erasure, ErasureError> {
    Ok(Erasure::from_record(&store.get_erasure_request(tenant, id).await?)?.0)
}

/// The tenant's erasure requests, newest first.
pub async fn list(
    store: &dyn MetadataStore,
    tenant: TenantId,
) -> Result<Vec<Erasure>, ErasureError> {
    let mut out = Vec::new();
    for r in store.list_erasure_requests(tenant).await? {
        out.push(Erasure::from_record(&r)?.0);
    }
    Ok(out)
}

/// The signed certificate of a request (file contents), once executed.
pub async fn certificate(
    store: &dyn MetadataStore,
    tenant: TenantId,
    id: Uuid,
) -> Result<Option<String>, ErasureError> {
    let r = store.get_erasure_request(tenant, id).await?;
    Ok(Erasure::from_record(&r)?.1.certificate)
}
