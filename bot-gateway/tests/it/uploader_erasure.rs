//! The uploader and data-subject erasure: media of an erased recording is
//! never stored, whether the erasure came before the upload (its outcome
//! is in the audit trail) or during it (the spool copy vanished while the
//! blobs were being written).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::uploader_support;

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use insights_core::blob::{BlobMeta, BlobResult, BlobStore, PutOutcome, layout};
use insights_core::domain::*;
use insights_core::spool::SpoolCopies;
use tokio::io::AsyncRead;
use uploader_support::*;

/// Appends the audit event an erasure writes for a recording.
async fn erased(w: &World, id: RecordingId, outcome: &str) {
    w.store
        .append_audit(
            w.tenant,
            NewAuditEvent {
                actor: "dpo".into(),
                action: AuditAction::GdprErasure,
                recording_id: Some(id),
                target: None,
                reason: None,
                source: None,
                details: serde_json::json!({"step": "recording", "outcome": outcome}),
            },
        )
        .await
        .unwrap();
}

async fn blobs_of(w: &World, id: RecordingId) -> Vec<String> {
    w.blobs
        .list(&w.container(), &layout::recording_prefix(id))
        .await
        .unwrap_or_default()
}

#[tokio::test]
async fn a_recording_whose_media_was_erased_is_dropped_from_the_spool_not_stored() {
    let w = World::local().await;
    let (id, _) = w.record(2, 100_000).await;
    erased(&w, id, "pseudonymized").await;
    let up = w.uploader(w.store.clone(), w.blobs.clone());
    let stats = up.stats();
    up.upload_once(id).await.unwrap();
    assert!(w.spool.entry(id).is_none(), "the spool copy is deleted");
    assert!(blobs_of(&w, id).await.is_empty(), "nothing stored");
    let rec = w.store.get_recording(w.tenant, id).await.unwrap();
    assert!(rec.media.is_none());
    assert_ne!(rec.status, RecordingStatus::Stored);
    assert!(w.store.list_jobs(w.tenant, id).await.unwrap().is_empty());
    assert_eq!(stats.uploaded.load(Ordering::SeqCst), 0);

    // Deleted by the erasure (the row is gone): the same.
    let (id, _) = w.record(1, 50_000).await;
    erased(&w, id, "deleted").await;
    w.store.delete_recording(w.tenant, id).await.unwrap();
    up.upload_once(id).await.unwrap();
    assert!(w.spool.entry(id).is_none());
    assert!(blobs_of(&w, id).await.is_empty());
}

#[tokio::test]
async fn media_an_erasure_kept_is_stored_without_a_transcription() {
    let w = World::local().await;
    let (id, data) = w.record(2, 100_000).await;
    erased(&w, id, "pseudonymized-media-deferred").await;
    w.upload_all(w.uploader(w.store.clone(), w.blobs.clone()), 30)
        .await;
    assert_stored(&w, id, &data).await;
    assert!(
        w.store.list_jobs(w.tenant, id).await.unwrap().is_empty(),
        "transcribing would bring the erased subject's words back"
    );
    // Without an erasure, the transcription is queued as always.
    let (other, _) = w.record(1, 50_000).await;
    w.upload_all(w.uploader(w.store.clone(), w.blobs.clone()), 30)
        .await;
    assert_eq!(w.store.list_jobs(w.tenant, other).await.unwrap().len(), 1);
}

/// A blob store whose first completed put is followed by an erasure of
/// the recording's spool copy (as `POST .../execute` does).
struct EraseDuringPut {
    inner: Arc<dyn BlobStore>,
    spool: bot_gateway::spool::Spool,
    tenant: TenantId,
    id: RecordingId,
    done: AtomicBool,
}

#[async_trait]
impl BlobStore for EraseDuringPut {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn health(&self) -> BlobResult<()> {
        self.inner.health().await
    }
    async fn ensure_container(&self, c: &str) -> BlobResult<()> {
        self.inner.ensure_container(c).await
    }
    async fn put(
        &self,
        c: &str,
        k: &str,
        data: &mut (dyn AsyncRead + Send + Unpin),
    ) -> BlobResult<PutOutcome> {
        let r = self.inner.put(c, k, data).await;
        if !self.done.swap(true, Ordering::SeqCst) {
            let removed = self
                .spool
                .remove_recording(self.tenant, self.id)
                .await
                .unwrap();
            assert!(removed.entry);
        }
        r
    }
    async fn head(&self, c: &str, k: &str) -> BlobResult<BlobMeta> {
        self.inner.head(c, k).await
    }
    async fn get_range(&self, c: &str, k: &str, r: Range<u64>) -> BlobResult<Bytes> {
        self.inner.get_range(c, k, r).await
    }
    async fn get_stream(
        &self,
        c: &str,
        k: &str,
    ) -> BlobResult<BoxStream<'static, BlobResult<Bytes>>> {
        self.inner.get_stream(c, k).await
    }
    async fn delete(&self, c: &str, k: &str) -> BlobResult<()> {
        self.inner.delete(c, k).await
    }
    async fn list(&self, c: &str, p: &str) -> BlobResult<Vec<String>> {
        self.inner.list(c, p).await
    }
    async fn put_block(&self, c: &str, k: &str, i: u32, data: Bytes) -> BlobResult<()> {
        self.inner.put_block(c, k, i, data).await
    }
    async fn staged_blocks(
        &self,
        c: &str,
        k: &str,
    ) -> BlobResult<Vec<insights_core::blob::StagedBlock>> {
        self.inner.staged_blocks(c, k).await
    }
    async fn commit_blocks(&self, c: &str, k: &str, i: &[u32]) -> BlobResult<BlobMeta> {
        self.inner.commit_blocks(c, k, i).await
    }
}

#[tokio::test]
async fn an_erasure_during_the_upload_leaves_nothing_stored() {
    let w = World::local().await;
    let (id, _) = w.record(3, 100_000).await;
    let racing = Arc::new(EraseDuringPut {
        inner: w.blobs.clone(),
        spool: w.spool.clone(),
        tenant: w.tenant,
        id,
        done: AtomicBool::new(false),
    });
    let up = w.uploader(w.store.clone(), racing.clone());
    up.upload_once(id).await.unwrap();
    assert!(
        racing.done.load(Ordering::SeqCst),
        "the erasure ran mid-upload"
    );
    assert!(
        blobs_of(&w, id).await.is_empty(),
        "what the upload put is deleted"
    );
    let rec = w.store.get_recording(w.tenant, id).await.unwrap();
    assert!(rec.media.is_none(), "no media recorded");
    assert_ne!(rec.status, RecordingStatus::Stored);
    assert!(w.store.list_jobs(w.tenant, id).await.unwrap().is_empty());
}
