//! Video frames to the web view over a loopback WebSocket.
//!
//! The app listens on `127.0.0.1:<random port>` (bound before the window exists, so
//! the page's CSP `connect-src` names exactly that origin). The UI asks the
//! `frame_socket` command for the URL, which carries a random per-run token in its
//! path (`/frames/<64 hex digits>`); any other path is refused at the handshake, so
//! other local programs cannot watch the call.
//!
//! On the socket:
//! * server → page: binary messages, one [`crate::frames`] `CMF1` frame each;
//! * page → server: text messages holding a decimal number `n` (1..=64): credit for
//!   `n` more frames. The page grants a small window on connect and one credit per
//!   frame it has taken, so at most a window of frames is ever in flight; while the
//!   page is busy, newer pictures replace older ones in [`FrameSlots`] (latest frame
//!   wins) instead of queueing in the socket.
//!
//! A newer authenticated connection (e.g. after a page reload) takes over; the older
//! one is closed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;

use crate::frames::FrameSlots;

/// Most credit a page may hold (frames in flight).
pub const MAX_CREDIT: u32 = 64;

/// The listening socket and its token.
pub struct FrameSocket {
    addr: SocketAddr,
    token: String,
}

impl FrameSocket {
    /// Binds `127.0.0.1:0` (blocking, std) and makes a fresh token; [`FrameSocket::serve`] starts it.
    pub fn bind() -> std::io::Result<(FrameSocket, std::net::TcpListener)> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let token: String = (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
        Ok((FrameSocket { addr: listener.local_addr()?, token }, listener))
    }

    /// `ws://127.0.0.1:<port>`: the CSP `connect-src` source.
    pub fn origin(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The URL the page connects to (token included).
    pub fn url(&self) -> String {
        format!("ws://{}/frames/{}", self.addr, self.token)
    }

    /// Serves connections until the runtime stops (call on the app's tokio runtime).
    pub async fn serve(self: Arc<Self>, listener: std::net::TcpListener, slots: Arc<FrameSlots>) {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "frame socket unavailable: no video in the window");
                return;
            }
        };
        let generation = Arc::new(AtomicU64::new(0));
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let (me, slots, generation) = (self.clone(), slots.clone(), generation.clone());
            tokio::spawn(async move {
                if let Err(e) = me.connection(stream, slots, generation).await {
                    tracing::debug!(error = %e, "frame socket connection ended");
                }
            });
        }
    }

    // The handshake callback's error type is tungstenite's (an HTTP response).
    #[allow(clippy::result_large_err)]
    async fn connection(
        &self,
        stream: TcpStream,
        slots: Arc<FrameSlots>,
        generation: Arc<AtomicU64>,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        stream.set_nodelay(true).ok();
        let expected = format!("/frames/{}", self.token);
        let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            if same(req.uri().path().as_bytes(), expected.as_bytes()) {
                Ok(resp)
            } else {
                let mut refused = ErrorResponse::new(Some("forbidden".into()));
                *refused.status_mut() = StatusCode::FORBIDDEN;
                Err(refused)
            }
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(stream, check).await?;
        let me = generation.fetch_add(1, Ordering::SeqCst) + 1;
        let mut credit: u32 = 0;
        loop {
            if generation.load(Ordering::SeqCst) != me {
                let _ = ws.close(None).await;
                return Ok(());
            }
            while credit > 0 {
                let Some(frame) = slots.take_one() else { break };
                ws.send(Message::binary(frame)).await?;
                credit -= 1;
            }
            tokio::select! {
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(t))) => {
                        let n = parse_credit(t.as_str()).unwrap_or(0);
                        credit = credit.saturating_add(n).min(MAX_CREDIT);
                    }
                    Some(Ok(Message::Close(_))) | None => return Ok(()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e),
                },
                _ = slots.fresh_frame(), if credit > 0 => {}
                // A newer page took over: checked at the top of the loop.
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
        }
    }
}

/// Credit in one page message: a decimal 1..=MAX_CREDIT.
pub fn parse_credit(text: &str) -> Option<u32> {
    text.trim().parse::<u32>().ok().filter(|n| (1..=MAX_CREDIT).contains(n))
}

/// Constant-time equality (the token is a secret).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::encode;
    use std::time::Duration;
    use tokio_tungstenite::connect_async;

    async fn start() -> (Arc<FrameSocket>, Arc<FrameSlots>) {
        let (socket, listener) = FrameSocket::bind().unwrap();
        let (socket, slots) = (Arc::new(socket), Arc::new(FrameSlots::default()));
        tokio::spawn(socket.clone().serve(listener, slots.clone()));
        (socket, slots)
    }

    async fn next_binary<S>(ws: &mut S) -> Option<Vec<u8>>
    where
        S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
    {
        loop {
            match tokio::time::timeout(Duration::from_millis(400), ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => return Some(b.to_vec()),
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }

    #[tokio::test]
    async fn a_wrong_token_is_refused_at_the_handshake() {
        let (socket, _) = start().await;
        let url = socket.url();
        assert!(url.starts_with("ws://127.0.0.1:") && url.len() > socket.origin().len() + 64);
        let bad = format!("{}/frames/{}", socket.origin(), "0".repeat(64));
        let err = connect_async(bad.as_str()).await.expect_err("refused");
        assert!(err.to_string().contains("403"), "{err}");
        assert!(connect_async(format!("{}/", socket.origin()).as_str()).await.is_err());
        assert!(connect_async(url.as_str()).await.is_ok());
    }

    #[tokio::test]
    async fn frames_flow_only_against_credit_newest_first() {
        let (socket, slots) = start().await;
        let (mut ws, _) = connect_async(socket.url().as_str()).await.unwrap();
        slots.put("a", encode("a", 2, 2, &[1; 6]).unwrap());
        // No credit yet: nothing arrives, and newer pictures replace the waiting one.
        assert_eq!(next_binary(&mut ws).await, None);
        slots.put("a", encode("a", 2, 2, &[2; 6]).unwrap());
        slots.put("b", encode("b", 2, 2, &[3; 6]).unwrap());
        ws.send(Message::text("1")).await.unwrap();
        assert_eq!(next_binary(&mut ws).await, encode("a", 2, 2, &[2; 6]));
        assert_eq!(next_binary(&mut ws).await, None, "one credit, one frame");
        ws.send(Message::text("5")).await.unwrap();
        assert_eq!(next_binary(&mut ws).await, encode("b", 2, 2, &[3; 6]));
        // Credit left: a new picture goes out as soon as it is stored.
        slots.put("c", encode("c", 2, 2, &[4; 6]).unwrap());
        assert_eq!(next_binary(&mut ws).await, encode("c", 2, 2, &[4; 6]));
        // Nonsense credit is ignored.
        for junk in ["0", "-3", "65", "many"] {
            assert_eq!(parse_credit(junk), None);
        }
    }

    #[tokio::test]
    async fn a_newer_page_takes_over() {
        let (socket, slots) = start().await;
        let (mut old, _) = connect_async(socket.url().as_str()).await.unwrap();
        old.send(Message::text("8")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (mut new, _) = connect_async(socket.url().as_str()).await.unwrap();
        new.send(Message::text("8")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        slots.put("a", encode("a", 2, 2, &[1; 6]).unwrap());
        assert_eq!(next_binary(&mut new).await, encode("a", 2, 2, &[1; 6]));
        assert_eq!(next_binary(&mut old).await, None, "the old page is closed");
    }
}
