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
//! that finished. One exception: a recording's `spool_copy` (what was
//! deleted from the local spool, present only when something was) is
//! persisted with its outcome, so a run killed after deleting a spool
//! copy but before saving that outcome certifies on resume only that no
//! copy was left. Identifiers are kept in clear only while work is
//! pending (to scrub transcript text); afterwards only salted SHA-256
//! hashes remain.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use insights_core::blob::{BlobError, BlobStore, layout};
use insights_core::domain::{
    AuditAction, ErasureRecord, KeyId, LegalHold, NewAuditEvent, ParticipantId, Recording,
    RecordingId, RecordingStatus, TenantId, UserId,
};
use insights_core::spool::{RemovedFromSpool, SpoolCopies, SpoolCopiesError};
use insights_core::store::{MetadataStore, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::certificate::{CertificateError, CertificateSigner};
use crate::subject::{self, FindOptions, Found, SubjectError, SubjectIdentifiers};

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
    #[error("bundle folder: {0}")]
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
    /// Where access bundles are kept: bundles that contain an erased
    /// recording are deleted.
    pub bundle_dir: Option<PathBuf>,
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

fn hash_identifier(salt: &str, field: &str, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0]);
    h.update(field.as_bytes());
    h.update([0]);
    h.update(value.as_bytes());
    hex::encode(h.finalize())
}

/// The holds covering `rec` among `holds`, and its own flag.
pub fn blocking_holds(rec: &Recording, holds: &[LegalHold]) -> Vec<HoldRef> {
    let mut out: Vec<HoldRef> = holds
        .iter()
        .filter(|h| h.is_active() && h.scope.covers(rec))
        .map(|h| HoldRef {
            id: h.id.to_string(),
            case_name: h.case_name.clone(),
        })
        .collect();
    if rec.legal_hold && out.is_empty() {
        out.push(HoldRef {
            id: "legal-hold-flag".into(),
            case_name: "the recording's legal-hold flag is set".into(),
        });
    }
    out
}

fn plan_items(found: &Found, holds: &[LegalHold], waiver: bool) -> Vec<PlanItem> {
    found
        .recordings
        .iter()
        .map(|sr| {
            let rec = &sr.recording;
            let blocking = blocking_holds(rec, holds);
            let owns = sr.subject_owns_recording();
            let action = if !blocking.is_empty() {
                "blocked"
            } else if waiver {
                "erase"
            } else {
                "erase-metadata-defer-media"
            };
            PlanItem {
                id: rec.id,
                started_at: rec.started_at,
                action: action.into(),
                mode: if waiver && owns {
                    "delete-recording"
                } else {
                    "pseudonymize"
                }
                .into(),
                participants: sr.participants.clone(),
                media: rec.media.as_ref().map(|m| MediaRef {
                    container: m.container.clone(),
                    key: m.key.clone(),
                    sha256: m.sha256.clone(),
                    data_key_id: m.data_key_id,
                }),
                holds: blocking,
            }
        })
        .collect()
}

/// Records a new erasure request with its dry-run report (status
/// `planned`). Nothing is erased yet.
pub async fn request(
    env: &ErasureEnv<'_>,
    tenant: TenantId,
    ids: &SubjectIdentifiers,
    reason: &str,
    actor: &str,
) -> Result<Erasure, ErasureError> {
    if reason.trim().is_empty() {
        return Err(ErasureError::NoReason);
    }
    let found = subject::find(env.store, tenant, ids, &env.find).await?;
    let waiver = env
        .store
        .get_tenant(tenant)
        .await?
        .settings
        .media_deletion_waiver;
    let holds = env.store.list_legal_holds(tenant, true).await?;
    let mut salt = [0u8; 16];
    rand::fill(&mut salt[..]);
    let salt = hex::encode(salt);
    let identifiers = found
        .normalized
        .given
        .iter()
        .map(|(field, value)| HashedIdentifier {
            field: field.clone(),
            sha256: hash_identifier(&salt, field, value),
        })
        .collect();
    let directory_users = found
        .directory_users
        .iter()
        .map(|(u, _)| {
            if u.active {
                DirectoryItem {
                    id: u.id,
                    action: "blocked".into(),
                    reason: Some(
                        "active in the directory: remove the user at the source directory \
                         first; it is then synced as inactive and can be erased"
                            .into(),
                    ),
                }
            } else {
                DirectoryItem {
                    id: u.id,
                    action: "delete".into(),
                    reason: None,
                }
            }
        })
        .collect();
    let state = ErasureState {
        reason: reason.trim().to_owned(),
        salt,
        identifiers,
        needles: found.needles(),
        report: Report {
            waiver,
            recordings: plan_items(&found, &holds, waiver),
            directory_users,
            audit_events_kept: found.audit_events.len(),
        },
        recordings_done: BTreeMap::new(),
        directory_done: BTreeMap::new(),
        executed_by: None,
        execution_started_at: None,
        completed_at: None,
        certificate: None,
    };
    let now = insights_core::domain::now();
    let record = ErasureRecord {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        status: "planned".into(),
        created_at: now,
        created_by: actor.to_owned(),
        updated_at: now,
        state: to_value(&state)?,
    };
    env.store.put_erasure_request(tenant, &record).await?;
    let blocked = state
        .report
        .recordings
        .iter()
        .filter(|i| i.action == "blocked")
        .count();
    env.store
        .append_audit(
            tenant,
            NewAuditEvent {
                actor: actor.to_owned(),
                action: AuditAction::GdprErasure,
                recording_id: None,
                target: Some(record.id.to_string()),
                reason: Some(state.reason.clone()),
                source: None,
                details: json!({
                    "step": "request",
                    "recordings": state.report.recordings.len(),
                    "blocked": blocked,
                    "directory_users": state.report.directory_users.len(),
                    "waiver": waiver,
                }),
            },
        )
        .await?;
    tracing::info!(request = %record.id, recordings = state.report.recordings.len(), blocked, "erasure requested");
    Ok(Erasure::from_record(&record)?.0)
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

/// Progress is persisted after this many recordings or [`SAVE_INTERVAL`],
/// whichever comes first: the state document grows with the plan, so
/// saving after every recording would make a large erasure quadratic. A
/// resumed run redoes at most these (every step is idempotent).
const SAVE_EVERY: usize = 20;
const SAVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Progress callback: (recordings handled, recordings planned).
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Send + Sync);

/// Executes (or resumes) a request. Safe to call again at any time: a
/// completed request is returned unchanged; blocked recordings are
/// retried.
pub async fn execute(
    env: &ErasureEnv<'_>,
    tenant: TenantId,
    id: Uuid,
    actor: &str,
    progress: Option<Progress<'_>>,
) -> Result<Erasure, ErasureError> {
    let mut record = env.store.get_erasure_request(tenant, id).await?;
    let (_, mut state) = Erasure::from_record(&record)?;
    let pending = |s: &ErasureState| {
        s.report.recordings.iter().any(|i| {
            s.recordings_done
                .get(&i.id)
                .is_none_or(|o| o.result == "blocked")
        }) || s.report.directory_users.iter().any(|u| {
            s.directory_done
                .get(&u.id)
                .is_none_or(|o| o.result == "blocked")
        })
    };
    if state.certificate.is_some() && !pending(&state) {
        return Ok(Erasure::from_record(&record)?.0);
    }
    if state.execution_started_at.is_none() {
        state.execution_started_at = Some(insights_core::domain::now());
        state.executed_by = Some(actor.to_owned());
    }
    record.status = "running".into();
    save(env.store, tenant, &mut record, &state).await?;

    let holds = env.store.list_legal_holds(tenant, true).await?;
    let total = state.report.recordings.len();
    let items = state.report.recordings.clone();
    let mut erased_ids: BTreeSet<RecordingId> = BTreeSet::new();
    let (mut unsaved, mut last_save) = (0usize, std::time::Instant::now());
    for (n, item) in items.iter().enumerate() {
        if let Some(p) = progress {
            p(n, total);
        }
        if state
            .recordings_done
            .get(&item.id)
            .is_some_and(|o| o.result != "blocked")
        {
            erased_ids.insert(item.id);
            continue;
        }
        let outcome = erase_recording(env, tenant, item, &holds, &state, actor).await?;
        if outcome.result != "blocked" {
            erased_ids.insert(item.id);
        }
        state.recordings_done.insert(item.id, outcome);
        unsaved += 1;
        if unsaved >= SAVE_EVERY || last_save.elapsed() >= SAVE_INTERVAL {
            save(env.store, tenant, &mut record, &state).await?;
            unsaved = 0;
            last_save = std::time::Instant::now();
        }
    }
    save(env.store, tenant, &mut record, &state).await?;
    if let Some(p) = progress {
        p(total, total);
    }
    for u in state.report.directory_users.clone() {
        if state
            .directory_done
            .get(&u.id)
            .is_some_and(|o| o.result != "blocked")
        {
            continue;
        }
        let outcome = erase_directory_user(env.store, tenant, &u).await?;
        state.directory_done.insert(u.id, outcome);
        save(env.store, tenant, &mut record, &state).await?;
    }
    if let Some(dir) = &env.bundle_dir {
        delete_bundles(dir, &erased_ids)?;
    }

    let blocked = state
        .recordings_done
        .values()
        .chain(state.directory_done.values())
        .any(|o| o.result == "blocked");
    let deferred = state
        .recordings_done
        .values()
        .any(|o| o.result == "pseudonymized-media-deferred");
    record.status = if blocked {
        "partially-blocked"
    } else if deferred {
        "partially-deferred"
    } else {
        "completed"
    }
    .into();
    if !blocked {
        // Nothing left to scrub: the identifiers go, only hashes stay.
        state.needles.clear();
    }
    state.completed_at = Some(insights_core::domain::now());
    let cert = certificate_content(&record, &state, tenant);
    state.certificate = Some(env.signer.sign(&cert)?);
    save(env.store, tenant, &mut record, &state).await?;
    env.store
        .append_audit(
            tenant,
            NewAuditEvent {
                actor: actor.to_owned(),
                action: AuditAction::GdprErasure,
                recording_id: None,
                target: Some(record.id.to_string()),
                reason: None,
                source: None,
                details: json!({
                    "step": "execute",
                    "status": record.status,
                    "recordings": state.recordings_done.len(),
                }),
            },
        )
        .await?;
    tracing::info!(request = %record.id, status = %record.status, "erasure executed");
    Ok(Erasure::from_record(&record)?.0)
}

async fn save(
    store: &dyn MetadataStore,
    tenant: TenantId,
    record: &mut ErasureRecord,
    state: &ErasureState,
) -> Result<(), ErasureError> {
    record.state = to_value(state)?;
    record.updated_at = insights_core::domain::now();
    store.put_erasure_request(tenant, record).await?;
    Ok(())
}

/// The certificate's content: persisted facts only (see the module docs).
fn certificate_content(
    record: &ErasureRecord,
    state: &ErasureState,
    tenant: TenantId,
) -> serde_json::Value {
    let recordings: Vec<_> = state
        .report
        .recordings
        .iter()
        .map(|item| {
            let o = state.recordings_done.get(&item.id);
            let result = o.map_or("pending", |o| o.result.as_str());
            let media_erased =
                matches!(result, "deleted" | "pseudonymized") && item.media.is_some();
            let mut entry = json!({
                "recording_id": item.id,
                "outcome": result,
                "participants_erased": if result == "blocked" { 0 } else { item.participants.len() },
                "media": item.media.as_ref().map(|m| json!({
                    "blob_sha256": m.sha256,
                    "data_key_id": m.data_key_id,
                    "blob_deleted": media_erased,
                    "data_key_shredded": media_erased,
                })),
                "holds": o.map(|o| o.holds.clone()).unwrap_or_default(),
            });
            // Only when a spool copy was deleted: certificates of erasures
            // without one are unchanged.
            if let (Some(spool), Some(obj)) = (o.and_then(|o| o.spool), entry.as_object_mut()) {
                obj.insert(
                    "spool_copy".into(),
                    json!({
                        "entry_deleted": spool.entry,
                        "leftovers_deleted": spool.leftovers,
                        "bytes_deleted": spool.bytes,
                    }),
                );
            }
            entry
        })
        .collect();
    let users: Vec<_> = state
        .report
        .directory_users
        .iter()
        .map(|u| {
            let o = state.directory_done.get(&u.id);
            json!({
                "directory_user_id": u.id,
                "outcome": o.map_or("pending", |o| o.result.as_str()),
                "reason": o.and_then(|o| o.reason.clone()),
            })
        })
        .collect();
    json!({
        "type": "insights-gdpr-erasure-certificate",
        "version": 1,
        "request_id": record.id,
        "tenant_id": tenant,
        "requested_at": record.created_at,
        "requested_by": record.created_by,
        "reason": state.reason,
        "identifiers": {
            "hash": "sha256(salt || 0x00 || field || 0x00 || normalised value)",
            "salt": state.salt,
            "hashes": state.identifiers,
        },
        "waiver": state.report.waiver,
        "executed_by": state.executed_by,
        "execution_started_at": state.execution_started_at,
        "completed_at": state.completed_at,
        "recordings": recordings,
        "directory_users": users,
        "kept": {
            "audit_events": state.report.audit_events_kept,
            "why": "the audit chain is append-only evidence and holds ids, never identifiers",
        },
    })
}

async fn erase_recording(
    env: &ErasureEnv<'_>,
    tenant: TenantId,
    item: &PlanItem,
    holds: &[LegalHold],
    state: &ErasureState,
    actor: &str,
) -> Result<Outcome, ErasureError> {
    let store = env.store;
    let rec = match store.get_recording(tenant, item.id).await {
        Ok(r) => Some(r),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let Some(rec) = rec else {
        // Deleted by an earlier, interrupted run (or by retention): the
        // media went with it; make sure of the blobs, spool and key.
        if state.report.waiver || item.mode == "delete-recording" {
            delete_media(env, tenant, item).await?;
        }
        let spool = remove_spool_copy(env, tenant, item.id).await?;
        return Ok(Outcome {
            result: if item.mode == "delete-recording" {
                "deleted"
            } else if state.report.waiver {
                "pseudonymized"
            } else {
                "pseudonymized-media-deferred"
            }
            .into(),
            holds: Vec::new(),
            reason: None,
            spool,
        });
    };
    let blocking = blocking_holds(&rec, holds);
    if !blocking.is_empty() {
        return Ok(Outcome {
            result: "blocked".into(),
            holds: blocking,
            reason: Some("on legal hold".into()),
            spool: None,
        });
    }
    let mut spool = None;
    let result = if state.report.waiver {
        delete_media(env, tenant, item).await?;
        spool = remove_spool_copy(env, tenant, item.id).await?;
        if item.mode == "delete-recording" {
            match store.delete_recording(tenant, item.id).await {
                Ok(()) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
            "deleted"
        } else {
            if rec.media.is_some() {
                store.set_recording_media(tenant, item.id, None).await?;
                store
                    .update_recording_status(
                        tenant,
                        item.id,
                        RecordingStatus::MediaDeleted,
                        None,
                        None,
                    )
                    .await?;
            }
            pseudonymize(store, tenant, &rec, item, &state.needles).await?;
            "pseudonymized"
        }
    } else {
        pseudonymize(store, tenant, &rec, item, &state.needles).await?;
        "pseudonymized-media-deferred"
    };
    store
        .append_audit(
            tenant,
            NewAuditEvent {
                actor: actor.to_owned(),
                action: AuditAction::GdprErasure,
                recording_id: Some(item.id),
                target: None,
                reason: None,
                source: None,
                details: json!({"step": "recording", "outcome": result}),
            },
        )
        .await?;
    Ok(Outcome {
        result: result.into(),
        holds: Vec::new(),
        reason: None,
        spool,
    })
}

/// Deletes every blob of the recording and shreds its data key: copies
/// of the ciphertext anywhere else (backups) can no longer be decrypted.
async fn delete_media(
    env: &ErasureEnv<'_>,
    tenant: TenantId,
    item: &PlanItem,
) -> Result<(), ErasureError> {
    let container = item.media.as_ref().map_or_else(
        || insights_core::domain::Tenant::container_name(tenant),
        |m| m.container.clone(),
    );
    let prefix = layout::recording_prefix(item.id);
    let mut keys = match env.blobs.list(&container, &prefix).await {
        Ok(k) => k,
        Err(BlobError::ContainerNotFound) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    if let Some(m) = &item.media
        && !keys.contains(&m.key)
    {
        keys.push(m.key.clone());
    }
    for k in keys {
        match env.blobs.delete(&container, &k).await {
            Ok(()) | Err(BlobError::NotFound) | Err(BlobError::ContainerNotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(m) = &item.media {
        env.store.shred_data_key(tenant, m.data_key_id).await?;
    }
    Ok(())
}

/// Pseudonymises the subject's participant rows and removes what the
/// transcript and insights say about them.
async fn pseudonymize(
    store: &dyn MetadataStore,
    tenant: TenantId,
    rec: &Recording,
    item: &PlanItem,
    needles: &[String],
) -> Result<(), ErasureError> {
    let segments = store.list_transcript(tenant, rec.id).await?;
    let keep: Vec<_> = segments
        .iter()
        .filter(|s| {
            let theirs = s
                .participant_id
                .is_some_and(|p| item.participants.contains(&p));
            let text = s.text.to_lowercase();
            !theirs
                && !needles
                    .iter()
                    .any(|n| !n.is_empty() && text.contains(n.as_str()))
        })
        .cloned()
        .collect();
    if keep.len() != segments.len() {
        store.replace_transcript(tenant, rec.id, &keep).await?;
    }
    store.delete_insights(tenant, rec.id).await?;
    for p in &item.participants {
        match store
            .erase_participant_identity(tenant, rec.id, *p, ERASED_LABEL)
            .await
        {
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn erase_directory_user(
    store: &dyn MetadataStore,
    tenant: TenantId,
    item: &DirectoryItem,
) -> Result<Outcome, ErasureError> {
    let user = match store.get_directory_user(tenant, item.id).await {
        Ok(u) => u,
        Err(StoreError::NotFound) => {
            return Ok(Outcome {
                result: "deleted".into(),
                holds: Vec::new(),
                reason: None,
                spool: None,
            });
        }
        Err(e) => return Err(e.into()),
    };
    if user.active {
        return Ok(Outcome {
            result: "blocked".into(),
            holds: Vec::new(),
            reason: item
                .reason
                .clone()
                .or(Some("active in the directory".into())),
            spool: None,
        });
    }
    match store.delete_directory_user(tenant, item.id).await {
        Ok(()) | Err(StoreError::NotFound) => Ok(Outcome {
            result: "deleted".into(),
            holds: Vec::new(),
            reason: None,
            spool: None,
        }),
        Err(StoreError::Refused(_)) => Ok(Outcome {
            result: "blocked".into(),
            holds: Vec::new(),
            reason: Some("active in the directory".into()),
            spool: None,
        }),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the recording's copies from the local spool through the
/// spool itself (its lock and crash-safe protocol); `Some` with what was
/// deleted, `None` when there was nothing (or no spool).
async fn remove_spool_copy(
    env: &ErasureEnv<'_>,
    tenant: TenantId,
    id: RecordingId,
) -> Result<Option<RemovedFromSpool>, ErasureError> {
    let Some(spool) = &env.spool else {
        return Ok(None);
    };
    let removed = spool.remove_recording(tenant, id).await?;
    Ok(removed.anything().then_some(removed))
}

/// Deletes access bundles (`<id>.zip` with the `<id>.recordings` list
/// beside it) that contain any of `erased`.
fn delete_bundles(dir: &Path, erased: &BTreeSet<RecordingId>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("recordings") {
            continue;
        }
        let list = std::fs::read_to_string(&path)?;
        let hit = list
            .lines()
            .filter_map(|l| l.trim().parse::<RecordingId>().ok())
            .any(|r| erased.contains(&r));
        if hit {
            let _ = std::fs::remove_file(path.with_extension("zip"));
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}
