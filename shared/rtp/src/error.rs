//! The crate's error type.

/// Every fallible RTP/RTCP operation returns this error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Malformed packet from the network (RTP, RTCP, payload format).
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// An invalid parameter (payload size too small, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Short alias used inside the crate.
pub type Result<T, E = RtpError> = std::result::Result<T, E>;
