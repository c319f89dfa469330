//! Mixes the decoded 20 ms frames of several remote speakers into one, with a
//! peak limiter (instant attack, smooth release) so the sum never clips.

use crate::AUDIO_FRAME_SAMPLES;

/// Stateful mixer (the limiter's envelope carries across frames).
#[derive(Debug, Clone)]
pub struct Mixer {
    /// Output peak ceiling (linear, < 1.0).
    threshold: f32,
    envelope: f32,
    release: f32,
}

impl Default for Mixer {
    fn default() -> Self {
        Self::new()
    }
}

impl Mixer {
    pub fn new() -> Self {
        // Release time constant 50 ms at 48 kHz.
        Mixer { threshold: 0.9, envelope: 0.0, release: (-1.0f32 / (0.05 * 48_000.0)).exp() }
    }

    /// Sums the inputs (each 960 samples; shorter ones are zero-padded, longer ones cut)
    /// and limits the result to the threshold.
    pub fn mix<'a>(&mut self, inputs: impl IntoIterator<Item = &'a [f32]>) -> Vec<f32> {
        let mut out = vec![0.0f32; AUDIO_FRAME_SAMPLES];
        for input in inputs {
            for (o, &s) in out.iter_mut().zip(input) {
                if s.is_finite() {
                    *o += s;
                }
            }
        }
        for s in &mut out {
            let a = s.abs();
            self.envelope = if a > self.envelope { a } else { a.max(self.envelope * self.release) };
            if self.envelope > self.threshold {
                *s *= self.threshold / self.envelope;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, amp: f32, frame: usize) -> Vec<f32> {
        (0..AUDIO_FRAME_SAMPLES)
            .map(|i| {
                amp * (std::f32::consts::TAU * freq * (frame * AUDIO_FRAME_SAMPLES + i) as f32 / 48_000.0)
                    .sin()
            })
            .collect()
    }

    #[test]
    fn quiet_inputs_are_summed_exactly() {
        let mut m = Mixer::new();
        let (a, b) = (tone(440.0, 0.2, 0), tone(660.0, 0.2, 0));
        let out = m.mix([a.as_slice(), b.as_slice()]);
        assert!(out.iter().zip(a.iter().zip(&b)).all(|(o, (x, y))| (o - (x + y)).abs() < 1e-6));
    }

    #[test]
    fn loud_sum_never_clips_and_keeps_both_speakers() {
        let mut m = Mixer::new();
        let mut peak = 0.0f32;
        for f in 0..50 {
            let inputs: Vec<Vec<f32>> = (0..4).map(|k| tone(300.0 + 110.0 * k as f32, 0.8, f)).collect();
            let out = m.mix(inputs.iter().map(|v| v.as_slice()));
            peak = out.iter().fold(peak, |p, s| p.max(s.abs()));
        }
        assert!(peak <= 0.9 + 1e-6, "{peak}");
        // Garbage (NaN) from a broken stream is ignored.
        let bad = vec![f32::NAN; 960];
        assert!(m.mix([bad.as_slice()]).iter().all(|s| s.is_finite()));
    }
}
