//! ClinicMeet media engine: everything between a camera/microphone and RTP
//! packets on the wire, and back to pixels and sound.
//!
//! * [`frame`]: raw [`VideoFrame`] (I420) and [`AudioFrame`] (48 kHz mono, 20 ms).
//! * [`capture`]: the source/sink traits, device enumeration types and synthetic
//!   sources (test pattern camera with embedded frame number and capture time,
//!   tone / speech-like microphone).
//! * [`clock`]: the media clock, monotonic and Unix-aligned at process start.
//! * [`error`]: the crate's one error type, [`MediaError`].
//!
//! RTP and RTCP (packets, payload formats, feedback) are in `clinicmeet-rtp`,
//! which has no codec or device dependency; this crate builds on it.
//!
//! Everything that handles packets or timing is sans-IO: plain structs fed
//! with input and an explicit `now`, so tests run on a virtual clock.

pub mod capture;
pub mod clock;
pub mod codec;
pub mod convert;
pub mod error;
pub mod frame;
pub mod jitter;
pub mod mixer;
pub mod pipeline;
pub mod processing;
pub mod sync;
pub mod video_receiver;

pub use error::MediaError;
pub use frame::{AudioFrame, VideoFrame};

/// Audio sample rate used everywhere in the engine (Hz).
pub const AUDIO_SAMPLE_RATE: u32 = 48_000;
/// Audio frame duration (ms).
pub const AUDIO_FRAME_MS: u32 = 20;
/// Samples in one mono 20 ms frame at 48 kHz.
pub const AUDIO_FRAME_SAMPLES: usize = 960;
