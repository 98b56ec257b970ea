//! Segmented upload: while a call runs, the sealed records of its spool
//! media log are staged in the tenant's blob container every
//! `[uploader] segment_seconds`, so that a gateway node destroyed with its
//! disk loses at most one segment of a long call (issue 15 §4).
//!
//! # What is staged
//!
//! The blocks are the spool media log itself (see [`crate::spool`]): its
//! header and whole records, each already sealed with AES-256-GCM under
//! the recording's data key. Nothing new is ever in clear, and whoever
//! reads the staged log back authenticates every record with the same
//! reader the local crash recovery uses. Every round, for each live
//! recording of this node's spool, the bytes appended since the last
//! round, up to the end of the last whole record
//! ([`format::whole_records_end`], record headers only, no decryption),
//! are staged as the next uncommitted block of one object per recording,
//! [`layout::segment_log_key`] (`recordings/<id>/spool.log`), with
//! [`BlobStore::put_block`], after the row of the recording in the
//! metadata store ([`SegmentUploadStore`], table `segment_uploads`) has
//! recorded the new block count and staged length (a fenced write: a node
//! that lost the recording stages nothing more). A crash between the two
//! leaves a block recorded but not staged: harmless, the next round
//! stages the same index again and recovery commits the consecutive
//! staged blocks `0..k`, whatever the row says. Bytes staged may not be
//! fsync'd locally yet: they are whole sealed records, so that is no
//! risk.
//!
//! # Who holds a recording: leases and fencing
//!
//! A row names the node (`node_name`) staging the recording and an epoch.
//! Every node renews the lease of all its rows at once every *heartbeat*
//! (`min(segment_seconds, 10 s)`); the lease lasts three heartbeats. A
//! row whose lease ran out belongs to a lost node: another gateway node
//! takes it over in one conditional update (same epoch, lease lapsed →
//! its node, epoch + 1), so exactly one node wins. Every later write of
//! the old holder is fenced: staging records check node and epoch, and
//! its uploader asks [`Segments::may_upload`] before it stores the
//! recording; a node that finds its recording taken over drops its own
//! copy (the recovering node stores it).
//!
//! # Normal end
//!
//! The uploader stores the recording from the local spool as before;
//! right after the spool copy is gone ([`Segments::finished`]), the
//! staged blocks are discarded (an empty block list committed, then the
//! object deleted) and the row deleted: nothing is left behind. (A row
//! that was taken over is *retired* instead of deleted: journal emptied,
//! nothing staged, a lease that never lapses. It is the mark that tells
//! the lost node, should it come back with its disk, that the recording
//! is stored: its uploader then drops its own copy.) The same
//! happens when the recording was erased (the uploader drops it) or its
//! spool copy vanished otherwise (an erasure through the spool).
//!
//! # Recovery of a lost node's recording
//!
//! The node that took a row over:
//! 1. leaves it alone if the recording is stored already (the lost node
//!    died between storing and cleaning up) or erased: it only cleans up;
//! 2. commits the consecutive staged blocks `0..k` (or finds the object
//!    committed by an earlier recovery attempt), streams the object into a
//!    new entry of its own spool ([`Spool::adoption`]), where the log is
//!    scanned like one found live on a restart: every authentic record
//!    kept, the torn tail counted;
//! 3. closes the entry as partial, `gateway-node-lost`, with the journal
//!    the lost node recorded in the row (ids, stream ids, content types,
//!    times and the data key *wrapped* under the tenant's KEK);
//! 4. lets its uploader store it like any other recording: envelopes in
//!    the tenant's container, a manifest signed by *this* node (its
//!    `partial` says `gateway-node-lost`), metadata `stored`, a
//!    transcription job, then the cleanup above.
//!
//! Every step is idempotent: a recovering node that dies is itself
//! recovered by a third (the committed object is read again).
//!
//! # What is lost, at most
//!
//! The audio of the last `segment_seconds` (plus one upload) before the
//! node was lost. Every live call gets its row at the first heartbeat
//! after it began (before anything is staged): a call whose node is lost
//! before its first round has no audio to recover, and is marked failed
//! (`gateway-node-lost`) by the node that takes its row over, never left
//! `recording`. Only a call lost within its first heartbeat leaves no
//! row; its metadata stays `recording`. A restarted node
//! (disk intact) finds its rows by its `node_name` and carries on; if it
//! stayed away longer than the lease, another node has recovered its
//! calls from the staged segments and the restarted node drops its own
//! copies.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use insights_core::blob::{BlobError, BlobStore, layout};
use insights_core::config::UploaderSettings;
use insights_core::domain::{
    AuditAction, AuditQuery, ErasureOutcome, RecordingId, RecordingStatus, SegmentUpload, Tenant,
    TenantId,
};
use insights_core::store::{MetadataStore, StoreError};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::spool::format;
use crate::spool::journal::{EntryState, Journal, PartialReason};
use crate::spool::{Spool, SpoolError};

/// Largest block staged at once (a long gap between rounds is split).
const MAX_BLOCK: u64 = 64 * 1024 * 1024;
/// Lapsed rows looked at per round.
const LAPSED_PER_ROUND: u32 = 32;

/// Errors of the segmented upload (logged and retried next round).
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("metadata store: {0}")]
    Store(#[from] StoreError),
    #[error("blob store: {0}")]
    Blob(#[from] BlobError),
    #[error("spool: {0}")]
    Spool(#[from] SpoolError),
    #[error("I/O: {0}")]
    Io(String),
    #[error("journal: {0}")]
    Journal(String),
}

/// Settings of the segmented upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentConfig {
    /// This node's name (`node_name`): the holder of its rows.
    pub node: String,
    /// Between two staging rounds (`[uploader] segment_seconds`).
    pub interval: Duration,
    /// Between two lease renewals and searches for lapsed rows.
    pub heartbeat: Duration,
    /// How long a renewed lease lasts.
    pub lease: Duration,
}

impl SegmentConfig {
    /// From `[uploader]` and the node's name.
    pub fn from_settings(s: &UploaderSettings, node: &str) -> Self {
        let interval = s.segment_interval();
        let heartbeat = interval.min(Duration::from_secs(10));
        Self {
            node: node.to_owned(),
            interval,
            heartbeat,
            lease: heartbeat * 3,
        }
    }
}

/// What this node knows of a row it holds.
#[derive(Clone, Debug)]
struct Held {
    tenant: TenantId,
    epoch: i64,
    object_key: String,
    blocks: u32,
    staged_len: u64,
}

struct Inner {
    cfg: SegmentConfig,
    spool: Spool,
    store: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    /// Rows this node holds. Locked across a recording's staging step, so
    /// a cleanup never races a block upload of the same recording.
    held: tokio::sync::Mutex<HashMap<RecordingId, Held>>,
    /// Rows this node holds whose recovery failed: retried every
    /// heartbeat.
    pending: tokio::sync::Mutex<Vec<SegmentUpload>>,
}

/// The segmented upload of one gateway node. Cheap to clone.
#[derive(Clone)]
pub struct Segments {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Segments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segments")
            .field("node", &self.inner.cfg.node)
            .finish_non_exhaustive()
    }
}

/// What [`Segments::may_upload`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadRight {
    /// This node holds the recording (or nobody stages it): store it.
    Mine,
    /// Another node took it over: drop the local copy.
    TakenOver,
}

impl Segments {
    pub fn new(
        spool: Spool,
        store: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        cfg: SegmentConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                cfg,
                spool,
                store,
                blobs,
                held: tokio::sync::Mutex::new(HashMap::new()),
                pending: tokio::sync::Mutex::new(Vec::new()),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &SegmentConfig {
        &self.inner.cfg
    }

    /// Runs until `shutdown`: resumes the rows this node held before a
    /// restart, then renews leases and recovers lapsed rows every
    /// heartbeat and stages segments every interval.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            node = %self.inner.cfg.node,
            segment_secs = self.inner.cfg.interval.as_secs(),
            "segmented upload started"
        );
        while let Err(e) = self.resume().await {
            tracing::warn!(error = %e, "cannot resume the segment uploads of this node yet");
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.inner.cfg.heartbeat) => {}
            }
        }
        let mut next_stage = tokio::time::Instant::now() + self.inner.cfg.interval;
        let mut next_beat = tokio::time::Instant::now();
        loop {
            let now = tokio::time::Instant::now();
            if now >= next_beat {
                self.heartbeat().await;
                next_beat = now + self.inner.cfg.heartbeat;
            }
            if now >= next_stage {
                self.stage_round().await;
                next_stage = now + self.inner.cfg.interval;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(next_beat.min(next_stage)) => {}
            }
        }
        tracing::info!("segmented upload stopped");
    }

    /// Takes back the rows this node held before a restart: those whose
    /// recording is in the spool are staged on from where they were; the
    /// others lost their spool copy (a node that came back without its
    /// disk) and are recovered from their segments now.
    pub async fn resume(&self) -> Result<(), SegmentError> {
        let rows = self
            .inner
            .store
            .node_segment_uploads(&self.inner.cfg.node)
            .await?;
        for row in rows {
            let id = row.recording_id;
            if self.inner.spool.entry(id).is_some() {
                self.inner.held.lock().await.insert(id, held_row(&row));
            } else {
                self.recover_or_retry(row).await;
            }
        }
        Ok(())
    }

    /// [`Self::recover`]; on failure the row is retried every heartbeat
    /// (this node holds it now and keeps renewing its lease).
    async fn recover_or_retry(&self, row: SegmentUpload) {
        let id = row.recording_id;
        if let Err(e) = self.recover(row.clone()).await {
            metrics::counter!("insights_segment_failures_total").increment(1);
            tracing::warn!(recording = %id, error = %e, "cannot recover a recording from its segments yet; will retry");
            self.inner.held.lock().await.remove(&id);
            self.inner.pending.lock().await.push(row);
        }
    }

    /// One heartbeat: renews this node's leases, recovers lapsed rows.
    pub async fn heartbeat(&self) {
        let until = Utc::now() + chrono_duration(self.inner.cfg.lease);
        if let Err(e) = self
            .inner
            .store
            .renew_segment_leases(&self.inner.cfg.node, until)
            .await
        {
            tracing::warn!(error = %e, "cannot renew this node's segment leases");
            return;
        }
        self.track_new_calls().await;
        let pending = std::mem::take(&mut *self.inner.pending.lock().await);
        for row in pending {
            self.recover_or_retry(row).await;
        }
        if let Err(e) = self.recover_lapsed().await {
            tracing::warn!(error = %e, "cannot look for recordings of lost gateway nodes");
        }
    }

    /// Gives every live recording of the spool that has none yet its row
    /// (no block staged): from then on, if this node is lost, another
    /// node knows of the call even when nothing of it was staged, and
    /// marks it failed instead of leaving it `recording` for ever. Runs
    /// every heartbeat, so the window in which a lost call leaves no
    /// trace is one heartbeat, not one segment.
    pub async fn track_new_calls(&self) {
        for e in self.inner.spool.entries() {
            if e.unrecoverable.is_some() || e.journal.state != EntryState::Live {
                continue;
            }
            let id = e.journal.recording_id;
            let mut held = self.inner.held.lock().await;
            if held.contains_key(&id) {
                continue;
            }
            match self.begin(&e.journal).await {
                Ok(row)
                    if row.node == self.inner.cfg.node && !row.is_retired() && row.epoch == 1 =>
                {
                    held.insert(id, held_row(&row));
                }
                Ok(_) => {} // taken over while this node was away (see `stage`)
                Err(err) => {
                    metrics::counter!("insights_segment_failures_total").increment(1);
                    tracing::warn!(recording = %id, error = %err, "cannot record a new call's segment row; retried next heartbeat");
                }
            }
        }
    }

    /// Takes over and recovers every row whose lease ran out; returns how
    /// many recordings this node took over.
    pub async fn recover_lapsed(&self) -> Result<usize, SegmentError> {
        let now = Utc::now();
        let lapsed = self
            .inner
            .store
            .lapsed_segment_uploads(now, LAPSED_PER_ROUND)
            .await?;
        let mut taken = 0;
        for row in lapsed {
            if row.node == self.inner.cfg.node
                && self.inner.held.lock().await.contains_key(&row.recording_id)
            {
                continue; // ours and alive: the next renewal covers it
            }
            let until = Utc::now() + chrono_duration(self.inner.cfg.lease);
            let Some(row) = self
                .inner
                .store
                .take_over_segment_upload(
                    row.tenant_id,
                    row.recording_id,
                    row.epoch,
                    &self.inner.cfg.node,
                    now,
                    until,
                )
                .await?
            else {
                continue; // another node was first, or the holder renewed
            };
            taken += 1;
            metrics::counter!("insights_segment_takeovers_total").increment(1);
            tracing::warn!(
                recording = %row.recording_id,
                epoch = row.epoch,
                "took over the segments of a recording whose gateway node was lost"
            );
            self.recover_or_retry(row).await;
        }
        Ok(taken)
    }

    /// Recovers a recording this node holds the row of (see the module
    /// docs).
    async fn recover(&self, row: SegmentUpload) -> Result<(), SegmentError> {
        let id = row.recording_id;
        let tenant = row.tenant_id;
        let container = Tenant::container_name(tenant);
        // Stored already, or erased: nothing to recover.
        let stored = match self.inner.store.get_recording(tenant, id).await {
            Ok(rec) => rec.media.is_some(),
            Err(StoreError::NotFound) => false,
            Err(e) => return Err(e.into()),
        };
        if stored || self.erased(tenant, id).await? {
            tracing::info!(recording = %id, stored, "recording of a lost node is stored or erased; only its segments are removed");
            return self.discard(&row).await;
        }
        self.inner.held.lock().await.insert(id, held_row(&row));
        if self.inner.spool.entry(id).is_some() {
            return Ok(()); // adopted before a restart: the uploader has it
        }
        let staged = self
            .inner
            .blobs
            .staged_blocks(&container, &row.object_key)
            .await?;
        let indexes: Vec<u32> = staged
            .iter()
            .enumerate()
            .take_while(|(i, b)| b.index as usize == *i)
            .map(|(_, b)| b.index)
            .collect();
        if (indexes.len() as u64) < u64::from(row.blocks) {
            tracing::warn!(
                recording = %id,
                staged = indexes.len(),
                recorded = row.blocks,
                "fewer segments staged than recorded; recovering what is there"
            );
        }
        if !indexes.is_empty() {
            self.inner
                .blobs
                .commit_blocks(&container, &row.object_key, &indexes)
                .await?;
        }
        let adoption = match self.inner.spool.adoption(id).await {
            Ok(a) => a,
            Err(SpoolError::AlreadyExists(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut chunks = match self
            .inner
            .blobs
            .get_stream(&container, &row.object_key)
            .await
        {
            Ok(s) => s,
            Err(BlobError::NotFound) => {
                // Nothing was ever staged (the node was lost before its
                // first round finished): no audio to store, but the call
                // is not left `recording`: it ends failed, with the
                // reason, where search and reconciliation show it.
                drop(adoption);
                return self.lost_unstaged(&row).await;
            }
            Err(e) => return Err(e.into()),
        };
        let path = adoption.media_path();
        let io = |e: std::io::Error| SegmentError::Io(format!("{}: {e}", path.display()));
        let mut file = {
            let mut o = tokio::fs::OpenOptions::new();
            o.write(true).create_new(true).mode(0o600);
            o.open(&path).await.map_err(io)?
        };
        let mut bytes = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            bytes += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        file.sync_all().await.map_err(io)?;
        drop(file);
        let journal: Journal =
            serde_json::from_str(&row.journal).map_err(|e| SegmentError::Journal(e.to_string()))?;
        if journal.recording_id != id || journal.tenant_id != tenant {
            return Err(SegmentError::Journal("names another recording".into()));
        }
        let j = self
            .inner
            .spool
            .adopt(adoption, journal, PartialReason::GatewayNodeLost)
            .await?;
        if let Some(h) = self.inner.held.lock().await.get_mut(&id) {
            h.staged_len = bytes;
            h.blocks = indexes.len() as u32;
        }
        metrics::counter!("insights_segment_recoveries_total").increment(1);
        tracing::warn!(
            recording = %id,
            bytes,
            valid_bytes = j.valid_len.unwrap_or(0),
            "recording of a lost gateway node recovered from its segments; stored as partial"
        );
        Ok(())
    }

    /// A lost node's recording of which nothing was staged: marked
    /// failed (`gateway-node-lost`, ended at the row's last renewal) unless
    /// it got further already, then its row and blocks are removed.
    async fn lost_unstaged(&self, row: &SegmentUpload) -> Result<(), SegmentError> {
        let (tenant, id) = (row.tenant_id, row.recording_id);
        match self.inner.store.get_recording(tenant, id).await {
            Ok(rec)
                if matches!(
                    rec.status,
                    RecordingStatus::Recording | RecordingStatus::Spooled
                ) =>
            {
                let last_renewal = row.lease_until - chrono_duration(self.inner.cfg.lease);
                self.inner
                    .store
                    .update_recording_status(
                        tenant,
                        id,
                        RecordingStatus::Failed,
                        Some(last_renewal.max(rec.started_at)),
                        Some(PartialReason::GatewayNodeLost.as_str()),
                    )
                    .await?;
                metrics::counter!("insights_segment_lost_unstaged_total").increment(1);
                tracing::error!(recording = %id, "recording of a lost gateway node had no staged segments: marked failed (gateway-node-lost)");
            }
            Ok(_) | Err(StoreError::NotFound) => {
                tracing::error!(recording = %id, "recording of a lost gateway node had no staged segments; nothing to recover");
            }
            Err(e) => return Err(e.into()),
        }
        self.discard(row).await
    }

    async fn erased(&self, tenant: TenantId, id: RecordingId) -> Result<bool, SegmentError> {
        let events = self
            .inner
            .store
            .list_audit(
                tenant,
                &AuditQuery {
                    action: Some(AuditAction::GdprErasure),
                    recording_id: Some(id),
                    ..AuditQuery::default()
                },
            )
            .await?;
        Ok(ErasureOutcome::from_events(&events) == ErasureOutcome::MediaGone)
    }

    /// One staging round: every live recording of the spool gets a row
    /// (the first time) and its new whole records staged; rows whose
    /// spool copy is gone are cleaned up.
    pub async fn stage_round(&self) {
        let entries = self.inner.spool.entries();
        let present: std::collections::HashSet<RecordingId> =
            entries.iter().map(|e| e.journal.recording_id).collect();
        for e in entries {
            if e.unrecoverable.is_some() {
                continue;
            }
            let j = e.journal;
            let id = j.recording_id;
            let limit = match j.state {
                EntryState::Live => e.media_bytes,
                // Finished: its tail, if the row exists (a call that ends
                // between two rounds); none is begun for it.
                EntryState::Finished => j.valid_len.unwrap_or(0),
                EntryState::Uploaded => continue,
            };
            if let Err(err) = self.stage(&j, limit).await {
                metrics::counter!("insights_segment_failures_total").increment(1);
                tracing::warn!(recording = %id, error = %err, "cannot stage a segment; retried next round");
            }
        }
        let gone: Vec<(RecordingId, TenantId)> = self
            .inner
            .held
            .lock()
            .await
            .iter()
            .filter(|(id, _)| !present.contains(id))
            .map(|(id, h)| (*id, h.tenant))
            .collect();
        for (id, tenant) in gone {
            self.finished(tenant, id).await;
        }
    }

    /// Stages the new whole records of one recording (up to `limit` bytes
    /// of its log).
    async fn stage(&self, j: &Journal, limit: u64) -> Result<(), SegmentError> {
        let id = j.recording_id;
        let tenant = j.tenant_id;
        let mut held = self.inner.held.lock().await;
        if let std::collections::hash_map::Entry::Vacant(slot) = held.entry(id) {
            if j.state != EntryState::Live {
                return Ok(());
            }
            let row = self.begin(j).await?;
            if row.node != self.inner.cfg.node || row.is_retired() || row.epoch > 1 {
                // Taken over while this node was away: the uploader drops
                // the local copy (may_upload).
                return Ok(());
            }
            slot.insert(held_row(&row));
        }
        let Some(h) = held.get(&id).cloned() else {
            return Ok(());
        };
        let path = self.inner.spool.media_path(id);
        let from = h.staged_len;
        let end = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            let f = std::fs::File::open(&path)?;
            format::whole_records_end(&f, from, limit)
        })
        .await
        .map_err(|e| SegmentError::Io(e.to_string()))?;
        let end = match end {
            Ok(end) => end,
            // Uploaded and removed since the round began.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(SegmentError::Io(e.to_string())),
        };
        if end <= from {
            return Ok(());
        }
        let container = Tenant::container_name(tenant);
        // The blocks this round stages.
        let mut cuts = Vec::new();
        let (mut blocks, mut staged) = (h.blocks, h.staged_len);
        while staged < end {
            let to = end.min(staged + MAX_BLOCK);
            cuts.push((blocks, staged, to));
            blocks += 1;
            staged = to;
        }
        // Recorded (fenced) before the blocks are put: a node that lost
        // the recording stages nothing more. Recording more than is put
        // (the put fails) is harmless: recovery commits what is staged,
        // and the next round puts the same indexes again.
        let until = Utc::now() + chrono_duration(self.inner.cfg.lease);
        let still = self
            .inner
            .store
            .record_segments(
                tenant,
                id,
                &self.inner.cfg.node,
                h.epoch,
                blocks,
                staged,
                until,
            )
            .await?;
        if !still {
            tracing::warn!(recording = %id, "the recording's segments were taken over by another node; staging stops");
            held.remove(&id);
            return Ok(());
        }
        for (index, from, to) in cuts {
            let bytes = read_range(self.inner.spool.media_path(id), from, to).await?;
            self.inner
                .blobs
                .put_block(&container, &h.object_key, index, bytes)
                .await?;
        }
        if let Some(h) = held.get_mut(&id) {
            h.blocks = blocks;
            h.staged_len = staged;
        }
        metrics::counter!("insights_segments_staged_total").increment(1);
        metrics::counter!("insights_segment_bytes_total").increment(staged - from);
        Ok(())
    }

    /// The row of a recording this node starts to stage.
    async fn begin(&self, j: &Journal) -> Result<SegmentUpload, SegmentError> {
        let now = Utc::now();
        let begun = Journal {
            state: EntryState::Live,
            ..j.clone()
        };
        let row = SegmentUpload {
            tenant_id: j.tenant_id,
            recording_id: j.recording_id,
            node: self.inner.cfg.node.clone(),
            epoch: 1,
            lease_until: now + chrono_duration(self.inner.cfg.lease),
            object_key: layout::segment_log_key(j.recording_id),
            blocks: 0,
            staged_len: 0,
            journal: serde_json::to_string(&begun)
                .map_err(|e| SegmentError::Journal(e.to_string()))?,
            created_at: now,
            updated_at: now,
        };
        Ok(self
            .inner
            .store
            .begin_segment_upload(j.tenant_id, &row)
            .await?)
    }

    /// Whether this node may store recording `id` (asked by the uploader
    /// right before it stores): [`UploadRight::TakenOver`] when another
    /// node holds its segments. Renews this node's lease on the way.
    pub async fn may_upload(
        &self,
        tenant: TenantId,
        id: RecordingId,
    ) -> Result<UploadRight, SegmentError> {
        let Some(row) = self.inner.store.segment_upload(tenant, id).await? else {
            return Ok(UploadRight::Mine);
        };
        if row.node != self.inner.cfg.node {
            self.inner.held.lock().await.remove(&id);
            return Ok(UploadRight::TakenOver);
        }
        if row.is_retired() {
            // Stored by this node after a takeover (a retry of an upload
            // whose spool removal failed): nothing staged to renew.
            return Ok(UploadRight::Mine);
        }
        let until = Utc::now() + chrono_duration(self.inner.cfg.lease);
        let still = self
            .inner
            .store
            .record_segments(
                tenant,
                id,
                &row.node,
                row.epoch,
                row.blocks,
                row.staged_len,
                until,
            )
            .await?;
        Ok(if still {
            UploadRight::Mine
        } else {
            UploadRight::TakenOver
        })
    }

    /// The recording is stored (or erased) and its spool copy gone:
    /// discards its staged blocks and object and deletes its row, if this
    /// node holds it. Failures are logged; the next round retries (the
    /// recording stays known until it succeeds).
    pub async fn finished(&self, tenant: TenantId, id: RecordingId) {
        let mut held = self.inner.held.lock().await;
        let row = match self.inner.store.segment_upload(tenant, id).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(recording = %id, error = %e, "cannot clean up a recording's segments yet");
                return;
            }
        };
        let Some(row) = row.filter(|r| r.node == self.inner.cfg.node && !r.is_retired()) else {
            held.remove(&id);
            return;
        };
        held.entry(id).or_insert_with(|| held_row(&row));
        drop(held);
        if let Err(e) = self.discard(&row).await {
            tracing::warn!(recording = %id, error = %e, "cannot clean up a recording's segments yet");
        }
    }

    /// Discards the staged blocks and the object, then deletes the row
    /// (begun here, epoch 1) or retires it (taken over: the mark for the
    /// lost node, see [`SegmentUpload::is_retired`]).
    async fn discard(&self, row: &SegmentUpload) -> Result<(), SegmentError> {
        let (tenant, id, key) = (row.tenant_id, row.recording_id, row.object_key.as_str());
        let container = Tenant::container_name(tenant);
        match self.inner.blobs.commit_blocks(&container, key, &[]).await {
            Ok(_) | Err(BlobError::ContainerNotFound) => {}
            Err(e) => return Err(e.into()),
        }
        match self.inner.blobs.delete(&container, key).await {
            Ok(()) | Err(BlobError::ContainerNotFound) => {}
            Err(e) => return Err(e.into()),
        }
        if row.epoch > 1 {
            self.inner
                .store
                .retire_segment_upload(tenant, id, &self.inner.cfg.node, row.epoch)
                .await?;
        } else {
            self.inner
                .store
                .delete_segment_upload(tenant, id, Some(&self.inner.cfg.node))
                .await?;
        }
        self.inner.held.lock().await.remove(&id);
        tracing::debug!(recording = %id, "segments removed");
        Ok(())
    }
}

fn held_row(row: &SegmentUpload) -> Held {
    Held {
        tenant: row.tenant_id,
        epoch: row.epoch,
        object_key: row.object_key.clone(),
        blocks: row.blocks,
        staged_len: row.staged_len,
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Bytes `from..to` of a file.
async fn read_range(path: std::path::PathBuf, from: u64, to: u64) -> Result<Bytes, SegmentError> {
    tokio::task::spawn_blocking(move || -> std::io::Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(&path)?;
        let len = usize::try_from(to - from).map_err(std::io::Error::other)?;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, from)?;
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(|e| SegmentError::Io(e.to_string()))?
    .map_err(|e| SegmentError::Io(e.to_string()))
}
