//! Chat attachments from a desktop client: uploads and downloads on their own
//! QUIC streams of the session's connection (`clinicmeet_protocol::transfer`),
//! resumed after a lost connection from what the relay holds durably (upload)
//! or what is already on disk (download). Every file sent or received is kept
//! in the local store (metadata in SQLite, bytes in `attachments/<sha256>`
//! beside it), readable offline with [`Session::local_attachment`].
//!
//! Cancel by dropping the future: the relay keeps what it has durably for
//! `TOKEN_TTL_MS`, and a later [`Session::attach`] of the same file resumes it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clinicmeet_protocol::transfer::{TransferHeader, TransferKind, TransferReply, MAX_HEADER_LEN};
use clinicmeet_protocol::{AttachmentId, AttachmentInfo, ErrorCode, Request, Response};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use crate::error::{ClientError, Result};
use crate::session::Session;
use crate::store::Store;

/// Attempts (each after a lost connection or a busy upload) before giving up.
const ATTEMPTS: u32 = 30;
const RETRY_PAUSE: Duration = Duration::from_millis(500);
const CHUNK: usize = 256 * 1024;

/// A transfer's progress: bytes done of the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// Lower-case hex SHA-256 of a file (on the blocking pool).
pub async fn file_sha256(path: &Path) -> Result<String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<String> {
        let mut f = std::fs::File::open(&path)?;
        let mut h = Sha256::new();
        std::io::copy(&mut f, &mut h)?;
        Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
    })
    .await
    .map_err(|e| ClientError::StoreData(e.to_string()))?
}

async fn write_frame(send: &mut quinn::SendStream, body: &[u8]) -> std::io::Result<()> {
    send.write_all(&(body.len() as u32).to_be_bytes()).await?;
    send.write_all(body).await?;
    Ok(())
}

async fn read_reply(recv: &mut quinn::RecvStream) -> std::io::Result<TransferReply> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await.map_err(std::io::Error::other)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > 64 * 1024 {
        return Err(std::io::Error::other("transfer reply too large"));
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await.map_err(std::io::Error::other)?;
    serde_json::from_slice(&body).map_err(std::io::Error::other)
}

fn header(kind: TransferKind, token: String, offset: u64) -> Vec<u8> {
    let h = serde_json::to_vec(&TransferHeader { kind, token, offset }).unwrap_or_default();
    debug_assert!(h.len() <= MAX_HEADER_LEN);
    h
}

/// A failure worth another attempt (the connection went, the relay is busy with the same upload).
fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::ConnectionLost(_) | ClientError::Io(_) => true,
        ClientError::Relay(b) => matches!(b.code, ErrorCode::InvalidState | ErrorCode::StorageUnavailable),
        _ => false,
    }
}

impl Session {
    fn transfer_connection(&self) -> Result<quinn::Connection> {
        self.media.connection().ok_or_else(|| ClientError::ConnectionLost("reconnecting".into()))
    }

    /// Uploads the file at `path` as an attachment of the current meeting (a
    /// staff-only one with `staff_only`), resuming after lost connections.
    /// Returns the stored attachment (put its id in a chat message).
    pub async fn attach(
        &self,
        path: &Path,
        staff_only: bool,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<AttachmentInfo> {
        let size = tokio::fs::metadata(path).await?.len();
        let sha256 = file_sha256(path).await?;
        let name =
            path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let req = Request::StartUpload { name: name.clone(), size, sha256: sha256.clone(), staff_only };
            let result = match self.call(req).await {
                Ok(Response::UploadReady { offset, token, .. }) => {
                    self.send_upload(path, token, offset, size, &mut progress).await
                }
                Ok(other) => return Err(ClientError::Protocol(format!("unexpected reply {other:?}"))),
                Err(e) => Err(e),
            };
            match result {
                Ok(attachment) => {
                    self.keep(&attachment, path).await?;
                    return Ok(attachment);
                }
                Err(e) if retryable(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        Err(last.unwrap_or(ClientError::Closed))
    }

    async fn send_upload(
        &self,
        path: &Path,
        token: String,
        offset: u64,
        size: u64,
        progress: &mut (impl FnMut(Progress) + Send),
    ) -> Result<AttachmentInfo> {
        let lost = |e: &dyn std::fmt::Display| ClientError::ConnectionLost(e.to_string());
        let conn = self.transfer_connection()?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| lost(&e))?;
        write_frame(&mut send, &header(TransferKind::Upload, token, offset)).await?;
        let mut f = tokio::fs::File::open(path).await?;
        f.seek(std::io::SeekFrom::Start(offset)).await?;
        let mut buf = vec![0u8; CHUNK];
        let mut done = offset;
        progress(Progress { done, total: size });
        loop {
            let n = f.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            send.write_all(&buf[..n]).await.map_err(|e| lost(&e))?;
            done += n as u64;
            progress(Progress { done, total: size });
        }
        send.finish().map_err(|e| lost(&e))?;
        match read_reply(&mut recv).await? {
            TransferReply::Stored { attachment } => Ok(attachment),
            TransferReply::Partial { offset } => {
                Err(ClientError::ConnectionLost(format!("the relay holds {offset} of {size} bytes")))
            }
            TransferReply::Error { error } => Err(ClientError::Relay(error)),
            TransferReply::Sending { .. } => Err(ClientError::Protocol("download reply to an upload".into())),
        }
    }

    /// Downloads an attachment to `out` (written as `out.part` first, resumed
    /// from its length after a lost connection, checked against the SHA-256,
    /// then renamed), and keeps a copy in the local store.
    pub async fn download(
        &self,
        id: AttachmentId,
        out: &Path,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<AttachmentInfo> {
        let mut part = out.as_os_str().to_owned();
        part.push(".part");
        let part = PathBuf::from(part);
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let result = match self.call(Request::DownloadTicket { attachment_id: id }).await {
                Ok(Response::DownloadReady { attachment, token }) => {
                    self.receive(&attachment, token, &part, &mut progress).await.map(|()| attachment)
                }
                Ok(other) => return Err(ClientError::Protocol(format!("unexpected reply {other:?}"))),
                Err(e) => Err(e),
            };
            match result {
                Ok(attachment) => {
                    if file_sha256(&part).await? != attachment.sha256 {
                        let _ = tokio::fs::remove_file(&part).await;
                        return Err(ClientError::Protocol("the download does not match its SHA-256".into()));
                    }
                    tokio::fs::rename(&part, out).await?;
                    self.keep(&attachment, out).await?;
                    return Ok(attachment);
                }
                Err(e) if retryable(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        Err(last.unwrap_or(ClientError::Closed))
    }

    async fn receive(
        &self,
        a: &AttachmentInfo,
        token: String,
        part: &Path,
        progress: &mut (impl FnMut(Progress) + Send),
    ) -> Result<()> {
        let lost = |e: &dyn std::fmt::Display| ClientError::ConnectionLost(e.to_string());
        let mut f = tokio::fs::OpenOptions::new().create(true).append(true).open(part).await?;
        let mut done = f.metadata().await?.len().min(a.size);
        f.set_len(done).await?;
        if done == a.size {
            return Ok(());
        }
        let conn = self.transfer_connection()?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| lost(&e))?;
        write_frame(&mut send, &header(TransferKind::Download, token, done)).await?;
        send.finish().map_err(|e| lost(&e))?;
        match read_reply(&mut recv).await? {
            TransferReply::Sending { size } if size == a.size => {}
            TransferReply::Error { error } => return Err(ClientError::Relay(error)),
            other => return Err(ClientError::Protocol(format!("unexpected transfer reply {other:?}"))),
        }
        progress(crate::attachments::Progress { done, total: a.size });
        while let Some(chunk) = recv.read_chunk(CHUNK, true).await.map_err(|e| lost(&e))? {
            if done + chunk.bytes.len() as u64 > a.size {
                return Err(ClientError::Protocol("more bytes than the attachment holds".into()));
            }
            f.write_all(&chunk.bytes).await?;
            done += chunk.bytes.len() as u64;
            progress(Progress { done, total: a.size });
        }
        f.sync_all().await?;
        if done < a.size {
            return Err(ClientError::ConnectionLost(format!("{done} of {} bytes arrived", a.size)));
        }
        Ok(())
    }

    /// Copies the file into the local store (once per content) and records it.
    async fn keep(&self, a: &AttachmentInfo, from: &Path) -> Result<()> {
        let dest = Store::attachment_file(&self.data_dir, &a.sha256);
        if !tokio::fs::try_exists(&dest).await.unwrap_or(false) {
            clinicmeet_sqlite::private_dir(dest.parent().unwrap_or(&self.data_dir))?;
            let tmp = dest.with_extension("tmp");
            tokio::fs::copy(from, &tmp).await?;
            tokio::fs::File::open(&tmp).await?.sync_all().await?;
            tokio::fs::rename(&tmp, &dest).await?;
        }
        let (data_dir, a) = (self.data_dir.clone(), a.clone());
        tokio::task::spawn_blocking(move || Store::open_dir(&data_dir)?.save_attachment(&a))
            .await
            .map_err(|e| ClientError::StoreData(e.to_string()))?
    }

    /// An attachment kept locally (sent or downloaded before): its metadata and
    /// the file holding its bytes. Works offline.
    pub fn local_attachment(&self, id: AttachmentId) -> Result<Option<(AttachmentInfo, PathBuf)>> {
        let Some(a) = Store::open_dir(&self.data_dir)?.attachment(id)? else { return Ok(None) };
        let path = Store::attachment_file(&self.data_dir, &a.sha256);
        Ok(path.exists().then_some((a, path)))
    }
}
