//! The selective forwarding core, sans-IO: datagrams and commands in (with an
//! explicit `now` in µs), datagrams to send out. No sockets, no clocks, no
//! decoding: it reads RTP headers and the video-layer extension only.
//!
//! * Tracks (one per publication) know their publisher flow, kind, simulcast
//!   SSRCs, whether the publisher's media state lets them through, a cache of
//!   recent video packets per encoding and when the publisher was last asked
//!   for a keyframe.
//! * Subscriptions (a connection's flow for one track) rewrite the SSRC to the
//!   track's first encoding and the sequence ([`rewrite::SeqRewriter`]); they
//!   start and switch encodings only at a keyframe's first packet.
//! * Feedback is terminated here: NACKs are answered from the cache, PLIs
//!   become one rate-limited PLI per track encoding to the publisher,
//!   subscribers' receiver reports stop here, and the relay sends publishers its
//!   own receiver reports of what reached it (loss and jitter of their uplink,
//!   LSR/DLSR for their round trip), once a second per track.
//! * Thinning follows the subscriber connection's level ([`pressure`]): 1 drops
//!   the top temporal layer (decided per frame), 2 also moves to the lowest
//!   encoding. Audio is never thinned.

pub mod cache;
pub mod pressure;
pub mod rewrite;
pub mod send_queue;

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use clinicmeet_protocol::datagram;
use clinicmeet_protocol::{FlowId, TrackId, TrackKind};
use clinicmeet_rtp::ext::{id as ext_id, VideoLayer};
use clinicmeet_rtp::rtcp::{self, Pli, ReceiverReporter, RtcpPacket, SenderReport};
use clinicmeet_rtp::{
    is_rtcp, RtpView, SeqUnwrapper, AUDIO_CLOCK_RATE, NACK_COPY_DELAY_US, VIDEO_CLOCK_RATE,
};

use cache::PacketCache;
use rewrite::SeqRewriter;

pub type ConnId = u64;

/// Shortest interval between two PLIs to a publisher for one encoding. A request
/// inside it is not dropped: it waits (see [`Encoding::pli_wanted`]) and is sent when
/// the interval is over, unless a keyframe arrives first.
pub const PLI_INTERVAL_US: u64 = 300_000;
/// SSRC the relay uses as the sender of its RTCP feedback.
pub const RELAY_SSRC: u32 = 0x5246_4c59;
/// Most sequence numbers answered from one NACK packet.
const MAX_NACK_ITEMS: usize = 128;

/// What the signaling side tells the forwarding core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaCmd {
    AddTrack {
        track_id: TrackId,
        conn: ConnId,
        flow: FlowId,
        kind: TrackKind,
        /// SSRC and temporal layer count of each encoding, lowest first.
        encodings: Vec<(u32, u8)>,
        /// The publisher's media state lets this kind through.
        enabled: bool,
    },
    RemoveTrack {
        track_id: TrackId,
    },
    SetEnabled {
        track_id: TrackId,
        enabled: bool,
    },
    Subscribe {
        conn: ConnId,
        flow: FlowId,
        track_id: TrackId,
        max_encoding: Option<u8>,
    },
    Unsubscribe {
        conn: ConnId,
        track_id: TrackId,
    },
    /// The connection is gone: its publications and subscriptions end.
    ConnClosed {
        conn: ConnId,
    },
}

/// Sending priority of a datagram (the I/O edge queues by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// Audio and RTCP: always first, never thinned.
    Audio,
    /// Video a decoder needs (base layer, retransmissions).
    Video,
    /// Top temporal layer: first to go when the queue fills.
    VideoDroppable,
}

/// One datagram to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    pub conn: ConnId,
    pub class: Class,
    pub data: Bytes,
    /// The packet is a forwarded publisher packet (counts for delay statistics).
    pub forwarded: bool,
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub received: u64,
    pub forwarded: u64,
    pub dropped_thinning: u64,
    pub dropped_muted: u64,
    pub retransmitted: u64,
    pub nack_misses: u64,
    /// Sequence numbers the relay NACKed to publishers (lost between them and the relay).
    pub upstream_nacks: u64,
    pub plis_sent: u64,
    /// Receiver reports sent to publishers / received from subscribers (and kept here).
    pub reports_sent: u64,
    pub reports_received: u64,
    pub malformed: u64,
}

#[derive(Debug)]
struct Encoding {
    ssrc: u32,
    seq: SeqUnwrapper,
    cache: PacketCache,
    last_pli: Option<u64>,
    /// A keyframe was asked for at this time and no keyframe has arrived since:
    /// the PLI goes out as soon as the rate limit allows.
    pli_wanted: Option<u64>,
    /// Highest original sequence received (extended).
    highest: Option<u64>,
    /// Packets lost between the publisher and the relay, being NACKed upstream.
    missing: std::collections::VecDeque<Missing>,
}

/// A video packet lost upstream: the relay asks the publisher for it again (its
/// subscribers' NACKs for it can only be answered once it is in the cache).
#[derive(Debug, Clone, Copy)]
struct Missing {
    ext: u64,
    since: u64,
    last_nack: u64,
    tries: u8,
    /// When the copy of the last NACK for it goes out.
    copy_due: Option<u64>,
}

/// Upstream NACK retry interval while the publisher's round-trip time is unknown;
/// once known, a retry follows one RTT plus [`UPSTREAM_RETRY_MARGIN_US`].
pub const UPSTREAM_NACK_RETRY_US: u64 = 120_000;
/// Slack over the RTT before a NACK counts as unanswered (jitter of the path).
pub const UPSTREAM_RETRY_MARGIN_US: u64 = 20_000;
/// A gap may be reordering: the first NACK waits this long for the packet.
pub const UPSTREAM_REORDER_WAIT_US: u64 = 30_000;
const UPSTREAM_NACK_TRIES: u8 = 6;
const UPSTREAM_NACK_GIVE_UP_US: u64 = 600_000;
/// A gap wider than this is a restart or an outage: not NACKed.
const UPSTREAM_MAX_GAP: u64 = 64;
/// Missing packets tracked per encoding at most.
const UPSTREAM_MAX_MISSING: usize = 256;

#[derive(Debug)]
struct Subscription {
    conn: ConnId,
    flow: FlowId,
    max_encoding: Option<u8>,
    rw: SeqRewriter,
    /// Copy of the connection's thinning level.
    level: u8,
    /// Dropping the current frame (decided at its first packet).
    thin_frame: bool,
    /// The connection's own send queue is backlogged: top-layer frames are left out.
    backlogged: bool,
    /// Recent retransmissions (rewritten number, time): on a congested connection
    /// a NACK's copy is answered once, not twice.
    recent_rtx: [(u16, u64); RECENT_RTX],
    recent_next: usize,
}

/// Retransmissions remembered per subscription (see [`Subscription::recent_rtx`]).
const RECENT_RTX: usize = 32;
/// A second request for the same packet within this time is a NACK's copy.
const RTX_COPY_WINDOW_US: u64 = 20_000;

impl Subscription {
    /// Whether to resend `seq` now: always on an uncongested connection (each copy
    /// of a NACK buys a retransmission), once per copy window under pressure.
    fn rtx_allowed(&mut self, seq: u16, now: u64) -> bool {
        if self.level > 0
            && self.recent_rtx.iter().any(|&(s, t)| s == seq && now.saturating_sub(t) < RTX_COPY_WINDOW_US)
        {
            return false;
        }
        self.recent_rtx[self.recent_next % RECENT_RTX] = (seq, now);
        self.recent_next = self.recent_next.wrapping_add(1);
        true
    }
}

#[derive(Debug)]
struct Track {
    conn: ConnId,
    flow: FlowId,
    /// Round-trip time of the publisher's connection (upstream NACK retries).
    rtt_us: Option<u64>,
    kind: TrackKind,
    enabled: bool,
    encodings: Vec<Encoding>,
    subs: Vec<Subscription>,
    /// The relay's receiver reports to the publisher.
    reporter: ReceiverReporter,
}

impl Track {
    fn is_video(&self) -> bool {
        self.kind != TrackKind::Audio
    }

    fn out_ssrc(&self) -> u32 {
        self.encodings.first().map_or(0, |e| e.ssrc)
    }

    fn encoding_of(&self, ssrc: u32) -> Option<usize> {
        self.encodings.iter().position(|e| e.ssrc == ssrc)
    }

    /// The encoding a subscription should receive at its level.
    fn target(&self, sub: &Subscription) -> u8 {
        let top = self.encodings.len().saturating_sub(1) as u8;
        let wanted = sub.max_encoding.unwrap_or(top).min(top);
        if sub.level >= pressure::MAX_LEVEL {
            0
        } else {
            wanted
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Publish(TrackId),
    Subscribe(TrackId),
}

/// The forwarding state of the whole relay.
#[derive(Debug)]
pub struct Sfu {
    tracks: HashMap<TrackId, Track>,
    flows: HashMap<(ConnId, FlowId), Role>,
    levels: HashMap<ConnId, u8>,
    backlogged: std::collections::HashSet<ConnId>,
    arena: BytesMut,
    next_seq_seed: u16,
    counters: Counters,
}

impl Default for Sfu {
    fn default() -> Self {
        Sfu::new()
    }
}

const ARENA: usize = 64 * 1024;

impl Sfu {
    pub fn new() -> Sfu {
        Sfu {
            tracks: HashMap::new(),
            flows: HashMap::new(),
            levels: HashMap::new(),
            backlogged: std::collections::HashSet::new(),
            arena: BytesMut::with_capacity(ARENA),
            next_seq_seed: 0x3a5c,
            counters: Counters::default(),
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Subscriptions in place (forwarded streams).
    pub fn subscription_count(&self) -> usize {
        self.tracks.values().map(|t| t.subs.len()).sum()
    }

    pub fn track_count(&self) -> usize {
        self.tracks.len()
    }

    /// Marks a subscriber connection's own send queue backlogged (or clear): while it
    /// is, whole top-temporal-layer frames are left out for it before they are numbered,
    /// so what its queue refuses is never a hole the subscriber waits for.
    pub fn set_backlogged(&mut self, conn: ConnId, on: bool) {
        let changed = if on { self.backlogged.insert(conn) } else { self.backlogged.remove(&conn) };
        if !changed {
            return;
        }
        for t in self.tracks.values_mut() {
            for s in t.subs.iter_mut().filter(|s| s.conn == conn) {
                s.backlogged = on;
            }
        }
    }

    /// Sets a subscriber connection's thinning level (see [`pressure`]).
    pub fn set_level(&mut self, conn: ConnId, level: u8) {
        let old = self.levels.insert(conn, level);
        if old == Some(level) {
            return;
        }
        for t in self.tracks.values_mut() {
            for s in t.subs.iter_mut().filter(|s| s.conn == conn) {
                s.level = level;
            }
        }
    }

    /// The measured round-trip time of a connection (sets its tracks' upstream NACK timers).
    pub fn set_rtt(&mut self, conn: ConnId, rtt_us: u64) {
        for t in self.tracks.values_mut().filter(|t| t.conn == conn) {
            t.rtt_us = Some(rtt_us);
        }
    }

    /// Applies a command from the signaling side.
    pub fn command(&mut self, now: u64, cmd: MediaCmd, out: &mut Vec<Transmit>) {
        match cmd {
            MediaCmd::AddTrack { track_id, conn, flow, kind, encodings, enabled } => {
                self.remove_track(track_id);
                let encodings = encodings
                    .into_iter()
                    .map(|(ssrc, _layers)| Encoding {
                        ssrc,
                        seq: SeqUnwrapper::default(),
                        cache: PacketCache::default(),
                        last_pli: None,
                        pli_wanted: None,
                        highest: None,
                        missing: std::collections::VecDeque::new(),
                    })
                    .collect();
                self.flows.insert((conn, flow), Role::Publish(track_id));
                let rate = if kind == TrackKind::Audio { AUDIO_CLOCK_RATE } else { VIDEO_CLOCK_RATE };
                let reporter = ReceiverReporter::new(RELAY_SSRC, rate);
                self.tracks.insert(
                    track_id,
                    Track { conn, flow, rtt_us: None, kind, enabled, encodings, subs: Vec::new(), reporter },
                );
            }
            MediaCmd::RemoveTrack { track_id } => self.remove_track(track_id),
            MediaCmd::SetEnabled { track_id, enabled } => {
                let Some(t) = self.tracks.get_mut(&track_id) else { return };
                if t.enabled == enabled {
                    return;
                }
                t.enabled = enabled;
                for s in &mut t.subs {
                    s.rw.stop();
                }
                if enabled && t.is_video() {
                    let targets: Vec<u8> = t.subs.iter().map(|s| t.target(s)).collect();
                    for enc in targets {
                        Self::keyframe(&mut self.counters, &mut self.arena, t, enc, now, out);
                    }
                }
            }
            MediaCmd::Subscribe { conn, flow, track_id, max_encoding } => {
                let level = self.levels.get(&conn).copied().unwrap_or(0);
                let Some(t) = self.tracks.get_mut(&track_id) else { return };
                if let Some(s) = t.subs.iter_mut().find(|s| s.conn == conn) {
                    s.max_encoding = max_encoding;
                    return;
                }
                self.next_seq_seed = self.next_seq_seed.wrapping_mul(31).wrapping_add(7919);
                let sub = Subscription {
                    conn,
                    flow,
                    max_encoding,
                    rw: SeqRewriter::new(self.next_seq_seed),
                    level,
                    thin_frame: false,
                    backlogged: self.backlogged.contains(&conn),
                    recent_rtx: [(0, 0); RECENT_RTX],
                    recent_next: 0,
                };
                let enc = t.target(&sub);
                t.subs.push(sub);
                self.flows.insert((conn, flow), Role::Subscribe(track_id));
                if t.is_video() && t.enabled {
                    Self::keyframe(&mut self.counters, &mut self.arena, t, enc, now, out);
                }
            }
            MediaCmd::Unsubscribe { conn, track_id } => {
                let Some(t) = self.tracks.get_mut(&track_id) else { return };
                if let Some(i) = t.subs.iter().position(|s| s.conn == conn) {
                    let s = t.subs.swap_remove(i);
                    self.flows.remove(&(conn, s.flow));
                }
            }
            MediaCmd::ConnClosed { conn } => {
                let mine: Vec<TrackId> =
                    self.tracks.iter().filter(|(_, t)| t.conn == conn).map(|(id, _)| *id).collect();
                for id in mine {
                    self.remove_track(id);
                }
                for t in self.tracks.values_mut() {
                    t.subs.retain(|s| s.conn != conn);
                }
                self.flows.retain(|(c, _), _| *c != conn);
                self.levels.remove(&conn);
                self.backlogged.remove(&conn);
            }
        }
    }

    fn remove_track(&mut self, track_id: TrackId) {
        if let Some(t) = self.tracks.remove(&track_id) {
            self.flows.remove(&(t.conn, t.flow));
            for s in t.subs {
                self.flows.remove(&(s.conn, s.flow));
            }
        }
    }

    /// One datagram from a connection (flow id prefix + RTP or RTCP).
    pub fn datagram(&mut self, now: u64, conn: ConnId, data: Bytes, out: &mut Vec<Transmit>) {
        let Some((flow, packet)) = datagram::decode(&data) else {
            self.counters.malformed += 1;
            return;
        };
        let offset = data.len() - packet.len();
        let Some(role) = self.flows.get(&(conn, flow)).copied() else {
            self.counters.malformed += 1;
            return;
        };
        let rtcp = is_rtcp(packet);
        match role {
            Role::Publish(id) if rtcp => self.publisher_rtcp(now, id, packet, out),
            Role::Publish(id) => self.publisher_rtp(now, id, data.slice(offset..), out),
            Role::Subscribe(id) if rtcp => self.subscriber_rtcp(now, id, conn, packet, out),
            Role::Subscribe(_) => self.counters.malformed += 1,
        }
    }

    fn publisher_rtp(&mut self, now: u64, id: TrackId, packet: Bytes, out: &mut Vec<Transmit>) {
        let Some(t) = self.tracks.get_mut(&id) else { return };
        let Ok(view) = RtpView::parse(&packet) else {
            self.counters.malformed += 1;
            return;
        };
        let Some(enc) = t.encoding_of(view.ssrc) else {
            self.counters.malformed += 1;
            return;
        };
        self.counters.received += 1;
        t.reporter.on_rtp(view.ssrc, view.sequence, view.timestamp, now);
        if !t.enabled {
            self.counters.dropped_muted += 1;
            return;
        }
        let video = t.is_video();
        let layer =
            if video { view.extension(ext_id::VIDEO_LAYER).and_then(VideoLayer::from_bytes) } else { None };
        let Some(e) = t.encodings.get_mut(enc) else { return };
        let ext = e.seq.unwrap(view.sequence);
        if video {
            e.cache.insert(ext, packet.clone());
            let lost = Self::track_upstream(e, ext, now);
            if !lost.is_empty() {
                self.counters.upstream_nacks += lost.len() as u64;
                let nack = RtcpPacket::Nack(rtcp::Nack { sender_ssrc: RELAY_SSRC, media_ssrc: e.ssrc, lost });
                let data = Self::prefixed(&mut self.arena, t.flow, &nack.to_bytes());
                out.push(Transmit { conn: t.conn, class: Class::Audio, data, forwarded: false });
            }
        }
        if layer.is_some_and(|l| l.keyframe && l.start_of_frame) {
            // Whoever asked for a keyframe before now gets this one.
            if e.pli_wanted.take().is_some() {
                tracing::debug!(ssrc = view.ssrc, "keyframe answers a waiting request");
            }
            tracing::debug!(ssrc = view.ssrc, seq = view.sequence, "keyframe from publisher");
        }
        let single = t.encodings.len() == 1;
        // Without a layer extension, any packet may start a single-encoding stream.
        let starts = layer.map_or(single || !video, |l| l.keyframe && l.start_of_frame) || !video;
        let droppable = layer.is_some_and(|l| l.is_droppable());
        let first_of_frame = layer.is_none_or(|l| l.start_of_frame);
        let out_ssrc = t.out_ssrc();
        let class = match (video, droppable) {
            (false, _) => Class::Audio,
            (true, false) => Class::Video,
            (true, true) => Class::VideoDroppable,
        };
        let enc8 = enc as u8;
        let mut want_keyframe: Option<u8> = None;
        for i in 0..t.subs.len() {
            let target = t.target(&t.subs[i]);
            let s = &mut t.subs[i];
            let seq = if enc8 == target && starts && (!s.rw.is_started() || s.rw.encoding() != enc8) {
                s.thin_frame = false;
                Some(s.rw.start(enc8, ext))
            } else if s.rw.is_started() && s.rw.encoding() == enc8 {
                if first_of_frame {
                    // Level 1 drops the top temporal layer; level 2 moves to the low
                    // encoding and keeps its full frame rate (a single encoding keeps
                    // dropping the top layer instead).
                    s.thin_frame = video && (s.level == 1 || (s.level >= 2 && single) || s.backlogged);
                }
                let drop = s.thin_frame && droppable;
                if drop {
                    self.counters.dropped_thinning += 1;
                }
                s.rw.packet(ext, drop)
            } else {
                None
            };
            if video && (!s.rw.is_started() || s.rw.encoding() != target) {
                want_keyframe.get_or_insert(target);
            }
            if let Some(seq) = seq {
                let d = Self::rewrite(&mut self.arena, s.flow, &packet, seq, out_ssrc);
                self.counters.forwarded += 1;
                out.push(Transmit { conn: s.conn, class, data: d, forwarded: true });
            }
        }
        if let Some(k) = want_keyframe {
            Self::keyframe(&mut self.counters, &mut self.arena, t, k, now, out);
        }
    }

    /// Notes an upstream packet: a new gap is NACKed from [`Sfu::tick`] once it outlasts
    /// reordering. (Returns what to NACK at once: nothing, kept for a zero reorder wait.)
    fn track_upstream(e: &mut Encoding, ext: u64, now: u64) -> Vec<u16> {
        let lost = Vec::new();
        match e.highest {
            Some(h) if ext > h => {
                let gap = ext - h - 1;
                if gap > 0 && gap <= UPSTREAM_MAX_GAP {
                    for m in h + 1..ext {
                        if e.missing.len() >= UPSTREAM_MAX_MISSING {
                            e.missing.pop_front();
                        }
                        e.missing.push_back(Missing {
                            ext: m,
                            since: now,
                            last_nack: now,
                            tries: 0,
                            copy_due: None,
                        });
                    }
                }
                e.highest = Some(ext);
            }
            Some(_) => e.missing.retain(|m| {
                if m.ext == ext {
                    tracing::debug!(
                        ssrc = e.ssrc,
                        seq = ext as u16,
                        tries = m.tries,
                        age_ms = now.saturating_sub(m.since) / 1000,
                        "upstream packet recovered"
                    );
                }
                m.ext != ext
            }),
            None => e.highest = Some(ext),
        }
        lost
    }

    /// Timers: repeats upstream NACKs for packets still missing (a packet given up
    /// costs the subscribers a keyframe, so one is asked for at once), sends PLIs
    /// that waited for the rate limit and the receiver reports that are due. Call
    /// every few milliseconds.
    pub fn tick(&mut self, now: u64, out: &mut Vec<Transmit>) {
        for t in self.tracks.values_mut() {
            if let Some(rr) = t.reporter.poll(now) {
                self.counters.reports_sent += 1;
                let data =
                    Self::prefixed(&mut self.arena, t.flow, &RtcpPacket::ReceiverReport(rr).to_bytes());
                out.push(Transmit { conn: t.conn, class: Class::Audio, data, forwarded: false });
            }
        }
        for t in self.tracks.values_mut().filter(|t| t.kind != TrackKind::Audio) {
            let retry = t
                .rtt_us
                .map_or(UPSTREAM_NACK_RETRY_US, |r| (r + UPSTREAM_RETRY_MARGIN_US).clamp(40_000, 300_000));
            for enc in 0..t.encodings.len() {
                let Some(e) = t.encodings.get_mut(enc) else { continue };
                let mut given_up = false;
                let mut lost = Vec::new();
                let mut copies = Vec::new();
                if !e.missing.is_empty() {
                    e.missing.retain(|m| {
                        let keep = now.saturating_sub(m.since) < UPSTREAM_NACK_GIVE_UP_US
                            && m.tries < UPSTREAM_NACK_TRIES
                            || now.saturating_sub(m.last_nack) < retry;
                        if !keep {
                            given_up = true;
                            tracing::debug!(
                                ssrc = e.ssrc,
                                seq = m.ext as u16,
                                tries = m.tries,
                                "upstream packet given up"
                            );
                        }
                        keep
                    });
                    for m in e.missing.iter_mut() {
                        if m.copy_due.is_some_and(|t| now >= t) {
                            m.copy_due = None;
                            copies.push(m.ext as u16);
                        }
                        let wait = if m.tries == 0 { UPSTREAM_REORDER_WAIT_US } else { retry };
                        if now.saturating_sub(m.last_nack) >= wait
                            && m.tries < UPSTREAM_NACK_TRIES
                            && now.saturating_sub(m.since) < UPSTREAM_NACK_GIVE_UP_US
                        {
                            m.last_nack = now;
                            m.tries += 1;
                            m.copy_due = Some(now + NACK_COPY_DELAY_US);
                            lost.push(m.ext as u16);
                        }
                    }
                }
                let wanted = given_up || e.pli_wanted.is_some();
                if !lost.is_empty() {
                    self.counters.upstream_nacks += lost.len() as u64;
                    tracing::debug!(ssrc = e.ssrc, seqs = ?lost, "upstream nack");
                }
                for seqs in [lost, copies].into_iter().filter(|l| !l.is_empty()) {
                    let nack = RtcpPacket::Nack(rtcp::Nack {
                        sender_ssrc: RELAY_SSRC,
                        media_ssrc: e.ssrc,
                        lost: seqs,
                    });
                    let data = Self::prefixed(&mut self.arena, t.flow, &nack.to_bytes());
                    out.push(Transmit { conn: t.conn, class: Class::Audio, data, forwarded: false });
                }
                if wanted {
                    Self::keyframe(&mut self.counters, &mut self.arena, t, enc as u8, now, out);
                }
            }
        }
    }

    /// Copies `packet` behind `flow`'s prefix with a new sequence number and SSRC.
    fn rewrite(arena: &mut BytesMut, flow: FlowId, packet: &[u8], seq: u16, ssrc: u32) -> Bytes {
        Self::prefixed_with(arena, flow, packet, |h| {
            // The packet parsed as RTP, so its fixed header is there.
            if let Some(h) = h.get_mut(..12) {
                h[2..4].copy_from_slice(&seq.to_be_bytes());
                h[8..12].copy_from_slice(&ssrc.to_be_bytes());
            }
        })
    }

    /// A keyframe request for encoding `enc`: a PLI to the publisher now, or as soon
    /// as the rate limit allows (a keyframe arriving meanwhile answers it).
    fn keyframe(
        counters: &mut Counters,
        arena: &mut BytesMut,
        t: &mut Track,
        enc: u8,
        now: u64,
        out: &mut Vec<Transmit>,
    ) {
        let (conn, flow) = (t.conn, t.flow);
        let Some(e) = t.encodings.get_mut(usize::from(enc)) else { return };
        e.pli_wanted.get_or_insert(now);
        if e.last_pli.is_some_and(|last| now.saturating_sub(last) < PLI_INTERVAL_US) {
            return; // sent from `tick` when the interval is over, unless a keyframe comes first
        }
        tracing::debug!(ssrc = e.ssrc, "pli to publisher");
        e.last_pli = Some(now);
        e.pli_wanted = None;
        counters.plis_sent += 1;
        let pli = RtcpPacket::Pli(Pli { sender_ssrc: RELAY_SSRC, media_ssrc: e.ssrc }).to_bytes();
        out.push(Transmit {
            conn,
            class: Class::Audio,
            data: Self::prefixed(arena, flow, &pli),
            forwarded: false,
        });
    }

    /// Copies `packet` behind `flow`'s prefix, unchanged.
    fn prefixed(arena: &mut BytesMut, flow: FlowId, packet: &[u8]) -> Bytes {
        Self::prefixed_with(arena, flow, packet, |_| {})
    }

    /// Copies `packet` behind `flow`'s prefix into the arena, lets `patch` edit the
    /// copy of the packet, and cuts it off as one datagram.
    fn prefixed_with(
        arena: &mut BytesMut,
        flow: FlowId,
        packet: &[u8],
        patch: impl FnOnce(&mut [u8]),
    ) -> Bytes {
        let need = datagram::flow_id_len(flow) + packet.len();
        if arena.capacity() < need {
            arena.reserve(ARENA.max(need));
        }
        let mut prefix = [0u8; 8];
        let n = datagram::write_flow_id(flow, &mut prefix);
        arena.put_slice(&prefix[..n]);
        arena.put_slice(packet);
        if let Some(copy) = arena.get_mut(n..) {
            patch(copy);
        }
        arena.split().freeze()
    }

    /// Sender reports go on to subscriptions receiving that encoding, SSRC rewritten
    /// (and feed the relay's own receiver reports).
    fn publisher_rtcp(&mut self, now: u64, id: TrackId, packet: &[u8], out: &mut Vec<Transmit>) {
        let Some(t) = self.tracks.get_mut(&id) else { return };
        let Ok(packets) = rtcp::parse_compound(packet) else {
            self.counters.malformed += 1;
            return;
        };
        for p in packets {
            let RtcpPacket::SenderReport(sr) = p else { continue };
            let Some(enc) = t.encoding_of(sr.ssrc) else { continue };
            t.reporter.on_sender_report(&sr, now);
            let rewritten =
                RtcpPacket::SenderReport(SenderReport { ssrc: t.out_ssrc(), reports: Vec::new(), ..sr })
                    .to_bytes();
            for s in t.subs.iter().filter(|s| s.rw.is_started() && usize::from(s.rw.encoding()) == enc) {
                let data = Self::prefixed(&mut self.arena, s.flow, &rewritten);
                out.push(Transmit { conn: s.conn, class: Class::Audio, data, forwarded: false });
            }
        }
    }

    /// NACKs answered from the cache; PLIs become one rate-limited PLI upstream.
    fn subscriber_rtcp(
        &mut self,
        now: u64,
        id: TrackId,
        conn: ConnId,
        packet: &[u8],
        out: &mut Vec<Transmit>,
    ) {
        let Some(t) = self.tracks.get_mut(&id) else { return };
        let Ok(packets) = rtcp::parse_compound(packet) else {
            self.counters.malformed += 1;
            return;
        };
        let Some(si) = t.subs.iter().position(|s| s.conn == conn) else { return };
        let out_ssrc = t.out_ssrc();
        for p in packets {
            match p {
                RtcpPacket::Nack(n) => {
                    for &seq in n.lost.iter().take(MAX_NACK_ITEMS) {
                        if !t.subs[si].rtx_allowed(seq, now) {
                            continue;
                        }
                        let s = &t.subs[si];
                        let cached =
                            s.rw.original(seq)
                                .and_then(|(enc, ext)| t.encodings.get(usize::from(enc))?.cache.get(ext));
                        match cached {
                            Some(pkt) => {
                                tracing::trace!(conn, seq, "retransmission");
                                let d = Self::rewrite(&mut self.arena, s.flow, pkt, seq, out_ssrc);
                                self.counters.retransmitted += 1;
                                out.push(Transmit { conn, class: Class::Video, data: d, forwarded: false });
                            }
                            None => {
                                tracing::debug!(conn, seq, "nack cache miss");
                                self.counters.nack_misses += 1
                            }
                        }
                    }
                }
                RtcpPacket::Pli(_) if t.is_video() => {
                    let s = &t.subs[si];
                    tracing::debug!(conn, "pli from subscriber");
                    let enc = if s.rw.is_started() { s.rw.encoding() } else { t.target(s) };
                    Self::keyframe(&mut self.counters, &mut self.arena, t, enc, now, out);
                }
                RtcpPacket::ReceiverReport(rr) => {
                    // Terminated: the publisher hears the relay's reports, not each subscriber's.
                    self.counters.reports_received += 1;
                    if let Some(worst) = rr.reports.iter().map(|b| b.fraction_lost).max().filter(|f| *f > 0) {
                        tracing::debug!(conn, fraction_lost = worst, "subscriber reports loss");
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
