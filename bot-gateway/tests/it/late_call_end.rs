//! A call-end processed after the uploader stored the recording: the
//! gateway read `spooled` at call end, the uploader stored the recording,
//! then the call-end wrote its status. The recording must stay `stored`
//! (observed as a flaky regression to `spooled` with 2-second calls).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bot_gateway::uploader::Uploader;
use chrono::{DateTime, Utc};
use insights_core::domain::{
    MediaObject, MediaStream, Participant, ParticipantId, Recording, RecordingId, RecordingStatus,
    TenantId,
};
use insights_core::store::{MetadataStore, RecordingStore, StoreResult};
use serde_json::json;

use crate::ingest::{message, tone, uploader};
use crate::ingest_support::{MEDIA_TOKEN, World};
use crate::support::notify;

/// The gateway's store, except that the call-end status write (a status
/// other than `stored`, with an end time) first lets the real uploader
/// store the recording: the interleaving of the race, made certain.
struct UploadBeforeCallEnd {
    inner: Arc<dyn MetadataStore>,
    uploader: OnceLock<Uploader>,
    /// The status the call-end asked for, once it was written.
    asked: Mutex<Option<RecordingStatus>>,
    upload_failed: Mutex<Option<String>>,
    forced: AtomicBool,
}

insights_core::delegate_store_areas!(UploadBeforeCallEnd => inner; except RecordingStore);

#[async_trait]
impl RecordingStore for UploadBeforeCallEnd {
    async fn update_recording_status(
        &self,
        tenant: TenantId,
        id: RecordingId,
        status: RecordingStatus,
        ended_at: Option<DateTime<Utc>>,
        result_code: Option<&str>,
    ) -> StoreResult<()> {
        let call_end = status != RecordingStatus::Stored && ended_at.is_some();
        if call_end
            && !self.forced.swap(true, Ordering::SeqCst)
            && let Some(u) = self.uploader.get()
            && let Err(e) = u.upload_once(id).await
        {
            *self.upload_failed.lock().unwrap() = Some(e.to_string());
        }
        let done = self
            .inner
            .update_recording_status(tenant, id, status, ended_at, result_code)
            .await;
        if call_end {
            *self.asked.lock().unwrap() = Some(status);
        }
        done
    }

    async fn insert_recording(&self, tenant: TenantId, recording: &Recording) -> StoreResult<()> {
        self.inner.insert_recording(tenant, recording).await
    }
    async fn get_recording(&self, tenant: TenantId, id: RecordingId) -> StoreResult<Recording> {
        self.inner.get_recording(tenant, id).await
    }
    async fn merge_recording_attributes(
        &self,
        tenant: TenantId,
        id: RecordingId,
        attributes: &std::collections::BTreeMap<String, serde_json::Value>,
    ) -> StoreResult<()> {
        self.inner
            .merge_recording_attributes(tenant, id, attributes)
            .await
    }
    async fn get_recordings(
        &self,
        tenant: TenantId,
        ids: &[RecordingId],
    ) -> StoreResult<Vec<Recording>> {
        self.inner.get_recordings(tenant, ids).await
    }
    async fn recording_by_external_call_id(
        &self,
        tenant: TenantId,
        call_id: &str,
    ) -> StoreResult<Recording> {
        self.inner
            .recording_by_external_call_id(tenant, call_id)
            .await
    }
    async fn add_participant(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        p: &Participant,
    ) -> StoreResult<()> {
        self.inner.add_participant(tenant, recording, p).await
    }
    async fn add_participant_once(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        p: &Participant,
        object_id: Option<&str>,
    ) -> StoreResult<Participant> {
        self.inner
            .add_participant_once(tenant, recording, p, object_id)
            .await
    }
    async fn copy_recorded_users(
        &self,
        tenant: TenantId,
        from: RecordingId,
        to: RecordingId,
    ) -> StoreResult<u32> {
        self.inner.copy_recorded_users(tenant, from, to).await
    }
    async fn add_stream(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        s: &MediaStream,
    ) -> StoreResult<()> {
        self.inner.add_stream(tenant, recording, s).await
    }
    async fn set_recording_media(
        &self,
        tenant: TenantId,
        id: RecordingId,
        media: Option<&MediaObject>,
    ) -> StoreResult<()> {
        self.inner.set_recording_media(tenant, id, media).await
    }
    async fn set_legal_hold_flag(
        &self,
        tenant: TenantId,
        id: RecordingId,
        held: bool,
    ) -> StoreResult<()> {
        self.inner.set_legal_hold_flag(tenant, id, held).await
    }
    async fn update_participant_presence(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        participant: ParticipantId,
        recorded_user: bool,
        left_ms: Option<i64>,
    ) -> StoreResult<()> {
        self.inner
            .update_participant_presence(tenant, recording, participant, recorded_user, left_ms)
            .await
    }
    async fn delete_recording(&self, tenant: TenantId, id: RecordingId) -> StoreResult<()> {
        self.inner.delete_recording(tenant, id).await
    }
    async fn set_participant_object_id(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        participant: ParticipantId,
        object_id: &str,
    ) -> StoreResult<()> {
        self.inner
            .set_participant_object_id(tenant, recording, participant, object_id)
            .await
    }
    async fn count_unstored_recordings(&self, tenant: TenantId) -> StoreResult<u64> {
        self.inner.count_unstored_recordings(tenant).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_end_after_the_upload_leaves_the_recording_stored() {
    let double = Arc::new(OnceLock::<Arc<UploadBeforeCallEnd>>::new());
    let d = double.clone();
    let w = World::start_wrapped(
        |_| {},
        move |inner| {
            let s = Arc::new(UploadBeforeCallEnd {
                inner,
                uploader: OnceLock::new(),
                asked: Mutex::new(None),
                upload_failed: Mutex::new(None),
                forced: AtomicBool::new(false),
            });
            d.set(s.clone()).ok();
            s
        },
    )
    .await;
    let double = double.get().unwrap().clone();
    double.uploader.set(uploader(&w)).ok();

    // A 2-second call: media in, `end`, closed and spooled.
    let id = w.two_party_call("call-late").await;
    let mut a = w.connect("call-late", Some(MEDIA_TOKEN)).await.unwrap();
    assert_eq!(a.hello().await["type"], "ready");
    for i in 0..100 {
        a.binary(message(
            i,
            vec![(11, tone(440.0, i, 8000.0)), (10, tone(1000.0, i, 8000.0))],
        ))
        .await;
    }
    a.text(json!({"type": "end"})).await;
    assert_eq!(a.recv().await["type"], "closed");
    let rec = w.store.get_recording(w.tenant.id, id).await.unwrap();
    assert_eq!(rec.status, RecordingStatus::Spooled);

    // Graph says the call ended; the uploader stores the recording between
    // the gateway's read of the status and its write.
    assert_eq!(
        w.notify(vec![notify::deleted("call-late", 200, 5000, "ended")])
            .await,
        202
    );
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while double.asked.lock().unwrap().is_none() {
        assert!(std::time::Instant::now() < until, "call end not processed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*double.upload_failed.lock().unwrap(), None, "upload");
    assert_eq!(
        *double.asked.lock().unwrap(),
        Some(RecordingStatus::Spooled),
        "the forced order: the call-end had read spooled before the upload"
    );

    let rec = w.store.get_recording(w.tenant.id, id).await.unwrap();
    assert_eq!(
        rec.status,
        RecordingStatus::Stored,
        "a late call-end never un-stores"
    );
    assert!(rec.media.is_some());
    assert!(rec.ended_at.is_some(), "the call's end is still recorded");
    assert!(w.spool.entry(id).is_none(), "the spool copy is gone");
}
