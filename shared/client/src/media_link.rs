//! The session's media datagram link: what the media engine may do with the QUIC
//! connection the session driver owns.
//!
//! [`MediaLink`] (from [`Session::media_link`](crate::Session::media_link)) sends
//! one flow's packet as a datagram (flow-id prefix from
//! [`clinicmeet_protocol::datagram`]), reports the path ([`PathStats`]: RTT,
//! congestion window, packet counters, datagram size) and hands out the incoming
//! datagrams ([`MediaLink::incoming`]). The driver reads the connection's
//! datagrams ([`pump`], run inside [`Driver::run`](crate::session::Driver::run)),
//! across reconnects, into one bounded queue: when the media engine lags, the
//! newest datagrams are dropped and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use clinicmeet_protocol::datagram;
use tokio::sync::{mpsc, watch};

/// Incoming datagrams held for the media engine (beyond quinn's own receive buffer).
pub const INCOMING_CAPACITY: usize = 1024;

/// The QUIC path as the connection measures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathStats {
    /// Smoothed round-trip time.
    pub rtt_us: u64,
    /// Congestion window, bytes.
    pub cwnd: u64,
    /// Packets declared lost since the connection opened.
    pub lost_packets: u64,
    /// Packets sent since the connection opened.
    pub sent_packets: u64,
    /// Largest datagram the path carries now, flow-id prefix included
    /// (`None`: the peer does not take datagrams).
    pub max_datagram_size: Option<usize>,
}

impl PathStats {
    /// Largest packet one datagram of `flow_id` carries (after its flow-id prefix).
    pub fn max_payload(&self, flow_id: u64) -> Option<usize> {
        self.max_datagram_size.map(|m| m.saturating_sub(datagram::flow_id_len(flow_id)))
    }
}

/// Sends and receives media datagrams over the session's connection; cheap to clone.
#[derive(Clone)]
pub struct MediaLink {
    target: Target,
    incoming: Arc<IncomingSlot>,
}

#[derive(Clone)]
enum Target {
    /// Whatever connection the session has now.
    Session(watch::Receiver<Option<quinn::Connection>>),
    /// One connection (flow ids belong to the connection they were given on).
    Bound(quinn::Connection),
}

/// Where the driver puts incoming datagrams: the queue of the newest
/// [`MediaLink::incoming`] reader, and the count of those dropped.
#[derive(Default)]
pub(crate) struct IncomingSlot {
    tx: Mutex<Option<mpsc::Sender<Bytes>>>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for MediaLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaLink").field("connected", &self.connection().is_some()).finish()
    }
}

impl MediaLink {
    pub(crate) fn new(
        conns: watch::Receiver<Option<quinn::Connection>>,
        incoming: Arc<IncomingSlot>,
    ) -> Self {
        MediaLink { target: Target::Session(conns), incoming }
    }

    pub(crate) fn connection(&self) -> Option<quinn::Connection> {
        match &self.target {
            Target::Session(w) => w.borrow().clone(),
            Target::Bound(c) => Some(c.clone()),
        }
    }

    /// This link held to the session's current connection (`None` while
    /// reconnecting): once that connection is gone its sends fail, so a flow
    /// id is never sent on a later connection where it may name another flow.
    pub fn bound(&self) -> Option<MediaLink> {
        let conn = self.connection()?;
        Some(MediaLink { target: Target::Bound(conn), incoming: self.incoming.clone() })
    }

    /// Queues `packet` as a datagram of `flow_id` (never blocks). False when
    /// there is no connection, it is closed, or the datagram is too big for the path.
    pub fn send(&self, flow_id: u64, packet: &[u8]) -> bool {
        let Some(conn) = self.connection() else { return false };
        conn.send_datagram(Bytes::from(datagram::encode(flow_id, packet))).is_ok()
    }

    /// The path's measurements (`None` while reconnecting).
    pub fn path(&self) -> Option<PathStats> {
        let conn = self.connection()?;
        let st = conn.stats();
        Some(PathStats {
            rtt_us: st.path.rtt.as_micros() as u64,
            cwnd: st.path.cwnd,
            lost_packets: st.path.lost_packets,
            sent_packets: st.path.sent_packets,
            max_datagram_size: conn.max_datagram_size(),
        })
    }

    /// The incoming media datagrams from now on, on every connection of the
    /// session, in a queue of `capacity` (at least 1). One reader at a time: a
    /// later call takes the datagrams over and the earlier reader's queue ends.
    pub fn incoming(&self, capacity: usize) -> Incoming {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        if let Ok(mut slot) = self.incoming.tx.lock() {
            *slot = Some(tx);
        }
        Incoming { rx, slot: self.incoming.clone() }
    }
}

/// A reader's queue of incoming datagrams (flow-id prefix included).
pub struct Incoming {
    rx: mpsc::Receiver<Bytes>,
    slot: Arc<IncomingSlot>,
}

impl Incoming {
    /// The next datagram; `None` once the session is gone or another reader took over.
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.rx.recv().await
    }

    /// The next datagram if one is queued.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        self.rx.try_recv().ok()
    }

    /// Datagrams dropped because a reader's queue was full (session total).
    pub fn dropped(&self) -> u64 {
        self.slot.dropped.load(Ordering::Relaxed)
    }
}

impl IncomingSlot {
    /// Hands one datagram to the reader; drops it (counted) when the queue is full.
    pub(crate) fn deliver(&self, d: Bytes) {
        let Ok(mut slot) = self.tx.lock() else { return };
        let Some(tx) = slot.as_ref() else { return };
        match tx.try_send(d) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::debug!(dropped = n, "media datagram queue full, newest dropped");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => *slot = None,
        }
    }
}

/// The driver's datagram read loop: reads each connection the session has (it
/// follows `conns` across reconnects) and delivers into `slot`. Ends when the
/// driver drops the connection's sender.
pub(crate) async fn pump(mut conns: watch::Receiver<Option<quinn::Connection>>, slot: Arc<IncomingSlot>) {
    loop {
        let conn = conns.borrow_and_update().clone();
        let Some(conn) = conn else {
            if conns.changed().await.is_err() {
                return;
            }
            continue;
        };
        loop {
            tokio::select! {
                d = conn.read_datagram() => match d {
                    Ok(d) => slot.deliver(d),
                    Err(_) => break,
                },
                c = conns.changed() => {
                    if c.is_err() { return; }
                    break;
                }
            }
        }
        // Wait for the next connection.
        if conns.borrow().as_ref().is_some_and(|c| c.stable_id() == conn.stable_id())
            && conns.changed().await.is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> (MediaLink, watch::Sender<Option<quinn::Connection>>, Arc<IncomingSlot>) {
        let (tx, rx) = watch::channel(None);
        let slot = Arc::new(IncomingSlot::default());
        (MediaLink::new(rx, slot.clone()), tx, slot)
    }

    #[test]
    fn without_a_connection_nothing_is_sent() {
        let (l, _tx, _) = link();
        assert!(!l.send(1, &[0x80; 20]));
        assert!(l.path().is_none());
        assert!(l.bound().is_none());
    }

    #[tokio::test]
    async fn the_incoming_queue_is_bounded_and_counts_drops() {
        let (l, _tx, slot) = link();
        let mut rx = l.incoming(2);
        for i in 0..5u8 {
            slot.deliver(Bytes::from(vec![i]));
        }
        assert_eq!(rx.dropped(), 3);
        assert_eq!(rx.recv().await.as_deref(), Some(&[0u8][..]));
        assert_eq!(rx.try_recv().as_deref(), Some(&[1u8][..]));
        assert!(rx.try_recv().is_none());
    }

    #[tokio::test]
    async fn a_later_reader_takes_the_datagrams_over() {
        let (l, _tx, slot) = link();
        let mut first = l.incoming(4);
        let mut second = l.clone().incoming(4);
        slot.deliver(Bytes::from_static(b"x"));
        assert_eq!(second.try_recv().as_deref(), Some(&b"x"[..]));
        assert!(first.recv().await.is_none());
    }

    #[test]
    fn the_payload_leaves_room_for_the_flow_id() {
        let p = PathStats { max_datagram_size: Some(1200), ..PathStats::default() };
        assert_eq!(p.max_payload(1), Some(1200 - datagram::flow_id_len(1)));
        assert_eq!(PathStats::default().max_payload(1), None);
    }
}
