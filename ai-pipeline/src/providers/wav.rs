//! Utterances as WAV files in memory (16 kHz mono, 16-bit PCM): what the
//! cloud speech-to-text APIs accept. Never written to disk.

use std::io::Cursor;

use crate::stt::STT_SAMPLE_RATE;

/// The samples (-1.0..=1.0, clipped) as a WAV file.
pub fn wav_bytes(samples: &[f32]) -> Result<Vec<u8>, hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: STT_SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cursor = Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    {
        let mut w = hound::WavWriter::new(&mut cursor, spec)?;
        for s in samples {
            w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)?;
        }
        w.finalize()?;
    }
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_wav_reader() {
        let samples: Vec<f32> = (0..1600).map(|i| ((i as f32) / 50.0).sin() * 0.5).collect();
        let bytes = wav_bytes(&samples).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bytes.len(), 44 + 3200);
        let mut r = hound::WavReader::new(Cursor::new(bytes)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.spec().sample_rate, 16_000);
        assert_eq!(r.spec().channels, 1);
        let back: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap_or(0)).collect();
        assert_eq!(back.len(), 1600);
        assert_eq!(back[100], (samples[100] * 32767.0).round() as i16);
    }
}
