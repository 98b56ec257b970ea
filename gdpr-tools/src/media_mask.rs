//! The subject's own audio for an access bundle that masks the other
//! parties:
//!
//! * a meeting: the subject's own tracks (stored per participant), as
//!   they are; without a track of their own the media is withheld (the
//!   mix would carry everyone's voice);
//! * a call: the stereo file is decoded, only the subject's channel
//!   (caller left, everyone else right) is encoded again as mono Ogg
//!   Opus; when the subject is on both sides, the file as it is.
//!
//! A recording longer than the bundle's maximum duration is refused
//! before anything is decoded (its duration from the metadata) and again
//! after decoding (from the decoded length). Decoded PCM is zeroised once
//! encoded.

use insights_core::blob::layout;
use insights_core::crypto::{DataKey, ExpectedIds, decrypt_to_vec};
use insights_core::domain::{ParticipantRole, RecordingKind, TenantId};
use zeroize::{Zeroize, Zeroizing};

use crate::access::{AccessEnv, AccessError};
use crate::subject::SubjectRecording;

/// One media file for the bundle.
pub(crate) struct MediaFile {
    pub name: String,
    pub data: Zeroizing<Vec<u8>>,
}

/// What was done with a recording's media.
pub(crate) enum Masked {
    Files(Vec<MediaFile>),
    /// Not included, and why (for the manifest).
    Withheld(&'static str),
}

/// The call channel of a role: 0 (left) for the caller, 1 otherwise.
fn channel_of(role: ParticipantRole) -> usize {
    match role {
        ParticipantRole::Caller => 0,
        _ => 1,
    }
}

async fn read_blob(
    env: &AccessEnv<'_>,
    container: &str,
    key: &str,
) -> Result<Vec<u8>, AccessError> {
    use futures::StreamExt;
    let mut s = env.blobs.get_stream(container, key).await?;
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// The subject's own audio of `sr` (see the module docs).
pub(crate) async fn subject_audio(
    env: &AccessEnv<'_>,
    tenant: TenantId,
    sr: &SubjectRecording,
    key: &DataKey,
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
            let mut files = Vec::new();
            for (index, s) in r.streams.iter().enumerate().skip(1) {
                let theirs = s
                    .participant_id
                    .is_some_and(|p| sr.participants.contains(&p));
                if !theirs {
                    continue;
                }
                let index = u16::try_from(index).map_err(|_| AccessError::TooLong)?;
                let blob_key = layout::stream_blob_key(r.id, index, &m.content_type);
                let ct = read_blob(env, &m.container, &blob_key).await?;
                let object = layout::envelope_object_id(r.id, index, s.id);
                let plain = Zeroizing::new(decrypt_to_vec(
                    key,
                    &ct,
                    &ExpectedIds::new(tenant, object, m.data_key_id),
                )?);
                files.push(MediaFile {
                    name: format!("media/{}-track-{index}.ogg", r.id),
                    data: plain,
                });
            }
            if files.is_empty() {
                return Ok(Masked::Withheld(
                    "the subject has no track of their own; the mix holds the other parties' voices",
                ));
            }
            Ok(Masked::Files(files))
        }
        _ => {
            let sides: Vec<usize> = r
                .participants
                .iter()
                .filter(|p| ours(p))
                .map(|p| channel_of(p.role))
                .collect();
            let ct = read_blob(env, &m.container, &m.key).await?;
            let plain = Zeroizing::new(decrypt_to_vec(
                key,
                &ct,
                &ExpectedIds::new(tenant, r.id.as_uuid(), m.data_key_id),
            )?);
            let both = sides.contains(&0) && sides.contains(&1);
            if both || m.content_type != "audio/ogg" {
                // Every voice in it is the subject's (or it is not a
                // stereo call file we can split): kept as it is only
                // when it is all theirs.
                if both {
                    return Ok(Masked::Files(vec![MediaFile {
                        name: format!("media/{}.ogg", r.id),
                        data: plain,
                    }]));
                }
                return Ok(Masked::Withheld(
                    "the call file cannot be split into its parties",
                ));
            }
            let Some(&channel) = sides.first() else {
                return Ok(Masked::Withheld("the subject has no channel of their own"));
            };
            let data = tokio::task::spawn_blocking(move || one_channel(&plain, channel, max_secs))
                .await
                .map_err(|e| AccessError::Write(format!("media task: {e}")))??;
            Ok(Masked::Files(vec![MediaFile {
                name: format!("media/{}-subject-channel.ogg", r.id),
                data,
            }]))
        }
    }
}

/// Decodes a two-channel call file and encodes `channel` alone.
fn one_channel(
    ogg: &[u8],
    channel: usize,
    max_secs: u64,
) -> Result<Zeroizing<Vec<u8>>, AccessError> {
    let rate = recorder::SAMPLE_RATE;
    let mut decoded = recorder::decode_ogg_opus(std::io::Cursor::new(ogg), rate)
        .map_err(|e| AccessError::Media(e.to_string()))?;
    let result = (|| {
        if decoded.channels.len() != 2 {
            return Err(AccessError::Media(format!(
                "a call file with {} channel(s)",
                decoded.channels.len()
            )));
        }
        let len = decoded.channels[channel].len() as u64;
        if len > max_secs.saturating_mul(u64::from(rate)) {
            return Err(AccessError::TooLong);
        }
        let mut enc = recorder::OpusOggEncoder::new(
            Vec::new(),
            recorder::Layout::Mono,
            &recorder::EncoderConfig::default(),
            &recorder::OggOptions::default(),
        )
        .map_err(|e| AccessError::Media(e.to_string()))?;
        enc.write_pcm(&decoded.channels[channel])
            .map_err(|e| AccessError::Media(e.to_string()))?;
        enc.finish()
            .map(Zeroizing::new)
            .map_err(|e| AccessError::Media(e.to_string()))
    })();
    for c in &mut decoded.channels {
        c.zeroize();
    }
    result
}
