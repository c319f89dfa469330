//! A connection's output queue, bounded by bytes.
//!
//! The hub thread pushes encoded frames without ever waiting (it serves every
//! connection and must not stall on one); the connection's writer task pops
//! them and writes them to its socket. The queue promises:
//!
//! * At most `budget` bytes of frames wait in it. A push that would pass the
//!   budget is refused and the queue is *condemned*: every later push is
//!   dropped, and the writer is told at once (even while it is stuck in a write
//!   to a peer that stopped reading) to close the connection with
//!   [`CloseReason::SlowConsumer`]. The client then resumes and resyncs, as
//!   after any drop; nothing it missed is lost (chat and state come back with
//!   the resume and the history request).
//! * Frames come out in the order they went in; a `Close` comes out after every
//!   frame pushed before it.
//! * Whether the connection may send media (see `server::read_datagrams`
//!   gating) is carried alongside: set by the hub thread when the connection
//!   joins a meeting, read by the datagram reader.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, Notify};

/// Default budget: queued frame bytes per connection before it is a slow consumer.
pub const DEFAULT_BUDGET: usize = 1024 * 1024;

/// What the writer is told.
#[derive(Debug)]
pub enum ConnOut {
    Frame(Vec<u8>),
    Close,
}

/// Why the relay closes a connection (QUIC application close code and reason,
/// WebSocket close reason). The codes are stable: clients may log them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Closed by the relay after a protocol error, a refusal or a host action.
    Normal,
    /// The peer did not read its output fast enough (see the module header).
    SlowConsumer,
    /// No hello (or no control stream) within the hello deadline.
    HelloTimeout,
    /// More connections from this source than `--max-connections-per-source`.
    TooManyFromSource,
    /// The hub's input queue is full (see `server`).
    Overloaded,
}

impl CloseReason {
    pub fn code(self) -> u32 {
        match self {
            CloseReason::Normal => 0,
            CloseReason::SlowConsumer => 1,
            CloseReason::HelloTimeout => 2,
            CloseReason::TooManyFromSource => 3,
            CloseReason::Overloaded => 4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Normal => "closed by relay",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::HelloTimeout => "hello_timeout",
            CloseReason::TooManyFromSource => "too_many_connections_from_source",
            CloseReason::Overloaded => "relay_overloaded",
        }
    }
}

struct Shared {
    queued: AtomicUsize,
    budget: usize,
    condemned: AtomicBool,
    kill: Notify,
    media: AtomicBool,
}

/// The hub thread's end.
#[derive(Clone)]
pub struct OutboxTx {
    tx: mpsc::UnboundedSender<ConnOut>,
    shared: Arc<Shared>,
}

/// The writer's end.
pub struct OutboxRx {
    rx: mpsc::UnboundedReceiver<ConnOut>,
    shared: Arc<Shared>,
}

/// The push was refused: the connection is (now) a slow consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow {
    /// True for the push that crossed the budget (log and count once).
    pub first: bool,
}

/// A queue of at most `budget` bytes of frames.
pub fn outbox(budget: usize) -> (OutboxTx, OutboxRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        queued: AtomicUsize::new(0),
        budget,
        condemned: AtomicBool::new(false),
        kill: Notify::new(),
        media: AtomicBool::new(false),
    });
    (OutboxTx { tx, shared: shared.clone() }, OutboxRx { rx, shared })
}

impl OutboxTx {
    /// Queues a frame, or condemns the connection when it would pass the budget.
    pub fn frame(&self, bytes: Vec<u8>) -> Result<(), Overflow> {
        if self.shared.condemned.load(Ordering::Acquire) {
            return Err(Overflow { first: false });
        }
        let len = bytes.len();
        let before = self.shared.queued.fetch_add(len, Ordering::AcqRel);
        if before + len > self.shared.budget {
            self.shared.queued.fetch_sub(len, Ordering::AcqRel);
            self.shared.condemned.store(true, Ordering::Release);
            self.shared.kill.notify_one();
            return Err(Overflow { first: true });
        }
        if self.tx.send(ConnOut::Frame(bytes)).is_err() {
            // The writer is gone; nothing will drain the count, and nothing needs to.
            self.shared.queued.fetch_sub(len, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Asks the writer to close after what is queued.
    pub fn close(&self) {
        let _ = self.tx.send(ConnOut::Close);
    }

    /// Lets the connection's media datagrams through (it joined) or not.
    pub fn set_media(&self, allowed: bool) {
        self.shared.media.store(allowed, Ordering::Relaxed);
    }

    /// A handle the datagram reader checks.
    pub fn media_gate(&self) -> MediaGate {
        MediaGate(self.shared.clone())
    }
}

/// Whether a connection's datagrams may reach the forwarder.
#[derive(Clone)]
pub struct MediaGate(Arc<Shared>);

impl MediaGate {
    pub fn open(&self) -> bool {
        self.0.media.load(Ordering::Relaxed)
    }
}

/// See [`OutboxRx::condemned`].
pub struct Condemned(Arc<Shared>);

impl Condemned {
    pub async fn wait(&self) {
        if self.0.condemned.load(Ordering::Acquire) {
            return;
        }
        self.0.kill.notified().await;
    }
}

impl OutboxRx {
    /// The next output; `None` when the hub dropped its end.
    pub async fn recv(&mut self) -> Option<ConnOut> {
        let out = self.rx.recv().await;
        if let Some(ConnOut::Frame(b)) = &out {
            self.shared.queued.fetch_sub(b.len(), Ordering::AcqRel);
        }
        out
    }

    /// A handle that completes once the queue is condemned (slow consumer);
    /// separate from the receiver so a writer can wait on both.
    pub fn condemned(&self) -> Condemned {
        Condemned(self.shared.clone())
    }

    /// A gate for the datagram reader (same flag as [`OutboxTx::media_gate`]).
    pub fn media_gate(&self) -> MediaGate {
        MediaGate(self.shared.clone())
    }

    /// Bytes waiting (for tests and logs).
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn budget_condemns_and_drops_further_frames() {
        let (tx, mut rx) = outbox(10);
        assert!(tx.frame(vec![0; 6]).is_ok());
        assert!(tx.frame(vec![0; 4]).is_ok());
        assert_eq!(tx.frame(vec![0; 1]), Err(Overflow { first: true }));
        assert_eq!(tx.frame(vec![0; 1]), Err(Overflow { first: false }));
        // The writer hears of it at once, whatever it is doing.
        tokio::time::timeout(std::time::Duration::from_secs(1), rx.condemned().wait()).await.unwrap();
        assert!(matches!(rx.recv().await, Some(ConnOut::Frame(b)) if b.len() == 6));
        assert_eq!(rx.queued(), 4);
    }

    #[tokio::test]
    async fn draining_makes_room() {
        let (tx, mut rx) = outbox(10);
        for _ in 0..100 {
            tx.frame(vec![0; 8]).unwrap();
            assert!(matches!(rx.recv().await, Some(ConnOut::Frame(_))));
        }
        tx.close();
        assert!(matches!(rx.recv().await, Some(ConnOut::Close)));
        assert_eq!(rx.queued(), 0);
    }
}
