//! Streaming decode of an Ogg Opus stream with a maximum duration, for
//! the paths that turn stored recordings back into audio (transcription,
//! access bundles).
//!
//! [`OpusStream`] decodes packet by packet from any `Read + Seek` input
//! and hands out blocks of interleaved PCM from one reused buffer, so the
//! caller decides what to keep. It stops with
//! [`RecorderError::TooLong`] as soon as the decoded audio would pass the
//! maximum duration — before allocating for it: a small file that
//! claims hours of audio (Opus packets of silence are a few bytes) cannot
//! make the process allocate gigabytes. Decoded PCM is zeroised: the
//! block buffer when the decoder is dropped, and the channels
//! [`OpusStream::read_channels`] returns when they are dropped.
//!
//! Pre-skip, output gain and end trimming (to the page granule position)
//! are honoured as in [`crate::decode_ogg_opus`]; a stream cut off after
//! a crash decodes up to its last complete page.

use std::io::{Read, Seek};
use std::time::Duration;

use ogg::reading::PacketReader;
use zeroize::Zeroizing;

use crate::decode::{Dec, Opened, next_packet_of, open_stream};
use crate::ogg_opus::OpusHead;
use crate::{OPUS_RATE, RecorderError, Result};

/// An Ogg Opus stream being decoded (see the module docs).
pub struct OpusStream<R: Read + Seek> {
    reader: PacketReader<R>,
    serial: u32,
    head: OpusHead,
    dec: Dec,
    channels: usize,
    sample_rate: u32,
    /// 48 kHz samples per output sample.
    ratio: u64,
    /// Output frames still to drop (pre-skip).
    skip: u64,
    /// Output frames handed out so far (after pre-skip).
    emitted: u64,
    /// Most output frames allowed.
    max_frames: u64,
    max: Duration,
    buf: Zeroizing<Vec<i16>>,
    done: bool,
    complete: bool,
}

impl<R: Read + Seek> OpusStream<R> {
    /// Opens the first logical stream of `input` for decoding at
    /// `sample_rate` (8000, 12000, 16000, 24000 or 48000 Hz), at most
    /// `max` of audio.
    pub fn open(input: R, sample_rate: u32, max: Duration) -> Result<Self> {
        let Opened {
            reader,
            serial,
            head,
            dec,
            channels,
        } = open_stream(input, sample_rate)?;
        let ratio = u64::from(OPUS_RATE / sample_rate);
        let max_frames = (max.as_millis() as u64).saturating_mul(u64::from(sample_rate)) / 1000;
        Ok(Self {
            reader,
            serial,
            skip: u64::from(head.pre_skip) / ratio,
            head,
            dec,
            channels,
            sample_rate,
            ratio,
            emitted: 0,
            max_frames,
            max,
            // 120 ms at 48 kHz is the longest packet.
            buf: Zeroizing::new(vec![0i16; 5760 * channels]),
            done: false,
            complete: false,
        })
    }

    /// The stream's identification header.
    pub fn head(&self) -> &OpusHead {
        &self.head
    }

    /// Channels of the output.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Rate of the output in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Whether the stream ended with its end-of-stream page (known once
    /// [`Self::next_block`] returned `None`).
    pub fn complete(&self) -> bool {
        self.complete
    }

    /// The next block of interleaved PCM (`channels()` samples per
    /// frame; empty blocks are skipped), `None` at the end of the stream.
    /// The block lives in a buffer reused by the next call and zeroised
    /// when the decoder is dropped.
    pub fn next_block(&mut self) -> Result<Option<&[i16]>> {
        while !self.done {
            let packet = match next_packet_of(&mut self.reader, self.serial) {
                Ok(Some(p)) => p,
                Ok(None) => {
                    self.done = true;
                    break;
                }
                Err(RecorderError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    self.done = true;
                    break;
                }
                Err(e) => return Err(e),
            };
            if packet.last_in_stream() {
                self.done = true;
                self.complete = true;
            }
            let n = self.dec.decode(&packet.data, &mut self.buf)? as u64;
            // Pre-skip first.
            let skipped = n.min(self.skip);
            self.skip -= skipped;
            let mut start = skipped;
            let mut end = n;
            // End trimming: nothing past the page's granule position
            // (only ever cuts in the last page; -1 means "no packet ends
            // here").
            let granule = packet.absgp_page();
            if granule != u64::MAX {
                let valid = granule.saturating_sub(u64::from(self.head.pre_skip)) / self.ratio;
                let room = valid.saturating_sub(self.emitted);
                end = end.min(start + room);
            }
            if end <= start {
                continue;
            }
            if self.emitted + (end - start) > self.max_frames {
                self.done = true;
                return Err(RecorderError::TooLong {
                    max_secs: self.max.as_secs(),
                });
            }
            self.emitted += end - start;
            let c = self.channels as u64;
            start *= c;
            end *= c;
            return Ok(Some(&self.buf[start as usize..end as usize]));
        }
        Ok(None)
    }

    /// Decodes the rest of the stream into one zeroised vector per channel.
    pub fn read_channels(mut self) -> Result<Vec<Zeroizing<Vec<i16>>>> {
        let channels = self.channels;
        let mut out: Vec<Zeroizing<Vec<i16>>> =
            (0..channels).map(|_| Zeroizing::new(Vec::new())).collect();
        while let Some(block) = self.next_block()? {
            for frame in block.chunks_exact(channels) {
                for (ch, &s) in out.iter_mut().zip(frame) {
                    push_zeroizing(ch, s);
                }
            }
        }
        Ok(out)
    }
}

/// Pushes `s`, growing the vector so that no copy of the samples is left
/// behind in freed memory (a plain `push` reallocates and frees the old
/// buffer without clearing it).
fn push_zeroizing(v: &mut Zeroizing<Vec<i16>>, s: i16) {
    if v.len() == v.capacity() {
        let mut bigger = Zeroizing::new(Vec::with_capacity((v.capacity() * 2).max(16_000)));
        bigger.extend_from_slice(v);
        *v = bigger;
    }
    v.push(s);
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::{CallRecorder, PcmFrame, RecorderConfig, Side};

    /// An Ogg Opus two-channel call of `secs` seconds of a tone.
    fn call(secs: usize) -> Vec<u8> {
        let mut rec = CallRecorder::new(Vec::new(), &RecorderConfig::default(), Some(0))
            .unwrap_or_else(|e| panic!("{e}"));
        let frame: Vec<i16> = (0..crate::FRAME_SAMPLES)
            .map(|i| ((i as f32 * 0.2).sin() * 8000.0) as i16)
            .collect();
        for i in 0..secs * 50 {
            for side in [Side::Caller, Side::Callee] {
                rec.push(
                    side,
                    PcmFrame {
                        seq: i as u64,
                        ticks: i as i64 * 200_000,
                        pcm: &frame,
                    },
                )
                .unwrap_or_else(|e| panic!("{e}"));
            }
        }
        rec.finish().unwrap_or_else(|e| panic!("{e}")).0
    }

    #[test]
    fn streams_the_same_samples_as_the_whole_decoder() {
        let bytes = call(2);
        let whole =
            crate::decode_ogg_opus(Cursor::new(&bytes), 16_000).unwrap_or_else(|e| panic!("{e}"));
        let s = OpusStream::open(Cursor::new(&bytes), 16_000, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}"));
        let streamed = s.read_channels().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(streamed.len(), whole.channels.len());
        for (a, b) in streamed.iter().zip(&whole.channels) {
            assert_eq!(a.as_slice(), b.as_slice());
        }
    }

    #[test]
    fn stops_at_the_maximum_duration() {
        let bytes = call(3);
        let mut s = OpusStream::open(Cursor::new(&bytes), 16_000, Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut frames = 0usize;
        let err = loop {
            match s.next_block() {
                Ok(Some(b)) => frames += b.len() / 2,
                Ok(None) => panic!("decoded past the maximum"),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(err, RecorderError::TooLong { max_secs: 1 }),
            "{err}"
        );
        assert!(frames <= 16_000, "{frames} frames handed out");
    }
}
