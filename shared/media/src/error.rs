//! The crate's error type.

use crate::capture::DeviceKind;

/// Every fallible operation of the media engine returns this error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The requested device does not exist (no camera, no sound card, unknown id).
    /// The application can fall back to audio-only, video-only or chat-only.
    #[error("no {kind} found: {detail}")]
    DeviceNotFound { kind: DeviceKind, detail: String },
    /// The device exists but could not be opened or failed while running.
    #[error("{kind} failed: {detail}")]
    Device { kind: DeviceKind, detail: String },
    /// A requested or delivered format is not supported (resolution, rate, pixel format).
    #[error("unsupported format: {0}")]
    UnsupportedFormat(String),
    /// A frame or buffer handed to the engine is inconsistent (plane sizes, sample count).
    #[error("invalid frame: {0}")]
    InvalidFrame(String),
    /// An invalid parameter (bitrate 0, payload size too small, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The encoder failed.
    #[error("{codec} encoder error: {detail}")]
    Encoder { codec: &'static str, detail: String },
    /// The decoder failed on its input (corrupt or missing data).
    #[error("{codec} decoder error: {detail}")]
    Decoder { codec: &'static str, detail: String },
    /// Malformed packet from the network (RTP, RTCP, payload format).
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// Audio processing (echo cancellation, noise suppression, gain control) failed.
    #[error("audio processing error: {0}")]
    Processing(String),
    /// The source has no more frames (end of a file, device closed).
    #[error("end of stream")]
    EndOfStream,
}

impl From<clinicmeet_rtp::RtpError> for MediaError {
    fn from(e: clinicmeet_rtp::RtpError) -> Self {
        match e {
            clinicmeet_rtp::RtpError::Malformed(what) => MediaError::Malformed(what),
            clinicmeet_rtp::RtpError::InvalidArgument(what) => MediaError::InvalidArgument(what),
            // `RtpError` is non-exhaustive: a future variant reads as an invalid argument.
            other => MediaError::InvalidArgument(other.to_string()),
        }
    }
}

/// Short alias used inside the crate.
pub type Result<T, E = MediaError> = std::result::Result<T, E>;
