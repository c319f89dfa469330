//! Microphone-path audio processing: echo cancellation (AEC3), noise suppression
//! and automatic gain control, done by `sonora`, a pure-Rust port of WebRTC's audio
//! processing module.
//!
//! * [`AudioProcessor`]: the processing itself, frame in, frame out (sans-IO).
//! * [`SharedProcessor`], [`ProcessedSource`], [`EchoReferenceSink`]: wiring for a
//!   live call. The speaker sink feeds every frame it plays to the processor as the
//!   far-end reference; the microphone source runs every captured frame through it.
//!
//! ```no_run
//! # use clinicmeet_media::processing::*;
//! # use clinicmeet_media::capture::{NullAudioSink, synthetic};
//! # fn wire(mic: impl clinicmeet_media::capture::AudioSource, speaker: NullAudioSink) -> clinicmeet_media::error::Result<()> {
//! let apm = SharedProcessor::new(AudioProcessor::new(ProcessingConfig::default())?);
//! let mic = ProcessedSource::new(mic, apm.clone());
//! let speaker = EchoReferenceSink::new(speaker, apm);
//! # Ok(()) }
//! ```

mod processor;
mod wiring;

pub use processor::{AudioProcessor, NoiseSuppressionLevel, ProcessingConfig, ProcessingStats};
pub use wiring::{EchoReferenceSink, ProcessedSource, SharedProcessor};
