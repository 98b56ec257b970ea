//! Executing (or resuming) a request: per recording the media, spool
//! copies, key and metadata, then directory users and access bundles;
//! progress persisted as it goes (see the module docs).

use std::collections::BTreeSet;
use std::path::Path;

use insights_core::blob::{BlobError, layout};
use insights_core::domain::{
    AuditAction, ErasureRecord, LegalHold, NewAuditEvent, Recording, RecordingId, RecordingStatus,
    TenantId,
};
use insights_core::spool::RemovedFromSpool;
use insights_core::store::{MetadataStore, StoreError};
use serde_json::json;
use uuid::Uuid;

use super::certificate::certificate_content;
use super::plan::blocking_holds;
use super::{
    DirectoryItem, ERASED_LABEL, Erasure, ErasureEnv, ErasureError, ErasureState, Outcome,
    PlanItem, to_value,
};

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
    // Last: what was erased must not survive in the store's own files
    // (SQLite: full-text index segments and WAL page images).
    env.store.purge_erased_residue().await?;
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
