//! The media of an access bundle, streamed from the blob store into the
//! bundle, and the subject's own audio when the bundle masks the other
//! parties:
//!
//! * a meeting: the subject's own tracks (stored per participant), as
//!   they are. Without a track of their own, the mix with every interval
//!   in which another party speaks silenced (overlaps with the subject
//!   included). When another party spoke is what their own track holds:
//!   in a meeting the platform sends a participant's audio only while
//!   they are an active speaker, so a 20 ms frame of their track with
//!   sound in it is a frame of their speech, and the transcript segments
//!   attributed to them are added to that. When a party other than the
//!   subject has no track of their own, when they spoke is not known and
//!   the mix is withheld (the manifest says why);
//! * a call: the stereo file is decoded, only the subject's channel
//!   (caller left, everyone else right) is encoded again as mono Ogg
//!   Opus; when the subject is on both sides, the file as it is.
//!
//! Every media file is a stream end to end: the blob's chunks are
//! decrypted as they arrive ([`EnvelopeReader`] over the blob stream),
//! decoded packet by packet ([`recorder::OpusStream`]), masked and
//! encoded frame by frame, and the encoded pages go to the bundle through
//! a small bounded channel. Nothing holds a whole recording's audio,
//! decoded or not; the PCM buffers are zeroised. A recording longer than
//! the bundle's maximum duration is refused before anything is decoded
//! (its duration from the metadata) and while decoding (the stream stops
//! at the maximum).

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use insights_core::blob::{BlobResult, layout};
use insights_core::crypto::{DataKey, EnvelopeReader, ExpectedIds};
use insights_core::domain::{ParticipantRole, RecordingKind, TenantId, TranscriptSegment};
use zeroize::Zeroizing;

use crate::access::{AccessEnv, AccessError};
use crate::subject::SubjectRecording;

/// Samples of one 20 ms frame at the rate media is decoded at.
const FRAME: usize = recorder::FRAME_SAMPLES;
/// A decoded sample louder than this makes its 20 ms frame sound. Opus
/// decodes the digital silence between a party's turns to exact zeros
/// (or a few units of ringing right after speech, which counts as sound:
/// silencing too much is the safe side).
const SOUND: i16 = 8;
/// Frames silenced before and after each frame of another party's
/// speech (60 ms), for speech onsets and decoder ringing.
const PAD_FRAMES: usize = 3;
/// Bytes of encoded media per chunk sent to the bundle.
const CHUNK: usize = 64 * 1024;

/// What is done with a media object on its way into the bundle.
#[derive(Clone, Debug)]
pub(crate) enum Transform {
    /// Decrypted and copied as it is.
    AsIs,
    /// One channel of a two-channel call, encoded again as mono.
    Channel(usize),
    /// The (mono) mix with the frames in `FrameSet` silenced.
    Silence(FrameSet),
}

/// One media file for the bundle: which object, and what to do with it.
pub(crate) struct MediaFile {
    pub name: String,
    pub blob_key: String,
    pub expected: ExpectedIds,
    pub transform: Transform,
}

/// What is done with a recording's media.
pub(crate) enum Masked {
    Files(Vec<MediaFile>),
    /// Not included, and why (for the manifest).
    Withheld(&'static str),
}

/// 20 ms frames of a recording's timeline, as a bit set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FrameSet(Vec<u64>);

impl FrameSet {
    fn insert(&mut self, frame: usize) {
        let (word, bit) = (frame / 64, frame % 64);
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << bit;
    }

    fn insert_range(&mut self, frames: std::ops::Range<usize>) {
        for f in frames {
            self.insert(f);
        }
    }

    /// Frames of at most `max_secs` of audio (the decoder stops there).
    fn frames_in(max_secs: u64) -> usize {
        usize::try_from(max_secs.saturating_mul(1000) / u64::from(recorder::FRAME_MS))
            .unwrap_or(usize::MAX)
    }

    fn contains(&self, frame: usize) -> bool {
        self.0
            .get(frame / 64)
            .is_some_and(|w| w & (1 << (frame % 64)) != 0)
    }

    /// Every frame within `pad` frames of a frame of the set.
    fn dilated(&self, pad: usize) -> FrameSet {
        let mut out = FrameSet::default();
        for (w, &bits) in self.0.iter().enumerate() {
            if bits == 0 {
                continue;
            }
            for b in 0..64 {
                if bits & (1 << b) != 0 {
                    let f = w * 64 + b;
                    out.insert_range(f.saturating_sub(pad)..f + pad + 1);
                }
            }
        }
        out
    }

    fn union(&mut self, other: &FrameSet) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }
}

/// The call channel of a role: 0 (left) for the caller, 1 otherwise.
fn channel_of(role: ParticipantRole) -> usize {
    match role {
        ParticipantRole::Caller => 0,
        _ => 1,
    }
}

/// A frame index of a timeline starting at `origin_ms`, for `ms`.
fn frame_at(ms: i64, origin_ms: i64) -> usize {
    usize::try_from((ms - origin_ms).max(0) / i64::from(recorder::FRAME_MS)).unwrap_or(usize::MAX)
}

/// The whole media object of `sr` as it is (an unmasked bundle).
pub(crate) fn whole(sr: &SubjectRecording, tenant: TenantId) -> Option<MediaFile> {
    let r = &sr.recording;
    let m = r.media.as_ref()?;
    let ext = match m.content_type.as_str() {
        "audio/ogg" | "audio/opus" => "ogg",
        "audio/wav" | "audio/x-wav" | "audio/wave" => "wav",
        _ => "bin",
    };
    Some(MediaFile {
        name: format!("media/{}.{ext}", r.id),
        blob_key: m.key.clone(),
        expected: ExpectedIds::new(tenant, r.id.as_uuid(), m.data_key_id),
        transform: Transform::AsIs,
    })
}

/// The subject's own audio of `sr` (see the module docs); `transcript`
/// is the recording's transcript.
pub(crate) async fn subject_audio(
    env: &AccessEnv<'_>,
    tenant: TenantId,
    sr: &SubjectRecording,
    transcript: &[TranscriptSegment],
    key: &Arc<DataKey>,
    max_secs: u64,
) -> Result<Masked, AccessError> {
    let r = &sr.recording;
    let Some(m) = &r.media else {
        return Ok(Masked::Files(Vec::new()));
    };
    let ours = |p: &insights_core::domain::Participant| sr.participants.contains(&p.id);
    if r.duration_ms
        .is_some_and(|d| d > max_secs.saturating_mul(1000) as i64)
    {
        return Err(AccessError::TooLong);
    }
    match r.kind {
        RecordingKind::Meeting => {
            let track_of = |index: usize, s: &insights_core::domain::MediaStream| {
                let i = u16::try_from(index).map_err(|_| AccessError::TooLong)?;
                Ok::<_, AccessError>((
                    layout::stream_blob_key(r.id, i, &m.content_type),
                    ExpectedIds::new(
                        tenant,
                        layout::envelope_object_id(r.id, i, s.id),
                        m.data_key_id,
                    ),
                ))
            };
            let mut files = Vec::new();
            for (index, s) in r.streams.iter().enumerate().skip(1) {
                let theirs = s
                    .participant_id
                    .is_some_and(|p| sr.participants.contains(&p));
                if !theirs {
                    continue;
                }
                let (blob_key, expected) = track_of(index, s)?;
                files.push(MediaFile {
                    name: format!("media/{}-track-{index}.ogg", r.id),
                    blob_key,
                    expected,
                    transform: Transform::AsIs,
                });
            }
            if !files.is_empty() {
                return Ok(Masked::Files(files));
            }
            // No track of their own: the mix, the others silenced.
            if m.content_type != "audio/ogg" {
                return Ok(Masked::Withheld(
                    "the subject has no track of their own and the mix cannot be decoded",
                ));
            }
            let tracked: Vec<_> = r
                .streams
                .iter()
                .filter(|s| s.track >= 1)
                .filter_map(|s| s.participant_id)
                .collect();
            if r.participants
                .iter()
                .any(|p| !ours(p) && !tracked.contains(&p.id))
            {
                return Ok(Masked::Withheld(
                    "the subject has no track of their own, and another party has none either: \
                     when they spoke is not known, and the mix holds their voice",
                ));
            }
            let mix_start = r
                .streams
                .iter()
                .find(|s| s.track == 0)
                .map_or(0, |s| s.start_ms);
            let mut others = FrameSet::default();
            for (index, s) in r.streams.iter().enumerate().skip(1) {
                if s.participant_id
                    .is_some_and(|p| sr.participants.contains(&p))
                    || s.media_type != "audio"
                {
                    continue;
                }
                let (blob_key, expected) = track_of(index, s)?;
                let stream = env.blobs.get_stream(&m.container, &blob_key).await?;
                let offset = frame_at(s.start_ms, mix_start).min(FrameSet::frames_in(max_secs));
                let key = key.clone();
                let spoken = tokio::task::spawn_blocking(move || {
                    speech_frames(stream, &key, &expected, offset, max_secs)
                })
                .await
                .map_err(|e| AccessError::Write(format!("media task: {e}")))??;
                others.union(&spoken);
            }
            // What the transcript attributes to anyone but the subject.
            for seg in transcript {
                if seg
                    .participant_id
                    .is_some_and(|p| sr.participants.contains(&p))
                {
                    continue;
                }
                let limit = FrameSet::frames_in(max_secs);
                others.insert_range(
                    frame_at(seg.start_ms, mix_start).min(limit)
                        ..frame_at(seg.end_ms, mix_start).saturating_add(1).min(limit),
                );
            }
            Ok(Masked::Files(vec![MediaFile {
                name: format!("media/{}-subject-mix.ogg", r.id),
                blob_key: m.key.clone(),
                expected: ExpectedIds::new(tenant, r.id.as_uuid(), m.data_key_id),
                transform: Transform::Silence(others.dilated(PAD_FRAMES)),
            }]))
        }
        _ => {
            let sides: Vec<usize> = r
                .participants
                .iter()
                .filter(|p| ours(p))
                .map(|p| channel_of(p.role))
                .collect();
            let both = sides.contains(&0) && sides.contains(&1);
            let expected = ExpectedIds::new(tenant, r.id.as_uuid(), m.data_key_id);
            if both {
                // Every voice in it is the subject's.
                return Ok(Masked::Files(vec![MediaFile {
                    name: format!("media/{}.ogg", r.id),
                    blob_key: m.key.clone(),
                    expected,
                    transform: Transform::AsIs,
                }]));
            }
            if m.content_type != "audio/ogg" {
                return Ok(Masked::Withheld(
                    "the call file cannot be split into its parties",
                ));
            }
            let Some(&channel) = sides.first() else {
                return Ok(Masked::Withheld("the subject has no channel of their own"));
            };
            Ok(Masked::Files(vec![MediaFile {
                name: format!("media/{}-subject-channel.ogg", r.id),
                blob_key: m.key.clone(),
                expected,
                transform: Transform::Channel(channel),
            }]))
        }
    }
}

/// Streams `file` of `container` into the bundle: `write` gets the
/// bundle's bytes of it chunk by chunk, as they are produced.
pub(crate) async fn stream_into(
    env: &AccessEnv<'_>,
    container: &str,
    file: MediaFile,
    key: &Arc<DataKey>,
    max_secs: u64,
    mut write: impl FnMut(&[u8]) -> Result<(), AccessError>,
) -> Result<(), AccessError> {
    let stream = env.blobs.get_stream(container, &file.blob_key).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Zeroizing<Vec<u8>>>(4);
    let key = key.clone();
    let task = tokio::task::spawn_blocking(move || {
        let mut out = ChunkSender {
            tx,
            buf: Zeroizing::new(Vec::with_capacity(CHUNK)),
        };
        transform(
            stream,
            &key,
            &file.expected,
            &file.transform,
            max_secs,
            &mut out,
        )?;
        out.flush().map_err(|e| AccessError::Write(e.to_string()))
    });
    let mut written = Ok(());
    while let Some(chunk) = rx.recv().await {
        if let Err(e) = write(&chunk) {
            written = Err(e);
            break;
        }
    }
    // Dropping the receiver stops the task at its next chunk.
    drop(rx);
    let produced = task
        .await
        .map_err(|e| AccessError::Write(format!("media task: {e}")))?;
    written?;
    produced
}

/// The decrypted bytes of a blob stream, read in a blocking task.
fn decrypted(
    stream: BoxStream<'static, BlobResult<Bytes>>,
    key: &DataKey,
    expected: &ExpectedIds,
) -> Result<EnvelopeReader<impl Read>, AccessError> {
    let reader = tokio_util::io::StreamReader::new(stream.map(|c| c.map_err(io::Error::other)));
    let bridge = tokio_util::io::SyncIoBridge::new(reader);
    Ok(EnvelopeReader::new(bridge, key, expected)?)
}

fn media_err(e: recorder::RecorderError) -> AccessError {
    match e {
        recorder::RecorderError::TooLong { .. } => AccessError::TooLong,
        other => AccessError::Media(other.to_string()),
    }
}

/// Decrypts, decodes, masks and encodes one object into `out`.
fn transform(
    stream: BoxStream<'static, BlobResult<Bytes>>,
    key: &DataKey,
    expected: &ExpectedIds,
    how: &Transform,
    max_secs: u64,
    out: &mut ChunkSender,
) -> Result<(), AccessError> {
    let mut plain = decrypted(stream, key, expected)?;
    let (channel, silenced) = match how {
        Transform::AsIs => {
            let mut buf = Zeroizing::new(vec![0u8; CHUNK]);
            loop {
                let n = match plain.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(read_err(e)),
                };
                out.write_all(&buf[..n])
                    .map_err(|e| AccessError::Write(e.to_string()))?;
            }
        }
        Transform::Channel(c) => (*c, None),
        Transform::Silence(frames) => (0, Some(frames)),
    };
    let mut stream = recorder::OpusStream::open(
        Rewind::new(plain),
        recorder::SAMPLE_RATE,
        Duration::from_secs(max_secs),
    )
    .map_err(media_err)?;
    let channels = stream.channels();
    match how {
        Transform::Channel(_) if channels != 2 => {
            return Err(AccessError::Media(format!(
                "a call file with {channels} channel(s)"
            )));
        }
        Transform::Silence(_) if channels != 1 => {
            return Err(AccessError::Media(format!(
                "a meeting mix with {channels} channel(s)"
            )));
        }
        _ => {}
    }
    let mut enc = recorder::OpusOggEncoder::new(
        out,
        recorder::Layout::Mono,
        &recorder::EncoderConfig::default(),
        &recorder::OggOptions::default(),
    )
    .map_err(media_err)?;
    // Mono samples of the current 20 ms frame, handed to the encoder a
    // frame at a time.
    let mut pending: Zeroizing<Vec<i16>> = Zeroizing::new(Vec::with_capacity(FRAME));
    let mut sample: usize = 0;
    while let Some(block) = stream.next_block().map_err(media_err)? {
        for frame in block.chunks_exact(channels) {
            let silent = silenced.is_some_and(|f| f.contains(sample / FRAME));
            pending.push(if silent { 0 } else { frame[channel] });
            sample += 1;
            if pending.len() == FRAME {
                enc.write_pcm(&pending).map_err(media_err)?;
                pending.iter_mut().for_each(|s| *s = 0);
                pending.clear();
            }
        }
    }
    if !pending.is_empty() {
        enc.write_pcm(&pending).map_err(media_err)?;
    }
    enc.finish().map_err(media_err)?;
    Ok(())
}

fn read_err(e: io::Error) -> AccessError {
    match insights_core::crypto::envelope::as_crypto_error(&e) {
        Some(c) => AccessError::Crypto(c.clone()),
        None => AccessError::Media(format!("reading the media: {e}")),
    }
}

/// The 20 ms frames (of the timeline, `offset` frames after its start)
/// in which a mono track has sound.
fn speech_frames(
    stream: BoxStream<'static, BlobResult<Bytes>>,
    key: &DataKey,
    expected: &ExpectedIds,
    offset: usize,
    max_secs: u64,
) -> Result<FrameSet, AccessError> {
    let plain = decrypted(stream, key, expected)?;
    let mut stream = recorder::OpusStream::open(
        Rewind::new(plain),
        recorder::SAMPLE_RATE,
        Duration::from_secs(max_secs),
    )
    .map_err(media_err)?;
    let channels = stream.channels();
    let mut set = FrameSet::default();
    let mut sample: usize = 0;
    while let Some(block) = stream.next_block().map_err(media_err)? {
        for frame in block.chunks_exact(channels) {
            if frame
                .iter()
                .any(|s| s.unsigned_abs() > SOUND.unsigned_abs())
            {
                set.insert(offset + sample / FRAME);
            }
            sample += 1;
        }
    }
    Ok(set)
}

/// Sends what is written to the bundle in chunks of [`CHUNK`] bytes.
struct ChunkSender {
    tx: tokio::sync::mpsc::Sender<Zeroizing<Vec<u8>>>,
    buf: Zeroizing<Vec<u8>>,
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Zeroizing::new(Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the bundle stopped"))
    }
}

/// A forward-only reader that the Ogg reader can seek back a little: it
/// keeps the last [`Rewind::KEEP`] bytes it handed out (the Ogg reader
/// steps back less than 1 KiB after reading past a page header; it
/// never seeks forward or far back).
struct Rewind<R> {
    inner: R,
    buf: Zeroizing<Vec<u8>>,
    /// Next byte to hand out, in `buf`.
    pos: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
}

impl<R: Read> Rewind<R> {
    const KEEP: usize = 16 * 1024;

    fn new(inner: R) -> Self {
        Self {
            inner,
            buf: Zeroizing::new(Vec::with_capacity(4 * Self::KEEP)),
            pos: 0,
            base: 0,
        }
    }
}

impl<R: Read> Read for Rewind<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            // Keep the tail, refill after it.
            let keep = self.buf.len().min(Self::KEEP);
            let drop = self.buf.len() - keep;
            self.buf.copy_within(drop.., 0);
            self.buf.truncate(keep);
            self.base += drop as u64;
            self.pos = keep;
            let start = self.buf.len();
            self.buf.resize(4 * Self::KEEP, 0);
            let n = loop {
                match self.inner.read(&mut self.buf[start..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.buf.truncate(start);
                        return Err(e);
                    }
                }
            };
            self.buf.truncate(start + n);
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl<R: Read> Seek for Rewind<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let here = self.base + self.pos as u64;
        let target = match to {
            SeekFrom::Current(d) => here.checked_add_signed(d),
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(_) => None,
        };
        match target {
            Some(t) if t >= self.base && t <= self.base + self.buf.len() as u64 => {
                self.pos = (t - self.base) as usize;
                Ok(t)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the media stream can only step back a little",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rewind_steps_back_within_what_it_keeps() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut r = Rewind::new(io::Cursor::new(data.clone()));
        let mut got = Vec::new();
        let mut buf = [0u8; 1000];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            // Step back 300 bytes and read them again.
            if n >= 300 {
                r.seek(SeekFrom::Current(-300)).unwrap();
                let mut again = [0u8; 300];
                r.read_exact(&mut again).unwrap();
                assert_eq!(&again[..], &buf[n - 300..n]);
            }
        }
        assert_eq!(got, data);
        assert!(r.seek(SeekFrom::Start(0)).is_err(), "not that far back");
    }

    #[test]
    fn frame_sets_dilate_and_join() {
        let mut a = FrameSet::default();
        a.insert(10);
        let d = a.dilated(2);
        assert!((8..=12).all(|f| d.contains(f)));
        assert!(!d.contains(7) && !d.contains(13));
        let mut b = FrameSet::default();
        b.insert(200);
        b.union(&d);
        assert!(b.contains(200) && b.contains(9));
    }
}
