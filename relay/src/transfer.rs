//! The attachment transfer drivers (see `clinicmeet_protocol::transfer` for the
//! wire): receiving an upload into its partial file and sealing it into a blob,
//! and the QUIC transfer streams. The HTTPS routes (`web::routes`) use the same
//! [`Transfers::receive`]. File I/O runs on tokio's blocking pool, never on the
//! hub thread; the hub is asked (through its bounded queue) only to record a
//! sealed upload, and the client hears `stored` only after that commit.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clinicmeet_protocol::transfer::{TransferHeader, TransferKind, TransferReply, MAX_HEADER_LEN};
use clinicmeet_protocol::{ErrorBody, ErrorCode};
use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _};

use crate::attachments::{BlobDir, Grant, Grants, SealError, Upload};
use crate::error::{refuse as e, STORAGE_RETRY_MS};
use crate::hub_queue::HubTx;

/// Bytes written between two syncs of a partial file (each sync moves the durable offset).
const SYNC_EVERY: u64 = 1024 * 1024;
/// A transfer that receives nothing this long ends (what arrived stays, synced).
pub const IDLE: Duration = Duration::from_secs(30);

/// What the transfer drivers share.
pub struct Transfers {
    pub hub: HubTx,
    pub grants: Arc<Grants>,
    pub blobs: BlobDir,
}

impl std::fmt::Debug for Transfers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfers").field("blobs", &self.blobs).finish_non_exhaustive()
    }
}

/// A source of upload bytes (a QUIC stream, an HTTP body).
pub trait Chunks {
    /// The next piece; `None` at the end, `Err` when the peer went away.
    fn next_chunk(&mut self) -> impl std::future::Future<Output = Result<Option<Bytes>, ()>> + Send;
}

fn bad_token() -> ErrorBody {
    e(ErrorCode::InvalidCredential, "the transfer token is unknown or expired")
}

fn storage() -> ErrorBody {
    e(ErrorCode::StorageUnavailable, "the relay cannot store the file right now")
        .retry_after(STORAGE_RETRY_MS)
}

/// The answer to a token that is unknown, expired or of the other kind.
pub fn refused_token() -> TransferReply {
    error(bad_token())
}

fn error(err: ErrorBody) -> TransferReply {
    TransferReply::Error { error: err }
}

impl Transfers {
    /// The upload `token` grants (else answer [`refused_token`]).
    pub fn upload_grant(&self, token: &str) -> Option<Arc<Upload>> {
        match self.grants.redeem(token, clinicmeet_protocol::unix_now_ms()) {
            Some(Grant::Upload(u)) => Some(u),
            _ => None,
        }
    }

    /// Receives an upload's bytes from `offset` (which must be the durable offset)
    /// to the end; then seals and records it. What arrived before a cut stays.
    pub async fn receive(&self, upload: Arc<Upload>, offset: u64, src: &mut impl Chunks) -> TransferReply {
        let Some(_claim) = upload.claim() else {
            return error(e(ErrorCode::InvalidState, "another transfer of this upload is running"));
        };
        let durable = upload.durable.load(Ordering::Acquire);
        if offset != durable {
            return TransferReply::Partial { offset: durable };
        }
        if durable == upload.size {
            // All bytes arrived before (the record failed, or the reply was lost): seal or record again.
            return self.seal(upload).await;
        }
        match self.write(&upload, durable, src).await {
            Ok(n) if n < upload.size => TransferReply::Partial { offset: n },
            Ok(_) => self.seal(upload).await,
            Err(reply) => reply,
        }
    }

    /// Appends to the partial file, syncing every [`SYNC_EVERY`] bytes and at the end.
    async fn write(&self, upload: &Upload, from: u64, src: &mut impl Chunks) -> Result<u64, TransferReply> {
        let path = self.blobs.partial_path(upload.upload_id);
        let io = |err: std::io::Error| {
            tracing::error!(%err, "writing an upload failed");
            error(storage())
        };
        let mut f = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .await
            .map_err(io)?;
        f.set_len(from).await.map_err(io)?;
        f.seek(std::io::SeekFrom::Start(from)).await.map_err(io)?;
        let mut pos = from;
        let mut unsynced = 0u64;
        loop {
            let chunk = match tokio::time::timeout(IDLE, src.next_chunk()).await {
                Ok(Ok(Some(c))) => c,
                Ok(Ok(None)) | Ok(Err(())) | Err(_) => break,
            };
            if pos + chunk.len() as u64 > upload.size {
                f.sync_data().await.map_err(io)?;
                upload.durable.store(pos, Ordering::Release);
                return Err(error(e(ErrorCode::AttachmentMismatch, "more bytes than the declared size")));
            }
            f.write_all(&chunk).await.map_err(io)?;
            pos += chunk.len() as u64;
            unsynced += chunk.len() as u64;
            if unsynced >= SYNC_EVERY {
                f.sync_data().await.map_err(io)?;
                upload.durable.store(pos, Ordering::Release);
                unsynced = 0;
            }
        }
        f.flush().await.map_err(io)?;
        f.sync_data().await.map_err(io)?;
        upload.durable.store(pos, Ordering::Release);
        Ok(pos)
    }

    async fn seal(&self, upload: Arc<Upload>) -> TransferReply {
        let (blobs, u) = (self.blobs.clone(), upload.clone());
        let sealed = tokio::task::spawn_blocking(move || blobs.seal(u.upload_id, u.size, &u.sha256)).await;
        let mime = match sealed {
            Ok(Ok(Ok(mime))) => mime,
            Ok(Ok(Err(why))) => {
                // The bytes are gone; the client starts over (or not at all).
                self.grants.finish_upload(&upload);
                return error(match why {
                    SealError::Mismatch => {
                        e(ErrorCode::AttachmentMismatch, "the file does not match its size and SHA-256")
                    }
                    SealError::Refused(_) => e(
                        ErrorCode::AttachmentTypeNotAllowed,
                        "this type of file is not allowed (PDF, images, text and office documents are)",
                    ),
                });
            }
            Ok(Err(err)) => {
                tracing::error!(%err, "storing an upload failed");
                return error(storage());
            }
            Err(_) => return error(crate::error::internal()),
        };
        match self.hub.upload_stored(upload, mime).await {
            Ok(Ok(attachment)) => TransferReply::Stored { attachment },
            Ok(Err(err)) => error(err),
            Err(_) => error(crate::error::internal()),
        }
    }

    /// The attachment `token` grants to read (else answer [`refused_token`]).
    pub fn download_grant(&self, token: &str) -> Option<clinicmeet_protocol::AttachmentInfo> {
        match self.grants.redeem(token, clinicmeet_protocol::unix_now_ms()) {
            Some(Grant::Download { attachment, .. }) => Some(attachment),
            _ => None,
        }
    }
}

struct QuicChunks<'a>(&'a mut quinn::RecvStream);

impl Chunks for QuicChunks<'_> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ()> {
        match self.0.read_chunk(256 * 1024, true).await {
            Ok(Some(c)) => Ok(Some(c.bytes)),
            Ok(None) => Ok(None),
            Err(_) => Err(()),
        }
    }
}

async fn read_header(recv: &mut quinn::RecvStream) -> Option<TransferHeader> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await.ok()?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_HEADER_LEN {
        return None;
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await.ok()?;
    serde_json::from_slice(&body).ok()
}

async fn write_reply(send: &mut quinn::SendStream, reply: &TransferReply) -> Result<(), quinn::WriteError> {
    let body = serde_json::to_vec(reply).unwrap_or_default();
    send.write_all(&(body.len() as u32).to_be_bytes()).await?;
    send.write_all(&body).await
}

/// One transfer stream on a desktop client's QUIC connection.
pub async fn quic_stream(t: Arc<Transfers>, mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
    let Ok(Some(header)) = tokio::time::timeout(IDLE, read_header(&mut recv)).await else {
        let _ = write_reply(&mut send, &error(e(ErrorCode::Malformed, "expected a transfer header"))).await;
        let _ = send.finish();
        return;
    };
    match header.kind {
        TransferKind::Upload => {
            let reply = match t.upload_grant(&header.token) {
                Some(u) => t.receive(u, header.offset, &mut QuicChunks(&mut recv)).await,
                None => refused_token(),
            };
            let _ = recv.stop(0u32.into());
            let _ = write_reply(&mut send, &reply).await;
        }
        TransferKind::Download => {
            let a = match t.download_grant(&header.token) {
                Some(a) => a,
                None => {
                    let _ = write_reply(&mut send, &refused_token()).await;
                    let _ = send.finish();
                    return;
                }
            };
            let file = tokio::fs::File::open(t.blobs.blob_path(&a.sha256)).await;
            let Ok(mut file) = file else {
                let _ =
                    write_reply(&mut send, &error(e(ErrorCode::AttachmentNotFound, "no such attachment")))
                        .await;
                let _ = send.finish();
                return;
            };
            let offset = header.offset.min(a.size);
            if write_reply(&mut send, &TransferReply::Sending { size: a.size }).await.is_err()
                || file.seek(std::io::SeekFrom::Start(offset)).await.is_err()
            {
                return;
            }
            let _ = tokio::io::copy(&mut file, &mut send).await;
        }
    }
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
}
