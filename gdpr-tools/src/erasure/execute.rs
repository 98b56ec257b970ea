//! Executing (or resuming) a request: per recording the media, spool
//! copies, key and metadata, then directory users and access bundles;
//! progress persisted as it goes (see the module docs).

use std::collections::BTreeSet;

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
        let outcome =
            erase_recording(env, tenant, item, &holds, &mut record, &mut state, actor).await?;
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
    // Access bundles (sealed in the blob store) holding an erased recording.
    crate::bundles::delete_containing(env.store, env.blobs, tenant, &erased_ids)
        .await
        .map_err(|e| match e {
            crate::bundles::FileError::Store(e) => ErasureError::Store(e),
            crate::bundles::FileError::Blob(e) => ErasureError::Blob(e),
            other => ErasureError::Io(std::io::Error::other(other)),
        })?;

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
    record: &mut ErasureRecord,
    state: &mut ErasureState,
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
        let spool = remove_spool_copy(env, tenant, item.id, record, state).await?;
        if (state.report.waiver || item.mode == "delete-recording")
            && delete_media(env, tenant, item, None).await? == MediaDeletion::Held
        {
            return Ok(held_meanwhile(spool));
        }
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
        // The spool copy first: from then on the uploader cannot store
        // the media any more (it checks that the copy it read is still in
        // the spool before it records anything, and deletes what it put
        // otherwise), so whatever it stored before is found below.
        spool = remove_spool_copy(env, tenant, item.id, record, state).await?;
        let rec = match store.get_recording(tenant, item.id).await {
            Ok(r) => r,
            Err(StoreError::NotFound) => rec,
            Err(e) => return Err(e.into()),
        };
        if delete_media(env, tenant, item, rec.media.as_ref()).await? == MediaDeletion::Held {
            return Ok(held_meanwhile(spool));
        }
        if item.mode == "delete-recording" {
            match store.delete_recording(tenant, item.id).await {
                Ok(()) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
            "deleted"
        } else {
            if rec.media.is_some() {
                store.set_recording_media(tenant, item.id, None).await?;
            }
            // Also a copy that was only in the spool: it will never be stored.
            if rec.media.is_some() || spool.is_some() {
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

/// The outcome of a recording whose key shred a legal hold refused (a
/// hold placed after the plan was made).
fn held_meanwhile(spool: Option<RemovedFromSpool>) -> Outcome {
    Outcome {
        result: "blocked".into(),
        holds: Vec::new(),
        reason: Some("on legal hold".into()),
        spool,
    }
}

/// What [`delete_media`] did.
#[derive(Debug, PartialEq, Eq)]
enum MediaDeletion {
    Deleted,
    /// The store refused to shred the key: a legal hold placed after the
    /// plan covers the recording. Nothing was deleted.
    Held,
}

/// Shreds the recording's data key, then deletes every blob of it: copies
/// of the ciphertext anywhere else (backups) can no longer be decrypted.
/// The key goes first because the store checks legal holds in the very
/// transaction that shreds it; a hold placed after the plan was made
/// refuses the shred, and then no blob has been touched.
async fn delete_media(
    env: &ErasureEnv<'_>,
    tenant: TenantId,
    item: &PlanItem,
    current: Option<&insights_core::domain::MediaObject>,
) -> Result<MediaDeletion, ErasureError> {
    let prefix = layout::recording_prefix(item.id);
    // Stored after the plan was made (an upload that finished meanwhile).
    let later = current.filter(|m| {
        item.media
            .as_ref()
            .is_none_or(|p| p.data_key_id != m.data_key_id)
    });
    let keys = item.media.iter().map(|m| m.data_key_id);
    for key in keys.chain(later.map(|m| m.data_key_id)) {
        match env.store.shred_data_key(tenant, key).await {
            Ok(_) => {}
            Err(StoreError::Refused(_)) => return Ok(MediaDeletion::Held),
            Err(e) => return Err(e.into()),
        }
    }
    let container = item.media.as_ref().map_or_else(
        || insights_core::domain::Tenant::container_name(tenant),
        |m| m.container.clone(),
    );
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
    if let Some(m) = later {
        for k in env
            .blobs
            .list(&m.container, &prefix)
            .await
            .unwrap_or_default()
        {
            match env.blobs.delete(&m.container, &k).await {
                Ok(()) | Err(BlobError::NotFound) | Err(BlobError::ContainerNotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(MediaDeletion::Deleted)
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
///
/// What was deleted is persisted at once (before the media is deleted,
/// which may fail while the blob store is down), so a resumed run still
/// certifies it.
async fn remove_spool_copy(
    env: &ErasureEnv<'_>,
    tenant: TenantId,
    id: RecordingId,
    record: &mut ErasureRecord,
    state: &mut ErasureState,
) -> Result<Option<RemovedFromSpool>, ErasureError> {
    let earlier = state.spool_removed.get(&id).copied();
    let Some(spool) = &env.spool else {
        return Ok(earlier);
    };
    let removed = spool.remove_recording(tenant, id).await?;
    if !removed.anything() {
        return Ok(earlier);
    }
    state.spool_removed.insert(id, removed);
    save(env.store, tenant, record, state).await?;
    Ok(Some(removed))
}
