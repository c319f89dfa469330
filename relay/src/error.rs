//! The relay's one error type.

use std::path::PathBuf;

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
