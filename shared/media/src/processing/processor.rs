//! The audio processor: a thin, typed wrapper over `sonora::AudioProcessing`.

use sonora::config::{
    AdaptiveDigital, EchoCanceller, GainController2, HighPassFilter, MaxProcessingRate, NoiseSuppression,
};
use sonora::{AudioProcessing, Config, StreamConfig};

use crate::error::{MediaError, Result};
use crate::frame::AudioFrame;
use crate::AUDIO_SAMPLE_RATE;

/// Samples in one 10 ms block, the unit WebRTC audio processing works in.
const BLOCK: usize = AUDIO_SAMPLE_RATE as usize / 100;

/// How hard noise suppression works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseSuppressionLevel {
    /// About 6 dB.
    Low,
    /// About 12 dB.
    Moderate,
    /// About 18 dB.
    High,
    /// About 21 dB.
    VeryHigh,
}

/// Which stages run on the microphone path.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessingConfig {
    /// Acoustic echo cancellation (WebRTC AEC3), fed by [`AudioProcessor::process_render`].
    pub echo_cancellation: bool,
    /// Stationary-noise suppression; `None` turns it off.
    pub noise_suppression: Option<NoiseSuppressionLevel>,
    /// Adaptive digital gain (AGC2) with a limiter, bringing speech to a steady level.
    pub automatic_gain: bool,
    /// Removes rumble below ~100 Hz (always on when echo cancellation is on).
    pub high_pass: bool,
    /// Delay in ms between handing a frame to the speaker and its echo reaching the
    /// capture path, when known (device latencies). AEC3 also estimates it; 0 is fine.
    pub stream_delay_ms: u32,
    /// Process the full 24 kHz band (three bands at 48 kHz) instead of capping the
    /// internal rate at 32 kHz. Costs about a third more CPU.
    pub full_band: bool,
}

impl Default for ProcessingConfig {
    /// Everything on, as for a laptop with open speakers.
    fn default() -> Self {
        ProcessingConfig {
            echo_cancellation: true,
            noise_suppression: Some(NoiseSuppressionLevel::Moderate),
            automatic_gain: true,
            high_pass: true,
            stream_delay_ms: 0,
            full_band: false,
        }
    }
}

impl ProcessingConfig {
    /// Nothing enabled: the processor passes audio through unchanged.
    pub fn passthrough() -> Self {
        ProcessingConfig {
            echo_cancellation: false,
            noise_suppression: None,
            automatic_gain: false,
            high_pass: false,
            stream_delay_ms: 0,
            full_band: false,
        }
    }

    fn to_sonora(&self) -> Config {
        let mut c = Config::default();
        c.pipeline.maximum_internal_processing_rate =
            if self.full_band { MaxProcessingRate::Rate48kHz } else { MaxProcessingRate::Rate32kHz };
        if self.echo_cancellation {
            c.echo_canceller = Some(EchoCanceller::default());
        }
        if self.high_pass {
            c.high_pass_filter = Some(HighPassFilter::default());
        }
        if let Some(level) = self.noise_suppression {
            c.noise_suppression = Some(NoiseSuppression {
                level: match level {
                    NoiseSuppressionLevel::Low => sonora::config::NoiseSuppressionLevel::Low,
                    NoiseSuppressionLevel::Moderate => sonora::config::NoiseSuppressionLevel::Moderate,
                    NoiseSuppressionLevel::High => sonora::config::NoiseSuppressionLevel::High,
                    NoiseSuppressionLevel::VeryHigh => sonora::config::NoiseSuppressionLevel::VeryHigh,
                },
                ..Default::default()
            });
        }
        if self.automatic_gain {
            c.gain_controller2 = Some(GainController2 {
                input_volume_controller: false,
                adaptive_digital: Some(AdaptiveDigital::default()),
                ..Default::default()
            });
        }
        c
    }
}

/// What the echo canceller reports about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessingStats {
    /// Echo return loss enhancement the canceller estimates, dB.
    pub erle_db: Option<f64>,
    /// Estimated render-to-capture delay, ms.
    pub delay_ms: Option<i32>,
}

/// Echo cancellation, noise suppression and gain control for 48 kHz mono audio.
///
/// Sans-IO: call [`process_render`](Self::process_render) with every block the speaker
/// is about to play and [`process_capture`](Self::process_capture) with every block the
/// microphone captured, in the order they happen. Blocks are multiples of 10 ms (480
/// samples); the engine's 20 ms [`AudioFrame`]s fit.
pub struct AudioProcessor {
    apm: AudioProcessing,
    config: ProcessingConfig,
    scratch: Vec<f32>,
}

impl std::fmt::Debug for AudioProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioProcessor").field("config", &self.config).finish_non_exhaustive()
    }
}

impl AudioProcessor {
    pub fn new(config: ProcessingConfig) -> Result<Self> {
        let stream = StreamConfig::new(AUDIO_SAMPLE_RATE, 1);
        let mut apm = AudioProcessing::builder()
            .config(config.to_sonora())
            .capture_config(stream)
            .render_config(stream)
            .build();
        let delay = i32::try_from(config.stream_delay_ms).unwrap_or(i32::MAX);
        apm.set_stream_delay_ms(delay)
            .map_err(|e| MediaError::Processing(format!("stream delay {delay} ms: {e}")))?;
        Ok(AudioProcessor { apm, config, scratch: vec![0.0; BLOCK] })
    }

    pub fn config(&self) -> &ProcessingConfig {
        &self.config
    }

    /// Updates the render-to-capture delay estimate (ms, clamped to 0..=500).
    pub fn set_stream_delay_ms(&mut self, delay_ms: u32) {
        let d = i32::try_from(delay_ms.min(500)).unwrap_or(500);
        // Clamping is reported as an error by sonora; the value is already clamped here.
        let _ = self.apm.set_stream_delay_ms(d);
        self.config.stream_delay_ms = delay_ms.min(500);
    }

    /// Analyses far-end audio (what the speaker plays). Does not modify it.
    pub fn process_render(&mut self, far: &[f32]) -> Result<()> {
        check_len(far.len())?;
        for block in far.chunks_exact(BLOCK) {
            self.apm
                .process_render_f32(&[block], &mut [&mut self.scratch[..]])
                .map_err(|e| MediaError::Processing(e.to_string()))?;
        }
        Ok(())
    }

    /// Processes near-end (microphone) audio in place.
    pub fn process_capture(&mut self, mic: &mut [f32]) -> Result<()> {
        check_len(mic.len())?;
        // The stream delay must be set before every capture block, as in WebRTC.
        let delay = i32::try_from(self.config.stream_delay_ms).unwrap_or(500);
        for block in mic.chunks_exact_mut(BLOCK) {
            let _ = self.apm.set_stream_delay_ms(delay);
            self.apm
                .process_capture_f32(&[&block[..]], &mut [&mut self.scratch[..]])
                .map_err(|e| MediaError::Processing(e.to_string()))?;
            block.copy_from_slice(&self.scratch);
        }
        Ok(())
    }

    /// [`process_render`](Self::process_render) for one engine frame.
    pub fn render_frame(&mut self, far: &AudioFrame) -> Result<()> {
        self.process_render(&far.samples)
    }

    /// [`process_capture`](Self::process_capture) for one engine frame.
    pub fn capture_frame(&mut self, mic: &mut AudioFrame) -> Result<()> {
        self.process_capture(&mut mic.samples)
    }

    pub fn stats(&self) -> ProcessingStats {
        let s = self.apm.statistics();
        ProcessingStats { erle_db: s.echo_return_loss_enhancement, delay_ms: s.delay_ms }
    }
}

fn check_len(n: usize) -> Result<()> {
    if n == 0 || !n.is_multiple_of(BLOCK) {
        return Err(MediaError::InvalidFrame(format!(
            "audio processing takes multiples of {BLOCK} samples (10 ms at 48 kHz), got {n}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passthrough_leaves_audio_unchanged_and_bad_lengths_are_errors() {
        let mut p = AudioProcessor::new(ProcessingConfig::passthrough()).unwrap();
        let src: Vec<f32> = (0..960).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let mut buf = src.clone();
        p.process_render(&src).unwrap();
        p.process_capture(&mut buf).unwrap();
        let max_diff = src.iter().zip(&buf).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(max_diff < 1e-3, "passthrough changed audio by {max_diff}");
        assert!(p.process_capture(&mut [0.0; 100]).is_err());
        assert!(p.process_render(&[]).is_err());
    }
}
