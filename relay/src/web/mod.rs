//! Browser guests: an HTTPS listener that serves the guest page and a
//! WebSocket for its signaling, plus WebRTC media ([`peer`]).
//!
//! * Same certificate as QUIC (the clinic's, or the self-signed one — which
//!   browsers accept only after a warning; see the README).
//! * One TCP port: [`serve`] peeks at each connection's first byte; a TLS
//!   handshake goes on to HTTPS, anything else is an ICE-TCP connection
//!   (RFC 6544 framing) handed to [`mux::IceMux::accept_tcp`].
//! * HTTP/1.1 over the TLS stream is hyper with the relay's limits
//!   ([`crate::http1`]: 16 KiB request head, 10 s to send it, also the idle
//!   keep-alive limit), routed by axum ([`routes`]). Request bodies over 4 KiB
//!   are refused (`413`); nothing here reads one. Unknown methods get `405` with
//!   `Allow`, unknown paths `404`.
//! * `GET /` (and `/join`, `/guest`) serves `guest.html` from the guest
//!   directory (`--guest-dir`, the `ui/` build output `ui/dist` by default, or
//!   `guest/` next to the relay binary when that exists); other paths serve
//!   files under it (tower-http `ServeDir`: `..` and encoded `..` refused, HEAD
//!   with the GET headers and no body, ranges, `304`). Nothing is embedded in
//!   the binary, so the page can be rebuilt or rebranded without rebuilding
//!   the relay.
//! * Every response carries a strict Content-Security-Policy (with
//!   `frame-ancestors 'none'`), HSTS, `X-Frame-Options: DENY`,
//!   `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` and a
//!   Permissions-Policy giving camera and microphone to the page only; Vite's
//!   content-hashed files (`assets/NAME-HASH.ext`) are cached for a year as
//!   immutable, everything else is `no-cache` ([`headers`]).
//! * `GET /invite-info` answers `{"quic_port":N,"pin":"sha256/…"}`: what the invite
//!   landing page needs to build the desktop app's deep link
//!   (`clinicmeet://join/CODE?relay=HOST:N&pin=…`; the code itself stays in the
//!   page's `#` fragment and never reaches the server).
//! * `GET /ws` upgrades to a WebSocket (hyper's upgrade, then tokio-tungstenite
//!   with [`ws_config`]). A request whose `Origin` is not the relay's own
//!   (`https://` + the `Host` it was sent to, or a `--public-name`) is refused
//!   with `403` before the upgrade; one without `Origin` is not from a browser
//!   page and is allowed ([`origin`]). Behind a trusted reverse proxy
//!   ([`crate::proxy`]) the guest's address is the one `X-Forwarded-For` names
//!   (all its header lines), counted per source at the upgrade (`429` past the
//!   cap); otherwise the TCP connection's place in its source's share is held
//!   until the WebSocket closes.
//! * The WebSocket is pinged every `--ws-ping-secs` (5 s) and closed after
//!   `--ws-timeout-secs` (15 s) without any frame from the browser, so a guest
//!   whose network vanished leaves (after the resume grace) instead of staying
//!   a ghost. Messages and frames over the control frame limit are refused by
//!   tungstenite from the header ([`ws_config`]); the guest's output is an
//!   [`crate::outbox`] (`slow_consumer` past its budget).
//! * On the WebSocket, text messages are the control
//!   protocol's JSON (`ClientMessage` in, `ServerMessage` out), exactly as on a
//!   QUIC control stream, through the same hub — a guest is just another
//!   session, and every waiting-room rule, limit and host action applies. Two
//!   extra message shapes carry WebRTC signaling and never reach the hub:
//!   `{"webrtc":{"offer":SDP}}` from the browser, and `{"webrtc":{"answer":SDP}}`,
//!   `{"webrtc":{"slot":{mid,kind,track_id,participant_id}}}`,
//!   `{"webrtc":{"unslot":{mid,track_id}}}`, `{"webrtc":{"error":TEXT}}` to it.

pub mod bridge;
pub mod headers;
pub mod ice;
pub mod mux;
pub mod origin;
pub mod peer;
pub mod routes;
pub mod rtp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clinicmeet_protocol::{limits::MAX_FRAME_LEN, ServerMessage, TrackId};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::cert::Identity;
use crate::error::RelayError;
use crate::forward::{FwdIn, FwdSender};
use crate::outbox::{outbox, CloseReason, ConnOut};
use crate::server::HubTx;
use bridge::{Action, Bridge};
use peer::{Peer, PeerEvent, RtcConfig};

/// Browser connections get ids from here up (QUIC connections count from 1).
const WEB_CONN_BASE: u64 = 1 << 48;
static NEXT_WEB_CONN: AtomicU64 = AtomicU64::new(WEB_CONN_BASE);
/// Per-guest queue between the forwarding thread and its peer.
const MEDIA_QUEUE: usize = 1024;

/// The browser side's settings.
#[derive(Debug, Clone)]
pub struct WebConfig {
    pub guest_dir: PathBuf,
    pub rtc: RtcConfig,
    /// For the invite page's "Open in ClinicMeet" link.
    pub invite: InviteInfo,
    /// Bytes of control messages queued per guest before `slow_consumer`.
    pub output_budget: usize,
    /// Reverse proxies whose `X-Forwarded-For` is believed ([`crate::proxy`]).
    pub trusted_proxies: crate::proxy::TrustedProxies,
    /// How often the relay pings a guest's WebSocket.
    pub ws_ping: Duration,
    /// A guest's WebSocket with no frame at all (pong or other) this long is closed.
    pub ws_timeout: Duration,
    /// Pages that may open the WebSocket besides the one at the request's `Host`.
    pub origins: origin::Origins,
    /// Attachment uploads and downloads (`/api/uploads`, `/api/attachments`); none: refused.
    pub transfers: Option<Arc<crate::transfer::Transfers>>,
    /// The upload route's body limit (the per-file limit).
    pub max_attachment_bytes: u64,
}

/// The WebSocket layer's limits: no message or frame longer than a control
/// frame is read (tungstenite refuses it from its header, before buffering).
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_LEN))
        .max_frame_size(Some(MAX_FRAME_LEN))
        .max_write_buffer_size(2 * MAX_FRAME_LEN)
}

/// What `GET /invite-info` tells the invite page about the relay's QUIC side.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InviteInfo {
    /// The QUIC port desktop apps connect to (on the host the page was loaded from).
    pub quic_port: u16,
    /// `sha256/<base64>` of the certificate's public key (the app pins it).
    pub pin: String,
}

/// TLS for the HTTPS listener, from the relay's identity.
pub fn tls_config(id: &Identity) -> Result<Arc<rustls::ServerConfig>, RelayError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RelayError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(id.chain.clone(), id.key.clone_key())
        .map_err(|e| RelayError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

/// The default guest directory: `guest/` next to the binary, else `ui/dist`.
pub fn default_guest_dir() -> PathBuf {
    let beside = std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.join("guest")));
    match beside {
        Some(d) if d.join("guest.html").is_file() => d,
        _ => PathBuf::from("ui/dist"),
    }
}

/// Accepts HTTPS connections until the listener fails. When ICE over TCP is on,
/// connections whose first byte is not a TLS handshake are ICE-TCP connections of
/// browser guests (RFC 6544) and go to the shared ICE mux instead.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    cfg: Arc<WebConfig>,
    hub: HubTx,
    fwd: FwdSender,
    admissions: crate::admission::Admissions,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let app =
        routes::App { cfg: cfg.clone(), hub, fwd, admissions: admissions.clone(), metrics: metrics.clone() };
    let router = routes::router(Arc::new(app));
    let mut backoff = crate::accept_backoff::AcceptBackoff::default();
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                backoff.failed("https", &err).await;
                continue;
            }
        };
        // Counted with the source's QUIC connections; refused ones are dropped at once.
        // A trusted proxy's connections are counted per patient, at the WebSocket upgrade.
        let ticket = if cfg.trusted_proxies.trusts(addr.ip()) {
            None
        } else {
            match admissions.try_admit(addr.ip()) {
                Some(t) => Some(t),
                None => {
                    metrics.refused_per_source();
                    drop(tcp);
                    continue;
                }
            }
        };
        let (acceptor, cfg, router) = (acceptor.clone(), cfg.clone(), router.clone());
        tokio::spawn(async move {
            let ticket = ticket.map(Arc::new);
            let _ = tcp.set_nodelay(true);
            if cfg.rtc.mux.tcp_port().is_some() {
                let mut first = [0u8; 1];
                let peeked = tokio::time::timeout(Duration::from_secs(10), tcp.peek(&mut first)).await;
                if !matches!(peeked, Ok(Ok(1))) {
                    return;
                }
                let [b] = first;
                if ice::is_ice_tcp_first_byte(b) {
                    if let Err(err) = cfg.rtc.mux.accept_tcp(tcp, addr).await {
                        tracing::debug!(%addr, %err, "ICE-TCP connection refused");
                    }
                    return;
                }
            }
            let stream = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                _ => return,
            };
            let conn = routes::Conn { addr, ticket };
            if let Err(err) = crate::http1::serve(stream, router, conn, true).await {
                tracing::debug!(%addr, %err, "https connection ended");
            }
        });
    }
}

fn rtc_msg(v: serde_json::Value) -> Message {
    Message::text(serde_json::json!({ "webrtc": v }).to_string())
}

/// Why a guest's session loop ended.
enum End {
    /// The peer left, the socket failed, or the hub closed it (close frame sent).
    Done,
    /// The hub is gone.
    HubGone,
}

async fn session<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    ws: WebSocketStream<S>,
    addr: SocketAddr,
    cfg: Arc<WebConfig>,
    hub: HubTx,
    fwd: FwdSender,
) {
    let conn = NEXT_WEB_CONN.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = outbox(cfg.output_budget);
    let condemned = rx.condemned();
    if hub.connected(conn, addr, tx).await.is_err() {
        return;
    }
    tracing::debug!(conn, %addr, "guest websocket");
    let (mut sink, mut stream) = ws.split();
    let mut peer: Option<Arc<Peer>> = None;
    // Milliseconds after `base` when the guest was last heard from (any frame).
    let base = std::time::Instant::now();
    let heard = AtomicU64::new(0);
    let end = {
        let run =
            session_loop(conn, &cfg, &hub, &fwd, &mut sink, &mut stream, &mut rx, &mut peer, (base, &heard));
        // Independent of the loop, so a loop stuck writing to a vanished guest is ended too.
        let silent = async {
            loop {
                tokio::time::sleep(cfg.ws_ping).await;
                let last = Duration::from_millis(heard.load(Ordering::Relaxed));
                if base.elapsed().saturating_sub(last) >= cfg.ws_timeout {
                    return;
                }
            }
        };
        tokio::select! {
            end = run => end,
            () = silent => {
                tracing::debug!(conn, "guest websocket silent past the timeout; closing");
                let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
                    code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Away,
                    reason: "ping_timeout".into(),
                };
                let _ = tokio::time::timeout(Duration::from_millis(500), sink.send(Message::Close(Some(frame)))).await;
                End::Done
            }
            () = condemned.wait() => {
                // The guest stopped reading: its socket is full, so the close frame
                // may not get through; the TCP connection goes with this task.
                let why = CloseReason::SlowConsumer;
                let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
                    code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Policy,
                    reason: why.as_str().into(),
                };
                let _ = tokio::time::timeout(Duration::from_millis(500), sink.send(Message::Close(Some(frame)))).await;
                End::Done
            }
        }
    };
    if !matches!(end, End::HubGone) {
        let _ = hub.closed(conn).await;
    }
    if let Some(p) = peer {
        p.close().await;
    }
    tracing::debug!(conn, "guest websocket closed");
}

#[allow(clippy::too_many_arguments)]
async fn session_loop<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    conn: u64,
    cfg: &WebConfig,
    hub: &HubTx,
    fwd: &FwdSender,
    sink: &mut futures_util::stream::SplitSink<WebSocketStream<S>, Message>,
    stream: &mut futures_util::stream::SplitStream<WebSocketStream<S>>,
    rx: &mut crate::outbox::OutboxRx,
    peer: &mut Option<Arc<Peer>>,
    (base, heard): (std::time::Instant, &AtomicU64),
) -> End {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + cfg.ws_ping, cfg.ws_ping);
    let mut bridge = Bridge::new();
    let mut peer_events: Option<mpsc::Receiver<PeerEvent>> = None;
    let mut flows: HashMap<TrackId, u64> = HashMap::new();
    loop {
        let mut actions = Vec::new();
        tokio::select! {
            _ = ping.tick() => {
                // A guest that cannot take a ping within the interval is not reading.
                let sent = tokio::time::timeout(cfg.ws_ping, sink.send(Message::Ping(Default::default()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    return End::Done;
                }
            }
            m = stream.next() => {
                if let Some(Ok(_)) = &m {
                    heard.store(base.elapsed().as_millis() as u64, Ordering::Relaxed);
                }
                match m {
                Some(Ok(Message::Text(text))) => {
                    let text = text.as_str();
                    if text.len() > MAX_FRAME_LEN {
                        // Not reached with `ws_config` (tungstenite refuses first); kept as a guard.
                        let _ = hub.oversized(conn, text.len()).await;
                        return End::Done;
                    }
                    let v: Option<serde_json::Value> = serde_json::from_str(text).ok();
                    if let Some(offer) = v.as_ref().and_then(|v| v.get("webrtc")).and_then(|w| w.get("offer")) {
                        let Some(offer) = offer.as_str() else { continue };
                        if peer.is_some() {
                            let _ = sink.send(rtc_msg(serde_json::json!({"error": "already connected"}))).await;
                            continue;
                        }
                        // Media only for someone in the meeting: not before joining, not from the waiting room.
                        if !bridge.in_meeting() {
                            let _ = sink.send(rtc_msg(serde_json::json!({"error": "join the meeting first"}))).await;
                            continue;
                        }
                        match Peer::answer(conn, offer.to_string(), &cfg.rtc, fwd.clone()).await {
                            Ok((p, answer, events)) => {
                                let p = Arc::new(p);
                                let (mtx, mrx) = mpsc::channel(MEDIA_QUEUE);
                                let _ = fwd.send(FwdIn::AttachWeb { conn, tx: mtx });
                                let p2 = p.clone();
                                tokio::spawn(async move { p2.run_outbound(mrx).await });
                                *peer = Some(p);
                                peer_events = Some(events);
                                let _ = sink.send(rtc_msg(serde_json::json!({"answer": answer}))).await;
                            }
                            Err(err) => {
                                tracing::info!(conn, %err, "guest media refused");
                                let _ = sink.send(rtc_msg(serde_json::json!({"error": err.to_string()}))).await;
                            }
                        }
                        continue;
                    }
                    if v.as_ref().and_then(|v| v.get("type")).and_then(|t| t.as_str()) == Some("leave") {
                        actions.extend(bridge.left());
                    }
                    if hub.frame(conn, text.as_bytes().to_vec()).await.is_err() {
                        return End::HubGone;
                    }
                }
                Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, .. }))) => {
                    // Refused from the frame header: the body was never buffered.
                    let _ = hub.oversized(conn, size).await;
                    let _ = tokio::time::timeout(Duration::from_secs(1), flush_replies(rx, sink)).await;
                    return End::Done;
                }
                Some(Ok(Message::Binary(_))) => return End::Done,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return End::Done,
                Some(Ok(_)) => {}
                }
            },
            out = rx.recv() => match out {
                Some(ConnOut::Frame(bytes)) => {
                    let body = bytes.get(4..).unwrap_or_default();
                    let forward = match serde_json::from_slice::<ServerMessage>(body) {
                        Ok(msg) => {
                            let (forward, a) = bridge.server(&msg);
                            actions.extend(a);
                            forward
                        }
                        Err(_) => true,
                    };
                    if forward {
                        let text = String::from_utf8_lossy(body).into_owned();
                        if sink.send(Message::text(text)).await.is_err() {
                            return End::Done;
                        }
                    }
                }
                Some(ConnOut::Close) | None => {
                    let _ = sink.send(Message::Close(None)).await;
                    return End::Done;
                }
            },
            ev = async {
                match peer_events.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => match ev {
                Some(PeerEvent::Connected) => {
                    if let Some(p) = peer.as_ref() {
                        let (a, v) = p.slot_counts();
                        actions.extend(bridge.media_ready(a, v));
                    }
                }
                Some(PeerEvent::Track { kind, ssrc }) => actions.extend(bridge.browser_track(kind, ssrc)),
                Some(PeerEvent::Failed) | None => {
                    peer_events = None;
                }
            },
        }
        for a in actions {
            match a {
                Action::Request(cm) => {
                    if let Ok(body) = serde_json::to_vec(&cm) {
                        if hub.frame(conn, body).await.is_err() {
                            return End::HubGone;
                        }
                    }
                }
                Action::Published { ssrc, flow } => {
                    if let Some(p) = peer.as_ref() {
                        p.published(ssrc, flow);
                    }
                }
                Action::Subscribed { info, flow } => {
                    let slot = peer.as_ref().and_then(|p| p.attach(&info, flow));
                    if let Some(slot) = slot {
                        flows.insert(info.track_id, flow);
                        let _ = sink.send(rtc_msg(serde_json::json!({ "slot": slot }))).await;
                    }
                }
                Action::Gone { track_id } => {
                    let flow = flows.remove(&track_id);
                    let mid = flow.and_then(|f| peer.as_ref().and_then(|p| p.detach_flow(f)));
                    if let Some(mid) = mid {
                        let _ = sink
                            .send(rtc_msg(serde_json::json!({"unslot": {"mid": mid, "track_id": track_id}})))
                            .await;
                    }
                }
            }
        }
    }
}

/// Sends the hub's replies until it closes the connection (after an error).
async fn flush_replies<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    rx: &mut crate::outbox::OutboxRx,
    sink: &mut futures_util::stream::SplitSink<WebSocketStream<S>, Message>,
) {
    while let Some(out) = rx.recv().await {
        match out {
            ConnOut::Frame(bytes) => {
                let text = String::from_utf8_lossy(bytes.get(4..).unwrap_or_default()).into_owned();
                if sink.send(Message::text(text)).await.is_err() {
                    return;
                }
            }
            ConnOut::Close => {
                let _ = sink.send(Message::Close(None)).await;
                return;
            }
        }
    }
}
