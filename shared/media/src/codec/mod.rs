//! Codecs: H.264 (openh264) for video, Opus (libopus) for audio.

pub mod h264;
pub mod opus;
