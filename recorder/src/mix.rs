//! Mixing participant frames into the playback track.

use crate::FRAME_SAMPLES;

/// Where soft clipping starts: 0.75 of full scale. Below it the mix is
/// the exact sum.
const KNEE: f32 = 24_576.0;
const FULL: f32 = 32_767.0;

/// Sums frames into an `i32` accumulator and converts it to `i16` with a
/// soft clip: samples within ±0.75 full scale are the exact sum; above,
/// `knee + (full − knee)·tanh((|x| − knee)/(full − knee))` bends them
/// smoothly towards full scale instead of wrapping or hard clipping.
#[derive(Clone, Debug)]
pub struct Mixer {
    acc: [i32; FRAME_SAMPLES],
    out: [i16; FRAME_SAMPLES],
    inputs: usize,
}

impl Default for Mixer {
    fn default() -> Self {
        Self {
            acc: [0; FRAME_SAMPLES],
            out: [0; FRAME_SAMPLES],
            inputs: 0,
        }
    }
}

impl Mixer {
    /// Starts a new frame.
    pub fn clear(&mut self) {
        self.acc = [0; FRAME_SAMPLES];
        self.inputs = 0;
    }

    /// Adds one participant's frame.
    pub fn add(&mut self, frame: &[i16; FRAME_SAMPLES]) {
        for (a, &s) in self.acc.iter_mut().zip(frame) {
            *a += i32::from(s);
        }
        self.inputs += 1;
    }

    /// Number of frames added since `clear`.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// The mixed, soft-clipped frame.
    pub fn output(&mut self) -> &[i16; FRAME_SAMPLES] {
        for (o, &a) in self.out.iter_mut().zip(&self.acc) {
            *o = soft_clip(a);
        }
        &self.out
    }
}

/// Soft clip of one summed sample (see [`Mixer`]).
pub fn soft_clip(x: i32) -> i16 {
    let knee = KNEE as i32;
    if (-knee..=knee).contains(&x) {
        return x as i16;
    }
    let mag = (x.unsigned_abs() as f32 - KNEE) / (FULL - KNEE);
    let y = KNEE + (FULL - KNEE) * mag.tanh();
    let y = y.round().min(FULL) as i16;
    if x < 0 { -y } else { y }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn soft_clip_is_exact_below_the_knee_monotonic_and_bounded() {
        for x in [-24_576, -1000, -1, 0, 1, 1000, 24_576] {
            assert_eq!(i32::from(soft_clip(x)), x);
        }
        let mut prev = soft_clip(24_576);
        for x in (24_577..200_000).step_by(97) {
            let y = soft_clip(x);
            assert!(y >= prev, "monotonic at {x}");
            assert_eq!(soft_clip(-x), -y, "odd at {x}");
            prev = y;
        }
        assert_eq!(soft_clip(i32::MAX), 32_767);
        assert_eq!(soft_clip(-i32::MAX), -32_767);
        // Continuous at the knee.
        assert!((i32::from(soft_clip(24_600)) - 24_600).abs() <= 1);
    }

    #[test]
    fn mixer_sums_and_saturates_softly() {
        let mut m = Mixer::default();
        m.add(&[10_000; FRAME_SAMPLES]);
        m.add(&[-3_000; FRAME_SAMPLES]);
        assert_eq!(m.inputs(), 2);
        assert!(m.output().iter().all(|&s| s == 7_000));
        m.clear();
        for _ in 0..4 {
            m.add(&[30_000; FRAME_SAMPLES]);
        }
        let out = m.output();
        assert!(out.iter().all(|&s| (32_000..=32_767).contains(&s)));
    }
}
