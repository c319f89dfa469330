//! The relay's one error type.

use std::path::PathBuf;

use clinicmeet_protocol::{ErrorBody, ErrorCode};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("certificate: {0}")]
    Cert(String),
    #[error("TLS/QUIC setup: {0}")]
    Tls(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("corrupt data in the database: {0}")]
    Corrupt(&'static str),
    #[error("internal: {0}")]
    Internal(String),
}

impl RelayError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RelayError::Io { path: path.into(), source }
    }
}

// ---------------------------------------------------------------------------
// What clients are told when a request is refused (hub, room and tracks share these).

/// A refusal with its code and a message for the user.
pub fn refuse(code: ErrorCode, msg: &str) -> ErrorBody {
    ErrorBody::new(code, msg)
}

/// Something went wrong on the relay (details are logged, not sent).
pub fn internal() -> ErrorBody {
    refuse(ErrorCode::Internal, "internal error on the relay")
}

/// How long a client waits before retrying a request the relay could not store.
pub const STORAGE_RETRY_MS: u64 = 2_000;

/// A storage failure: logged (no patient data: the error names the operation,
/// never its values), and the client gets `storage_unavailable`, retryable:
/// nothing changed, and the relay recovers by itself when its disk does.
pub fn db(err: RelayError) -> ErrorBody {
    tracing::error!(%err, "database error");
    refuse(ErrorCode::StorageUnavailable, "the relay cannot store this right now; it will be retried")
        .retry_after(STORAGE_RETRY_MS)
}

/// The request needs a meeting and the connection is in none.
pub fn not_joined() -> ErrorBody {
    refuse(ErrorCode::InvalidState, "join a meeting first")
}

/// The request needs the meeting proper and the participant is in its waiting room.
pub fn waiting() -> ErrorBody {
    refuse(ErrorCode::InvalidState, "you are in the waiting room")
}
