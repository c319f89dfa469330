//! The relay's own video queue in front of one QUIC connection.
//!
//! quinn sends queued datagrams first in, first out. If all video went straight
//! into quinn's queue, an audio datagram queued behind a keyframe burst would
//! wait for the whole burst to drain through the subscriber's bottleneck (at
//! 1 Mbit/s, 20 KiB is 160 ms). So video waits here instead, and is handed to
//! quinn only while quinn's own queue is short; audio skips this queue and goes
//! straight to quinn, so it is never more than a short queue behind.
//!
//! "Short" follows what the connection can send: about [`FEED_AHEAD_US`] of data
//! at its congestion window per round trip, at least [`MIN_FEED_BYTES`]. An
//! uncongested connection (large window) takes a keyframe burst at once, so
//! video waits here only where there is a bottleneck; a slow one keeps audio
//! close to the front.
//!
//! Pure data structure: no clocks and no sockets (the forwarder supplies both).

use std::collections::VecDeque;

use super::Class;

/// quinn's queue may hold at least this many bytes (three full datagrams).
pub const MIN_FEED_BYTES: usize = 4 * 1200;
/// … and at most this many.
pub const MAX_FEED_BYTES: usize = 256 * 1024;
/// How much sending time quinn's queue may hold ahead of a newly queued audio datagram.
pub const FEED_AHEAD_US: u64 = 20_000;
/// Base-layer video is accepted while fewer bytes than this wait here.
pub const VIDEO_QUEUE_LIMIT: usize = 128 * 1024;
/// Droppable (top temporal layer) video only while fewer than this wait.
pub const DROPPABLE_QUEUE_LIMIT: usize = 32 * 1024;
/// Above this many waiting bytes the connection is backlogged: the forwarding core
/// leaves out whole top-layer frames before numbering them (a refused datagram
/// leaves a hole the subscriber NACKs, and its retransmission waits behind the
/// same queue), until fewer than [`BACKLOG_LOW`] wait.
pub const BACKLOG_HIGH: usize = 16 * 1024;
pub const BACKLOG_LOW: usize = 4 * 1024;

/// Video waiting for room in one connection's QUIC queue, oldest first.
#[derive(Debug)]
pub struct SendQueue<T> {
    items: VecDeque<(T, usize)>,
    bytes: usize,
    feed_bytes: usize,
}

impl<T> Default for SendQueue<T> {
    fn default() -> Self {
        SendQueue { items: VecDeque::new(), bytes: 0, feed_bytes: MIN_FEED_BYTES }
    }
}

impl<T> SendQueue<T> {
    /// Queues a video datagram of `len` bytes; gives it back when the queue is
    /// too long for its class (the caller counts it as refused).
    pub fn push(&mut self, class: Class, len: usize, item: T) -> Result<(), T> {
        let limit = match class {
            Class::Audio | Class::Video => VIDEO_QUEUE_LIMIT,
            Class::VideoDroppable => DROPPABLE_QUEUE_LIMIT,
        };
        if self.bytes + len > limit {
            return Err(item);
        }
        self.bytes += len;
        self.items.push_back((item, len));
        Ok(())
    }

    /// The next datagram to hand to quinn, if quinn's queue (`quinn_queued`
    /// bytes) has room for it.
    pub fn pop(&mut self, quinn_queued: usize) -> Option<T> {
        let (_, len) = self.items.front()?;
        // An empty quinn queue always takes one (a datagram larger than the
        // feed size must not wait forever).
        if quinn_queued > 0 && quinn_queued + len > self.feed_bytes {
            return None;
        }
        let (item, len) = self.items.pop_front()?;
        self.bytes -= len;
        Some(item)
    }

    /// Bytes waiting here.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The connection may have `window` bytes in flight per `rtt_us`: resize how
    /// far ahead quinn is fed.
    ///
    /// Never more than one window: a round trip under [`FEED_AHEAD_US`] (a short path
    /// whose bottleneck queue has just drained) says nothing about the path's rate,
    /// and whatever quinn holds beyond its window waits in quinn's first-in-first-out
    /// queue, where a keyframe burst would hold audio back for its whole length.
    pub fn set_capacity(&mut self, window: u64, rtt_us: u64) {
        let ahead = window.saturating_mul(FEED_AHEAD_US) / rtt_us.max(FEED_AHEAD_US);
        self.feed_bytes = usize::try_from(ahead).unwrap_or(usize::MAX).clamp(MIN_FEED_BYTES, MAX_FEED_BYTES);
    }

    /// Bytes quinn's queue may hold before more video is handed to it.
    pub fn feed_bytes(&self) -> usize {
        self.feed_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feeds_quinn_only_a_short_queue() {
        let mut q = SendQueue::default();
        for i in 0..20 {
            q.push(Class::Video, 1200, i).unwrap();
        }
        assert_eq!(q.bytes(), 24_000);
        // quinn holds 4 KiB already: one more 1200-byte datagram would pass 4800.
        assert_eq!(q.pop(4_000), None);
        assert_eq!(q.pop(3_600), Some(0));
        // An empty quinn queue always takes the head, whatever its size.
        assert_eq!(q.pop(0), Some(1));
        assert_eq!(q.bytes(), 18 * 1200);
    }

    #[test]
    fn the_feed_depth_follows_the_window() {
        let mut q: SendQueue<u32> = SendQueue::default();
        // A bottleneck: 9.6 kB per 80 ms round trip = 120 kB/s; 20 ms of it is 2.4 kB, under the floor.
        q.set_capacity(9_600, 80_000);
        assert_eq!(q.feed_bytes(), MIN_FEED_BYTES);
        // 250 kB per 40 ms = 50 Mbit/s: 125 kB in 20 ms.
        q.set_capacity(250_000, 40_000);
        assert_eq!(q.feed_bytes(), 125_000);
        // Loopback: a large window and a tiny RTT; and a zero RTT does not divide by zero.
        q.set_capacity(1 << 20, 200);
        assert_eq!(q.feed_bytes(), MAX_FEED_BYTES);
        q.set_capacity(1 << 20, 0);
        assert_eq!(q.feed_bytes(), MAX_FEED_BYTES);
        // A drained bottleneck on a short path: a small window, a near-zero RTT.
        q.set_capacity(9_600, 100);
        assert_eq!(q.feed_bytes(), 9_600, "at most one window ahead");
    }

    #[test]
    fn droppable_video_is_refused_first() {
        let mut q = SendQueue::default();
        let mut n = 0;
        while q.push(Class::VideoDroppable, 1000, n).is_ok() {
            n += 1;
        }
        assert_eq!(q.bytes(), DROPPABLE_QUEUE_LIMIT / 1000 * 1000);
        assert!(q.push(Class::Video, 1000, n).is_ok(), "base-layer video still fits");
        while q.push(Class::Video, 1000, n).is_ok() {}
        assert!(q.bytes() <= VIDEO_QUEUE_LIMIT);
        assert_eq!(q.push(Class::Video, 1000, 0), Err(0));
    }
}
