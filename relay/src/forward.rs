//! The media I/O edge: one thread owns the [`Sfu`] core, away from the hub
//! thread (whose SQLite commits fsync). Connection tasks hand it received
//! datagrams over a bounded channel; the hub hands it commands over the same
//! channel (so a `published`/`subscribed` reply never overtakes its command).
//! It sends with cloned `quinn::Connection` handles.
//!
//! Send order and queue discipline: each drained batch is sent audio first,
//! then base-layer video, then droppable video. Audio goes straight into
//! quinn's datagram queue when it has room (quinn drops the oldest queued
//! datagram when full, which could be audio). Video waits in the connection's
//! own [`SendQueue`] and is handed to quinn only while quinn's queue is short,
//! so audio never queues behind a video burst. Refused video and long queues
//! raise the connection's thinning level ([`Pressure`]).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::metrics::Metrics;
use crate::sfu::pressure::{Pressure, Sample};
use crate::sfu::send_queue::{SendQueue, BACKLOG_HIGH, BACKLOG_LOW};
use crate::sfu::{Class, ConnId, MediaCmd, Sfu, Transmit};

/// Channel depth between connection tasks and the forwarding thread.
pub const CHANNEL_DEPTH: usize = 16 * 1024;
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Timer resolution of the forwarding core (upstream NACK retries, deferred PLIs):
/// every millisecond here is a millisecond more of a lost packet's recovery.
const TICK_EVERY: Duration = Duration::from_millis(5);
/// How soon the forwarder looks again at quinn's queues while video waits in its own.
const FEED_EVERY: Duration = Duration::from_millis(2);
const MAX_BATCH: usize = 256;

/// What the forwarding thread is told.
pub enum FwdIn {
    /// A new connection (before the hub hears of it).
    Attach { conn: ConnId, connection: quinn::Connection },
    /// One received datagram and when it arrived.
    Datagram { conn: ConnId, data: Bytes, at: Instant },
    /// From the hub.
    Cmd(MediaCmd),
    /// A browser (WebRTC) connection: its datagrams (flow id + RTP/RTCP, as for
    /// QUIC) go to its peer task, which translates them (`crate::web`).
    AttachWeb { conn: ConnId, tx: tokio::sync::mpsc::Sender<Bytes> },
}

pub type FwdSender = SyncSender<FwdIn>;

struct ConnIo {
    connection: quinn::Connection,
    pressure: Pressure,
    refused_video: u64,
    /// Video waiting for room in quinn's queue.
    queue: SendQueue<Queued>,
    /// Told to the forwarding core (see [`Sfu::set_backlogged`]).
    backlogged: bool,
}

/// A video datagram waiting in a [`SendQueue`].
struct Queued {
    data: Bytes,
    /// Counted as forwarded (not a retransmission or feedback) when sent.
    forwarded: bool,
    /// When its source datagram arrived (forwarding delay).
    at: Instant,
}

impl ConnIo {
    fn new(connection: quinn::Connection) -> ConnIo {
        ConnIo {
            connection,
            pressure: Pressure::default(),
            refused_video: 0,
            queue: SendQueue::default(),
            backlogged: false,
        }
    }

    /// Bytes waiting in quinn's datagram queue.
    fn quinn_queued(&self, send_buffer: usize) -> usize {
        send_buffer.saturating_sub(self.connection.datagram_send_buffer_space())
    }

    /// Hands queued video to quinn while its queue is short.
    fn feed(&mut self, send_buffer: usize, m: &crate::metrics::MediaMetrics) {
        while let Some(q) = self.queue.pop(self.quinn_queued(send_buffer)) {
            send(&self.connection, q, m);
        }
    }
}

/// One datagram into quinn's queue, counted.
fn send(connection: &quinn::Connection, q: Queued, m: &crate::metrics::MediaMetrics) {
    let len = q.data.len();
    match connection.send_datagram(q.data) {
        Ok(()) if q.forwarded => {
            m.forwarded_packets.fetch_add(1, Relaxed);
            m.forwarded_bytes.fetch_add(len as u64, Relaxed);
            m.delay(q.at.elapsed().as_micros() as u64);
        }
        Ok(()) => {}
        Err(err) => {
            // Too large for this path (the publisher ignored max_datagram_size), or closed.
            m.refused_datagrams.fetch_add(1, Relaxed);
            tracing::debug!(len, max = ?connection.max_datagram_size(), %err, "datagram not sent");
        }
    }
}

/// Runs until every sender is gone. Call on a dedicated thread.
pub fn run_forwarder(rx: Receiver<FwdIn>, metrics: Arc<Metrics>, send_buffer: usize) {
    let mut fwd = Forwarder {
        sfu: Sfu::new(),
        conns: HashMap::new(),
        web: HashMap::new(),
        metrics,
        send_buffer,
        start: Instant::now(),
        out: Vec::with_capacity(1024),
        batch: Vec::with_capacity(4096),
        waiting: Vec::new(),
    };
    let mut last_sample = Instant::now();
    let mut last_tick = Instant::now();
    loop {
        let wait = if fwd.waiting.is_empty() { TICK_EVERY } else { FEED_EVERY };
        match rx.recv_timeout(wait) {
            Ok(input) => {
                fwd.input(input);
                for _ in 0..MAX_BATCH {
                    match rx.try_recv() {
                        Ok(input) => fwd.input(input),
                        Err(_) => break,
                    }
                }
                fwd.flush();
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        fwd.feed();
        if last_tick.elapsed() >= TICK_EVERY {
            last_tick = Instant::now();
            fwd.tick();
        }
        if last_sample.elapsed() >= SAMPLE_EVERY {
            last_sample = Instant::now();
            fwd.sample();
        }
    }
}

struct Forwarder {
    sfu: Sfu,
    conns: HashMap<ConnId, ConnIo>,
    /// Browser connections (second transport kind).
    web: HashMap<ConnId, tokio::sync::mpsc::Sender<Bytes>>,
    metrics: Arc<Metrics>,
    send_buffer: usize,
    start: Instant,
    out: Vec<Transmit>,
    /// Datagrams of the current batch with their arrival time.
    batch: Vec<(Transmit, Instant)>,
    /// Connections with video in their own queue.
    waiting: Vec<ConnId>,
}

impl Forwarder {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn input(&mut self, input: FwdIn) {
        let now = self.now_us();
        let at = match input {
            FwdIn::Attach { conn, connection } => {
                tracing::debug!(conn, max_datagram = ?connection.max_datagram_size(), "media connection");
                self.conns.insert(conn, ConnIo::new(connection));
                return;
            }
            FwdIn::AttachWeb { conn, tx } => {
                self.web.insert(conn, tx);
                return;
            }
            FwdIn::Cmd(cmd) => {
                if let MediaCmd::ConnClosed { conn } = &cmd {
                    self.conns.remove(conn);
                    self.web.remove(conn);
                }
                self.sfu.command(now, cmd, &mut self.out);
                Instant::now()
            }
            FwdIn::Datagram { conn, data, at } => {
                self.sfu.datagram(now, conn, data, &mut self.out);
                at
            }
        };
        self.batch.extend(self.out.drain(..).map(|t| (t, at)));
    }

    /// Sends the batch: audio first, then base video, then droppable video.
    fn flush(&mut self) {
        let c = self.sfu.counters();
        let m = &self.metrics.media;
        m.received_packets.store(c.received, Relaxed);
        m.retransmitted_packets.store(c.retransmitted, Relaxed);
        m.plis_sent.store(c.plis_sent, Relaxed);
        m.nack_misses.store(c.nack_misses, Relaxed);
        m.upstream_nacks.store(c.upstream_nacks, Relaxed);
        m.dropped_thinning.store(c.dropped_thinning, Relaxed);
        m.reports_sent.store(c.reports_sent, Relaxed);
        m.reports_received.store(c.reports_received, Relaxed);
        if self.batch.is_empty() {
            return;
        }
        self.batch.sort_by_key(|(t, _)| t.class);
        for (t, at) in self.batch.drain(..) {
            if let Some(web) = self.web.get(&t.conn) {
                let (len, forwarded) = (t.data.len(), t.forwarded);
                if web.try_send(t.data).is_err() {
                    m.refused_datagrams.fetch_add(1, Relaxed);
                } else if forwarded {
                    m.forwarded_packets.fetch_add(1, Relaxed);
                    m.forwarded_bytes.fetch_add(len as u64, Relaxed);
                    m.delay(at.elapsed().as_micros() as u64);
                }
                continue;
            }
            let Some(io) = self.conns.get_mut(&t.conn) else { continue };
            let len = t.data.len();
            let q = Queued { data: t.data, forwarded: t.forwarded, at };
            if t.class == Class::Audio {
                if io.connection.datagram_send_buffer_space() >= len {
                    send(&io.connection, q, m);
                } else {
                    tracing::debug!(conn = t.conn, "audio or feedback refused: quinn's queue is full");
                    m.refused_datagrams.fetch_add(1, Relaxed);
                }
                continue;
            }
            if io.queue.is_empty() {
                self.waiting.push(t.conn);
            }
            if io.queue.push(t.class, len, q).is_err() {
                m.refused_datagrams.fetch_add(1, Relaxed);
                io.refused_video += 1;
            }
        }
        self.feed();
    }

    /// Hands waiting video to quinn on every connection that has some, and tells
    /// the forwarding core which connections are backlogged.
    fn feed(&mut self) {
        let m = &self.metrics.media;
        let (conns, send_buffer, sfu) = (&mut self.conns, self.send_buffer, &mut self.sfu);
        self.waiting.retain(|conn| {
            let Some(io) = conns.get_mut(conn) else { return false };
            io.feed(send_buffer, m);
            let bytes = io.queue.bytes();
            if bytes > BACKLOG_HIGH && !io.backlogged || bytes < BACKLOG_LOW && io.backlogged {
                io.backlogged = !io.backlogged;
                tracing::debug!(conn, bytes, on = io.backlogged, "subscriber backlog");
                sfu.set_backlogged(*conn, io.backlogged);
            }
            !io.queue.is_empty()
        });
    }

    /// Looks at every connection's queue and sets its thinning level.
    /// Timers of the forwarding core (upstream NACK retries).
    fn tick(&mut self) {
        let now = self.now_us();
        self.sfu.tick(now, &mut self.out);
        if !self.out.is_empty() {
            let at = Instant::now();
            self.batch.extend(self.out.drain(..).map(|t| (t, at)));
            self.flush();
        }
    }

    fn sample(&mut self) {
        let now = self.now_us();
        for (conn, io) in &mut self.conns {
            let path = io.connection.stats().path;
            io.queue.set_capacity(path.cwnd, path.rtt.as_micros() as u64);
            self.sfu.set_rtt(*conn, path.rtt.as_micros() as u64);
            let queued = io.quinn_queued(self.send_buffer) + io.queue.bytes();
            let before = io.pressure.level();
            let level =
                io.pressure.sample(now, Sample { queued_bytes: queued, video_refused: io.refused_video });
            if level != before || io.refused_video > 0 {
                tracing::debug!(
                    conn,
                    level,
                    queued,
                    refused = io.refused_video,
                    cwnd = path.cwnd,
                    rtt_ms = path.rtt.as_millis() as u64,
                    "subscriber pressure"
                );
            }
            io.refused_video = 0;
            self.sfu.set_level(*conn, level);
        }
    }
}

/// Reads a connection's datagrams into the forwarding thread until it closes.
pub async fn read_datagrams(
    conn: ConnId,
    connection: quinn::Connection,
    tx: FwdSender,
    gate: crate::outbox::MediaGate,
    metrics: Arc<Metrics>,
) {
    while let Ok(data) = connection.read_datagram().await {
        if !gate.open() {
            // Not in a meeting (yet): its datagrams cost the forwarder nothing.
            metrics.media.ignored_datagrams.fetch_add(1, Relaxed);
            continue;
        }
        match tx.try_send(FwdIn::Datagram { conn, data, at: Instant::now() }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => tracing::debug!(conn, "forwarder busy; datagram dropped"),
            Err(TrySendError::Disconnected(_)) => break,
        }
    }
}
