//! The one error type of the app shell, serialized for the UI as
//! `{code, message, retry_after_ms?, presented_pin?}` (the TS `EngineError`).

use clinicmeet_client::ClientError;
use serde::Serialize;

/// An error handed back to the web view by a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AppError {
    /// A relay `ErrorCode` or a local code (`pin_mismatch`, `unreachable`,
    /// `not_connected`, `no_device`, `invalid_input`, `internal`).
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// For `pin_mismatch`: the pin the relay actually presented.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presented_pin: Option<String>,
}

impl AppError {
    pub fn new(code: &str, message: impl Into<String>) -> AppError {
        AppError { code: code.into(), message: message.into(), retry_after_ms: None, presented_pin: None }
    }

    pub fn not_connected() -> AppError {
        AppError::new("not_connected", "Not connected to the clinic's server.")
    }

    pub fn invalid_input(message: impl Into<String>) -> AppError {
        AppError::new("invalid_input", message)
    }

    pub fn no_device(message: impl Into<String>) -> AppError {
        AppError::new("no_device", message)
    }
}

impl From<ClientError> for AppError {
    fn from(e: ClientError) -> AppError {
        match e {
            ClientError::Relay(b) | ClientError::Invalid(b) => AppError {
                code: b.code.as_str().into(),
                message: b.message,
                retry_after_ms: b.retry_after_ms,
                presented_pin: None,
            },
            ClientError::PinMismatch { actual, .. } => AppError {
                code: "pin_mismatch".into(),
                message: "The server's key does not match the fingerprint you entered.".into(),
                retry_after_ms: None,
                presented_pin: Some(actual),
            },
            ClientError::InvalidPin(_) => AppError::invalid_input(
                "The key fingerprint is not valid: expected sha256/… or 64 hexadecimal digits.",
            ),
            e @ (ClientError::Resolve(_) | ClientError::Connect(_)) => {
                AppError::new("unreachable", e.to_string())
            }
            e @ (ClientError::ConnectionLost(_) | ClientError::Closed) => {
                AppError::new("not_connected", e.to_string())
            }
            ClientError::InvalidState(s) => AppError::new("invalid_state", s),
            e => AppError::new("internal", e.to_string()),
        }
    }
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use clinicmeet_protocol::{ErrorBody, ErrorCode};

    #[test]
    fn client_errors_get_the_ui_codes() {
        let e = AppError::from(ClientError::PinMismatch {
            expected: "sha256/a".into(),
            actual: "sha256/b".into(),
        });
        assert_eq!((e.code.as_str(), e.presented_pin.as_deref()), ("pin_mismatch", Some("sha256/b")));
        let mut body = ErrorBody::new(ErrorCode::RateLimited, "slow down");
        body.retry_after_ms = Some(900);
        let e = AppError::from(ClientError::Relay(body));
        assert_eq!((e.code.as_str(), e.retry_after_ms), ("rate_limited", Some(900)));
        assert_eq!(AppError::from(ClientError::Connect("x".into())).code, "unreachable");
        assert_eq!(AppError::from(ClientError::Closed).code, "not_connected");
        let v = serde_json::to_value(AppError::not_connected()).unwrap();
        assert!(v.get("presented_pin").is_none() && v["code"] == "not_connected");
    }
}
