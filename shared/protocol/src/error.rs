//! Error codes carried on the wire. The codes are stable API: clients branch
//! on them, so a variant is never renamed, only added.

use serde::{Deserialize, Serialize};

/// A stable, machine-readable error code (`snake_case` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The access code is unknown or wrong (one code for both, so guessing learns nothing).
    InvalidCode,
    /// The meeting has reached its participant limit.
    MeetingFull,
    /// The meeting has ended or was cancelled; its code admits nobody.
    MeetingEnded,
    /// The meeting is locked by its host.
    MeetingLocked,
    /// The host denied entry from the waiting room.
    Denied,
    /// The caller's role lacks the right for this action; nothing changed.
    Forbidden,
    /// The action needs an enrolled staff device credential.
    Unauthenticated,
    /// Too many requests, messages or failed code attempts; see `retry_after_ms`.
    RateLimited,
    /// A message or field is larger than the protocol allows.
    TooLarge,
    /// The message could not be parsed or a field is invalid.
    Malformed,
    /// The message type is not known to this relay.
    UnknownMessage,
    /// The message is valid but not allowed in the current state (e.g. chat before join).
    InvalidState,
    /// The client speaks no protocol version the relay supports.
    UpgradeRequired,
    /// The named participant, meeting or staff member does not exist.
    NotFound,
    /// The enrollment code or device credential is not valid (or was revoked).
    InvalidCredential,
    /// The resume token is unknown, expired or belongs to a participant who left.
    ResumeFailed,
    /// The relay is at capacity and refuses new joins.
    ServerBusy,
    /// An unexpected fault on the relay; the request may be retried.
    Internal,
    /// The relay could not store the change (disk full or failing); nothing
    /// changed and nobody was told. Retry after `retry_after_ms`: the relay
    /// recovers by itself when its storage does.
    StorageUnavailable,
    /// The meeting was cancelled before it started; its code admits nobody.
    MeetingCancelled,
    /// The file is larger than the relay's per-file limit (the message says the limit).
    AttachmentTooLarge,
    /// The file's content (not its name) is not of an allowed type, or it is an executable.
    AttachmentTypeNotAllowed,
    /// The meeting's attachments would exceed the relay's per-meeting quota.
    AttachmentQuotaExceeded,
    /// No such attachment for you: it does not exist, is gone (retention), or is
    /// not yours to read (one answer for all three).
    AttachmentNotFound,
    /// The transferred bytes do not match the declared size or SHA-256.
    AttachmentMismatch,
    /// A code from a newer relay that this build does not know (serde's
    /// catch-all: stays the last variant).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The wire name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidCode => "invalid_code",
            ErrorCode::MeetingFull => "meeting_full",
            ErrorCode::MeetingEnded => "meeting_ended",
            ErrorCode::MeetingLocked => "meeting_locked",
            ErrorCode::Denied => "denied",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Malformed => "malformed",
            ErrorCode::UnknownMessage => "unknown_message",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::UpgradeRequired => "upgrade_required",
            ErrorCode::NotFound => "not_found",
            ErrorCode::InvalidCredential => "invalid_credential",
            ErrorCode::ResumeFailed => "resume_failed",
            ErrorCode::ServerBusy => "server_busy",
            ErrorCode::Internal => "internal",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::AttachmentTooLarge => "attachment_too_large",
            ErrorCode::AttachmentTypeNotAllowed => "attachment_type_not_allowed",
            ErrorCode::AttachmentQuotaExceeded => "attachment_quota_exceeded",
            ErrorCode::AttachmentNotFound => "attachment_not_found",
            ErrorCode::AttachmentMismatch => "attachment_mismatch",
            ErrorCode::Unknown => "unknown",
            ErrorCode::MeetingCancelled => "meeting_cancelled",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error reply: a stable code, a human-readable message, and for rate
/// limits how long to wait before trying again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[error("{code}: {message}")]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody { code, message: message.into(), retry_after_ms: None }
    }

    pub fn retry_after(mut self, ms: u64) -> Self {
        self.retry_after_ms = Some(ms);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_names() {
        for code in [
            ErrorCode::InvalidCode,
            ErrorCode::RateLimited,
            ErrorCode::UpgradeRequired,
            ErrorCode::ServerBusy,
            ErrorCode::StorageUnavailable,
            ErrorCode::AttachmentTooLarge,
            ErrorCode::AttachmentTypeNotAllowed,
            ErrorCode::AttachmentQuotaExceeded,
            ErrorCode::AttachmentNotFound,
            ErrorCode::AttachmentMismatch,
        ] {
            assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn unknown_codes_are_tolerated() {
        let c: ErrorCode = serde_json::from_str("\"some_future_code\"").unwrap();
        assert_eq!(c, ErrorCode::Unknown);
    }
}
