//! The dry-run report of a new request: what would be erased, in which
//! mode, and what a hold or an active directory account blocks.

use std::collections::BTreeMap;

use insights_core::domain::{
    AuditAction, ErasureRecord, LegalHold, NewAuditEvent, Recording, TenantId,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    DirectoryItem, Erasure, ErasureEnv, ErasureError, ErasureState, HashedIdentifier, HoldRef,
    MediaRef, PlanItem, Report, to_value,
};
use crate::subject::{self, Found, SubjectIdentifiers};

/// A fresh random salt and the salted SHA-256 of each (field, value).
pub(crate) fn hash_identifiers(given: &[(String, String)]) -> (String, Vec<HashedIdentifier>) {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt[..]);
    let salt = hex::encode(salt);
    let hashed = given
        .iter()
        .map(|(field, value)| HashedIdentifier {
            field: field.clone(),
            sha256: hash_identifier(&salt, field, value),
        })
        .collect();
    (salt, hashed)
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
    let (salt, identifiers) = hash_identifiers(&found.normalized.given);
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
        spool_removed: BTreeMap::new(),
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
