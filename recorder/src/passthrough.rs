//! The pass-through path: the media adapter already sends Opus packets,
//! so nothing is decoded or re-encoded; the timeline orders them and the
//! Ogg layer stores them.
//!
//! * [`OpusPassthrough`]: one participant's mono packets → a mono stream
//!   (meeting tracks).
//! * [`CallPassthrough`]: a two-party call's two mono packet streams → ONE
//!   two-channel stream of the same layout the PCM path writes (mapping
//!   family 1, two uncoupled mono streams, caller left). Each Ogg packet
//!   is a multistream packet (RFC 6716 appendix B): the caller's packet
//!   in self-delimiting framing followed by the callee's packet as it
//!   came. Only the framing bytes change; no audio byte is touched.

use std::io::Write;

use crate::call::{CallSummary, Side};
use crate::encoder::silence_packet;
use crate::ogg_opus::{ChannelMapping, OggOptions, OggOpusWriter, OpusHead, packet_duration_48k};
use crate::timeline::{
    ClockStats, LaneSlot, LaneStart, LaneStats, PushOutcome, Timeline, TimelineConfig, Track,
};
use crate::{RecorderError, Result, SAMPLE_RATE};

/// Pre-skip assumed for the adapter's encoder: libopus' lookahead is
/// 6.5 ms (312 samples at 48 kHz) at every input rate.
pub const DEFAULT_PASSTHROUGH_PRE_SKIP: u16 = 312;

/// Stores one participant's Opus packets (mono, 20 ms each) as a mono
/// Ogg Opus stream, with the same timeline rules as PCM: gaps become
/// packets of digital silence, duplicates and late packets are dropped,
/// reordering within the window is repaired.
///
/// Only mono single-stream packets fit here; a two-party call goes
/// through [`CallPassthrough`].
pub struct OpusPassthrough<W: Write> {
    track: Track<Vec<u8>>,
    ogg: OggOpusWriter<W>,
    silence: Vec<u8>,
}

impl<W: Write> OpusPassthrough<W> {
    /// Starts a stream into `out` (writes the header pages). `pre_skip`
    /// is the sender's encoder lookahead at 48 kHz (normally
    /// [`DEFAULT_PASSTHROUGH_PRE_SKIP`]).
    pub fn new(
        out: W,
        timeline: &TimelineConfig,
        ogg: &OggOptions,
        pre_skip: u16,
        start_ticks: Option<i64>,
    ) -> Result<Self> {
        let head = OpusHead {
            mapping: ChannelMapping::Family0 { channels: 1 },
            pre_skip,
            input_sample_rate: SAMPLE_RATE,
            output_gain: 0,
        };
        Ok(Self {
            track: Track::new(timeline.clone(), start_ticks)?,
            ogg: OggOpusWriter::new(out, &head, ogg)?,
            silence: silence_packet(&head.mapping)?,
        })
    }

    /// Pushes one 20 ms Opus packet.
    pub fn push(&mut self, seq: u64, ticks: i64, packet: &[u8]) -> Result<PushOutcome> {
        check_mono_20ms(packet)?;
        let Self {
            track,
            ogg,
            silence,
        } = self;
        track.push(seq, ticks, packet.to_vec(), &mut |_, p| {
            ogg.write_packet(p.as_deref().unwrap_or(silence))
        })
    }

    /// Moves the clock without a packet; see [`crate::Timeline::advance_to`].
    pub fn advance_to(&mut self, ticks: i64) -> Result<bool> {
        let Self {
            track,
            ogg,
            silence,
        } = self;
        track.advance_to(ticks, &mut |_, p| {
            ogg.write_packet(p.as_deref().unwrap_or(silence))
        })
    }

    /// Completes the current page and flushes; see
    /// [`OggOpusWriter::flush_page`].
    pub fn flush_page(&mut self) -> Result<()> {
        self.ogg.flush_page()
    }

    /// Frame counters.
    pub fn stats(&self) -> LaneStats {
        self.track.stats()
    }

    /// Clock counters.
    pub fn clock_stats(&self) -> ClockStats {
        self.track.clock_stats()
    }

    /// Releases what is held, writes the final page, returns the writer.
    pub fn finish(mut self) -> Result<W> {
        let Self {
            track,
            ogg,
            silence,
        } = &mut self;
        track.flush(&mut |_, p| ogg.write_packet(p.as_deref().unwrap_or(silence)))?;
        self.ogg.finish(0)
    }
}

/// Checks that `packet` is one valid 20 ms mono Opus packet.
fn check_mono_20ms(packet: &[u8]) -> Result<()> {
    let duration = packet_duration_48k(packet)?;
    if duration != 960 {
        return Err(RecorderError::InvalidFrame(format!(
            "pass-through packets must be 20 ms, got {duration} samples at 48 kHz"
        )));
    }
    if opus::packet::get_nb_channels(packet)? != opus::Channels::Mono {
        return Err(RecorderError::InvalidFrame(
            "pass-through packets must be mono".into(),
        ));
    }
    Ok(())
}

/// Appends the length of a frame as Opus codes it (RFC 6716 §3.2.1):
/// one byte below 252, else two.
fn push_frame_len(out: &mut Vec<u8>, len: usize) -> Result<()> {
    if len > 1275 {
        return Err(RecorderError::InvalidFrame(format!(
            "an Opus frame of {len} bytes is too long"
        )));
    }
    if len < 252 {
        out.push(len as u8);
    } else {
        let first = 252 + (len & 3);
        out.push(first as u8);
        out.push(((len - first) >> 2) as u8);
    }
    Ok(())
}

/// Appends `packet` (a valid Opus packet) to `out` in self-delimiting
/// framing (RFC 6716 appendix B): the same frames, plus the length of
/// the last frame, which a normal packet leaves implicit. Padding is
/// dropped (it carries no audio).
pub fn append_self_delimited(out: &mut Vec<u8>, packet: &[u8]) -> Result<()> {
    let Some(&toc) = packet.first() else {
        return Err(RecorderError::InvalidFrame("empty Opus packet".into()));
    };
    if toc & 0b11 == 0 {
        // Code 0, one frame: the common case, without a parse.
        out.push(toc);
        push_frame_len(out, packet.len() - 1)?;
        out.extend_from_slice(&packet[1..]);
        return Ok(());
    }
    let parsed = opus::packet::parse(packet)?;
    let config = toc & !0b11;
    match parsed.frames.as_slice() {
        [] => {
            return Err(RecorderError::InvalidFrame(
                "Opus packet without frames".into(),
            ));
        }
        [one] => {
            out.push(config);
            push_frame_len(out, one.len())?;
        }
        [a, b] if a.len() == b.len() => {
            out.push(config | 1);
            push_frame_len(out, a.len())?;
        }
        [a, b] => {
            out.push(config | 2);
            push_frame_len(out, a.len())?;
            push_frame_len(out, b.len())?;
        }
        frames => {
            // Code 3, VBR, no padding: every length, the last one too.
            out.push(config | 3);
            out.push(0x80 | frames.len() as u8);
            for f in frames {
                push_frame_len(out, f.len())?;
            }
        }
    }
    for f in &parsed.frames {
        out.extend_from_slice(f);
    }
    Ok(())
}

/// Stores a two-party call sent as two mono 20 ms Opus packet streams as
/// ONE two-channel Ogg Opus stream (caller left, callee right) without
/// re-encoding; the counterpart of [`crate::CallRecorder`] for Opus input.
///
/// Both sides share one [`Timeline`], so the channels stay aligned; a
/// side without a packet in a slot gets a packet of digital silence.
pub struct CallPassthrough<W: Write> {
    timeline: Timeline<Vec<u8>>,
    ogg: OggOpusWriter<W>,
    silence: Vec<u8>,
    packet: Vec<u8>,
    slots: u64,
}

impl<W: Write> CallPassthrough<W> {
    /// Starts the stream into `out` (writes the header pages). `pre_skip`
    /// is the sender's encoder lookahead at 48 kHz.
    pub fn new(
        out: W,
        timeline: &TimelineConfig,
        ogg: &OggOptions,
        pre_skip: u16,
        start_ticks: Option<i64>,
    ) -> Result<Self> {
        let head = OpusHead {
            mapping: ChannelMapping::Family1 {
                streams: 2,
                coupled: 0,
                mapping: vec![0, 1],
            },
            pre_skip,
            input_sample_rate: SAMPLE_RATE,
            output_gain: 0,
        };
        let mut tl = Timeline::new(timeline.clone(), start_ticks)?;
        tl.add_lane(LaneStart::Now);
        tl.add_lane(LaneStart::Now);
        Ok(Self {
            timeline: tl,
            ogg: OggOpusWriter::new(out, &head, ogg)?,
            silence: silence_packet(&ChannelMapping::Family0 { channels: 1 })?,
            packet: Vec::with_capacity(2 * 1280),
            slots: 0,
        })
    }

    /// Pushes one side's 20 ms mono Opus packet.
    pub fn push(&mut self, side: Side, seq: u64, ticks: i64, packet: &[u8]) -> Result<PushOutcome> {
        check_mono_20ms(packet)?;
        let Self {
            timeline,
            ogg,
            silence,
            packet: buf,
            slots,
        } = self;
        timeline.push(
            side.channel(),
            seq,
            ticks,
            packet.to_vec(),
            &mut |_, lanes| emit(ogg, silence, buf, slots, lanes),
        )
    }

    /// Moves the clock without a packet; see [`Timeline::advance_to`].
    pub fn advance_to(&mut self, ticks: i64) -> Result<bool> {
        let Self {
            timeline,
            ogg,
            silence,
            packet,
            slots,
        } = self;
        timeline.advance_to(ticks, &mut |_, lanes| {
            emit(ogg, silence, packet, slots, lanes)
        })
    }

    /// Completes the current page and flushes; see
    /// [`OggOpusWriter::flush_page`].
    pub fn flush_page(&mut self) -> Result<()> {
        self.ogg.flush_page()
    }

    /// Counters so far.
    pub fn summary(&self) -> CallSummary {
        CallSummary {
            duration_ms: self.slots * 20,
            caller: self.timeline.lane_stats(0).unwrap_or_default(),
            callee: self.timeline.lane_stats(1).unwrap_or_default(),
            clock: self.timeline.clock_stats(),
        }
    }

    /// Releases what is held, writes the final page, returns the writer
    /// with the summary.
    pub fn finish(mut self) -> Result<(W, CallSummary)> {
        let Self {
            timeline,
            ogg,
            silence,
            packet,
            slots,
        } = &mut self;
        timeline.flush(&mut |_, lanes| emit(ogg, silence, packet, slots, lanes))?;
        let summary = self.summary();
        Ok((self.ogg.finish(0)?, summary))
    }
}

fn emit<W: Write>(
    ogg: &mut OggOpusWriter<W>,
    silence: &[u8],
    packet: &mut Vec<u8>,
    slots: &mut u64,
    lanes: &mut [LaneSlot<Vec<u8>>],
) -> Result<()> {
    let [left, right] = lanes else {
        return Err(RecorderError::InvalidFrame("a call has two lanes".into()));
    };
    fn pick(lane: &LaneSlot<Vec<u8>>) -> Option<&[u8]> {
        match lane {
            LaneSlot::Audio(p) => Some(p.as_slice()),
            _ => None,
        }
    }
    packet.clear();
    append_self_delimited(packet, pick(left).unwrap_or(silence))?;
    packet.extend_from_slice(pick(right).unwrap_or(silence));
    *slots += 1;
    ogg.write_packet(packet)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::encoder::{EncoderConfig, Layout, OpusEncoder};

    #[test]
    fn only_20_ms_mono_packets_pass() {
        let mut pt = OpusPassthrough::new(
            Vec::new(),
            &TimelineConfig::default(),
            &OggOptions::default(),
            DEFAULT_PASSTHROUGH_PRE_SKIP,
            None,
        )
        .unwrap();
        let mut stereo =
            OpusEncoder::new(Layout::CoupledStereo, &EncoderConfig::default()).unwrap();
        let packet = stereo.encode(&[0; 640]).unwrap().to_vec();
        assert!(matches!(
            pt.push(0, 0, &packet),
            Err(RecorderError::InvalidFrame(_))
        ));
        // A 40 ms packet: TOC config 10 (SILK wideband, 40 ms), code 0.
        let mut mono = OpusEncoder::new(Layout::Mono, &EncoderConfig::default()).unwrap();
        let mut long = mono.encode(&[0; 320]).unwrap().to_vec();
        long[0] = (long[0] & 0b0000_0111) | (10 << 3);
        assert!(matches!(
            pt.push(0, 0, &long),
            Err(RecorderError::InvalidFrame(_))
        ));
        assert!(pt.push(0, 0, &[]).is_err());
        let packet = mono.encode(&[0; 320]).unwrap().to_vec();
        assert_eq!(pt.push(0, 0, &packet).unwrap(), PushOutcome::Accepted);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod call_tests {
    use super::*;
    use crate::decode_ogg_opus;

    fn tone(hz: f64, amplitude: f64, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|n| {
                let t = n as f64 / 16_000.0;
                (amplitude * 32_767.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
            })
            .collect()
    }

    fn mono_encoder() -> opus::Encoder {
        opus::Encoder::new(16_000, opus::Channels::Mono, opus::Application::Voip).unwrap()
    }

    /// Decodes one mono packet sequence as a reference.
    fn reference(packets: &[Vec<u8>]) -> Vec<i16> {
        let mut dec = opus::Decoder::new(16_000, opus::Channels::Mono).unwrap();
        let mut out = Vec::new();
        let mut buf = [0i16; 5760];
        for p in packets {
            let n = dec.decode(p, &mut buf, false).unwrap();
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    /// Decodes `[self-delimited(a) ‖ b]` with the multistream decoder.
    fn decode_pair(a: &[u8], b: &[u8]) -> Vec<i16> {
        let mut ms = opus::MSDecoder::new(16_000, 2, 0, &[0, 1]).unwrap();
        let mut packet = Vec::new();
        append_self_delimited(&mut packet, a).unwrap();
        packet.extend_from_slice(b);
        let mut buf = [0i16; 2 * 5760];
        let n = ms.decode(&packet, &mut buf, false).unwrap();
        buf[..2 * n].to_vec()
    }

    #[test]
    fn self_delimiting_keeps_every_frame_of_every_packet_code() {
        let mut enc = mono_encoder();
        let pcm = tone(440.0, 0.3, 960);
        // Code 0 (20 ms), and the same frame padded into code 3.
        let code0 = enc.encode_vec(&pcm[..320], 1500).unwrap();
        assert_eq!(code0[0] & 3, 0);
        let mut padded = code0.clone();
        padded.resize(code0.len() + 300, 0);
        opus::packet::pad(&mut padded, code0.len()).unwrap();
        assert_eq!(padded[0] & 3, 3);
        // Two 10 ms frames of equal size (code 1: the same frame twice)
        // and of unequal size (code 2), combined by libopus' repacketizer.
        let speech = crate::test_signal::synthetic_speech(1.0);
        let tens: Vec<Vec<u8>> = speech
            .chunks_exact(160)
            .map(|f| enc.encode_vec(f, 1500).unwrap())
            .collect();
        let (a, d) = tens
            .windows(2)
            .find(|w| w[0].len() != w[1].len() && w[0][0] == w[1][0])
            .map(|w| (w[0].clone(), w[1].clone()))
            .expect("two 10 ms packets of one configuration and different sizes");
        let mut rp = opus::Repacketizer::new().unwrap();
        let mut out = vec![0u8; 4000];
        let n = rp.combine(&[&a, &a], &mut out).unwrap();
        let code1 = out[..n].to_vec();
        let n = rp.combine(&[&a, &d], &mut out).unwrap();
        let code2 = out[..n].to_vec();
        assert_eq!(code1[0] & 3, 1);
        assert_eq!(code2[0] & 3, 2);
        let other = mono_encoder().encode_vec(&pcm[640..960], 1500).unwrap();
        for packet in [&code0, &padded, &code1, &code2] {
            // Left decodes exactly as the packet alone; right is intact.
            let pair = decode_pair(packet, &other);
            let left: Vec<i16> = pair.iter().step_by(2).copied().collect();
            assert_eq!(left, reference(std::slice::from_ref(packet)));
            let right: Vec<i16> = pair.iter().skip(1).step_by(2).copied().collect();
            assert_eq!(right, reference(std::slice::from_ref(&other)));
        }
        // Frames ≥ 252 bytes take the two-byte length form.
        let mut big = mono_encoder();
        big.set_bitrate(opus::Bitrate::Bits(256_000)).unwrap();
        let loud = tone(1000.0, 0.9, 320);
        let large = (0..5)
            .map(|_| big.encode_vec(&loud, 1500).unwrap())
            .max_by_key(Vec::len)
            .unwrap();
        assert!(large.len() > 253, "got {} bytes", large.len());
        let pair = decode_pair(&large, &other);
        let left: Vec<i16> = pair.iter().step_by(2).copied().collect();
        assert_eq!(left.len(), 320);
        assert!(append_self_delimited(&mut Vec::new(), &[]).is_err());
    }

    #[test]
    fn a_call_of_opus_packets_decodes_to_the_same_audio_per_side() {
        let caller_pcm = tone(300.0, 0.4, 320 * 100);
        let callee_pcm = tone(1200.0, 0.4, 320 * 100);
        let mut enc_l = mono_encoder();
        let mut enc_r = mono_encoder();
        let mut left = Vec::new();
        let mut right = Vec::new();
        for i in 0..100 {
            left.push(
                enc_l
                    .encode_vec(&caller_pcm[i * 320..(i + 1) * 320], 1500)
                    .unwrap(),
            );
            right.push(
                enc_r
                    .encode_vec(&callee_pcm[i * 320..(i + 1) * 320], 1500)
                    .unwrap(),
            );
        }
        let mut call = CallPassthrough::new(
            Vec::new(),
            &TimelineConfig::default(),
            &OggOptions::default(),
            0,
            Some(0),
        )
        .unwrap();
        // The callee is silent for slots 40..60 (a gap); everything else
        // arrives as it would live, the callee's packets in swapped pairs
        // (reordering within the window).
        let mut callee_order: Vec<usize> = (0..100).collect();
        for pair in callee_order.chunks_mut(2) {
            pair.reverse();
        }
        for (i, packet) in left.iter().enumerate() {
            let ticks = i as i64 * 200_000;
            call.push(Side::Caller, i as u64, ticks, packet).unwrap();
            let j = callee_order[i];
            if !(40..60).contains(&j) {
                call.push(Side::Callee, j as u64, j as i64 * 200_000, &right[j])
                    .unwrap();
            }
        }
        let (bytes, summary) = call.finish().unwrap();
        assert_eq!(summary.duration_ms, 2000);
        let decoded = decode_ogg_opus(std::io::Cursor::new(bytes), 16_000).unwrap();
        assert_eq!(decoded.channels.len(), 2);
        assert!(decoded.complete);
        // The caller channel is bit-identical to decoding the packets alone.
        assert_eq!(decoded.channels[0], reference(&left));
        // The callee channel: the packets outside the gap, silence inside.
        let r = &decoded.channels[1];
        assert_eq!(r.len(), 32_000);
        let energy =
            |s: &[i16]| s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len() as f64;
        assert!(energy(&r[..40 * 320]) > 1e6);
        assert!(energy(&r[42 * 320..58 * 320]) < 1e2, "the gap is silent");
        assert!(energy(&r[62 * 320..]) > 1e6);
        assert_eq!(summary.callee.dropped(), 0);
    }
}
