//! Decoding uploaded or imported audio files to 16 kHz mono PCM.
//!
//! Containers and codecs come from `symphonia` (WAV/PCM/ADPCM, FLAC,
//! MP3 (and MP1/MP2), Ogg Vorbis, AIFF, CAF, MP4/M4A with AAC or ALAC,
//! MKV/WebM); Ogg **Opus**, which symphonia cannot decode, goes through
//! our own [`crate::decode_ogg_opus`]. Channels are averaged to mono
//! and the rate is converted to 16 kHz with `rubato`'s FFT resampler
//! (its startup delay is trimmed, so the output is aligned with the
//! input and `round(n · 16000 / rate)` samples long).

use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::Path;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

use crate::{RecorderError, Result, SAMPLE_RATE};

/// Input frames per resampler call.
const CHUNK: usize = 1024;

/// 16 kHz mono 16-bit PCM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pcm16k {
    /// The samples.
    pub samples: Vec<i16>,
    /// Sample rate of the source.
    pub source_rate: u32,
    /// Channel count of the source (before the downmix).
    pub source_channels: usize,
}

impl Pcm16k {
    /// Duration in milliseconds.
    pub fn duration_ms(&self) -> f64 {
        self.samples.len() as f64 * 1000.0 / f64::from(SAMPLE_RATE)
    }
}

fn import_error(what: &str, e: impl std::fmt::Display) -> RecorderError {
    RecorderError::Import(format!("{what}: {e}"))
}

/// Decodes an audio file to 16 kHz mono. The extension is only a hint;
/// the content decides.
pub fn decode_file(path: impl AsRef<Path>) -> Result<Pcm16k> {
    let path = path.as_ref();
    let file = File::open(path)?;
    let ext = path.extension().and_then(|e| e.to_str());
    decode_reader(file, ext)
}

/// Decodes audio from a seekable reader (a file, or a `Cursor` over
/// bytes) to 16 kHz mono. `extension` is an optional format hint.
/// (`symphonia`'s `MediaSource` is implemented by `File` and
/// `Cursor<T: AsRef<[u8]>>`.)
pub fn decode_reader<R: MediaSource + 'static>(
    mut reader: R,
    extension: Option<&str>,
) -> Result<Pcm16k> {
    if is_ogg_opus(&mut reader)? {
        let decoded = crate::decode_ogg_opus(reader, SAMPLE_RATE)?;
        let source_channels = decoded.channels.len();
        return Ok(Pcm16k {
            samples: downmix_i16(&decoded.channels),
            source_rate: decoded.head.input_sample_rate,
            source_channels,
        });
    }
    decode_symphonia(Box::new(reader), extension)
}

/// Decodes audio held in memory; see [`decode_reader`].
pub fn decode_bytes(bytes: Vec<u8>, extension: Option<&str>) -> Result<Pcm16k> {
    decode_reader(Cursor::new(bytes), extension)
}

/// Whether the stream starts with an Ogg page carrying `OpusHead`
/// (the reader is rewound either way).
fn is_ogg_opus<R: Read + Seek>(reader: &mut R) -> Result<bool> {
    let start = reader.stream_position()?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < head.len() {
        let got = reader.read(&mut head[n..])?;
        if got == 0 {
            break;
        }
        n += got;
    }
    reader.seek(SeekFrom::Start(start))?;
    if n < 27 || &head[..4] != b"OggS" {
        return Ok(false);
    }
    let segments = usize::from(head[26]);
    let body = 27 + segments;
    Ok(head.get(body..body + 8) == Some(b"OpusHead".as_slice()))
}

fn downmix_i16(channels: &[Vec<i16>]) -> Vec<i16> {
    let n = channels.iter().map(Vec::len).min().unwrap_or(0);
    let count = channels.len().max(1) as i32;
    (0..n)
        .map(|i| {
            let sum: i32 = channels.iter().map(|c| i32::from(c[i])).sum();
            (sum / count) as i16
        })
        .collect()
}

fn decode_symphonia(source: Box<dyn MediaSource>, extension: Option<&str>) -> Result<Pcm16k> {
    let mss = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = extension {
        hint.with_extension(ext);
    }
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| import_error("unrecognised or unsupported format", e))?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| RecorderError::Import("no audio track".into()))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| RecorderError::Import("audio track without codec parameters".into()))?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| import_error("unsupported codec", e))?;

    let mut sink: Option<To16k> = None;
    let mut planes: Vec<Vec<f32>> = Vec::new();
    let mut source_channels = 0;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A chained stream changed its tracks; what we have is the
            // first one, which is what an import means.
            Err(SymphoniaError::ResetRequired) => break,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(e) => return Err(import_error("demuxing", e)),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = match decoder.decode(&packet) {
            Ok(buf) => buf,
            // A corrupt packet is skipped, as players do.
            Err(SymphoniaError::DecodeError(_)) => continue,
            Err(e) => return Err(import_error("decoding", e)),
        };
        let rate = buf.spec().rate();
        buf.copy_to_vecs_planar::<f32>(&mut planes);
        source_channels = source_channels.max(planes.len());
        let sink = match &mut sink {
            Some(s) => s,
            None => sink.insert(To16k::new(rate)?),
        };
        if sink.rate != rate {
            return Err(RecorderError::Import(format!(
                "sample rate changes mid-stream ({} to {rate} Hz)",
                sink.rate
            )));
        }
        sink.push_planar(&planes)?;
    }
    let sink = sink.ok_or_else(|| RecorderError::Import("no decodable audio".into()))?;
    let source_rate = sink.rate;
    Ok(Pcm16k {
        samples: sink.finish()?,
        source_rate,
        source_channels,
    })
}

/// Downmix + resampling to 16 kHz, streaming.
struct To16k {
    rate: u32,
    resampler: Option<Fft<f32>>,
    input: Vec<f32>,
    scratch: Vec<f32>,
    out: Vec<i16>,
    total_in: u64,
    /// Output frames still to drop (the resampler's startup delay).
    to_trim: usize,
}

impl To16k {
    fn new(rate: u32) -> Result<Self> {
        if rate == 0 {
            return Err(RecorderError::Import("sample rate 0".into()));
        }
        let resampler = if rate == SAMPLE_RATE {
            None
        } else {
            Some(
                Fft::<f32>::new(
                    rate as usize,
                    SAMPLE_RATE as usize,
                    CHUNK,
                    1,
                    FixedSync::Input,
                )
                .map_err(|e| import_error("resampler", e))?,
            )
        };
        let to_trim = resampler.as_ref().map_or(0, |r| r.output_delay());
        let scratch = vec![0.0; resampler.as_ref().map_or(0, |r| r.output_frames_max())];
        Ok(Self {
            rate,
            resampler,
            input: Vec::with_capacity(2 * CHUNK),
            scratch,
            out: Vec::new(),
            total_in: 0,
            to_trim,
        })
    }

    fn push_planar(&mut self, planes: &[Vec<f32>]) -> Result<()> {
        let n = planes.iter().map(Vec::len).min().unwrap_or(0);
        let scale = 1.0 / planes.len().max(1) as f32;
        self.total_in += n as u64;
        for i in 0..n {
            let s: f32 = planes.iter().map(|p| p[i]).sum();
            self.input.push(s * scale);
        }
        if self.resampler.is_none() {
            let input = std::mem::take(&mut self.input);
            self.out.extend(input.iter().map(|&s| to_i16(s)));
            self.input = input;
            self.input.clear();
            return Ok(());
        }
        let mut used = 0;
        while self.input.len() - used >= CHUNK {
            self.process(used, None)?;
            used += CHUNK;
        }
        self.input.drain(..used);
        Ok(())
    }

    /// Resamples one chunk starting at `offset` (`partial` valid frames
    /// if given) and appends the output.
    fn process(&mut self, offset: usize, partial: Option<usize>) -> Result<()> {
        let Some(resampler) = &mut self.resampler else {
            return Ok(());
        };
        let mut indexing = Indexing::new().input_offset(offset);
        if let Some(p) = partial {
            indexing = indexing.partial_len(p);
        }
        let frames_in = self.input.len().max(offset + CHUNK);
        if self.input.len() < frames_in {
            self.input.resize(frames_in, 0.0);
        }
        let input = InterleavedSlice::new(&self.input[..], 1, frames_in)
            .map_err(|e| import_error("resampler input", e))?;
        let frames_out = self.scratch.len();
        let mut output = InterleavedSlice::new_mut(&mut self.scratch[..], 1, frames_out)
            .map_err(|e| import_error("resampler output", e))?;
        let (_, produced) = resampler
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| import_error("resampling", e))?;
        let skip = self.to_trim.min(produced);
        self.to_trim -= skip;
        self.out
            .extend(self.scratch[skip..produced].iter().map(|&s| to_i16(s)));
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<i16>> {
        if self.resampler.is_none() {
            return Ok(self.out);
        }
        let expected = ((self.total_in as f64) * f64::from(SAMPLE_RATE) / f64::from(self.rate))
            .round() as usize;
        let rest = self.input.len();
        if rest > 0 {
            self.process(0, Some(rest))?;
            self.input.clear();
        }
        // Pump silence until the delayed tail is out.
        let mut guard = 0;
        while self.out.len() < expected && guard < 64 {
            self.process(0, Some(0))?;
            guard += 1;
        }
        self.out.truncate(expected);
        Ok(self.out)
    }
}

fn to_i16(s: f32) -> i16 {
    (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}
