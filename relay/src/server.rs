//! The I/O edge: a quinn endpoint, one task per connection reading and writing
//! control frames, and one thread that owns the [`Hub`] (and with it SQLite)
//! and processes everything in arrival order.
//!
//! Bounded everywhere: the hub's input is a [`crate::hub_queue`] (bounded in
//! messages and bytes; connection tasks wait asynchronously for room), each
//! connection's output is an [`crate::outbox`] (bounded in bytes; past the
//! budget the connection is closed as `slow_consumer`), and received datagrams
//! go to the forwarder over its bounded channel (dropped when full) and only
//! once the connection has joined a meeting.
//!
//! Admission: connections per source are capped ([`crate::admission`]); a
//! connection must open its one control stream within the hello deadline (the
//! hub closes it when `hello` does not follow in time).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clinicmeet_protocol::frame::{self, FrameDecoder, FrameError};
use clinicmeet_protocol::ServerMessage;

use crate::admission::Admissions;
use crate::forward::{FwdIn, FwdSender};
use crate::hub::{ConnId, Hub, Out};
pub use crate::hub_queue::{HubIn, HubRx, HubTx, Received};
use crate::metrics::Metrics;
use crate::outbox::{outbox, OutboxRx, OutboxTx};
pub use crate::outbox::{CloseReason, ConnOut};
use crate::store::Purged;

/// A handshake that has not completed by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_millis(200);
const PURGE_EVERY: Duration = Duration::from_secs(3600);
const ABANDON_CHECK_EVERY: Duration = Duration::from_secs(60);

/// Runs the hub until it is told to stop or every sender is gone; then writes the
/// coalesced audit rows of the open window. Call on a dedicated thread.
/// `media` receives the forwarding commands (none: media requests are accepted but nothing is forwarded).
///
/// `blobs`: the attachment blob directory, whose unreferenced files the hourly
/// purge deletes and whose abandoned partial uploads the tick deletes.
pub fn run_hub(
    mut hub: Hub,
    mut rx: HubRx,
    media: Option<FwdSender>,
    blobs: Option<crate::attachments::BlobDir>,
) {
    let metrics = hub.metrics.clone();
    let mut writers: HashMap<ConnId, OutboxTx> = HashMap::new();
    let mut last_tick = Instant::now();
    let mut last_purge: Option<Instant> = None;
    let mut last_abandon: Option<Instant> = None;
    loop {
        let input = rx.recv_timeout(TICK);
        let now = clinicmeet_protocol::unix_now_ms();
        let outs = match input {
            Received::Input(HubIn::Connected { conn, addr, tx }) => {
                writers.insert(conn, tx);
                hub.connected(now, conn, addr);
                Vec::new()
            }
            Received::Input(HubIn::Frame { conn, body, _bytes }) => {
                let outs = hub.frame(now, conn, &body);
                // Media datagrams pass only once the connection is in a meeting.
                if let Some(w) = writers.get(&conn) {
                    w.set_media(hub.is_joined(conn));
                }
                outs
            }
            Received::Input(HubIn::Oversized { conn, len }) => hub.oversized(conn, len),
            Received::Input(HubIn::Closed { conn }) => {
                let outs = hub.disconnected(now, conn);
                writers.remove(&conn);
                outs
            }
            Received::Input(HubIn::UploadStored { upload, mime, reply }) => {
                let _ = reply.send(hub.upload_stored(now, &upload, mime));
                Vec::new()
            }
            Received::Timeout => Vec::new(),
            Received::Input(HubIn::Stop) | Received::Disconnected => {
                hub.flush_failures(now, true);
                break;
            }
        };
        deliver(&writers, media.as_ref(), &metrics, outs);
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            deliver(&writers, media.as_ref(), &metrics, hub.tick(now));
            for upload in hub.grants().sweep(now) {
                if let Some(b) = &blobs {
                    b.remove_partial(upload);
                }
            }
        }
        if last_abandon.is_none_or(|t| t.elapsed() >= ABANDON_CHECK_EVERY) {
            last_abandon = Some(Instant::now());
            if let Err(err) = hub.end_abandoned(now) {
                tracing::error!(%err, "ending abandoned meetings failed");
            }
        }
        if last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
            last_purge = Some(Instant::now());
            match hub.purge(now) {
                Ok(p) if p != Purged::default() => tracing::info!(?p, "purged rows past their retention"),
                Ok(_) => {}
                Err(err) => tracing::error!(%err, "purge failed"),
            }
            if let Some(b) = &blobs {
                // After the rows' commit, outside any transaction: a blob goes when nothing names it.
                match b.sweep(|sha| hub.blob_in_use(sha)) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(blobs = n, "deleted attachment blobs nothing references"),
                    Err(err) => tracing::error!(%err, "deleting attachment blobs failed"),
                }
            }
        }
    }
}

fn deliver(
    writers: &HashMap<ConnId, OutboxTx>,
    media: Option<&FwdSender>,
    metrics: &Metrics,
    outs: Vec<Out>,
) {
    let push = |conn: ConnId, w: &OutboxTx, bytes: Vec<u8>| {
        if let Err(overflow) = w.frame(bytes) {
            if overflow.first {
                metrics.slow_consumer();
                tracing::info!(conn, "output budget exceeded; closing as slow_consumer");
            }
        }
    };
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
                    Ok(bytes) => push(conn, w, bytes),
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
                            push(conn, w, bytes);
                        }
                    }
                }
            }
            Out::Close(conn) => {
                if let Some(w) = writers.get(&conn) {
                    w.close();
                }
            }
        }
    }
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// What every QUIC connection task shares.
#[derive(Clone)]
pub struct Edge {
    pub hub: HubTx,
    pub media: Option<FwdSender>,
    pub metrics: Arc<Metrics>,
    pub admissions: Admissions,
    /// Output budget per connection, bytes.
    pub budget: usize,
    /// Time to open the control stream (the hub enforces the `hello` part).
    pub hello_timeout: Duration,
    /// Attachment transfers on further streams (none: such streams are refused).
    pub transfers: Option<Arc<crate::transfer::Transfers>>,
}

/// Accepts connections until the endpoint closes.
///
/// Per source (see [`crate::admission`]): a source that already holds its share
/// is refused before any handshake work (`refuse`, or a stateless `retry` first
/// when its address is not yet validated, so a spoofed address costs nothing and
/// cannot be refused on someone's behalf). Places are taken only once the
/// handshake has completed (the address is then proven); a connection past the
/// cap at that point is closed as `too_many_connections_from_source`.
pub async fn accept_loop(endpoint: quinn::Endpoint, edge: Edge) {
    let mut refused_log: Option<Instant> = None;
    while let Some(incoming) = endpoint.accept().await {
        let ip = incoming.remote_address().ip();
        if edge.admissions.full(ip) {
            if !incoming.remote_address_validated() && incoming.may_retry() {
                let _ = incoming.retry();
                continue;
            }
            edge.metrics.refused_per_source();
            if refused_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                refused_log = Some(Instant::now());
                tracing::info!(%ip, "connections refused: source holds its share (logged once per 10 s)");
            }
            incoming.refuse();
            continue;
        }
        let edge = edge.clone();
        tokio::spawn(async move {
            let conn_id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
            if let Err(err) = connection(incoming, conn_id, edge).await {
                tracing::debug!(conn = conn_id, %err, "connection ended");
            }
        });
    }
}

/// Closes a QUIC connection with the relay's code and reason for `why`.
pub fn close(conn: &quinn::Connection, why: CloseReason) {
    conn.close(why.code().into(), why.as_str().as_bytes());
}

async fn connection(incoming: quinn::Incoming, conn_id: ConnId, edge: Edge) -> anyhow::Result<()> {
    let conn = tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await??;
    let addr = conn.remote_address();
    let Some(_ticket) = edge.admissions.try_admit(addr.ip()) else {
        edge.metrics.refused_per_source();
        close(&conn, CloseReason::TooManyFromSource);
        return Ok(());
    };
    tracing::debug!(conn = conn_id, %addr, "connected");
    let (tx, rx) = outbox(edge.budget);
    if let Some(m) = &edge.media {
        // Before the hub hears of the connection, so media commands find it.
        m.send(FwdIn::Attach { conn: conn_id, connection: conn.clone() })?;
        let gate = rx.media_gate();
        let metrics = edge.metrics.clone();
        tokio::spawn(crate::forward::read_datagrams(conn_id, conn.clone(), m.clone(), gate, metrics));
    }
    // The first bidirectional stream is the control stream; one that never opens
    // it is closed. Later ones carry attachment transfers (`crate::transfer`), at most
    // `MAX_TRANSFERS_PER_CONNECTION` at a time (the transport's stream credit, `cert::quic_server_config`).
    let (send, mut recv) = match tokio::time::timeout(edge.hello_timeout, conn.accept_bi()).await {
        Ok(stream) => stream?,
        Err(_) => {
            edge.metrics.unauthenticated_closed();
            close(&conn, CloseReason::HelloTimeout);
            return Ok(());
        }
    };
    let hub = edge.hub;
    hub.connected(conn_id, addr, tx).await?;

    let writer = tokio::spawn(write_frames(conn.clone(), send, rx));
    let transfers = tokio::spawn(accept_transfers(conn.clone(), edge.transfers.clone()));

    let mut decoder = FrameDecoder::default();
    let mut buf = vec![0u8; 16 * 1024];
    'read: while let Ok(Some(n)) = recv.read(&mut buf).await {
        decoder.push(buf.get(..n).unwrap_or_default());
        loop {
            match decoder.next_frame() {
                Ok(Some(body)) => hub.frame(conn_id, body).await?,
                Ok(None) => break,
                Err(FrameError::TooLarge { len, .. }) => {
                    hub.oversized(conn_id, len).await?;
                    break 'read;
                }
                Err(_) => break 'read,
            }
        }
    }
    hub.closed(conn_id).await?;
    transfers.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    Ok(())
}

/// Runs each further bidirectional stream as a transfer (the transport lets at
/// most `MAX_TRANSFERS_PER_CONNECTION` be open at once).
async fn accept_transfers(conn: quinn::Connection, transfers: Option<Arc<crate::transfer::Transfers>>) {
    while let Ok((send, mut recv)) = conn.accept_bi().await {
        match &transfers {
            Some(t) => {
                tokio::spawn(crate::transfer::quic_stream(t.clone(), send, recv));
            }
            None => {
                let _ = recv.stop(0u32.into());
            }
        }
    }
}

/// Writes the outbox to the control stream; closes the connection as
/// `slow_consumer` the moment the outbox passes its budget, even mid-write.
async fn write_frames(conn: quinn::Connection, mut send: quinn::SendStream, mut rx: OutboxRx) {
    let condemned = rx.condemned();
    let drain = async {
        while let Some(out) = rx.recv().await {
            match out {
                ConnOut::Frame(bytes) => {
                    if send.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                ConnOut::Close => {
                    let _ = send.finish();
                    let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
                    close(&conn, CloseReason::Normal);
                    return;
                }
            }
        }
    };
    tokio::select! {
        () = drain => {}
        () = condemned.wait() => close(&conn, CloseReason::SlowConsumer),
    }
}
