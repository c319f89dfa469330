//! The one error type of the client crate.

use clinicmeet_protocol::{ErrorBody, ErrorCode};

/// Everything that can go wrong in the client engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The relay answered with an error (stable code in `.0.code`).
    #[error("relay refused: {0}")]
    Relay(ErrorBody),
    /// The relay's certificate does not match the pinned fingerprint.
    #[error("relay certificate pin mismatch: expected {expected}, relay presented {actual}")]
    PinMismatch { expected: String, actual: String },
    /// A pin string is not `sha256/<base64 of 32 bytes>`.
    #[error("invalid pin `{0}`: expected sha256/<base64 of the SHA-256 of the certificate's public key>")]
    InvalidPin(String),
    #[error("could not resolve relay address `{0}`")]
    Resolve(String),
    #[error("could not connect to the relay: {0}")]
    Connect(String),
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The connection to the relay was lost (a reconnect may follow).
    #[error("connection to the relay lost: {0}")]
    ConnectionLost(String),
    /// The session was closed (by `close`, leave, or the meeting ending).
    #[error("session closed")]
    Closed,
    /// The relay sent something this client cannot read.
    #[error("protocol violation by the relay: {0}")]
    Protocol(String),
    /// A call that needs a state the session is not in (e.g. chat before join).
    #[error("not possible now: {0}")]
    InvalidState(String),
    /// Local input refused before sending (e.g. empty chat message).
    #[error("invalid input: {0}")]
    Invalid(ErrorBody),
    #[error("local store: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("local store: {0}")]
    StoreData(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl From<clinicmeet_tls::InvalidPin> for ClientError {
    fn from(e: clinicmeet_tls::InvalidPin) -> Self {
        ClientError::InvalidPin(e.0)
    }
}

impl ClientError {
    /// The relay's error code, when the relay refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Relay(b) | ClientError::Invalid(b) => Some(b.code),
            _ => None,
        }
    }

    /// A stable snake_case name for JSON output.
    pub fn code_str(&self) -> &'static str {
        match self {
            ClientError::Relay(b) | ClientError::Invalid(b) => b.code.as_str(),
            ClientError::PinMismatch { .. } => "pin_mismatch",
            ClientError::InvalidPin(_) => "invalid_pin",
            ClientError::Resolve(_) => "resolve_failed",
            ClientError::Connect(_) => "connect_failed",
            ClientError::Tls(_) => "tls",
            ClientError::ConnectionLost(_) => "connection_lost",
            ClientError::Closed => "closed",
            ClientError::Protocol(_) => "protocol",
            ClientError::InvalidState(_) => "invalid_state",
            ClientError::Store(_) | ClientError::StoreData(_) => "store",
            ClientError::Io(_) => "io",
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;
