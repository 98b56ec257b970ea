//! Opus encoding of 20 ms frames of 16 kHz PCM, and [`OpusOggEncoder`],
//! which encodes straight into an [`OggOpusWriter`].

use std::io::Write;

use opus::{Application, Bitrate};

use crate::ogg_opus::{ChannelMapping, OggOptions, OggOpusWriter, OpusHead};
use crate::{FRAME_SAMPLES, OPUS_RATE, RecorderError, Result, SAMPLE_RATE};

/// Largest Opus packet we accept from the encoder per stream: 1275 bytes
/// is the RFC 6716 maximum for one frame; a multistream packet holds up
/// to two streams here.
const MAX_PACKET: usize = 2 * 1275 + 16;

/// Default bit rate per channel, bit/s.
pub const DEFAULT_BITRATE_PER_CHANNEL: u32 = 24_000;

/// Default encoder complexity (0–10). Chosen by measurement, see the
/// crate documentation ("Choice of complexity") and
/// `benches/pipeline.rs`.
pub const DEFAULT_COMPLEXITY: u8 = 1;

/// Silent frames encoded for real before [`OpusEncoder::encode_silence`]
/// starts repeating the last silence packet.
const SILENCE_WARMUP: u32 = 3;

/// How the channels of a stream are coded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// One channel (mapping family 0).
    Mono,
    /// Two channels coded jointly by one coupled Opus stream (mapping
    /// family 0). Joint stereo coding lets energy of one channel leak
    /// into the other at low bit rates; not used for calls.
    CoupledStereo,
    /// Two channels, each coded by its own mono Opus stream inside one
    /// multistream packet (mapping family 1, two uncoupled streams,
    /// left = stream 0, right = stream 1). Nothing of one channel can
    /// reach the other: exact speaker attribution.
    DualMono,
}

impl Layout {
    /// Number of channels.
    pub fn channels(self) -> usize {
        match self {
            Self::Mono => 1,
            Self::CoupledStereo | Self::DualMono => 2,
        }
    }

    /// The OpusHead channel mapping of the layout.
    pub fn mapping(self) -> ChannelMapping {
        match self {
            Self::Mono => ChannelMapping::Family0 { channels: 1 },
            Self::CoupledStereo => ChannelMapping::Family0 { channels: 2 },
            Self::DualMono => ChannelMapping::Family1 {
                streams: 2,
                coupled: 0,
                mapping: vec![0, 1],
            },
        }
    }

    fn for_mapping(mapping: &ChannelMapping) -> Result<Self> {
        match mapping {
            ChannelMapping::Family0 { channels: 1 } => Ok(Self::Mono),
            ChannelMapping::Family0 { channels: 2 } => Ok(Self::CoupledStereo),
            m if *m == Self::DualMono.mapping() => Ok(Self::DualMono),
            m => Err(RecorderError::Config(format!(
                "no encoder for channel mapping {m:?}"
            ))),
        }
    }
}

/// Encoder settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Target bit rate per channel in bit/s (VBR). Default 24 000.
    pub bitrate_per_channel: u32,
    /// libopus complexity 0–10. Default [`DEFAULT_COMPLEXITY`].
    pub complexity: u8,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            bitrate_per_channel: DEFAULT_BITRATE_PER_CHANNEL,
            complexity: DEFAULT_COMPLEXITY,
        }
    }
}

impl EncoderConfig {
    fn check(&self) -> Result<()> {
        if self.complexity > 10 {
            return Err(RecorderError::Config(format!(
                "complexity {} is outside 0..=10",
                self.complexity
            )));
        }
        if !(6_000..=256_000).contains(&self.bitrate_per_channel) {
            return Err(RecorderError::Config(format!(
                "bit rate {} bit/s per channel is outside 6000..=256000",
                self.bitrate_per_channel
            )));
        }
        Ok(())
    }
}

enum Codec {
    Single(opus::Encoder),
    Multi(opus::MSEncoder),
}

/// libopus encoder for 20 ms frames of 16 kHz PCM (`Application::Voip`,
/// VBR), mono or two-channel.
pub struct OpusEncoder {
    codec: Codec,
    layout: Layout,
    out: Vec<u8>,
    len: usize,
    pre_skip: u16,
    silent_run: u32,
    zeros: Vec<i16>,
}

impl OpusEncoder {
    /// A new encoder.
    pub fn new(layout: Layout, config: &EncoderConfig) -> Result<Self> {
        config.check()?;
        let bitrate = i32::try_from(config.bitrate_per_channel * layout.channels() as u32)
            .map_err(|_| RecorderError::Config("bit rate too large".into()))?;
        let complexity = i32::from(config.complexity);
        let (codec, lookahead) = match layout {
            Layout::Mono | Layout::CoupledStereo => {
                let channels = if layout == Layout::Mono {
                    opus::Channels::Mono
                } else {
                    opus::Channels::Stereo
                };
                let mut enc = opus::Encoder::new(SAMPLE_RATE, channels, Application::Voip)?;
                enc.set_bitrate(Bitrate::Bits(bitrate))?;
                enc.set_complexity(complexity)?;
                let lookahead = enc.get_lookahead()?;
                (Codec::Single(enc), lookahead)
            }
            Layout::DualMono => {
                let mut enc = opus::MSEncoder::new(SAMPLE_RATE, 2, 0, &[0, 1], Application::Voip)?;
                enc.set_bitrate(Bitrate::Bits(bitrate))?;
                enc.set_complexity(complexity)?;
                let lookahead = enc.get_lookahead()?;
                (Codec::Multi(enc), lookahead)
            }
        };
        // The lookahead is reported at the encoder's rate; pre-skip is in
        // 48 kHz samples (RFC 7845 section 4.2).
        let pre_skip =
            u16::try_from(u32::try_from(lookahead).unwrap_or(0) * (OPUS_RATE / SAMPLE_RATE))
                .map_err(|_| RecorderError::Config(format!("lookahead {lookahead} too large")))?;
        Ok(Self {
            codec,
            layout,
            out: vec![0; MAX_PACKET],
            len: 0,
            pre_skip,
            silent_run: 0,
            zeros: vec![0; FRAME_SAMPLES * layout.channels()],
        })
    }

    /// The channel layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Pre-skip for the OpusHead: the encoder's lookahead in 48 kHz
    /// samples (312 = 6.5 ms for 16 kHz VoIP).
    pub fn pre_skip(&self) -> u16 {
        self.pre_skip
    }

    /// Samples per frame over all channels (320 per channel).
    pub fn frame_len(&self) -> usize {
        FRAME_SAMPLES * self.layout.channels()
    }

    /// Encodes one 20 ms frame (interleaved when two-channel) and returns
    /// the packet.
    pub fn encode(&mut self, pcm: &[i16]) -> Result<&[u8]> {
        self.silent_run = 0;
        self.encode_raw(pcm)
    }

    fn encode_raw(&mut self, pcm: &[i16]) -> Result<&[u8]> {
        if pcm.len() != self.frame_len() {
            return Err(RecorderError::InvalidFrame(format!(
                "a 20 ms frame has {} samples, got {}",
                self.frame_len(),
                pcm.len()
            )));
        }
        self.len = match &mut self.codec {
            Codec::Single(enc) => enc.encode(pcm, &mut self.out)?,
            Codec::Multi(enc) => enc.encode(pcm, &mut self.out)?,
        };
        Ok(&self.out[..self.len])
    }

    /// Encodes one 20 ms frame of digital silence. After a few silent
    /// frames the encoder's whole history (lookahead included) is zero,
    /// and encoding more zeros would change nothing the decoder hears, so
    /// from then on the last silence packet is repeated without running
    /// the encoder: a silent participant costs almost nothing.
    pub fn encode_silence(&mut self) -> Result<&[u8]> {
        if self.silent_run >= SILENCE_WARMUP && self.len > 0 {
            return Ok(&self.out[..self.len]);
        }
        self.silent_run += 1;
        let zeros = std::mem::take(&mut self.zeros);
        let result = self.encode_raw(&zeros).map(|p| p.len());
        self.zeros = zeros;
        result?;
        Ok(&self.out[..self.len])
    }
}

/// A 20 ms Opus packet of digital silence for the channel mapping.
pub fn silence_packet(mapping: &ChannelMapping) -> Result<Vec<u8>> {
    let mut enc = OpusEncoder::new(Layout::for_mapping(mapping)?, &EncoderConfig::default())?;
    let mut packet = Vec::new();
    for _ in 0..SILENCE_WARMUP {
        packet = enc.encode_silence()?.to_vec();
    }
    Ok(packet)
}

/// Encodes 16 kHz PCM into an Ogg Opus stream: an [`OpusEncoder`] feeding
/// an [`OggOpusWriter`], with the pre-skip and end trimming that make the
/// decoded stream sample-exact in length and position.
///
/// On [`OpusOggEncoder::finish`], a partial last frame is padded with
/// zeros, and enough further silence is encoded to push the encoder's
/// lookahead out; the final granule position then trims the stream to
/// exactly the samples written.
pub struct OpusOggEncoder<W: Write> {
    enc: OpusEncoder,
    ogg: OggOpusWriter<W>,
    /// Samples per channel accepted so far (16 kHz).
    samples: u64,
    /// A partial frame from [`OpusOggEncoder::write_pcm`].
    partial: Vec<i16>,
}

impl<W: Write> OpusOggEncoder<W> {
    /// Starts a stream into `out` (writes the two header pages).
    pub fn new(out: W, layout: Layout, config: &EncoderConfig, ogg: &OggOptions) -> Result<Self> {
        let enc = OpusEncoder::new(layout, config)?;
        let head = OpusHead {
            mapping: layout.mapping(),
            pre_skip: enc.pre_skip(),
            input_sample_rate: SAMPLE_RATE,
            output_gain: 0,
        };
        let ogg = OggOpusWriter::new(out, &head, ogg)?;
        Ok(Self {
            enc,
            ogg,
            samples: 0,
            partial: Vec::new(),
        })
    }

    /// The channel layout.
    pub fn layout(&self) -> Layout {
        self.enc.layout()
    }

    /// Duration written so far, in samples per channel at 16 kHz.
    pub fn samples(&self) -> u64 {
        self.samples + (self.partial.len() / self.enc.layout().channels()) as u64
    }

    /// The Ogg layer (serial, granule, inner writer).
    pub fn ogg(&self) -> &OggOpusWriter<W> {
        &self.ogg
    }

    /// The Ogg layer, mutably (e.g. to reach the inner writer).
    pub fn ogg_mut(&mut self) -> &mut OggOpusWriter<W> {
        &mut self.ogg
    }

    /// Encodes one whole 20 ms frame (interleaved when two-channel).
    /// Must not be mixed with a pending partial frame from `write_pcm`.
    pub fn write_frame(&mut self, pcm: &[i16]) -> Result<()> {
        if !self.partial.is_empty() {
            return Err(RecorderError::InvalidFrame(
                "write_frame after a partial write_pcm".into(),
            ));
        }
        let packet = self.enc.encode(pcm)?;
        self.ogg.write_packet(packet)?;
        self.samples += FRAME_SAMPLES as u64;
        Ok(())
    }

    /// Encodes one 20 ms frame of silence (cheap after the first few).
    pub fn write_silence(&mut self) -> Result<()> {
        if !self.partial.is_empty() {
            return Err(RecorderError::InvalidFrame(
                "write_silence after a partial write_pcm".into(),
            ));
        }
        let packet = self.enc.encode_silence()?;
        self.ogg.write_packet(packet)?;
        self.samples += FRAME_SAMPLES as u64;
        Ok(())
    }

    /// Encodes PCM of any length (interleaved when two-channel),
    /// buffering a partial frame until more arrives or `finish`.
    pub fn write_pcm(&mut self, mut pcm: &[i16]) -> Result<()> {
        let frame = self.enc.frame_len();
        if !pcm.len().is_multiple_of(self.enc.layout().channels()) {
            return Err(RecorderError::InvalidFrame(
                "interleaved PCM must hold whole sample frames".into(),
            ));
        }
        if !self.partial.is_empty() {
            let n = (frame - self.partial.len()).min(pcm.len());
            self.partial.extend_from_slice(&pcm[..n]);
            pcm = &pcm[n..];
            if self.partial.len() < frame {
                return Ok(());
            }
            let full = std::mem::take(&mut self.partial);
            self.write_frame(&full)?;
            self.partial = full;
            self.partial.clear();
        }
        let mut chunks = pcm.chunks_exact(frame);
        for chunk in &mut chunks {
            self.write_frame(chunk)?;
        }
        self.partial.extend_from_slice(chunks.remainder());
        Ok(())
    }

    /// Completes the current Ogg page (all but the newest packet) and
    /// flushes the inner writer; see [`OggOpusWriter::flush_page`].
    pub fn flush_page(&mut self) -> Result<()> {
        self.ogg.flush_page()
    }

    /// Pads and flushes the encoder, writes the final (EOS) page with the
    /// end-trimmed granule position and returns the inner writer.
    pub fn finish(mut self) -> Result<W> {
        let channels = self.enc.layout().channels();
        let frame = self.enc.frame_len();
        let mut total = self.samples;
        if !self.partial.is_empty() {
            total += (self.partial.len() / channels) as u64;
            let mut last = std::mem::take(&mut self.partial);
            last.resize(frame, 0);
            let packet = self.enc.encode(&last)?;
            self.ogg.write_packet(packet)?;
        }
        // Everything the decoder must output: pre-skip + the input, at
        // 48 kHz. Encode silence until the packets cover it (pushes the
        // lookahead out), then trim the excess with the granule.
        let ratio = u64::from(OPUS_RATE / SAMPLE_RATE);
        let needed = u64::from(self.enc.pre_skip()) + total * ratio;
        while self.ogg.granule() < needed {
            let zeros = vec![0i16; frame];
            let packet = self.enc.encode(&zeros)?;
            self.ogg.write_packet(packet)?;
        }
        let trim = self.ogg.granule() - needed;
        self.ogg.finish(trim)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn pre_skip_is_the_lookahead_at_48_khz() {
        for layout in [Layout::Mono, Layout::CoupledStereo, Layout::DualMono] {
            for complexity in [0, 1, 5, 10] {
                let config = EncoderConfig {
                    complexity,
                    ..Default::default()
                };
                let enc = OpusEncoder::new(layout, &config).unwrap();
                assert_eq!(enc.pre_skip(), 312, "{layout:?} c{complexity}");
                assert_eq!(enc.frame_len(), 320 * layout.channels());
            }
        }
    }

    #[test]
    fn settings_and_frames_are_checked() {
        for config in [
            EncoderConfig {
                complexity: 11,
                ..Default::default()
            },
            EncoderConfig {
                bitrate_per_channel: 1_000,
                ..Default::default()
            },
        ] {
            assert!(OpusEncoder::new(Layout::Mono, &config).is_err());
        }
        let mut enc = OpusEncoder::new(Layout::DualMono, &EncoderConfig::default()).unwrap();
        assert!(matches!(
            enc.encode(&[0; 320]),
            Err(RecorderError::InvalidFrame(_))
        ));
        assert!(enc.encode(&[0; 640]).is_ok());
        let mut ogg = OpusOggEncoder::new(
            Vec::new(),
            Layout::CoupledStereo,
            &EncoderConfig::default(),
            &OggOptions::default(),
        )
        .unwrap();
        assert!(ogg.write_pcm(&[0; 3]).is_err(), "odd interleaved length");
        ogg.write_pcm(&[0; 2]).unwrap();
        assert!(ogg.write_frame(&[0; 640]).is_err(), "frame after partial");
    }

    #[test]
    fn silence_is_encoded_a_few_times_then_repeated() {
        let mut enc = OpusEncoder::new(Layout::Mono, &EncoderConfig::default()).unwrap();
        enc.encode(&[1000; 320]).unwrap();
        let packets: Vec<Vec<u8>> = (0..8)
            .map(|_| enc.encode_silence().unwrap().to_vec())
            .collect();
        for p in &packets[SILENCE_WARMUP as usize..] {
            assert_eq!(p, &packets[SILENCE_WARMUP as usize - 1]);
        }
        // Real audio resets the run.
        enc.encode(&[1000; 320]).unwrap();
        assert_eq!(enc.silent_run, 0);
        let packet = silence_packet(&Layout::DualMono.mapping()).unwrap();
        assert_eq!(opus::packet::get_nb_samples(&packet, 48_000).unwrap(), 960);
    }
}
