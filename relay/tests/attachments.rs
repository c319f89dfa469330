//! Chat attachments against the relay process: a browser guest's 20 MiB PDF over
//! HTTPS, cut halfway and resumed from the relay's durable offset, then read by a
//! desktop client over a QUIC transfer stream byte for byte; limits, types and
//! quota refused with their codes; staff-only attachments never reach a guest;
//! purge deleting the blobs; a failing blob directory acknowledging nothing.
#![cfg(feature = "browser-guests")]

mod common;

use std::time::Duration;

use clinicmeet_protocol::transfer::{TransferHeader, TransferKind, TransferReply};
use clinicmeet_protocol::{
    AttachmentInfo, ErrorCode, MediaState, MeetingKind, MeetingSettings, MeetingSpec, Request, Response,
};
use common::*;
use futures_util::{SinkExt, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const MIB: usize = 1024 * 1024;

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A "PDF" of `len` bytes: the PDF header, then varied bytes.
fn pdf(len: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.7\n".to_vec();
    let mut x = 0x1234_5678u32;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push(x as u8);
    }
    v
}

fn relay_https(dir: &std::path::Path, extra: &[&str]) -> Relay {
    let mut args = vec!["--https-listen", "127.0.0.1:0", "--webrtc-udp", "0", "--sqlite-sync", "normal"];
    args.extend_from_slice(extra);
    start(dir, &args)
}

fn join(code: &str, name: &str) -> Request {
    Request::Join { access_code: code.into(), display_name: name.into(), media: MediaState::default() }
}

/// An enrolled staff member on a connection that said hello.
async fn staff(relay: &Relay, name: &str) -> Client {
    let (_, code) = add_staff(&relay.data_dir, name);
    let mut c = Client::connect(relay).await;
    c.hello(None).await.unwrap();
    c.call(Request::Enroll { enrollment_code: code, device_name: "pc".into() }).await.unwrap();
    c
}

/// A new meeting without waiting room; its access code.
async fn meeting(host: &mut Client) -> String {
    let spec = MeetingSpec {
        title: "Clinic".into(),
        description: None,
        kind: MeetingKind::Video,
        patient_reference: None,
        schedule: None,
        settings: MeetingSettings { waiting_room: false, ..MeetingSettings::default() },
    };
    let Response::MeetingCreated { access_code, .. } =
        host.call(Request::CreateMeeting { spec }).await.unwrap()
    else {
        panic!()
    };
    access_code
}

async fn guest(relay: &Relay, code: &str) -> Client {
    let mut g = Client::connect(relay).await;
    g.hello(None).await.unwrap();
    g.call(join(code, "Pat")).await.unwrap();
    g
}

fn start_upload(name: &str, data: &[u8], staff_only: bool) -> Request {
    Request::StartUpload { name: name.into(), size: data.len() as u64, sha256: hex(data), staff_only }
}

async fn ready(c: &mut Client, req: Request) -> Result<(u64, String), clinicmeet_protocol::ErrorBody> {
    match c.call(req).await? {
        Response::UploadReady { offset, token, .. } => Ok((offset, token)),
        other => panic!("{other:?}"),
    }
}

async fn write_frame(send: &mut quinn::SendStream, v: &impl serde::Serialize) {
    let body = serde_json::to_vec(v).unwrap();
    send.write_all(&(body.len() as u32).to_be_bytes()).await.unwrap();
    send.write_all(&body).await.unwrap();
}

async fn read_reply(recv: &mut quinn::RecvStream) -> TransferReply {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    recv.read_exact(&mut body).await.unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// Uploads `data[offset..]` on a QUIC transfer stream.
async fn quic_upload(c: &Client, token: &str, offset: u64, data: &[u8]) -> TransferReply {
    let (mut send, mut recv) = c.conn.open_bi().await.unwrap();
    write_frame(&mut send, &TransferHeader { kind: TransferKind::Upload, token: token.into(), offset }).await;
    send.write_all(&data[offset as usize..]).await.unwrap();
    send.finish().unwrap();
    tokio::time::timeout(Duration::from_secs(30), read_reply(&mut recv)).await.unwrap()
}

async fn stored(c: &mut Client, name: &str, data: &[u8], staff_only: bool) -> AttachmentInfo {
    let (offset, token) = ready(c, start_upload(name, data, staff_only)).await.unwrap();
    match quic_upload(c, &token, offset, data).await {
        TransferReply::Stored { attachment } => attachment,
        other => panic!("{other:?}"),
    }
}

/// Downloads over a QUIC transfer stream: the reply and the bytes.
async fn quic_download(c: &Client, token: &str) -> (TransferReply, Vec<u8>) {
    let (mut send, mut recv) = c.conn.open_bi().await.unwrap();
    write_frame(&mut send, &TransferHeader { kind: TransferKind::Download, token: token.into(), offset: 0 })
        .await;
    send.finish().unwrap();
    let reply = read_reply(&mut recv).await;
    let bytes = recv.read_to_end(64 * MIB).await.unwrap();
    (reply, bytes)
}

async fn ticket(
    c: &mut Client,
    id: Uuid,
) -> Result<(AttachmentInfo, String), clinicmeet_protocol::ErrorBody> {
    match c.call(Request::DownloadTicket { attachment_id: id }).await? {
        Response::DownloadReady { attachment, token } => Ok((attachment, token)),
        other => panic!("{other:?}"),
    }
}

/// One request on a fresh TLS connection; (status, head, body). `cut_after`: send
/// only this many body bytes, then drop the connection.
async fn https(relay: &Relay, head: &str, body: &[u8], cut_after: Option<usize>) -> (u16, String, Vec<u8>) {
    let mut s = https_connect(relay, "127.0.0.1".parse().unwrap()).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let n = cut_after.unwrap_or(body.len());
    for chunk in body[..n].chunks(256 * 1024) {
        s.write_all(chunk).await.unwrap();
    }
    if cut_after.is_some() {
        s.flush().await.unwrap();
        drop(s);
        return (0, String::new(), Vec::new());
    }
    let head = tokio::time::timeout(Duration::from_secs(60), read_head(&mut s)).await.unwrap().unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    (status, head, body)
}

fn put(token: &str, offset: u64, len: usize) -> String {
    format!("PUT /api/uploads/{token}?offset={offset} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len}\r\n\r\n")
}

/// A browser guest on the WebSocket: hello and join, then JSON requests.
struct WsGuest {
    ws: tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    next: u64,
}

impl WsGuest {
    async fn join(relay: &Relay, code: &str) -> WsGuest {
        let ws = ws_client(raw_websocket(relay, "127.0.0.1".parse().unwrap()).await).await;
        let mut g = WsGuest { ws, next: 1 };
        g.call(serde_json::json!({"type": "hello", "min_version": 1, "max_version": 1, "client": "browser"}))
            .await;
        let r = g.call(serde_json::json!({"type": "join", "access_code": code, "display_name": "Pat"})).await;
        assert_eq!(r["kind"], "reply", "{r}");
        g
    }

    async fn call(&mut self, mut req: serde_json::Value) -> serde_json::Value {
        let id = self.next;
        self.next += 1;
        req["id"] = id.into();
        self.ws.send(Message::text(req.to_string())).await.unwrap();
        loop {
            let t = match self.ws.next().await {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(_)) => continue, // pings (answered by tungstenite)
                other => panic!("closed: {other:?}"),
            };
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            if v["id"] == id {
                return v;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_upload_over_https_resumes_after_a_cut_and_desktop_download_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    // The guest's WebSocket idles while its uploads run (this test reads it only between them).
    let relay = relay_https(dir.path(), &["--ws-timeout-secs", "300", "--ws-ping-secs", "100"]);
    let mut host = staff(&relay, "Dr Ada").await;
    let code = meeting(&mut host).await;
    host.call(join(&code, "Ada")).await.unwrap();
    let mut pat = WsGuest::join(&relay, &code).await;

    let file = pdf(20 * MIB);
    let sha = hex(&file);
    let start =
        serde_json::json!({"type": "start_upload", "name": "scan.pdf", "size": file.len(), "sha256": sha});
    let r = pat.call(start.clone()).await;
    assert_eq!(r["response"]["type"], "upload_ready", "{r}");
    assert_eq!(r["response"]["offset"], 0);
    let token = r["response"]["token"].as_str().unwrap().to_string();

    // Cut halfway: 10 MiB written, then the connection is dropped.
    https(&relay, &put(&token, 0, file.len()), &file, Some(10 * MIB)).await;
    // Asking again resumes: the offset is what the relay holds durably (synced), at most what was sent.
    // (Waits until the relay has noticed the cut: the offset stops moving.)
    let offset = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut last = u64::MAX;
        loop {
            let r = pat.call(start.clone()).await;
            let off = r["response"]["offset"].as_u64().unwrap();
            if (off > 0 && off == last) || tokio::time::Instant::now() > deadline {
                break (off, r["response"]["token"].as_str().unwrap().to_string());
            }
            last = off;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let (offset, token) = offset;
    // (What arrived before the cut: the socket's unsent tail may be lost with it.)
    assert!(offset > MIB as u64 && offset <= 10 * MIB as u64, "resumed from {offset}");
    // A wrong offset is answered with the right one.
    let (status, _, body) = https(&relay, &put(&token, 0, 10), &file[..10], None).await;
    assert_eq!(status, 409);
    assert_eq!(serde_json::from_slice::<TransferReply>(&body).unwrap(), TransferReply::Partial { offset });
    let rest = &file[offset as usize..];
    let (status, _, body) = https(&relay, &put(&token, offset, rest.len()), rest, None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let TransferReply::Stored { attachment } = serde_json::from_slice(&body).unwrap() else { panic!() };
    assert_eq!(
        (attachment.size, attachment.mime.as_str(), attachment.sha256.as_str()),
        (file.len() as u64, "application/pdf", sha.as_str())
    );
    // The token is spent.
    let (status, _, _) = https(&relay, &put(&token, 0, 1), b"x", None).await;
    assert_eq!(status, 403);

    // The desktop host reads it over a QUIC transfer stream: the same bytes.
    let (info, dl) = ticket(&mut host, attachment.id).await.unwrap();
    assert_eq!(info, attachment);
    let (reply, bytes) = quic_download(&host, &dl).await;
    assert_eq!(reply, TransferReply::Sending { size: file.len() as u64 });
    assert_eq!(hex(&bytes), sha, "byte-identical");

    // The guest reads a range over HTTPS, as a download.
    let r = pat.call(serde_json::json!({"type": "download_ticket", "attachment_id": attachment.id})).await;
    let gtoken = r["response"]["token"].as_str().unwrap();
    let head =
        format!("GET /api/attachments/{gtoken} HTTP/1.1\r\nHost: localhost\r\nRange: bytes=0-7\r\n\r\n");
    let (status, head, body) = https(&relay, &head, &[], None).await;
    assert_eq!(status, 206, "{head}");
    assert_eq!(body, b"%PDF-1.7");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("content-disposition: attachment; filename=\"attachment\"; filename*=utf-8''scan.pdf"),
        "{head}"
    );
    assert!(lower.contains("x-content-type-options: nosniff"), "{head}");
    assert!(lower.contains("content-type: application/octet-stream"), "{head}");
    // The blob is in the data directory under its hash.
    assert_eq!(std::fs::read(dir.path().join("blobs").join(&sha)).unwrap().len(), file.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_types_quota_and_rights() {
    let dir = tempfile::tempdir().unwrap();
    let relay =
        relay_https(dir.path(), &["--max-attachment-kib", "1024", "--max-meeting-attachments-kib", "1536"]);
    let mut host = staff(&relay, "Dr Ada").await;
    let code = meeting(&mut host).await;
    host.call(join(&code, "Ada")).await.unwrap();
    let mut pat = guest(&relay, &code).await;

    // Over the per-file limit, declared: refused before any byte moves.
    let big = pdf(1024 * 1024 + 1);
    assert_eq!(
        ready(&mut pat, start_upload("big.pdf", &big, false)).await.unwrap_err().code,
        ErrorCode::AttachmentTooLarge
    );
    // Bad declarations.
    let bad =
        Request::StartUpload { name: "x.pdf".into(), size: 10, sha256: "XYZ".into(), staff_only: false };
    assert_eq!(pat.call(bad).await.unwrap_err().code, ErrorCode::Malformed);
    assert_eq!(
        ready(&mut pat, start_upload("e.txt", b"", false)).await.unwrap_err().code,
        ErrorCode::Malformed
    );
    // A guest cannot attach to staff-only notes.
    assert_eq!(
        ready(&mut pat, start_upload("n.pdf", &pdf(100), true)).await.unwrap_err().code,
        ErrorCode::Forbidden
    );

    // Type from content: an ELF, and a PE named like a PDF, are refused after the transfer.
    let mut elf = b"\x7fELF\x02\x01\x01\0".to_vec();
    elf.extend_from_slice(&[0u8; 4096]);
    let mut pe = b"MZ\x90\0\x03\0\0\0".to_vec();
    pe.extend_from_slice(&[7u8; 4096]);
    for (name, data) in [("tool", &elf), ("scan.pdf", &pe)] {
        let (off, token) = ready(&mut pat, start_upload(name, data, false)).await.unwrap();
        match quic_upload(&pat, &token, off, data).await {
            TransferReply::Error { error } => assert_eq!(error.code, ErrorCode::AttachmentTypeNotAllowed),
            other => panic!("{other:?}"),
        }
    }
    // Bytes that do not match the declared hash.
    let doc = pdf(2000);
    let (off, token) = ready(&mut pat, start_upload("a.pdf", &doc, false)).await.unwrap();
    let mut other = doc.clone();
    other[1000] ^= 1;
    match quic_upload(&pat, &token, off, &other).await {
        TransferReply::Error { error } => assert_eq!(error.code, ErrorCode::AttachmentMismatch),
        r => panic!("{r:?}"),
    }
    // More bytes than declared.
    let (off, token) = ready(&mut pat, start_upload("a.pdf", &doc, false)).await.unwrap();
    let mut longer = doc.clone();
    longer.extend_from_slice(b"tail");
    match quic_upload(&pat, &token, off, &longer).await {
        TransferReply::Error { error } => assert_eq!(error.code, ErrorCode::AttachmentMismatch),
        r => panic!("{r:?}"),
    }
    // An unknown token.
    match quic_upload(&pat, "nope", 0, &doc).await {
        TransferReply::Error { error } => assert_eq!(error.code, ErrorCode::InvalidCredential),
        r => panic!("{r:?}"),
    }

    // Quota: 1000 KiB stored, then 600 KiB more would pass 1536 KiB.
    let text = "Blood pressure 120/80\n".repeat(1000 * 1024 / 22).into_bytes();
    let shared = stored(&mut pat, "notes.txt", &text, false).await;
    assert_eq!(shared.mime, "text/plain; charset=utf-8");
    let more = pdf(600 * 1024);
    assert_eq!(
        ready(&mut pat, start_upload("more.pdf", &more, false)).await.unwrap_err().code,
        ErrorCode::AttachmentQuotaExceeded
    );

    // A staff-only attachment: the host reads it; the guest gets "not found", as for an id that never existed.
    let note = stored(&mut host, "labs.pdf", &pdf(5000), true).await;
    assert!(note.staff_only);
    ticket(&mut host, note.id).await.unwrap();
    assert_eq!(ticket(&mut pat, note.id).await.unwrap_err().code, ErrorCode::AttachmentNotFound);
    assert_eq!(ticket(&mut pat, Uuid::now_v7()).await.unwrap_err().code, ErrorCode::AttachmentNotFound);
    // Not by hash either: a guest upload of the same bytes is a new attachment of its own, and
    // no route serves a blob by hash.
    let (status, _, _) = https(
        &relay,
        &format!("GET /api/attachments/{} HTTP/1.1\r\nHost: localhost\r\n\r\n", note.sha256),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 403);
    // The guest reads the meeting's ordinary attachment.
    let (_, token) = ticket(&mut pat, shared.id).await.unwrap();
    let (_, bytes) = quic_download(&pat, &token).await;
    assert_eq!(bytes, text);

    // A guest of another meeting gets nothing of this one's; nor does one who has not joined.
    let code2 = meeting(&mut host).await;
    let mut other_guest = guest(&relay, &code2).await;
    assert_eq!(ticket(&mut other_guest, shared.id).await.unwrap_err().code, ErrorCode::AttachmentNotFound);
    let mut loose = Client::connect(&relay).await;
    loose.hello(None).await.unwrap();
    assert_eq!(ticket(&mut loose, shared.id).await.unwrap_err().code, ErrorCode::AttachmentNotFound);
    assert_eq!(
        ready(&mut loose, start_upload("x.pdf", &doc, false)).await.unwrap_err().code,
        ErrorCode::InvalidState
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_deletes_blobs_nothing_references_any_more() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--chat-retention-days", "0"];
    let relay = relay_https(dir.path(), &args);
    let mut host = staff(&relay, "Dr Ada").await;
    let (code_a, code_b) = (meeting(&mut host).await, meeting(&mut host).await);
    let shared = pdf(3000);
    let only_a = pdf(4000);
    host.call(join(&code_a, "Ada")).await.unwrap();
    let a1 = stored(&mut host, "shared.pdf", &shared, false).await;
    let a2 = stored(&mut host, "a.pdf", &only_a, false).await;
    host.call(Request::EndMeeting).await.unwrap();
    let mut host = staff(&relay, "Dr Bea").await;
    host.call(join(&code_b, "Bea")).await.unwrap();
    let b1 = stored(&mut host, "shared.pdf", &shared, false).await;
    assert_eq!(a1.sha256, b1.sha256);
    let blobs = dir.path().join("blobs");
    assert!(blobs.join(&a1.sha256).exists() && blobs.join(&a2.sha256).exists());
    drop(host);
    drop(relay);

    // The relay purges on start: meeting A's rows go, and its own blob; the shared one stays for B.
    let relay = relay_https(dir.path(), &args);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while blobs.join(&a2.sha256).exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!blobs.join(&a2.sha256).exists(), "blob of the purged meeting deleted");
    assert!(blobs.join(&b1.sha256).exists(), "blob still referenced by meeting B kept");
    let store = open_store(dir.path());
    assert!(store.attachment(a1.id).unwrap().is_none() && store.attachment(a2.id).unwrap().is_none());
    assert!(store.attachment(b1.id).unwrap().is_some());
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_blob_directory_acknowledges_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_https(dir.path(), &[]);
    let mut host = staff(&relay, "Dr Ada").await;
    let code = meeting(&mut host).await;
    host.call(join(&code, "Ada")).await.unwrap();
    // The partial-uploads directory becomes a file: every write there fails (also as root).
    let partial = dir.path().join("blobs").join("partial");
    std::fs::remove_dir_all(&partial).unwrap();
    std::fs::write(&partial, b"not a directory").unwrap();
    let doc = pdf(5000);
    let (off, token) = ready(&mut host, start_upload("a.pdf", &doc, false)).await.unwrap();
    match quic_upload(&host, &token, off, &doc).await {
        TransferReply::Error { error } => {
            assert_eq!(error.code, ErrorCode::StorageUnavailable);
            assert!(error.retry_after_ms.is_some());
        }
        other => panic!("{other:?}"),
    }
    // Nothing was recorded; once the disk is back, the same upload goes through.
    let rows = |p: &std::path::Path| -> i64 {
        let db = rusqlite::Connection::open(p.join("relay.db")).unwrap();
        db.query_row("SELECT COUNT(*) FROM attachments", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(rows(dir.path()), 0);
    std::fs::remove_file(&partial).unwrap();
    std::fs::create_dir(&partial).unwrap();
    let (off, token) = ready(&mut host, start_upload("a.pdf", &doc, false)).await.unwrap();
    assert!(matches!(quic_upload(&host, &token, off, &doc).await, TransferReply::Stored { .. }));
    assert_eq!(rows(dir.path()), 1);
}
