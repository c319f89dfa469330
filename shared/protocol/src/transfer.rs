//! File transfers (chat attachments) outside the control stream.
//!
//! A transfer is authorized by a token the relay hands out over the control
//! connection ([`crate::Response::UploadReady`], [`crate::Response::DownloadReady`]):
//! a random capability bound to one participant and one upload or attachment,
//! valid for [`TOKEN_TTL_MS`].
//!
//! * Desktop clients (QUIC): open a new bidirectional stream on the same
//!   connection and send one [`TransferHeader`] as a frame (4-byte big-endian
//!   length, then JSON, as on the control stream). Upload: then the raw bytes
//!   from `offset` to the end, then finish the stream; the relay answers with
//!   one [`TransferReply`] frame and closes its side. Download: the relay
//!   answers one [`TransferReply`] frame, then the raw bytes from `offset` to the end.
//! * Browser guests (HTTPS, on the guest page's port): `PUT
//!   /api/uploads/<token>?offset=N` with the bytes from `N` as the body (answers
//!   the [`TransferReply`] as JSON), `GET /api/attachments/<token>` (ranges
//!   allowed; served as `Content-Disposition: attachment`).
//!
//! Resuming: after a lost connection the client asks `start_upload` again with
//! the same SHA-256; the reply's `offset` is what the relay holds durably, and
//! the client sends from there.

use serde::{Deserialize, Serialize};

use crate::error::ErrorBody;
use crate::messages::AttachmentInfo;

/// How long a transfer token is valid after it was issued.
pub const TOKEN_TTL_MS: i64 = 10 * 60_000;
/// Transfers at the same time on one QUIC connection, at most.
pub const MAX_TRANSFERS_PER_CONNECTION: u32 = 4;
/// Largest header frame.
pub const MAX_HEADER_LEN: usize = 1024;

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    Upload,
    Download,
}

/// First frame on a transfer stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferHeader {
    pub kind: TransferKind,
    pub token: String,
    /// Upload: where the bytes that follow start (the relay's durable offset).
    /// Download: the first byte wanted.
    #[serde(default)]
    pub offset: u64,
}

/// The relay's answer on a transfer stream (and the body of an HTTPS upload's reply).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum TransferReply {
    /// Upload complete and stored: the attachment to put in a chat message.
    Stored {
        attachment: AttachmentInfo,
    },
    /// Upload incomplete (the stream ended early): what the relay holds durably.
    Partial {
        offset: u64,
    },
    /// Download: `size - offset` bytes follow.
    Sending {
        size: u64,
    },
    Error {
        error: ErrorBody,
    },
}

/// Whether `s` is 64 lower-case hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip_and_hash_syntax() {
        let h = TransferHeader { kind: TransferKind::Upload, token: "t".into(), offset: 7 };
        let j = serde_json::to_string(&h).unwrap();
        assert_eq!(j, r#"{"kind":"upload","token":"t","offset":7}"#);
        assert_eq!(serde_json::from_str::<TransferHeader>(&j).unwrap(), h);
        assert!(is_sha256_hex(&"ab".repeat(32)));
        assert!(!is_sha256_hex(&"AB".repeat(32)));
        assert!(!is_sha256_hex("abc"));
    }
}
