//! The I/O edge: a quinn endpoint, one task per connection reading and writing
//! control frames, and one thread that owns the [`Hub`] (and with it SQLite)
//! and processes everything in arrival order.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clinicmeet_protocol::frame::{self, FrameDecoder, FrameError};
use clinicmeet_protocol::ServerMessage;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::forward::{FwdIn, FwdSender};
use crate::hub::{ConnId, Hub, Out};

/// What connection tasks tell the hub thread.
pub enum HubIn {
    Connected { conn: ConnId, addr: SocketAddr, tx: UnboundedSender<ConnOut> },
    Frame { conn: ConnId, body: Vec<u8> },
    Oversized { conn: ConnId, len: usize },
    Closed { conn: ConnId },
}

/// What the hub thread tells a connection's writer.
#[derive(Debug)]
pub enum ConnOut {
    Frame(Vec<u8>),
    Close,
}

const TICK: Duration = Duration::from_millis(200);
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Runs the hub until every sender is gone. Call on a dedicated thread.
/// `media` receives the forwarding commands (none: media requests are accepted but nothing is forwarded).
pub fn run_hub(mut hub: Hub, rx: mpsc::Receiver<HubIn>, media: Option<FwdSender>) {
    let mut writers: HashMap<ConnId, UnboundedSender<ConnOut>> = HashMap::new();
    let mut last_tick = Instant::now();
    let mut last_purge: Option<Instant> = None;
    loop {
        let input = rx.recv_timeout(TICK);
        let now = clinicmeet_protocol::unix_now_ms();
        let outs = match input {
            Ok(HubIn::Connected { conn, addr, tx }) => {
                writers.insert(conn, tx);
                hub.connected(now, conn, addr);
                Vec::new()
            }
            Ok(HubIn::Frame { conn, body }) => hub.frame(now, conn, &body),
            Ok(HubIn::Oversized { conn, len }) => hub.oversized(conn, len),
            Ok(HubIn::Closed { conn }) => {
                let outs = hub.disconnected(now, conn);
                writers.remove(&conn);
                outs
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Vec::new(),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        deliver(&writers, media.as_ref(), outs);
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            deliver(&writers, media.as_ref(), hub.tick(now));
        }
        if last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
            last_purge = Some(Instant::now());
            match hub.purge(now) {
                Ok((chat, audit)) if chat + audit > 0 => tracing::info!(chat, audit, "purged expired rows"),
                Ok(_) => {}
                Err(err) => tracing::error!(%err, "purge failed"),
            }
        }
    }
}

fn deliver(writers: &HashMap<ConnId, UnboundedSender<ConnOut>>, media: Option<&FwdSender>, outs: Vec<Out>) {
    for out in outs {
        match out {
            Out::Media(cmd) => {
                if let Some(m) = media {
                    let _ = m.send(FwdIn::Cmd(cmd));
                }
            }
            Out::Send(conn, msg) => {
                let Some(w) = writers.get(&conn) else { continue };
                match frame::encode(&msg) {
                    Ok(bytes) => {
                        let _ = w.send(ConnOut::Frame(bytes));
                    }
                    Err(err) => {
                        tracing::error!(%err, "could not encode a reply");
                        let id = match msg {
                            ServerMessage::Reply { id, .. } => Some(id),
                            _ => None,
                        };
                        let fallback = ServerMessage::Error {
                            id,
                            error: clinicmeet_protocol::ErrorBody::new(
                                clinicmeet_protocol::ErrorCode::Internal,
                                "reply too large",
                            ),
                        };
                        if let Ok(bytes) = frame::encode(&fallback) {
                            let _ = w.send(ConnOut::Frame(bytes));
                        }
                    }
                }
            }
            Out::Close(conn) => {
                if let Some(w) = writers.get(&conn) {
                    let _ = w.send(ConnOut::Close);
                }
            }
        }
    }
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Accepts connections until the endpoint closes.
pub async fn accept_loop(endpoint: quinn::Endpoint, hub: mpsc::Sender<HubIn>, media: Option<FwdSender>) {
    while let Some(incoming) = endpoint.accept().await {
        let hub = hub.clone();
        let media = media.clone();
        tokio::spawn(async move {
            let conn_id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
            if let Err(err) = connection(incoming, conn_id, hub, media).await {
                tracing::debug!(conn = conn_id, %err, "connection ended");
            }
        });
    }
}

async fn connection(
    incoming: quinn::Incoming,
    conn_id: ConnId,
    hub: mpsc::Sender<HubIn>,
    media: Option<FwdSender>,
) -> anyhow::Result<()> {
    let conn = incoming.await?;
    let addr = conn.remote_address();
    tracing::debug!(conn = conn_id, %addr, "connected");
    if let Some(m) = media {
        // Before the hub hears of the connection, so media commands find it.
        m.send(FwdIn::Attach { conn: conn_id, connection: conn.clone() })?;
        tokio::spawn(crate::forward::read_datagrams(conn_id, conn.clone(), m));
    }
    let (mut send, mut recv) = conn.accept_bi().await?;
    let (tx, mut rx) = unbounded_channel::<ConnOut>();
    hub.send(HubIn::Connected { conn: conn_id, addr, tx })?;

    let writer_conn = conn.clone();
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            match out {
                ConnOut::Frame(bytes) => {
                    if send.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                ConnOut::Close => {
                    let _ = send.finish();
                    let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
                    writer_conn.close(0u32.into(), b"closed by relay");
                    break;
                }
            }
        }
    });

    let mut decoder = FrameDecoder::default();
    let mut buf = vec![0u8; 16 * 1024];
    'read: while let Ok(Some(n)) = recv.read(&mut buf).await {
        decoder.push(buf.get(..n).unwrap_or_default());
        loop {
            match decoder.next_frame() {
                Ok(Some(body)) => hub.send(HubIn::Frame { conn: conn_id, body })?,
                Ok(None) => break,
                Err(FrameError::TooLarge { len, .. }) => {
                    hub.send(HubIn::Oversized { conn: conn_id, len })?;
                    break 'read;
                }
                Err(_) => break 'read,
            }
        }
    }
    hub.send(HubIn::Closed { conn: conn_id })?;
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    Ok(())
}
