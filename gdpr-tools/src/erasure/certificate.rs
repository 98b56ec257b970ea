//! The certificate document of an erasure, built only from persisted
//! facts (see the module docs); `crate::certificate` signs it.

use insights_core::domain::{ErasureRecord, TenantId};
use serde_json::json;

use super::ErasureState;

/// The certificate's content: persisted facts only (see the module docs).
pub(super) fn certificate_content(
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
