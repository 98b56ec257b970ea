//! Decoding Ogg Opus streams (ours, or any RFC 7845 stream of mapping
//! family 0 or 1) back to PCM per channel.

use std::io::{Read, Seek};

use ogg::reading::PacketReader;

use crate::ogg_opus::{ChannelMapping, OpusHead};
use crate::{OPUS_RATE, RecorderError, Result};

/// The decoded audio of one Ogg Opus stream.
#[derive(Clone, Debug)]
pub struct DecodedOpus {
    /// The stream's identification header.
    pub head: OpusHead,
    /// Rate of [`DecodedOpus::channels`] in Hz.
    pub sample_rate: u32,
    /// One vector of samples per channel, pre-skip removed and end
    /// trimmed to the final granule position.
    pub channels: Vec<Vec<i16>>,
    /// Granule position of the last page (48 kHz, pre-skip included).
    pub final_granule: u64,
    /// Number of audio packets.
    pub packets: u64,
    /// Bitstream serial number.
    pub serial: u32,
    /// Whether the stream ended with its end-of-stream page. A stream cut
    /// off after a crash (no EOS) still decodes, up to its last complete
    /// page.
    pub complete: bool,
}

impl DecodedOpus {
    /// Duration in milliseconds.
    pub fn duration_ms(&self) -> f64 {
        let len = self.channels.first().map_or(0, Vec::len);
        len as f64 * 1000.0 / f64::from(self.sample_rate)
    }
}

/// The libopus decoder of a stream's channel mapping.
pub(crate) enum Dec {
    Single(opus::Decoder),
    Multi(opus::MSDecoder),
}

impl Dec {
    /// Decodes one packet into `buf` (interleaved); frames decoded.
    pub(crate) fn decode(&mut self, packet: &[u8], buf: &mut [i16]) -> Result<usize> {
        Ok(match self {
            Dec::Single(d) => d.decode(packet, buf, false)?,
            Dec::Multi(d) => d.decode(packet, buf, false)?,
        })
    }
}

/// A stream whose OpusHead and OpusTags were read, ready for its audio
/// packets (shared by [`decode_ogg_opus`] and
/// [`crate::stream_decode::OpusStream`]).
pub(crate) struct Opened<R: Read + Seek> {
    pub reader: PacketReader<R>,
    pub serial: u32,
    pub head: OpusHead,
    pub dec: Dec,
    pub channels: usize,
}

/// Reads the first logical stream's OpusHead and OpusTags and sets up the
/// decoder (output gain applied) at `sample_rate`.
pub(crate) fn open_stream<R: Read + Seek>(input: R, sample_rate: u32) -> Result<Opened<R>> {
    if ![8_000, 12_000, 16_000, 24_000, 48_000].contains(&sample_rate) {
        return Err(RecorderError::Config(format!(
            "Opus decodes at 8/12/16/24/48 kHz, not {sample_rate} Hz"
        )));
    }
    let invalid = |why: &str| RecorderError::InvalidStream(why.to_owned());
    let mut reader = PacketReader::new(input);
    let first = reader
        .read_packet()?
        .ok_or_else(|| invalid("empty input"))?;
    if !first.first_in_stream() {
        return Err(invalid("first packet does not start a stream"));
    }
    let serial = first.stream_serial();
    let head = OpusHead::parse(&first.data)?;
    let channels = usize::from(head.mapping.channels());
    let mut dec = match &head.mapping {
        ChannelMapping::Family0 { channels: 1 } => {
            Dec::Single(opus::Decoder::new(sample_rate, opus::Channels::Mono)?)
        }
        ChannelMapping::Family0 { .. } => {
            Dec::Single(opus::Decoder::new(sample_rate, opus::Channels::Stereo)?)
        }
        ChannelMapping::Family1 {
            streams,
            coupled,
            mapping,
        } => Dec::Multi(opus::MSDecoder::new(
            sample_rate,
            *streams,
            *coupled,
            mapping,
        )?),
    };
    if head.output_gain != 0 {
        let gain = i32::from(head.output_gain);
        match &mut dec {
            Dec::Single(d) => d.set_gain(gain)?,
            Dec::Multi(d) => d.set_gain(gain)?,
        }
    }
    // OpusTags must follow, alone.
    let tags = next_packet_of(&mut reader, serial)?.ok_or_else(|| invalid("no OpusTags packet"))?;
    if tags.data.get(..8) != Some(b"OpusTags".as_slice()) {
        return Err(invalid("second packet is not OpusTags"));
    }
    Ok(Opened {
        reader,
        serial,
        head,
        dec,
        channels,
    })
}

/// Decodes a whole Ogg Opus stream (the first logical stream of the
/// input) at `sample_rate` (8000, 12000, 16000, 24000 or 48000 Hz),
/// honouring pre-skip, output gain and end trimming.
///
/// A stream that ends early (no EOS page, or cut inside a page, as after
/// a crash) decodes up to its last complete page and reports
/// `complete: false`; a page with a bad CRC is an error.
pub fn decode_ogg_opus<R: Read + Seek>(input: R, sample_rate: u32) -> Result<DecodedOpus> {
    let Opened {
        mut reader,
        serial,
        head,
        mut dec,
        channels,
    } = open_stream(input, sample_rate)?;
    // 120 ms at 48 kHz is the longest packet.
    let mut buf = vec![0i16; 5760 * channels];
    let mut interleaved: Vec<i16> = Vec::new();
    let mut final_granule = 0u64;
    let mut packets = 0u64;
    let mut complete = false;
    loop {
        let packet = match next_packet_of(&mut reader, serial) {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(RecorderError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        };
        let n = dec.decode(&packet.data, &mut buf)?;
        interleaved.extend_from_slice(&buf[..n * channels]);
        packets += 1;
        if packet.last_in_page() {
            final_granule = packet.absgp_page();
        }
        if packet.last_in_stream() {
            complete = true;
            break;
        }
    }
    let ratio = u64::from(OPUS_RATE / sample_rate);
    let skip = (u64::from(head.pre_skip) / ratio) as usize;
    let valid = (final_granule.saturating_sub(u64::from(head.pre_skip)) / ratio) as usize;
    let frames = interleaved.len() / channels;
    let end = (skip + valid).min(frames);
    let mut out = vec![Vec::with_capacity(end.saturating_sub(skip)); channels];
    for frame in interleaved[skip.min(end) * channels..end * channels].chunks_exact(channels) {
        for (ch, &s) in out.iter_mut().zip(frame) {
            ch.push(s);
        }
    }
    Ok(DecodedOpus {
        head,
        sample_rate,
        channels: out,
        final_granule,
        packets,
        serial,
        complete,
    })
}

pub(crate) fn next_packet_of<R: Read + Seek>(
    reader: &mut PacketReader<R>,
    serial: u32,
) -> Result<Option<ogg::Packet>> {
    loop {
        match reader.read_packet()? {
            Some(p) if p.stream_serial() == serial => return Ok(Some(p)),
            Some(_) => continue,
            None => return Ok(None),
        }
    }
}

/// Decodes one source's 20 ms mono Opus packets to 16 kHz PCM frames, for
/// paths that need the audio itself (a meeting's mix). Keeps the libopus
/// state between packets, so feed one source's packets in order.
pub struct PacketDecoder {
    dec: opus::Decoder,
    pcm: Vec<i16>,
}

impl PacketDecoder {
    /// A decoder for mono 16 kHz output.
    pub fn new() -> Result<Self> {
        Ok(Self {
            dec: opus::Decoder::new(crate::SAMPLE_RATE, opus::Channels::Mono)?,
            pcm: vec![0; 5760],
        })
    }

    /// Decodes one packet that must hold exactly 20 ms; returns its
    /// [`crate::FRAME_SAMPLES`] samples.
    pub fn decode(&mut self, packet: &[u8]) -> Result<&[i16]> {
        let duration = crate::ogg_opus::packet_duration_48k(packet)?;
        if duration != 960 {
            return Err(RecorderError::InvalidFrame(format!(
                "Opus packets must be 20 ms, got {duration} samples at 48 kHz"
            )));
        }
        let n = self.dec.decode(packet, &mut self.pcm, false)?;
        if n != crate::FRAME_SAMPLES {
            return Err(RecorderError::InvalidFrame(format!(
                "an Opus packet decoded to {n} samples"
            )));
        }
        Ok(&self.pcm[..n])
    }
}
