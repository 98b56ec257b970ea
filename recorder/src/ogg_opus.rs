//! Ogg Opus writing (RFC 7845 encapsulation of RFC 6716 packets).
//!
//! [`OggOpusWriter`] is the container layer only: it takes ready Opus
//! packets (from our encoder or passed through from the media adapter)
//! and frames them into Ogg pages with the `ogg` crate, which does the
//! page layout, lacing and the Ogg CRC-32.

use std::collections::VecDeque;
use std::io::Write;

use ogg::writing::{PacketWriteEndInfo, PacketWriter};

use crate::{OPUS_RATE, RecorderError, Result};

/// Default number of audio packets per Ogg page: 50 packets of 20 ms, so
/// a page (and with it the written audio) completes about once a second.
pub const DEFAULT_PACKETS_PER_PAGE: u32 = 50;

/// How the channels of the stream map onto Opus streams (the OpusHead
/// channel mapping, RFC 7845 section 5.1.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelMapping {
    /// Mapping family 0: one Opus stream of 1 (mono) or 2 (coupled
    /// stereo) channels.
    Family0 {
        /// 1 or 2.
        channels: u8,
    },
    /// Mapping family 1 (Vorbis channel order): `streams` Opus streams of
    /// which the first `coupled` carry two channels; `mapping[c]` is the
    /// decoder channel index feeding output channel `c`.
    Family1 {
        /// Number of Opus streams in every packet.
        streams: u8,
        /// How many of them are coupled (stereo) streams.
        coupled: u8,
        /// One entry per output channel.
        mapping: Vec<u8>,
    },
}

impl ChannelMapping {
    /// Number of output channels.
    pub fn channels(&self) -> u8 {
        match self {
            Self::Family0 { channels } => *channels,
            Self::Family1 { mapping, .. } => u8::try_from(mapping.len()).unwrap_or(u8::MAX),
        }
    }

    fn check(&self) -> Result<()> {
        match self {
            Self::Family0 { channels } if (1..=2).contains(channels) => Ok(()),
            Self::Family0 { channels } => Err(RecorderError::Config(format!(
                "mapping family 0 carries 1 or 2 channels, not {channels}"
            ))),
            Self::Family1 {
                streams,
                coupled,
                mapping,
            } => {
                let decoded = u16::from(*streams) + u16::from(*coupled);
                if *streams == 0
                    || coupled > streams
                    || mapping.is_empty()
                    || mapping.len() > 8
                    || mapping.iter().any(|&m| m != 255 && u16::from(m) >= decoded)
                {
                    Err(RecorderError::Config(format!(
                        "invalid family 1 mapping: {streams} streams, {coupled} coupled, {mapping:?}"
                    )))
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// The identification header (`OpusHead`, RFC 7845 section 5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpusHead {
    /// Channel count and mapping.
    pub mapping: ChannelMapping,
    /// Samples at 48 kHz to discard from the start of the decoded output:
    /// the encoder's lookahead.
    pub pre_skip: u16,
    /// Sample rate of the original input (informational), 16 000 here.
    pub input_sample_rate: u32,
    /// Output gain in Q7.8 dB; we always write 0.
    pub output_gain: i16,
}

impl OpusHead {
    /// Serializes the header packet (version 1).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(21 + 8);
        out.extend_from_slice(b"OpusHead");
        out.push(1); // version
        out.push(self.mapping.channels());
        out.extend_from_slice(&self.pre_skip.to_le_bytes());
        out.extend_from_slice(&self.input_sample_rate.to_le_bytes());
        out.extend_from_slice(&self.output_gain.to_le_bytes());
        match &self.mapping {
            ChannelMapping::Family0 { .. } => out.push(0),
            ChannelMapping::Family1 {
                streams,
                coupled,
                mapping,
            } => {
                out.push(1);
                out.push(*streams);
                out.push(*coupled);
                out.extend_from_slice(mapping);
            }
        }
        out
    }

    /// Parses a header packet.
    pub fn parse(packet: &[u8]) -> Result<Self> {
        let bad = |why: &str| RecorderError::InvalidStream(format!("OpusHead: {why}"));
        if packet.len() < 19 || &packet[..8] != b"OpusHead" {
            return Err(bad("missing or short"));
        }
        // Major version 0 (the upper four bits) is the only one defined.
        if packet[8] >> 4 != 0 || packet[8] == 0 {
            return Err(bad("unsupported version"));
        }
        let channels = packet[9];
        let pre_skip = u16::from_le_bytes([packet[10], packet[11]]);
        let input_sample_rate =
            u32::from_le_bytes([packet[12], packet[13], packet[14], packet[15]]);
        let output_gain = i16::from_le_bytes([packet[16], packet[17]]);
        let mapping = match packet[18] {
            0 => ChannelMapping::Family0 { channels },
            1 => {
                let table = packet.get(19..21 + usize::from(channels));
                let Some(table) = table else {
                    return Err(bad("short channel mapping table"));
                };
                ChannelMapping::Family1 {
                    streams: table[0],
                    coupled: table[1],
                    mapping: table[2..].to_vec(),
                }
            }
            f => return Err(bad(&format!("unsupported mapping family {f}"))),
        };
        mapping.check()?;
        Ok(Self {
            mapping,
            pre_skip,
            input_sample_rate,
            output_gain,
        })
    }
}

/// The comment header (`OpusTags`, RFC 7845 section 5.2) with a vendor
/// string and **no** user comments: personal data (names, numbers) never
/// goes into the media file; it lives in the metadata store.
pub fn opus_tags(vendor: &str) -> Vec<u8> {
    let vendor = vendor.as_bytes();
    let mut out = Vec::with_capacity(16 + vendor.len());
    out.extend_from_slice(b"OpusTags");
    let len = u32::try_from(vendor.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&vendor[..len as usize]);
    out.extend_from_slice(&0u32.to_le_bytes()); // user comment list length
    out
}

/// The vendor string we write: this crate and the libopus version.
pub fn default_vendor() -> String {
    format!("Insights recorder ({})", opus::version())
}

/// Page policy and header options of an [`OggOpusWriter`].
#[derive(Clone, Debug)]
pub struct OggOptions {
    /// A page is completed at the latest after this many audio packets
    /// (default [`DEFAULT_PACKETS_PER_PAGE`], about one second).
    pub packets_per_page: u32,
    /// The `OpusTags` vendor string.
    pub vendor: String,
    /// Bitstream serial number; `None` picks a random one (RFC 7845
    /// recommends random serials so streams can be chained/multiplexed).
    pub serial: Option<u32>,
}

impl Default for OggOptions {
    fn default() -> Self {
        Self {
            packets_per_page: DEFAULT_PACKETS_PER_PAGE,
            vendor: default_vendor(),
            serial: None,
        }
    }
}

/// Writes one Ogg Opus logical bitstream into any [`Write`].
///
/// * Page 0 holds `OpusHead` alone (BOS), page 1 `OpusTags`; audio starts
///   on page 2 (RFC 7845 section 3).
/// * Every audio packet adds its duration (parsed from its TOC byte, at
///   48 kHz) to the granule position, which therefore counts pre-skip
///   samples too: a page's granule is the 48 kHz sample count of
///   everything decoded up to the end of the last packet completed on
///   it.
/// * A page is completed after [`OggOptions::packets_per_page`] packets,
///   or on [`OggOpusWriter::flush_page`]. The newest packet is always held
///   back (20 ms), so that [`OggOpusWriter::finish`] can put it on the
///   final page with the end-of-stream flag and an end-trimmed granule
///   position.
/// * [`OggOpusWriter::finish`] writes the last page with EOS; its granule
///   may be reduced by `end_trim` samples to cut encoder padding from
///   the end (RFC 7845 section 4.4).
///
/// Writing to the inner writer happens only when a page completes; the
/// writer never calls `flush` on it except in `flush_page` and `finish`.
pub struct OggOpusWriter<W: Write> {
    pages: PacketWriter<'static, W>,
    serial: u32,
    packets_per_page: u32,
    /// Packets of the open page, with the granule position at their end.
    queue: VecDeque<(Vec<u8>, u64)>,
    granule: u64,
    last_duration: u64,
    pre_skip: u16,
    packets: u64,
    mapping: ChannelMapping,
}

impl<W: Write> OggOpusWriter<W> {
    /// Starts a stream: writes the `OpusHead` and `OpusTags` pages.
    pub fn new(inner: W, head: &OpusHead, options: &OggOptions) -> Result<Self> {
        head.mapping.check()?;
        if options.packets_per_page == 0 {
            return Err(RecorderError::Config(
                "packets_per_page must be at least 1".into(),
            ));
        }
        let serial = options.serial.unwrap_or_else(rand::random);
        let mut pages = PacketWriter::new(inner);
        pages.write_packet(head.to_bytes(), serial, PacketWriteEndInfo::EndPage, 0)?;
        pages.write_packet(
            opus_tags(&options.vendor),
            serial,
            PacketWriteEndInfo::EndPage,
            0,
        )?;
        Ok(Self {
            pages,
            serial,
            packets_per_page: options.packets_per_page,
            queue: VecDeque::with_capacity(options.packets_per_page as usize + 1),
            granule: 0,
            last_duration: 0,
            pre_skip: head.pre_skip,
            packets: 0,
            mapping: head.mapping.clone(),
        })
    }

    /// The stream's serial number.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Granule position after every packet written so far (48 kHz
    /// samples, pre-skip included).
    pub fn granule(&self) -> u64 {
        self.granule
    }

    /// Audio packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// The pre-skip from the header.
    pub fn pre_skip(&self) -> u16 {
        self.pre_skip
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        self.pages.inner()
    }

    /// The inner writer, mutably (e.g. to sync a file after
    /// [`OggOpusWriter::flush_page`]).
    pub fn get_mut(&mut self) -> &mut W {
        self.pages.inner_mut()
    }

    /// Adds one Opus packet (any legal duration, 2.5–120 ms).
    pub fn write_packet(&mut self, packet: &[u8]) -> Result<()> {
        let duration = packet_duration_48k(packet)?;
        self.granule += duration;
        self.last_duration = duration;
        self.packets += 1;
        self.queue.push_back((packet.to_vec(), self.granule));
        if self.queue.len() > self.packets_per_page as usize {
            self.write_page(self.packets_per_page as usize, PacketWriteEndInfo::EndPage)?;
        }
        Ok(())
    }

    /// Completes the open page with every packet but the newest (held for
    /// the final page) and flushes the inner writer. Call it about once a
    /// second to bound how much audio a crash can lose; a no-op when
    /// nothing but the held packet is pending.
    pub fn flush_page(&mut self) -> Result<()> {
        let n = self.queue.len().saturating_sub(1);
        if n > 0 {
            self.write_page(n, PacketWriteEndInfo::EndPage)?;
        }
        self.pages.inner_mut().flush()?;
        Ok(())
    }

    /// Writes the final page (end-of-stream flag set) and returns the
    /// inner writer, flushed.
    ///
    /// `end_trim` samples (48 kHz) are cut from the end of the decoded
    /// stream by lowering the final granule position; it must be smaller
    /// than or equal to the duration of the last packet. A stream without
    /// audio packets gets one packet of digital silence trimmed to zero
    /// playable samples, so that there is an audio page to carry EOS.
    pub fn finish(mut self, end_trim: u64) -> Result<W> {
        let mut end_trim = end_trim;
        if self.packets == 0 {
            // A legal stream needs an audio page to carry EOS: one 20 ms
            // packet of digital silence, trimmed to nothing but pre-skip.
            let silence = crate::encoder::silence_packet(&self.mapping)?;
            self.write_packet(&silence)?;
            end_trim = self.last_duration.saturating_sub(u64::from(self.pre_skip));
        }
        if self.queue.is_empty() {
            return Err(RecorderError::InvalidStream(
                "internal: final packet was not held back".into(),
            ));
        }
        if end_trim > self.last_duration {
            return Err(RecorderError::Config(format!(
                "end trim of {end_trim} samples exceeds the last packet ({} samples)",
                self.last_duration
            )));
        }
        if let Some(last) = self.queue.back_mut() {
            last.1 -= end_trim;
        }
        self.granule -= end_trim;
        let n = self.queue.len();
        self.write_page(n, PacketWriteEndInfo::EndStream)?;
        let mut inner = self.pages.into_inner();
        inner.flush()?;
        Ok(inner)
    }

    /// Writes the first `n` queued packets as one page (the `ogg` crate
    /// may split it if it exceeds 255 lacing values).
    fn write_page(&mut self, n: usize, end: PacketWriteEndInfo) -> Result<()> {
        for i in 0..n {
            let Some((packet, granule)) = self.queue.pop_front() else {
                break;
            };
            let info = if i + 1 == n {
                end
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            self.pages
                .write_packet(packet, self.serial, info, granule)?;
        }
        Ok(())
    }
}

/// Duration of an Opus packet in 48 kHz samples (from its TOC byte and
/// frame count).
pub fn packet_duration_48k(packet: &[u8]) -> Result<u64> {
    let n = opus::packet::get_nb_samples(packet, OPUS_RATE)
        .map_err(|e| RecorderError::InvalidFrame(format!("not an Opus packet: {e}")))?;
    Ok(n as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::encoder::{EncoderConfig, Layout, OpusEncoder};

    #[test]
    fn opus_head_round_trips_and_rejects_what_it_cannot_decode() {
        for mapping in [
            ChannelMapping::Family0 { channels: 1 },
            ChannelMapping::Family0 { channels: 2 },
            Layout::DualMono.mapping(),
        ] {
            let head = OpusHead {
                mapping,
                pre_skip: 312,
                input_sample_rate: 16_000,
                output_gain: -256,
            };
            let bytes = head.to_bytes();
            assert_eq!(&bytes[..8], b"OpusHead");
            assert_eq!(bytes[8], 1);
            assert_eq!(OpusHead::parse(&bytes).unwrap(), head);
        }
        let good = OpusHead {
            mapping: Layout::DualMono.mapping(),
            pre_skip: 312,
            input_sample_rate: 16_000,
            output_gain: 0,
        }
        .to_bytes();
        assert_eq!(good.len(), 19 + 2 + 2);
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(OpusHead::parse(&bad).is_err());
        let mut bad = good.clone();
        bad[8] = 0x10; // major version 1
        assert!(OpusHead::parse(&bad).is_err());
        let mut bad = good.clone();
        bad[18] = 2; // mapping family 2
        assert!(OpusHead::parse(&bad).is_err());
        assert!(OpusHead::parse(&good[..21]).is_err(), "short mapping table");
        let mut bad = good.clone();
        bad[22] = 7; // channel fed by a stream that does not exist
        assert!(OpusHead::parse(&bad).is_err());
        let mut bad = good;
        bad[9] = 3; // three channels in family 0
        bad[18] = 0;
        assert!(OpusHead::parse(&bad[..19]).is_err());
    }

    #[test]
    fn opus_tags_hold_the_vendor_and_no_comments() {
        let tags = opus_tags("vendor");
        assert_eq!(&tags[..8], b"OpusTags");
        assert_eq!(&tags[8..12], &6u32.to_le_bytes());
        assert_eq!(&tags[12..18], b"vendor");
        assert_eq!(&tags[18..], &0u32.to_le_bytes());
    }

    fn writer() -> OggOpusWriter<Vec<u8>> {
        let head = OpusHead {
            mapping: ChannelMapping::Family0 { channels: 1 },
            pre_skip: 312,
            input_sample_rate: 16_000,
            output_gain: 0,
        };
        OggOpusWriter::new(Vec::new(), &head, &OggOptions::default()).unwrap()
    }

    #[test]
    fn writer_checks_its_arguments() {
        let head = OpusHead {
            mapping: ChannelMapping::Family0 { channels: 1 },
            pre_skip: 312,
            input_sample_rate: 16_000,
            output_gain: 0,
        };
        let options = OggOptions {
            packets_per_page: 0,
            ..Default::default()
        };
        assert!(OggOpusWriter::new(Vec::new(), &head, &options).is_err());
        let mut w = writer();
        assert!(w.write_packet(&[]).is_err(), "empty packet");
        let mut enc = OpusEncoder::new(Layout::Mono, &EncoderConfig::default()).unwrap();
        let packet = enc.encode(&[0; 320]).unwrap().to_vec();
        w.write_packet(&packet).unwrap();
        assert_eq!(w.granule(), 960);
        // Trimming more than the last packet is refused.
        assert!(writer_with(&packet).finish(961).is_err());
        assert!(writer_with(&packet).finish(960).is_ok());
    }

    fn writer_with(packet: &[u8]) -> OggOpusWriter<Vec<u8>> {
        let mut w = writer();
        w.write_packet(packet).unwrap();
        w
    }

    #[test]
    fn the_page_limit_completes_pages() {
        let mut enc = OpusEncoder::new(Layout::Mono, &EncoderConfig::default()).unwrap();
        let mut w = writer();
        let headers = w.get_ref().len();
        for i in 0..50 {
            let packet = enc.encode(&[i as i16; 320]).unwrap().to_vec();
            w.write_packet(&packet).unwrap();
        }
        assert_eq!(w.get_ref().len(), headers, "50 packets fit one page");
        let packet = enc.encode(&[0; 320]).unwrap().to_vec();
        w.write_packet(&packet).unwrap();
        assert!(w.get_ref().len() > headers, "the 51st completes it");
    }
}
