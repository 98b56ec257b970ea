//! The transcription step: one stored recording → its per-speaker
//! transcript.
//!
//! 1. The recording, its media object and its wrapped data key from the
//!    metadata store; the data key unwrapped by the key provider.
//! 2. Each speaker's audio: a call is one stereo Ogg Opus object (the
//!    caller on the left channel, everyone else on the right: see
//!    `bot-gateway`'s ingest), a meeting one mono track per participant
//!    (`MediaStream::track` ≥ 1, starting at `start_ms`; track 0 is the
//!    mix, used only when no participant has a track of their own). The
//!    blob is fetched and decrypted in memory (never written anywhere),
//!    decoded straight to 16 kHz.
//! 3. Voice-activity segmentation per speaker ([`crate::vad::split`]),
//!    then every utterance of every speaker to the engine in one batch.
//! 4. The segments, each attributed to the participant whose channel it
//!    came from, replace the recording's transcript atomically
//!    (`MetadataStore::replace_transcript`): a retried or re-run job never
//!    duplicates a segment, and full-text search follows.
//!
//! Only ids, counts, byte sizes and durations are logged: never text.

use std::io::Cursor;
use std::sync::Arc;

use futures::StreamExt;
use insights_core::blob::{BlobError, BlobStore, layout};
use insights_core::crypto::{DataKey, ExpectedIds, KeyProvider, decrypt_to_vec};
use insights_core::domain::*;
use insights_core::store::{MetadataStore, StoreError};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::stt::{STT_SAMPLE_RATE, SpeechToText, SttError, Utterance};
use crate::vad::{self, VadOptions};

/// Why a pipeline step failed, and whether a retry may help.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Try again later (store or blob store down, provider throttled).
    #[error("transient: {message}")]
    Transient {
        message: String,
        /// A delay the provider asked for, if any.
        retry_after_ms: Option<u64>,
    },
    /// Retrying cannot help (recording gone, media erased, undecodable).
    #[error("permanent: {0}")]
    Permanent(String),
}

impl StepError {
    fn transient(message: impl Into<String>) -> Self {
        StepError::Transient {
            message: message.into(),
            retry_after_ms: None,
        }
    }
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => StepError::Permanent("the recording no longer exists".into()),
            StoreError::Backend(_) => StepError::transient("metadata store unavailable"),
            // Messages of these name tables, columns and ids only.
            other => StepError::Permanent(format!("metadata store: {other}")),
        }
    }
}

impl From<SttError> for StepError {
    fn from(e: SttError) -> Self {
        match e {
            SttError::Transient {
                message,
                retry_after_ms,
            } => StepError::Transient {
                message: format!("speech-to-text: {message}"),
                retry_after_ms,
            },
            // The engine may come back (model installed, config fixed);
            // retrying with backoff costs little.
            SttError::Unavailable(m) => {
                StepError::transient(format!("speech-to-text unavailable: {m}"))
            }
            SttError::Rejected(m) => StepError::Permanent(format!("speech-to-text: {m}")),
        }
    }
}

/// What the transcription step needs.
#[derive(Clone)]
pub struct Pipeline {
    pub store: Arc<dyn MetadataStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub keys: Arc<dyn KeyProvider>,
    pub stt: Arc<dyn SpeechToText>,
    pub vad: VadOptions,
    /// Longest audio one stored object may decode to
    /// (`worker.max_media_duration_secs`); longer fails the job
    /// permanently, found while decoding (see [`decode`]).
    pub max_media_duration: std::time::Duration,
}

/// What one transcription did (counts only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TranscribeReport {
    /// Ciphertext bytes fetched.
    pub media_bytes: u64,
    /// Speakers (channels or tracks) decoded.
    pub speakers: usize,
    /// Audio decoded, ms (summed over speakers).
    pub audio_ms: i64,
    /// Utterances sent to the engine.
    pub utterances: usize,
    /// Segments stored.
    pub segments: usize,
}

/// One speaker's audio inside one stored object.
#[derive(Clone, Debug, PartialEq)]
struct Speaker {
    participant_id: Option<ParticipantId>,
    /// Channel of the decoded object (`None`: downmix every channel).
    channel: Option<usize>,
    /// Where the object's first sample lies in the recording, ms.
    start_ms: i64,
}

/// One stored object to decode, with the speakers it holds.
#[derive(Clone, Debug, PartialEq)]
struct Source {
    blob_key: String,
    object_id: uuid::Uuid,
    speakers: Vec<Speaker>,
}

/// Which objects hold whose voice.
fn sources(rec: &Recording, media: &MediaObject) -> Vec<Source> {
    let primary_start = rec
        .streams
        .iter()
        .find(|s| s.track == 0)
        .map_or(0, |s| s.start_ms);
    let primary = |speakers| Source {
        blob_key: media.key.clone(),
        object_id: rec.id.as_uuid(),
        speakers,
    };
    match rec.kind {
        RecordingKind::Call => {
            // Caller left, the other side right (bot-gateway's ingest puts
            // every non-caller participant on the right).
            let caller = rec
                .participants
                .iter()
                .find(|p| p.role == ParticipantRole::Caller);
            let other = rec
                .participants
                .iter()
                .find(|p| p.role == ParticipantRole::Callee)
                .or_else(|| {
                    rec.participants
                        .iter()
                        .find(|p| p.role != ParticipantRole::Caller)
                });
            vec![primary(vec![
                Speaker {
                    participant_id: caller.map(|p| p.id),
                    channel: Some(0),
                    start_ms: primary_start,
                },
                Speaker {
                    participant_id: other.map(|p| p.id),
                    channel: Some(1),
                    start_ms: primary_start,
                },
            ])]
        }
        RecordingKind::Meeting => {
            let tracks: Vec<Source> = rec
                .streams
                .iter()
                .filter(|s| s.track >= 1 && s.media_type == "audio")
                .filter_map(|s| {
                    let track = u16::try_from(s.track).ok()?;
                    let participant = s.participant_id?;
                    Some(Source {
                        blob_key: layout::stream_blob_key(rec.id, track, &media.content_type),
                        object_id: layout::envelope_object_id(rec.id, track, s.id),
                        speakers: vec![Speaker {
                            participant_id: Some(participant),
                            channel: Some(0),
                            start_ms: s.start_ms,
                        }],
                    })
                })
                .collect();
            if tracks.is_empty() {
                // Only the mix: speech without attribution.
                vec![primary(vec![Speaker {
                    participant_id: None,
                    channel: None,
                    start_ms: primary_start,
                }])]
            } else {
                tracks
            }
        }
    }
}

/// A segment id that depends only on the recording, the speaker and the
/// segment's place in the speaker's sequence, so a re-run that finds the
/// same speech gives the same ids (recap citations keep pointing at it).
fn segment_id(
    rec: RecordingId,
    participant: Option<ParticipantId>,
    start_ms: i64,
    n: usize,
) -> SegmentId {
    let mut h = Sha256::new();
    h.update(b"insights/segment/v1");
    h.update(rec.as_uuid().as_bytes());
    h.update(
        participant
            .map(|p| p.as_uuid())
            .unwrap_or_default()
            .as_bytes(),
    );
    h.update(start_ms.to_be_bytes());
    h.update((n as u64).to_be_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    SegmentId(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

/// Fetches a whole object and decrypts it in memory.
async fn fetch_and_open(
    blobs: &dyn BlobStore,
    container: &str,
    key: &str,
    data_key: &DataKey,
    expected: &ExpectedIds,
) -> Result<(Zeroizing<Vec<u8>>, u64), StepError> {
    let mut stream = blobs.get_stream(container, key).await.map_err(blob_error)?;
    let mut sealed = Vec::new();
    while let Some(piece) = stream.next().await {
        sealed.extend_from_slice(&piece.map_err(blob_error)?);
    }
    let fetched = sealed.len() as u64;
    let plain = decrypt_to_vec(data_key, &sealed, expected)
        .map_err(|e| StepError::Permanent(format!("media object {key}: {e}")))?;
    Ok((Zeroizing::new(plain), fetched))
}

fn blob_error(e: BlobError) -> StepError {
    match e {
        BlobError::NotFound | BlobError::ContainerNotFound => {
            StepError::Permanent("a media object is missing from the blob store".into())
        }
        other => StepError::transient(format!("blob store: {other}")),
    }
}

/// Decoded PCM: cleared from memory when dropped.
type Pcm = Zeroizing<Vec<f32>>;

/// Decoded 16 kHz channels of one object. Ogg Opus (every recording the
/// platform makes) is decoded as a stream ([`recorder::OpusStream`]) that
/// stops at `max` of audio, so a small object claiming hours of audio
/// fails before memory is allocated for it; other formats (imports) are
/// checked against `max` once decoded. All PCM is zeroised after use.
fn decode(
    plain: &[u8],
    content_type: &str,
    max: std::time::Duration,
) -> Result<Vec<Pcm>, StepError> {
    let bad =
        |e: recorder::RecorderError| StepError::Permanent(format!("media cannot be decoded: {e}"));
    if content_type == "audio/ogg" || content_type == "audio/opus" {
        let mut stream =
            recorder::OpusStream::open(Cursor::new(plain), STT_SAMPLE_RATE, max).map_err(bad)?;
        let n = stream.channels();
        let mut out: Vec<Pcm> = (0..n).map(|_| Zeroizing::new(Vec::new())).collect();
        while let Some(block) = stream.next_block().map_err(bad)? {
            for frame in block.chunks_exact(n) {
                for (ch, &v) in out.iter_mut().zip(frame) {
                    push_pcm(ch, f32::from(v) / 32768.0);
                }
            }
        }
        Ok(out)
    } else {
        let pcm = recorder::import::decode_bytes(plain.to_vec(), None).map_err(bad)?;
        let samples = Zeroizing::new(pcm.samples);
        let max_samples = max.as_secs().saturating_mul(u64::from(STT_SAMPLE_RATE));
        if samples.len() as u64 > max_samples {
            return Err(bad(recorder::RecorderError::TooLong {
                max_secs: max.as_secs(),
            }));
        }
        Ok(vec![Zeroizing::new(
            samples.iter().map(|&v| f32::from(v) / 32768.0).collect(),
        )])
    }
}

/// Pushes a sample, growing the vector without leaving a copy of the
/// audio in freed memory (a plain `push` reallocates and frees the old
/// buffer uncleared).
fn push_pcm(v: &mut Pcm, s: f32) {
    if v.len() == v.capacity() {
        let mut bigger: Pcm = Zeroizing::new(Vec::with_capacity((v.capacity() * 2).max(16_000)));
        bigger.extend_from_slice(v);
        *v = bigger;
    }
    v.push(s);
}

fn downmix(channels: &[Pcm]) -> Pcm {
    let len = channels.iter().map(|c| c.len()).max().unwrap_or(0);
    let n = channels.len().max(1) as f32;
    Zeroizing::new(
        (0..len)
            .map(|i| {
                channels
                    .iter()
                    .map(|c| c.get(i).copied().unwrap_or(0.0))
                    .sum::<f32>()
                    / n
            })
            .collect(),
    )
}

impl Pipeline {
    /// Transcribes one recording and replaces its transcript.
    #[tracing::instrument(skip(self), fields(tenant = %tenant, recording = %recording))]
    pub async fn transcribe(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> Result<TranscribeReport, StepError> {
        let rec = self.store.get_recording(tenant, recording).await?;
        // An erasure removed what this recording said about a data
        // subject (or its media): transcribing it again would bring the
        // subject's words back.
        let erasures = self
            .store
            .list_audit(
                tenant,
                &AuditQuery {
                    action: Some(AuditAction::GdprErasure),
                    recording_id: Some(recording),
                    ..AuditQuery::default()
                },
            )
            .await?;
        if ErasureOutcome::from_events(&erasures).is_erased() {
            return Err(StepError::Permanent(
                "a data-subject erasure covers this recording: it is not transcribed again".into(),
            ));
        }
        let media = rec.media.clone().ok_or_else(|| {
            StepError::Permanent("the recording's media is not stored (yet, or any more)".into())
        })?;
        let wrapped = match self.store.get_data_key(tenant, media.data_key_id).await {
            Ok(w) => w,
            Err(StoreError::NotFound) => {
                return Err(StepError::Permanent(
                    "the recording's media was erased (data key shredded)".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let data_key = self
            .keys
            .unwrap(&wrapped)
            .await
            .map_err(|e| StepError::transient(format!("key provider: {e}")))?;

        let mut report = TranscribeReport::default();
        let mut utterances: Vec<Utterance> = Vec::new();
        let mut owners: Vec<Option<ParticipantId>> = Vec::new();
        for source in sources(&rec, &media) {
            let expected = ExpectedIds::new(tenant, source.object_id, media.data_key_id);
            let (plain, fetched) = fetch_and_open(
                self.blobs.as_ref(),
                &media.container,
                &source.blob_key,
                &data_key,
                &expected,
            )
            .await?;
            report.media_bytes += fetched;
            let content_type = media.content_type.clone();
            let vad_opts = self.vad.clone();
            let speakers = source.speakers.clone();
            let max = self.max_media_duration;
            // Decoding and VAD are CPU work: off the async threads. The
            // clear media stays in this task's memory and is zeroised
            // when dropped.
            let per_speaker = tokio::task::spawn_blocking(move || {
                let channels = decode(&plain, &content_type, max)?;
                drop(plain);
                let mut out = Vec::new();
                for sp in &speakers {
                    let samples = match sp.channel {
                        Some(c) => match channels.get(c) {
                            Some(ch) => Zeroizing::new(ch.to_vec()),
                            // A mono call (imported): the whole mix once,
                            // unattributed, on the first speaker only.
                            None => continue,
                        },
                        None => downmix(&channels),
                    };
                    let audio_ms = samples.len() as i64 * 1000 / i64::from(STT_SAMPLE_RATE);
                    let utts = vad::split(&samples, sp.start_ms, &vad_opts);
                    out.push((sp.participant_id, audio_ms, utts));
                }
                if out.is_empty() && !channels.is_empty() {
                    let mix = downmix(&channels);
                    let audio_ms = mix.len() as i64 * 1000 / i64::from(STT_SAMPLE_RATE);
                    let start = speakers.first().map_or(0, |s| s.start_ms);
                    out.push((None, audio_ms, vad::split(&mix, start, &vad_opts)));
                }
                // A one-channel call: the "callee" channel does not exist;
                // the caller channel holds everyone, so drop attribution.
                if channels.len() == 1 && speakers.len() == 2 {
                    for o in &mut out {
                        o.0 = None;
                    }
                }
                Ok::<_, StepError>(out)
            })
            .await
            .map_err(|_| StepError::transient("decoder task failed"))??;
            for (participant, audio_ms, utts) in per_speaker {
                report.speakers += 1;
                report.audio_ms += audio_ms;
                for u in utts {
                    owners.push(participant);
                    utterances.push(u);
                }
            }
        }
        report.utterances = utterances.len();
        tracing::info!(
            media_bytes = report.media_bytes,
            speakers = report.speakers,
            audio_ms = report.audio_ms,
            utterances = report.utterances,
            engine = self.stt.id(),
            "recording decoded"
        );

        let recognized = if utterances.is_empty() {
            Vec::new()
        } else {
            self.stt.transcribe(utterances).await?
        };
        if recognized.len() != owners.len() {
            return Err(StepError::Permanent(format!(
                "the engine returned {} results for {} utterances",
                recognized.len(),
                owners.len()
            )));
        }
        let mut pieces: Vec<(Option<ParticipantId>, crate::stt::Recognized)> = owners
            .into_iter()
            .zip(recognized)
            .flat_map(|(p, rs)| rs.into_iter().map(move |r| (p, r)))
            .filter(|(_, r)| !r.text.trim().is_empty())
            .collect();
        pieces.sort_by_key(|(p, r)| (*p, r.start_ms, r.end_ms));
        let mut segments = Vec::with_capacity(pieces.len());
        let mut n_for: std::collections::HashMap<Option<ParticipantId>, usize> =
            std::collections::HashMap::new();
        for (participant, r) in pieces {
            let n = n_for.entry(participant).or_insert(0);
            *n += 1;
            segments.push(TranscriptSegment {
                id: segment_id(rec.id, participant, r.start_ms, *n),
                recording_id: rec.id,
                participant_id: participant,
                start_ms: r.start_ms,
                end_ms: r.end_ms.max(r.start_ms),
                text: r.text.trim().to_owned(),
                confidence: r.confidence.clamp(0.0, 1.0),
                language: r.language,
            });
        }
        report.segments = segments.len();
        self.store
            .replace_transcript(tenant, rec.id, &segments)
            .await?;
        tracing::info!(segments = report.segments, "transcript stored");
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(role: ParticipantRole) -> Participant {
        Participant {
            id: ParticipantId::new(),
            role,
            display_name: None,
            phone_number: None,
            uri: None,
            email: None,
            directory_user_id: None,
            recorded_user: false,
            joined_ms: Some(0),
            left_ms: None,
        }
    }

    fn media(rec: &Recording) -> MediaObject {
        MediaObject {
            container: "c".into(),
            key: format!("recordings/{}/stream-0.ogg.env", rec.id),
            byte_size: 1,
            sha256: String::new(),
            data_key_id: KeyId::new(),
            content_type: "audio/ogg".into(),
            plaintext_size: 1,
        }
    }

    fn stream(track: i32, participant: Option<ParticipantId>, start_ms: i64) -> MediaStream {
        MediaStream {
            id: StreamId::new(),
            participant_id: participant,
            track,
            media_type: "audio".into(),
            codec: "opus".into(),
            sample_rate: 48_000,
            start_ms,
        }
    }

    #[test]
    fn a_call_is_caller_left_callee_right() {
        let mut rec = Recording::new(
            TenantId::new(),
            RecordingKind::Call,
            Direction::Inbound,
            now(),
        );
        let callee = party(ParticipantRole::Callee);
        let caller = party(ParticipantRole::Caller);
        rec.participants = vec![callee.clone(), caller.clone()];
        rec.streams = vec![stream(0, None, 0)];
        let m = media(&rec);
        let s = sources(&rec, &m);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].blob_key, m.key);
        assert_eq!(s[0].object_id, rec.id.as_uuid());
        assert_eq!(s[0].speakers[0].participant_id, Some(caller.id));
        assert_eq!(s[0].speakers[0].channel, Some(0));
        assert_eq!(s[0].speakers[1].participant_id, Some(callee.id));
        assert_eq!(s[0].speakers[1].channel, Some(1));
    }

    #[test]
    fn a_meeting_is_one_track_per_participant_else_the_mix() {
        let mut rec = Recording::new(
            TenantId::new(),
            RecordingKind::Meeting,
            Direction::Internal,
            now(),
        );
        let a = party(ParticipantRole::Organizer);
        let b = party(ParticipantRole::Attendee);
        rec.participants = vec![a.clone(), b.clone()];
        rec.streams = vec![stream(0, None, 0)];
        let m = media(&rec);
        let mix = sources(&rec, &m);
        assert_eq!(mix.len(), 1);
        assert_eq!(mix[0].speakers[0].participant_id, None);
        assert_eq!(mix[0].speakers[0].channel, None);

        rec.streams.push(stream(1, Some(a.id), 0));
        rec.streams.push(stream(2, Some(b.id), 1500));
        let s = sources(&rec, &m);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[1].blob_key,
            layout::stream_blob_key(rec.id, 2, "audio/ogg")
        );
        assert_eq!(s[1].object_id, rec.streams[2].id.as_uuid());
        assert_eq!(s[1].speakers[0].participant_id, Some(b.id));
        assert_eq!(s[1].speakers[0].start_ms, 1500);
    }

    #[test]
    fn segment_ids_are_deterministic() {
        let r = RecordingId::new();
        let p = Some(ParticipantId::new());
        assert_eq!(segment_id(r, p, 10, 1), segment_id(r, p, 10, 1));
        assert_ne!(segment_id(r, p, 10, 1), segment_id(r, p, 10, 2));
        assert_ne!(segment_id(r, None, 10, 1), segment_id(r, p, 10, 1));
    }
}
