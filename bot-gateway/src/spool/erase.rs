//! Removing a recording's copies from the spool on request (GDPR
//! erasure): [`SpoolCopies`] for the running [`Spool`] and for
//! [`SpoolDir`], the spool directory seen from another process.
//!
//! # Who may delete an entry
//!
//! One process owns a spool directory: the one holding `spool.lock`
//! (`insights serve` or `insights gateway`). Its memory (live writers, the
//! entries the uploader works through, the bytes used) is the truth about
//! the entries, so only it changes them.
//!
//! * In that process, [`Spool`] removes an entry under its removal lock
//!   (shared with the deletion after upload, so the two never delete the
//!   same entry at once) and keeps `begin` from creating the same entry
//!   meanwhile. A live entry (a call still being recorded) is refused
//!   with [`SpoolCopiesError::Live`]: nothing is deleted, the erasure
//!   stops and is resumed once the call has ended.
//! * Any other process (`insights gdpr erase`) uses [`SpoolDir`]. When the
//!   directory holds nothing of the recording, nothing is touched and no
//!   lock is taken. Otherwise it takes `spool.lock` for the removal; when
//!   a gateway holds it, the removal is refused with
//!   [`SpoolCopiesError::InUse`] and nothing is deleted (renaming an entry
//!   under a running gateway would leave its writer and uploader working
//!   on a vanished directory). Without a gateway, a `live` entry is what a
//!   stopped process left behind and is deleted like any other.
//!
//! # Protocol (the one used after an upload)
//!
//! Leftovers of interrupted changes (`.trash-<id>`, `.new-<id>`) are
//! deleted first, then the entry is renamed to `.trash-<id>`, the spool
//! directory fsync'd, the trash deleted and the directory fsync'd again.
//! A crash in between leaves `.trash-<id>`, which the next
//! [`Spool::open`] or the next removal deletes: the entry never comes
//! back. A journal naming another tenant is refused
//! ([`SpoolCopiesError::OtherTenant`]); an unreadable journal is not (the
//! directory name is the recording id the caller asked for).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use insights_core::domain::{RecordingId, TenantId};
use insights_core::fsio;
use insights_core::spool::{RemovedFromSpool, SpoolCopies, SpoolCopiesError};

use super::journal::{JOURNAL_FILE, Journal};
use super::recovery::lock_spool;
use super::{Inner, Spool, SpoolError, blocking, delete_entry_dir, io_err, lock};

/// The spool directory as a process that does not own it sees it (the
/// `insights gdpr erase` command): removes copies only while no gateway
/// holds the spool (see the module docs).
#[derive(Clone, Debug)]
pub struct SpoolDir {
    dir: PathBuf,
}

impl SpoolDir {
    /// The spool in `dir` (`[spool] dir`). Nothing is opened or created.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn remove_blocking(
        &self,
        tenant: TenantId,
        id: RecordingId,
    ) -> Result<RemovedFromSpool, SpoolCopiesError> {
        if paths(&self.dir, id).iter().all(|p| !exists(p)) {
            return Ok(RemovedFromSpool::default());
        }
        // Held until the removal is durable; dropping the file releases it.
        let _lock = match lock_spool(&self.dir) {
            Ok(f) => f,
            Err(SpoolError::Locked(_)) => return Err(SpoolCopiesError::InUse(id)),
            Err(e) => return Err(copies_err(e)),
        };
        check_tenant(&self.dir, tenant, id)?;
        remove_files(&self.dir, id).map_err(copies_err)
    }
}

#[async_trait]
impl SpoolCopies for SpoolDir {
    async fn remove_recording(
        &self,
        tenant: TenantId,
        id: RecordingId,
    ) -> Result<RemovedFromSpool, SpoolCopiesError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.remove_blocking(tenant, id))
            .await
            .map_err(|e| SpoolCopiesError::Io(format!("spool task failed: {e}")))?
    }
}

#[async_trait]
impl SpoolCopies for Spool {
    async fn remove_recording(
        &self,
        tenant: TenantId,
        id: RecordingId,
    ) -> Result<RemovedFromSpool, SpoolCopiesError> {
        let inner = self.inner.clone();
        let removed = blocking(move || Ok(inner.remove_recording(tenant, id)))
            .await
            .map_err(copies_err)??;
        if removed.anything() {
            self.inner.publish_metrics();
            tracing::info!(recording = %id, bytes = removed.bytes, "recording removed from the spool on request");
        }
        Ok(removed)
    }
}

impl Inner {
    /// [`SpoolCopies::remove_recording`] in the owning process.
    fn remove_recording(
        &self,
        tenant: TenantId,
        id: RecordingId,
    ) -> Result<RemovedFromSpool, SpoolCopiesError> {
        let _removal = lock(&self.removal);
        {
            let mut st = lock(&self.state);
            if st.admitting_ids.contains(&id) {
                return Err(SpoolCopiesError::Live(id));
            }
            if let Some(e) = st.entries.get(&id) {
                if e.live.is_some() {
                    return Err(SpoolCopiesError::Live(id));
                }
                if e.unrecoverable.is_none() && e.journal.tenant_id != tenant {
                    return Err(SpoolCopiesError::OtherTenant(id));
                }
            } else {
                check_tenant(&self.cfg.dir, tenant, id)?;
            }
            // `begin` refuses the id while its files are deleted.
            st.admitting_ids.insert(id);
        }
        let removed = remove_files(&self.cfg.dir, id);
        let mut st = lock(&self.state);
        st.admitting_ids.remove(&id);
        let removed = removed.map_err(copies_err)?;
        st.entries.remove(&id);
        drop(st);
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(removed.bytes))
            });
        Ok(removed)
    }
}

fn copies_err(e: SpoolError) -> SpoolCopiesError {
    SpoolCopiesError::Io(e.to_string())
}

/// The entry, then the leftovers of an interrupted deletion and creation.
fn paths(root: &Path, id: RecordingId) -> [PathBuf; 3] {
    [
        root.join(id.to_string()),
        root.join(format!(".trash-{id}")),
        root.join(format!(".new-{id}")),
    ]
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// Refuses an entry whose (readable) journal names another tenant.
fn check_tenant(root: &Path, tenant: TenantId, id: RecordingId) -> Result<(), SpoolCopiesError> {
    match Journal::read(&root.join(id.to_string()).join(JOURNAL_FILE)) {
        Ok(j) if j.tenant_id != tenant => Err(SpoolCopiesError::OtherTenant(id)),
        _ => Ok(()),
    }
}

/// Deletes every spool copy of `id` under `root` with the spool's
/// protocol (see the module docs).
fn remove_files(root: &Path, id: RecordingId) -> Result<RemovedFromSpool, SpoolError> {
    let [entry, trash, new] = paths(root, id);
    let mut removed = RemovedFromSpool::default();
    // Leftovers first: an old `.trash-<id>` would make the rename fail.
    for leftover in [&trash, &new] {
        let Ok(meta) = fs::symlink_metadata(leftover) else {
            continue;
        };
        removed.bytes += if meta.is_dir() {
            fsio::tree_size(leftover)
        } else {
            meta.len()
        };
        let gone = if meta.is_dir() {
            fs::remove_dir_all(leftover)
        } else {
            fs::remove_file(leftover)
        };
        gone.map_err(|e| io_err("cannot remove", leftover, e))?;
        removed.leftovers += 1;
    }
    if exists(&entry) {
        removed.bytes += fsio::tree_size(&entry);
        // Rename to trash, fsync, delete, fsync: as after an upload.
        delete_entry_dir(root, id)?;
        removed.entry = true;
    } else if removed.leftovers > 0 {
        fsio::sync_dir(root).map_err(|e| io_err("cannot sync", root, e))?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> RecordingId {
        RecordingId::new()
    }

    #[test]
    fn nothing_to_remove_touches_nothing() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let spool = SpoolDir::new(dir.path().join("spool"));
        let r = spool.remove_blocking(TenantId::new(), id())?;
        assert_eq!(r, RemovedFromSpool::default());
        assert!(!dir.path().join("spool").exists(), "not created");
        Ok(())
    }

    #[test]
    fn removes_entry_and_leftovers_under_the_lock() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let rid = id();
        let entry = dir.path().join(rid.to_string());
        fs::create_dir_all(&entry)?;
        fs::write(entry.join("media.spl"), [7u8; 100])?;
        fs::create_dir_all(dir.path().join(format!(".trash-{rid}")))?;
        fs::write(
            dir.path().join(format!(".trash-{rid}/media.spl")),
            [7u8; 10],
        )?;
        let other = dir.path().join(id().to_string());
        fs::create_dir_all(&other)?;
        let r = SpoolDir::new(dir.path()).remove_blocking(TenantId::new(), rid)?;
        assert_eq!(
            r,
            RemovedFromSpool {
                entry: true,
                leftovers: 1,
                bytes: 110
            }
        );
        assert!(!entry.exists() && !dir.path().join(format!(".trash-{rid}")).exists());
        assert!(other.exists(), "other entries are left alone");
        // Idempotent.
        let again = SpoolDir::new(dir.path()).remove_blocking(TenantId::new(), rid)?;
        assert!(!again.anything());
        Ok(())
    }

    #[test]
    fn refused_while_another_process_holds_the_spool() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let rid = id();
        fs::create_dir_all(dir.path().join(rid.to_string()))?;
        let held = lock_spool(dir.path())?;
        let r = SpoolDir::new(dir.path()).remove_blocking(TenantId::new(), rid);
        assert!(matches!(r, Err(SpoolCopiesError::InUse(x)) if x == rid));
        assert!(dir.path().join(rid.to_string()).exists(), "nothing deleted");
        drop(held);
        assert!(
            SpoolDir::new(dir.path())
                .remove_blocking(TenantId::new(), rid)?
                .entry
        );
        Ok(())
    }
}
