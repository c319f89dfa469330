//! Spectrum helpers shared by the audio tests.
#![allow(dead_code)] // each test binary uses a part

use rustfft::num_complex::Complex;
use rustfft::FftPlanner;

/// The FFT of `x` under a Hann window.
pub fn hann_spectrum(x: &[f64]) -> Vec<Complex<f64>> {
    let n = x.len();
    let mut buf: Vec<Complex<f64>> = x
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
            Complex::new(v * w, 0.0)
        })
        .collect();
    FftPlanner::new().plan_fft_forward(n).process(&mut buf);
    buf
}

/// Frequency of the strongest component of `x` (sampled at `rate` Hz), from a
/// Hann-windowed FFT with parabolic interpolation of the peak.
pub fn dominant_hz(x: &[f32], rate: f64) -> f64 {
    let n = x.len();
    let spectrum = hann_spectrum(&x.iter().map(|v| f64::from(*v)).collect::<Vec<_>>());
    let mag: Vec<f64> = spectrum[..n / 2].iter().map(|c| c.norm().max(1e-12).ln()).collect();
    let k = (1..n / 2 - 1).max_by(|&a, &b| mag[a].total_cmp(&mag[b])).unwrap_or(1);
    let (a, b, c) = (mag[k - 1], mag[k], mag[k + 1]);
    let offset = 0.5 * (a - c) / (a - 2.0 * b + c);
    (k as f64 + offset) * rate / n as f64
}
